"""Consent lifecycle: RequestConsent, replies, auto-reply, NS expiry, failed sends, lag, CheckConsent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests

from airflow_provider_etelecom.testing import EtelecomSimulator

from .conftest import KEY, call, list_page, parse

PHONE = "84901234567"


def _request(sim: EtelecomSimulator, phone: str = PHONE, **overrides: Any) -> dict[str, Any]:
    body = {"oa_id": sim.oa_ids[0], "phone": phone, "call_type": "audio", "reason_code": "update_order"}
    body.update(overrides)
    response = call(sim, "Zalo/RequestConsent", body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _check(sim: EtelecomSimulator, phone: str = PHONE, oa_id: str | None = None) -> dict[str, Any]:
    response = call(sim, "Zalo/CheckConsent", {"oa_id": oa_id or sim.oa_ids[0], "phone": phone})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_request_consent_creates_a_pending_consent(sim: EtelecomSimulator) -> None:
    old_ids = [int(c["id"]) for c in sim.consents()]
    consent = _request(sim)
    assert consent["status"] == "P" and consent["reply_status"] == "S"
    assert consent["delivery_status"] == "unknown" and consent["is_charged"] is True
    assert consent["error_code"] == 0 and consent["error_message"] == ""
    assert int(consent["id"]) > max(old_ids)
    assert parse(consent["expires_at"]) - parse(consent["created_at"]) == timedelta(days=1)
    assert abs(parse(consent["created_at"]) - sim.now()) < timedelta(seconds=5)
    assert sim.consent(consent["id"]) == consent
    assert set(consent) == set(sim.consents()[0])
    assert list_page(sim, paging={"limit": 1})["consents"][0] == consent
    assert sim.stats.count("Zalo/RequestConsent") == 1


def test_request_consent_accepts_the_local_phone_form(sim: EtelecomSimulator) -> None:
    assert _request(sim, phone="0901234567")["phone"] == PHONE


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("oa_id", "x1"),
        ("oa_id", ""),
        ("phone", "abc"),
        ("phone", None),
        ("call_type", "fax"),
        ("call_type", "unknown"),
        ("reason_code", "spam"),
        ("reason_code", None),
    ],
)
def test_request_consent_is_validated(sim: EtelecomSimulator, field: str, value: object) -> None:
    body = {"oa_id": sim.oa_ids[0], "phone": PHONE, "call_type": "audio", "reason_code": "update_order"}
    body[field] = value  # type: ignore[assignment]
    response = call(sim, "Zalo/RequestConsent", body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"
    assert response.json()["meta"]["field"] == field
    assert len(sim.consents()) == 350


def test_reply_p_agrees_for_thirty_days(sim: EtelecomSimulator) -> None:
    consent = _request(sim)
    sim.advance(600)
    replied = sim.reply(consent["id"], "P")
    assert replied["reply_status"] == "P"
    assert replied["updated_at"] != consent["updated_at"]
    assert parse(replied["expires_at"]) - parse(replied["updated_at"]) == timedelta(days=30)
    assert replied["delivery_status"] == "seen"
    assert sim.consent(consent["id"]) == replied


def test_reply_n_refuses(sim: EtelecomSimulator) -> None:
    consent = _request(sim)
    replied = sim.reply(consent["id"], "N")
    assert replied["reply_status"] == "N"
    assert _check(sim)["error"] == -3


def test_reply_validates(sim: EtelecomSimulator) -> None:
    with pytest.raises(KeyError):
        sim.reply("1", "P")
    with pytest.raises(ValueError):
        sim.reply(sim.consents()[0]["id"], "NS")


def test_pending_consent_turns_ns_when_the_reply_window_ends(sim: EtelecomSimulator) -> None:
    consent = _request(sim)
    sim.advance(86400 - 60)
    assert sim.consent(consent["id"])["reply_status"] == "S"  # type: ignore[index]
    sim.advance(120)
    expired = sim.consent(consent["id"])
    assert expired is not None and expired["reply_status"] == "NS"
    assert expired["updated_at"] == consent["expires_at"]
    assert _check(sim)["error"] == -4


def test_ns_expiry_is_visible_in_the_listing_and_updated_at_order(sim: EtelecomSimulator) -> None:
    consent = _request(sim)
    sim.advance(2 * 86400)
    page = list_page(sim, filter={"reply_status": "NS", "phone": PHONE})
    assert [c["id"] for c in page["consents"]] == [consent["id"]]
    newest_updated = list_page(sim, paging={"sort": "-updated_at", "limit": 1})["consents"][0]
    assert newest_updated["id"] == consent["id"]


def test_custom_reply_window() -> None:
    with EtelecomSimulator(consents=10, api_key=KEY, reply_window_s=60) as sim:
        consent = _request(sim)
        assert parse(consent["expires_at"]) - parse(consent["created_at"]) == timedelta(seconds=60)
        sim.advance(61)
        assert sim.consent(consent["id"])["reply_status"] == "NS"  # type: ignore[index]


@pytest.mark.parametrize("status", ["P", "N"])
def test_auto_reply_after_simulated_delay(status: str) -> None:
    with EtelecomSimulator(consents=10, api_key=KEY, auto_reply_after_s=300, auto_reply_status=status) as sim:
        consent = _request(sim)
        sim.advance(299)
        assert sim.consent(consent["id"])["reply_status"] == "S"  # type: ignore[index]
        sim.advance(2)
        replied = sim.consent(consent["id"])
        assert replied is not None and replied["reply_status"] == status
        assert parse(replied["updated_at"]) == parse(consent["created_at"]) + timedelta(seconds=300)


def test_auto_reply_later_than_the_window_loses_to_ns() -> None:
    with EtelecomSimulator(consents=10, api_key=KEY, auto_reply_after_s=90_000) as sim:
        consent = _request(sim)
        sim.advance(100_000)
        assert sim.consent(consent["id"])["reply_status"] == "NS"  # type: ignore[index]


def test_explicit_reply_cancels_the_pending_auto_reply() -> None:
    with EtelecomSimulator(consents=10, api_key=KEY, auto_reply_after_s=300) as sim:
        consent = _request(sim)
        sim.reply(consent["id"], "N")
        sim.advance(400)
        assert sim.consent(consent["id"])["reply_status"] == "N"  # type: ignore[index]


def test_failed_send_returns_status_n_with_the_error(sim: EtelecomSimulator) -> None:
    sim.fail_send_to("0912345678", error_code=-201, error_message="Số điện thoại không hợp lệ")
    consent = _request(sim, phone="84912345678")
    assert consent["status"] == "N" and consent["reply_status"] == "S"
    assert consent["error_code"] == -201 and consent["error_message"] == "Số điện thoại không hợp lệ"
    assert consent["is_charged"] is False
    sim.advance(2 * 86400)
    assert sim.consent(consent["id"])["reply_status"] == "S"  # type: ignore[index]
    assert _check(sim, phone="84912345678")["error"] == -6


def test_fail_send_to_default_error(sim: EtelecomSimulator) -> None:
    sim.fail_send_to(PHONE)
    consent = _request(sim)
    assert consent["error_code"] == -213 and consent["error_message"]


def test_listing_lag_hides_fresh_consents_until_it_passes() -> None:
    with EtelecomSimulator(consents=30, api_key=KEY, listing_lag_s=30) as sim:
        seeded = list_page(sim, paging={"limit": 100})["consents"]
        assert len(seeded) == 30, "seeded rows are not affected by the lag"
        consent = _request(sim)
        assert consent["id"] not in {c["id"] for c in list_page(sim)["consents"]}
        assert sim.consent(consent["id"]) is not None
        sim.advance(31)
        assert consent["id"] in {c["id"] for c in list_page(sim)["consents"]}


def test_check_consent_states(sim: EtelecomSimulator) -> None:
    assert _check(sim)["error"] == -1
    assert _check(sim)["expired_time"] == ""
    consent = _request(sim)
    pending = _check(sim)
    assert pending["error"] == -2 and pending["message"]
    replied = sim.reply(consent["id"], "P")
    ok = _check(sim)
    assert ok == {"error": 0, "expired_time": replied["expires_at"], "message": ok["message"]}
    assert _check(sim, oa_id=sim.oa_ids[1])["error"] == -1, "consent is per OA"
    sim.advance(31 * 86400)
    expired = _check(sim)
    assert expired["error"] == -5 and expired["expired_time"] == replied["expires_at"]


def test_check_consent_agrees_with_seeded_data() -> None:
    with EtelecomSimulator(consents=300, seed=4, api_key=KEY) as sim:  # recent data: live agreements
        now = sim.now()
        items = sim.consents()
        pairs = sorted({(c["oa_id"], c["phone"]) for c in items})[:60]
        errors = set()
        for oa_id, phone in pairs:
            answer = _check(sim, phone=phone, oa_id=oa_id)
            errors.add(answer["error"])
            agreed = [
                c
                for c in items
                if (c["oa_id"], c["phone"]) == (oa_id, phone)
                and c["status"] == "P"
                and c["reply_status"] == "P"
                and parse(c["expires_at"]) > now
            ]
            assert (answer["error"] == 0) == bool(agreed)
            if agreed:
                assert (
                    answer["expired_time"] == max(agreed, key=lambda c: (c["updated_at"], int(c["id"])))["expires_at"]
                )
        assert 0 in errors and len(errors) > 1


def test_check_consent_validates(sim: EtelecomSimulator) -> None:
    response = call(sim, "Zalo/CheckConsent", {"oa_id": "x", "phone": PHONE})
    assert response.status_code == 400 and response.json()["meta"]["field"] == "oa_id"
    response = call(sim, "Zalo/CheckConsent", {"oa_id": sim.oa_ids[0]})
    assert response.status_code == 400 and response.json()["meta"]["field"] == "phone"


def test_current_account(sim: EtelecomSimulator) -> None:
    shop = call(sim, "Misc/CurrentAccount", {}).json()
    assert shop["type"] == "shop" and shop["name"] == "Simulated Shop"
    assert int(shop["id"]) > 0 and isinstance(shop["id"], str)
    partner = call(sim, "Misc/CurrentAccount", {}, base=sim.partner_base_url).json()
    assert partner["type"] == "partner"


def test_clock_moves_by_itself_and_by_advance(sim: EtelecomSimulator) -> None:
    before = sim.now()
    after = sim.advance(3600)
    assert after - before >= timedelta(seconds=3600)
    assert sim.now() >= after
    with pytest.raises(ValueError):
        sim.advance(-1)


def test_auto_reply_settings_can_change_while_running(sim: EtelecomSimulator) -> None:
    sim.auto_reply_after_s = 10
    sim.auto_reply_status = "N"
    consent = _request(sim)
    sim.advance(11)
    assert sim.consent(consent["id"])["reply_status"] == "N"  # type: ignore[index]
    with pytest.raises(ValueError):
        sim.auto_reply_status = "S"


# ------------------------------------------------------------------------------ deletion
def test_deleted_consents_leave_every_listing_and_check(sim: EtelecomSimulator) -> None:
    mine = _request(sim, phone="84977777777")
    order = [c["id"] for c in sim.consents()]
    first = list_page(sim, paging={"limit": 100})
    doomed = [order[150], order[151], order[300], mine["id"]]
    assert sim.delete_consents(doomed) == 4
    assert sim.consent(order[150]) is None and len(sim.consents()) == len(order) - 4
    rest: list[str] = []
    after = first["paging"]["next"]
    while True:
        page = list_page(sim, paging={"after": after, "sort": "", "limit": 100})
        if not page["consents"]:
            break
        rest.extend(c["id"] for c in page["consents"])
        after = page["paging"]["next"]
    assert rest == [i for i in order[100:] if i not in doomed], "keyset paging neither skips nor repeats"
    check = call(sim, "Zalo/CheckConsent", {"oa_id": mine["oa_id"], "phone": "84977777777"}).json()
    assert check["error"] == -1
    sim.advance(2 * 86400)  # the deleted pending consent's expiry timer finds nothing to change
    assert len(sim.consents()) == len(order) - 4


def test_deleting_an_unknown_id_deletes_nothing(sim: EtelecomSimulator) -> None:
    known = sim.consents()[0]["id"]
    with pytest.raises(KeyError, match="42"):
        sim.delete_consents([known, "42"])
    assert sim.consent(known) is not None


def test_delete_control_endpoint(sim: EtelecomSimulator) -> None:
    known = [c["id"] for c in sim.consents()[:2]]
    answer = requests.post(sim.root_url + "/_simulator/delete", json={"ids": known}, timeout=5)
    assert answer.status_code == 200 and answer.json() == {"deleted": 2}
    assert all(sim.consent(i) is None for i in known)
    missing = requests.post(sim.root_url + "/_simulator/delete", json={"ids": known}, timeout=5)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    bad = requests.post(sim.root_url + "/_simulator/delete", json={"ids": "x"}, timeout=5)
    assert bad.status_code == 400
