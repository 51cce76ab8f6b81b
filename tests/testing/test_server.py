"""Server plumbing: counters, connections, request log, key rotation, stop/start, control API, seeded data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from airflow_provider_etelecom.testing import (
    CALL_TYPES,
    DELIVERY_STATUSES,
    REASON_CODES,
    EtelecomSimulator,
)

from .conftest import END, KEY, START, call, list_all, list_page, parse

WIRE_FIELDS = {
    "id",
    "shop_id",
    "user_id",
    "oa_id",
    "phone",
    "call_type",
    "reason_code",
    "reply_status",
    "status",
    "delivery_status",
    "delivery_time",
    "is_charged",
    "error_code",
    "error_message",
    "created_at",
    "updated_at",
    "expires_at",
}


def test_urls(sim: EtelecomSimulator) -> None:
    assert sim.root_url == f"http://127.0.0.1:{sim.port}"
    assert sim.base_url == sim.root_url + "/v1/shop"
    assert sim.partner_base_url == sim.root_url + "/v1/partner"
    assert sim.port > 0 and sim.running


def test_counters_by_method_and_status(sim: EtelecomSimulator) -> None:
    list_all(sim)
    call(sim, "Misc/CurrentAccount", {}, key="bad")
    call(sim, "Zalo/ListRequestConsent", {"paging": {"sort": "id"}})
    stats = sim.stats
    assert stats.requests[("Zalo/ListRequestConsent", 200)] == 5
    assert stats.requests[("Zalo/ListRequestConsent", 400)] == 1
    assert stats.requests[("Misc/CurrentAccount", 401)] == 1
    assert stats.requests_by_method == Counter({"Zalo/ListRequestConsent": 6, "Misc/CurrentAccount": 1})
    assert stats.count() == 7
    assert stats.count(method="Zalo/ListRequestConsent") == 6
    assert stats.count(status=200) == 5
    assert stats.count("Zalo/RequestConsent") == 0
    snapshot = stats.as_dict()
    assert snapshot["requests"]["Zalo/ListRequestConsent 200"] == 5
    sim.reset_stats()
    assert sim.stats.count() == 0 and sim.requests_log == []


def test_the_date_header_follows_the_simulated_clock(sim: EtelecomSimulator) -> None:
    """A platform's answers carry its clock in ``Date``; the contract check compares shown times with it."""
    from email.utils import parsedate_to_datetime

    before = parsedate_to_datetime(call(sim, "Misc/CurrentAccount", {}).headers["Date"])
    assert abs((before - sim.now()).total_seconds()) < 2
    sim.advance(3 * 3600)
    after = parsedate_to_datetime(call(sim, "Misc/CurrentAccount", {}).headers["Date"])
    assert abs((after - sim.now()).total_seconds()) < 2
    assert (after - before).total_seconds() >= 3 * 3600 - 1
    sim.clock_offset_s = -3600.0  # the consents' clock, not the answers' Date
    shown = parsedate_to_datetime(call(sim, "Misc/CurrentAccount", {}).headers["Date"])
    assert abs((shown - sim.now()).total_seconds()) < 2


def test_one_tcp_connection_for_a_multi_page_listing_with_a_session(sim: EtelecomSimulator) -> None:
    sim.reset_stats()
    with requests.Session() as session:
        after = ""
        for _ in range(5):
            after = list_page(sim, session, paging={"after": after})["paging"]["next"]
    assert sim.stats.connections == 1
    assert sim.stats.count("Zalo/ListRequestConsent", 200) == 5


def test_connections_without_a_session_are_one_per_request(sim: EtelecomSimulator) -> None:
    sim.reset_stats()
    for _ in range(3):
        call(sim, "Misc/CurrentAccount", {})
    assert sim.stats.connections == 3


def test_requests_log_records_body_and_redacts_the_key(sim: EtelecomSimulator) -> None:
    body = {"filter": {"status": "P"}, "paging": {"limit": 3}}
    call(sim, "Zalo/ListRequestConsent", body)
    entry = sim.requests_log[-1]
    assert entry["method"] == "Zalo/ListRequestConsent"
    assert entry["path"] == "/v1/shop.Zalo/ListRequestConsent"
    assert entry["body"] == body
    assert entry["status"] == 200
    assert entry["headers"]["Authorization"] == "Bearer ***"
    assert KEY not in repr(sim.requests_log)


def test_key_rotation(sim: EtelecomSimulator) -> None:
    sim.api_key = "rotated-key-9876543210"
    assert call(sim, "Misc/CurrentAccount", {}).status_code == 401
    assert call(sim, "Misc/CurrentAccount", {}, key="rotated-key-9876543210").status_code == 200


def test_stop_and_start_again_on_the_same_port(sim: EtelecomSimulator) -> None:
    port = sim.port
    session = requests.Session()
    first = list_page(sim, session, paging={"limit": 10})
    sim.stop()
    assert not sim.running
    with pytest.raises(requests.exceptions.ConnectionError):
        list_page(sim, session, paging={"after": first["paging"]["next"], "limit": 10})
    sim.start()
    assert sim.port == port
    second = list_page(sim, session, paging={"after": first["paging"]["next"], "limit": 10})
    assert second["consents"] == sim.consents()[10:20]
    session.close()


def test_start_and_stop_are_idempotent() -> None:
    sim = EtelecomSimulator(consents=5, api_key=KEY)
    sim.stop()
    assert sim.start() is sim
    sim.start()
    sim.stop()
    sim.stop()


def test_server_never_logs_to_stderr(capfd: pytest.CaptureFixture[str], sim: EtelecomSimulator) -> None:
    call(sim, "Misc/CurrentAccount", {})
    call(sim, "Misc/CurrentAccount", {}, key="x")
    out, err = capfd.readouterr()
    assert KEY not in out + err
    assert err == ""


def test_control_endpoints(sim: EtelecomSimulator) -> None:
    root = sim.root_url + "/_simulator"
    consents = requests.get(root + "/consents", timeout=5).json()["consents"]
    assert consents == sim.consents()
    target = consents[0]["id"]
    replied = requests.post(root + "/reply", json={"consent_id": target, "reply_status": "P"}, timeout=5)
    assert replied.status_code == 200 and replied.json()["reply_status"] == "P"
    now_before = sim.now()
    advanced = requests.post(root + "/advance", json={"seconds": 7200}, timeout=5).json()
    assert parse(advanced["now"]) - now_before >= timedelta(seconds=7200)
    assert parse(requests.get(root + "/now", timeout=5).json()["now"]) >= parse(advanced["now"])
    inserted = requests.post(root + "/insert", json={"count": 3}, timeout=5).json()["consents"]
    assert len(inserted) == 3 and len(sim.consents()) == 353
    at = requests.post(root + "/insert", json={"count": 1, "created_at": "2026-01-10T00:00:00Z"}, timeout=5)
    assert at.json()["consents"][0]["created_at"] == "2026-01-10T00:00:00Z"
    faults = requests.post(root + "/faults", json={"error_rate": 1.0, "seed": 3}, timeout=5).json()
    assert faults["error_rate"] == 1.0 and sim.faults.seed == 3
    assert call(sim, "Misc/CurrentAccount", {}).status_code in (500, 502, 503)
    requests.post(root + "/faults", json={}, timeout=5)
    requests.post(root + "/script_faults", json={"faults": ["429", ["timeout", 0.01]]}, timeout=5)
    assert call(sim, "Misc/CurrentAccount", {}).status_code == 429
    assert call(sim, "Misc/CurrentAccount", {}).status_code == 200
    stats = requests.get(root + "/stats", timeout=5).json()
    assert stats["requests"]["Misc/CurrentAccount 429"] == 1
    assert "_simulator" not in str(stats["requests_by_method"])
    logged = requests.get(root + "/requests_log", timeout=5).json()["requests"]
    assert [(e["method"], e["status"]) for e in logged[-2:]] == [
        ("Misc/CurrentAccount", 429),
        ("Misc/CurrentAccount", 200),
    ]
    assert logged[-1]["headers"]["Authorization"] == "Bearer ***" and sim.api_key not in str(logged)
    requests.post(root + "/reset_stats", json={}, timeout=5)
    assert sim.stats.count() == 0 and requests.get(root + "/requests_log", timeout=5).json() == {"requests": []}


def test_control_endpoint_errors(sim: EtelecomSimulator) -> None:
    root = sim.root_url + "/_simulator"
    assert requests.post(root + "/reply", json={"consent_id": "1", "reply_status": "P"}, timeout=5).status_code == 404
    assert requests.post(root + "/reply", json={"consent_id": sim.consents()[0]["id"]}, timeout=5).status_code == 400
    assert requests.post(root + "/faults", json={"nope": 1}, timeout=5).status_code == 400
    assert requests.post(root + "/faults", json={"error_rate": 3}, timeout=5).status_code == 400
    assert requests.post(root + "/advance", data=b"{x", timeout=5).status_code == 400
    assert requests.get(root + "/nothing", timeout=5).status_code == 404
    assert requests.get(root + "/reply", timeout=5).status_code == 405


def test_seeded_data_is_deterministic_and_seed_dependent() -> None:
    kwargs = {"consents": 300, "start": START, "end": END, "api_key": KEY}
    first = EtelecomSimulator(seed=11, **kwargs).consents()  # type: ignore[arg-type]
    assert first == EtelecomSimulator(seed=11, **kwargs).consents()  # type: ignore[arg-type]
    assert first != EtelecomSimulator(seed=12, **kwargs).consents()  # type: ignore[arg-type]


def test_seeded_data_shape() -> None:
    sim = EtelecomSimulator(consents=2000, seed=7, api_key=KEY, start=START, end=END)
    items = sim.consents()
    assert len(items) == 2000 and len({c["id"] for c in items}) == 2000
    assert all(set(c) == WIRE_FIELDS for c in items)
    for c in items:
        for field in ("id", "shop_id", "user_id", "oa_id"):
            assert isinstance(c[field], str) and 0 < int(c[field]) < 2**63
        assert c["phone"].startswith("84") and len(c["phone"]) == 11 and c["phone"].isdigit()
        for field in ("created_at", "updated_at", "expires_at", "delivery_time"):
            assert c[field].endswith("Z") and parse(c[field]).tzinfo is not None
        assert START <= parse(c["created_at"]) < END
        assert parse(c["updated_at"]) >= parse(c["created_at"])
        assert isinstance(c["is_charged"], bool) and isinstance(c["error_code"], int)
    assert {c["call_type"] for c in items} == {*CALL_TYPES, "unknown"}
    assert {c["reason_code"] for c in items} == {*REASON_CODES, "unknown"}
    assert {c["reply_status"] for c in items} >= {"P", "N", "NS", "Z"}
    assert {c["status"] for c in items} == {"P", "N", "Z"}
    assert {c["delivery_status"] for c in items} <= set(DELIVERY_STATUSES)
    failed = [c for c in items if c["status"] == "N"]
    assert 0.03 < len(failed) / 2000 < 0.08
    assert all(c["error_code"] != 0 and c["error_message"] for c in failed)
    assert len({c["oa_id"] for c in items}) == 3
    assert 100 <= len({c["phone"] for c in items}) <= 200
    assert len({c["created_at"] for c in items}) < 2000, "some created_at seconds are shared"
    agreed = [c for c in items if c["reply_status"] == "P"]
    assert all(parse(c["expires_at"]) - parse(c["updated_at"]) == timedelta(days=30) for c in agreed)


def test_recent_consents_are_mostly_pending() -> None:
    sim = EtelecomSimulator(consents=3000, seed=2, api_key=KEY)
    now = sim.now()
    recent = [c for c in sim.consents() if c["status"] == "P" and now - parse(c["created_at"]) < timedelta(days=1)]
    assert recent and sum(c["reply_status"] == "S" for c in recent) / len(recent) > 0.6
    old = [c for c in sim.consents() if now - parse(c["created_at"]) > timedelta(days=2)]
    assert not [c for c in old if c["status"] == "P" and c["reply_status"] == "S"]


def test_default_date_range_is_the_thirty_days_before_now() -> None:
    sim = EtelecomSimulator(consents=500, seed=1, api_key=KEY)
    now = sim.now()
    created = [parse(c["created_at"]) for c in sim.consents()]
    assert min(created) >= now - timedelta(days=30, seconds=5)
    assert max(created) <= now


def test_pools_can_be_overridden() -> None:
    sim = EtelecomSimulator(consents=50, api_key=KEY, oa_ids=["111", "222"], phones=["0901111111", "84902222222"])
    items = sim.consents()
    assert {c["oa_id"] for c in items} <= {"111", "222"}
    assert {c["phone"] for c in items} <= {"84901111111", "84902222222"}
    assert sim.phones == ["84901111111", "84902222222"]


def test_add_consent_sets_fields_and_generates_the_rest(sim: EtelecomSimulator) -> None:
    consent = sim.add_consent(
        created_at="2026-01-15T00:00:00Z", call_type="video", reply_status="P", phone="0909999999"
    )
    assert consent["created_at"] == "2026-01-15T00:00:00Z"
    assert consent["call_type"] == "video" and consent["phone"] == "84909999999"
    assert parse(consent["expires_at"]) - parse(consent["updated_at"]) == timedelta(days=30)
    assert sim.consent(consent["id"]) == consent
    with pytest.raises(ValueError):
        sim.add_consent(colour="red")
    with pytest.raises(ValueError):
        sim.add_consent(id=consent["id"])


def test_insert_consents_defaults_to_now(sim: EtelecomSimulator) -> None:
    inserted = sim.insert_consents(4)
    assert len(inserted) == 4
    assert all(abs(parse(c["created_at"]) - sim.now()) < timedelta(seconds=5) for c in inserted)
    assert [c["id"] for c in sim.consents()[:4]] == sorted((c["id"] for c in inserted), key=int, reverse=True)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        EtelecomSimulator(consents=-1)
    with pytest.raises(ValueError):
        EtelecomSimulator(start=END, end=START)
    with pytest.raises(ValueError):
        EtelecomSimulator(auto_reply_status="S")
    with pytest.raises(ValueError):
        EtelecomSimulator(api_key="")


def test_import_creates_no_files_and_imports_no_airflow(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "before = set(os.listdir('.'))\n"
        "import airflow_provider_etelecom.testing, airflow_provider_etelecom.testing.pytest_plugin\n"
        "from airflow_provider_etelecom.testing import EtelecomSimulator\n"
        "EtelecomSimulator(consents=10).start().stop()\n"
        "leaked = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n"
        "assert not leaked, leaked\n"
        "assert set(os.listdir('.')) == before\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.listdir(str(tmp_path)) == []


def test_a_large_store_is_generated_whole_and_the_same_for_a_seed() -> None:
    """How fast it is generated is for the benchmarks (machines are noisy); what it holds is tested here."""
    first, again = (EtelecomSimulator(consents=20_000, seed=1, api_key=KEY) for _ in range(2))
    ids = [c["id"] for c in first.consents()]
    assert len(ids) == len(set(ids)) == 20_000
    assert ids == [c["id"] for c in again.consents()]
    assert first.consent(ids[0]) is not None and first.consent(ids[-1]) is not None
