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
