"""Fault injection: each mode observed through a raw client call; seeded runs are reproducible."""

from __future__ import annotations

import http.client
import json
import time

import pytest
import requests

from airflow_provider_etelecom.testing import EtelecomSimulator, FaultConfig

from .conftest import KEY, call


def _list(sim: EtelecomSimulator, **kwargs: object) -> requests.Response:
    return call(sim, "Zalo/ListRequestConsent", {"paging": {"limit": 5}}, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "code"), [("500", "internal"), ("503", "unavailable")])
def test_5xx_json_faults(sim: EtelecomSimulator, kind: str, code: str) -> None:
    sim.script_faults([kind])
    response = _list(sim)
    assert response.status_code == int(kind)
    assert response.json()["code"] == code
    assert _list(sim).status_code == 200
    assert sim.stats.faults[kind] == 1


def test_502_has_an_html_body_like_a_gateway(sim: EtelecomSimulator) -> None:
    sim.script_faults(["502"])
    response = _list(sim)
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text
    with pytest.raises(ValueError):
        response.json()


def test_429_carries_retry_after(sim: EtelecomSimulator) -> None:
    sim.script_faults(["429", ("429", 0.25)])
    first = _list(sim)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert first.json()["code"] == "resource_exhausted"
    second = _list(sim)
    assert second.headers["Retry-After"] == "0.25"


def test_random_429_comes_in_bursts_with_configured_retry_after(sim: EtelecomSimulator) -> None:
    sim.faults = FaultConfig(rate_limit_rate=1.0, rate_limit_burst=3, retry_after_s=2.5)
    statuses = [_list(sim).status_code for _ in range(3)]
    assert statuses == [429, 429, 429]
    assert _list(sim).headers["Retry-After"] == "2.5"


def test_403_resource_exhausted(sim: EtelecomSimulator) -> None:
    sim.script_faults(["403_exhausted"])
    response = _list(sim)
    assert response.status_code == 403
    assert response.json()["code"] == "resource_exhausted"


def test_drop_cuts_the_connection_mid_body(sim: EtelecomSimulator) -> None:
    sim.script_faults(["drop"])
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        _list(sim)
    assert _list(sim).status_code == 200
    assert sim.stats.faults["drop"] == 1


def test_drop_seen_by_http_client_is_incomplete_read(sim: EtelecomSimulator) -> None:
    sim.script_faults(["drop"])
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    conn.request(
        "POST",
        "/v1/shop.Zalo/ListRequestConsent",
        body=b"{}",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()


def test_truncate_is_a_200_with_invalid_json_and_matching_length(sim: EtelecomSimulator) -> None:
    sim.script_faults(["truncate"])
    response = _list(sim)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    with pytest.raises(ValueError):
        json.loads(response.content)
    assert _list(sim).json()["consents"]


def test_timeout_fault_delays_the_answer_past_a_read_timeout(sim: EtelecomSimulator) -> None:
    sim.script_faults([("timeout", 1.0)])
    with pytest.raises(requests.exceptions.ReadTimeout):
        _list(sim, timeout=0.2)
    assert sim.stats.faults["timeout"] == 1


def test_latency_is_added_to_each_api_request(sim: EtelecomSimulator) -> None:
    sim.latency_ms = 60
    started = time.monotonic()
    _list(sim)
    assert time.monotonic() - started >= 0.06


def test_none_keeps_a_scripted_slot_normal_and_clear_drops_the_script(sim: EtelecomSimulator) -> None:
    sim.script_faults(["none", "500", "500"])
    assert _list(sim).status_code == 200
    assert _list(sim).status_code == 500
    sim.clear_scripted_faults()
    assert _list(sim).status_code == 200


def test_unknown_scripted_fault_is_refused(sim: EtelecomSimulator) -> None:
    with pytest.raises(ValueError):
        sim.script_faults(["418"])


def test_faults_never_hit_control_endpoints(sim: EtelecomSimulator) -> None:
    sim.faults = FaultConfig(error_rate=1.0)
    for _ in range(5):
        assert requests.get(sim.root_url + "/_simulator/stats", timeout=5).status_code == 200
    assert _list(sim).status_code in (500, 502, 503)


def test_faults_hit_before_auth_and_the_consent_is_not_created(sim: EtelecomSimulator) -> None:
    before = len(sim.consents())
    sim.script_faults(["503"])
    body = {
        "oa_id": sim.oa_ids[0],
        "phone": "84901234567",
        "call_type": "audio",
        "reason_code": "update_order",
    }
    assert call(sim, "Zalo/RequestConsent", body).status_code == 503
    assert len(sim.consents()) == before


def test_drop_happens_after_the_work_so_the_consent_exists(sim: EtelecomSimulator) -> None:
    before = len(sim.consents())
    sim.script_faults(["drop"])
    body = {
        "oa_id": sim.oa_ids[0],
        "phone": "84901234567",
        "call_type": "audio",
        "reason_code": "update_order",
    }
    with pytest.raises(requests.exceptions.RequestException):
        call(sim, "Zalo/RequestConsent", body)
    assert len(sim.consents()) == before + 1


def _fault_sequence(config: FaultConfig, n: int = 40) -> list[int]:
    with EtelecomSimulator(consents=20, seed=1, api_key=KEY, faults=config) as sim:
        statuses = []
        for _ in range(n):
            try:
                statuses.append(_list(sim).status_code)
            except requests.exceptions.RequestException:
                statuses.append(-1)
        return statuses


def test_same_fault_seed_gives_the_same_faults() -> None:
    config = FaultConfig(error_rate=0.2, drop_rate=0.1, rate_limit_rate=0.05, exhausted_rate=0.1, seed=42)
    first = _fault_sequence(config)
    assert first == _fault_sequence(config)
    assert {429, 403, -1, 200} <= set(first)
    assert set(first) & {500, 502, 503}
    assert first != _fault_sequence(FaultConfig(error_rate=0.2, drop_rate=0.1, exhausted_rate=0.1, seed=43))


def test_setting_faults_restarts_the_sequence(sim: EtelecomSimulator) -> None:
    config = FaultConfig(error_rate=0.5, seed=9)
    sim.faults = config
    first = [_list(sim).status_code for _ in range(20)]
    sim.faults = config
    assert [_list(sim).status_code for _ in range(20)] == first


def test_random_truncate_only_hits_200_answers(sim: EtelecomSimulator) -> None:
    sim.faults = FaultConfig(truncate_rate=1.0)
    response = call(sim, "Zalo/ListRequestConsent", {"filter": {"status": "X"}})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"


@pytest.mark.parametrize(
    "kwargs",
    [{"error_rate": 1.5}, {"drop_rate": -0.1}, {"rate_limit_burst": 0}, {"retry_after_s": -1}],
)
def test_fault_config_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FaultConfig(**kwargs)  # type: ignore[arg-type]


def test_fault_config_is_frozen() -> None:
    config = FaultConfig()
    with pytest.raises(AttributeError):
        config.error_rate = 1.0  # type: ignore[misc]


# ------------------------------------------------------------ error bodies in a 200 (a proxy answering)
def _request_body(sim: EtelecomSimulator) -> dict[str, str]:
    return {"oa_id": sim.oa_ids[0], "phone": "84901234567", "call_type": "audio", "reason_code": "update_order"}


@pytest.mark.parametrize("method", ["Zalo/ListRequestConsent", "Zalo/CheckConsent", "Misc/CurrentAccount"])
def test_200_code_and_200_errors_are_error_bodies_with_status_200(sim: EtelecomSimulator, method: str) -> None:
    body = {"oa_id": sim.oa_ids[0], "phone": "84901234567"} if method == "Zalo/CheckConsent" else {}
    sim.script_faults(["200_code", "200_errors"])
    coded = call(sim, method, body)
    assert coded.status_code == 200 and coded.json() == {"code": "unavailable", "msg": coded.json()["msg"]}
    errors = call(sim, method, body)
    assert errors.status_code == 200 and set(errors.json()) == {"errors"} and errors.json()["errors"][0]["message"]
    assert call(sim, method, body).status_code == 200
    assert sim.stats.faults["200_code"] == sim.stats.faults["200_errors"] == 1
    assert [entry["fault"] for entry in sim.requests_log] == ["200_code", "200_errors", None]


@pytest.mark.parametrize("kind", ["200_code", "200_errors"])
def test_an_error_body_answers_before_the_application_so_no_consent_is_made(sim: EtelecomSimulator, kind: str) -> None:
    before = len(sim.consents())
    sim.script_faults([kind])
    assert call(sim, "Zalo/RequestConsent", _request_body(sim)).status_code == 200
    assert len(sim.consents()) == before


def test_200_no_paging_serves_the_real_page_without_its_paging(sim: EtelecomSimulator) -> None:
    expected = call(sim, "Zalo/ListRequestConsent", {"paging": {"limit": 5}}).json()
    sim.script_faults(["200_no_paging"])
    cut = _list(sim)
    assert cut.status_code == 200 and cut.json() == {"consents": expected["consents"]}
    assert sim.stats.faults["200_no_paging"] == 1


def test_200_no_paging_leaves_an_empty_page_and_other_methods_alone(sim: EtelecomSimulator) -> None:
    sim.script_faults(["200_no_paging", "200_no_paging"])
    empty = call(sim, "Zalo/ListRequestConsent", {"filter": {"phone": "84900000001"}}).json()
    assert empty["consents"] == [] and empty["paging"]["next"] == ""
    check = call(sim, "Zalo/CheckConsent", {"oa_id": sim.oa_ids[0], "phone": "84900000001"}).json()
    assert check["error"] == -1
    assert sim.stats.faults["200_no_paging"] == 0 and sim.requests_log[-1]["fault"] is None


def test_random_error_bodies_are_seeded_and_split_among_the_three_kinds() -> None:
    config = FaultConfig(error_body_rate=1.0, seed=4)
    first = _fault_sequence(config, 90)
    assert first == _fault_sequence(config, 90) and set(first) == {200}
    with EtelecomSimulator(consents=20, seed=1, api_key=KEY, faults=config) as sim:
        bodies = [_list(sim).json() for _ in range(90)]
        kinds = dict(sim.stats.faults)
    assert sum(1 for b in bodies if "paging" not in b) == 90 == sum(kinds.values())
    assert set(kinds) == {"200_code", "200_errors", "200_no_paging"}
    assert all(18 <= n <= 42 for n in kinds.values()), kinds
    with pytest.raises(ValueError, match="error_body_rate"):
        FaultConfig(error_body_rate=1.5)


def test_configurations_without_error_bodies_keep_their_fault_sequence() -> None:
    config = FaultConfig(error_rate=0.3, seed=8)
    assert _fault_sequence(config) == _fault_sequence(FaultConfig(error_rate=0.3, error_body_rate=0.0, seed=8))
