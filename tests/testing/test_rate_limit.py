"""The per-key rate limit (``rate_limit_per_s``): a token bucket on the simulator's clock.

Every test drives the bucket with :meth:`EtelecomSimulator.advance` and picks rates whose refill
by real time between two requests is negligible (0.1 request per second), so what they assert
does not depend on how fast the machine is.
"""

from __future__ import annotations

import pytest
import requests

from airflow_provider_etelecom.client import ClientConfig, ConsentQuery, EtelecomClient
from airflow_provider_etelecom.testing import SETTINGS, EtelecomSimulator

from .conftest import END, KEY, START, call


def _list(sim: EtelecomSimulator, key: str = KEY) -> requests.Response:
    return call(sim, "Zalo/ListRequestConsent", {"paging": {"limit": 5}}, key=key)


def test_beyond_the_rate_is_429_with_retry_after_until_the_next_token() -> None:
    with EtelecomSimulator(consents=20, api_key=KEY, rate_limit_per_s=0.1) as sim:
        assert _list(sim).status_code == 200  # the bucket starts full: one second's worth, at least 1
        refused = _list(sim)
        assert refused.status_code == 429
        assert refused.json()["code"] == "resource_exhausted"
        retry_after = float(refused.headers["Retry-After"])
        assert 0 < retry_after <= 10.0  # one token per 10 s, and the request came less than that later
        assert sim.stats.rate_limited == 1
        assert sim.stats.count("Zalo/ListRequestConsent", 429) == 1
        assert sim.stats.faults == {}, "a rate-limited answer is not a random fault"
        sim.advance(retry_after)
        assert _list(sim).status_code == 200, "waiting the Retry-After is enough"


def test_within_the_rate_nothing_is_refused() -> None:
    with EtelecomSimulator(consents=20, api_key=KEY, rate_limit_per_s=5) as sim:
        statuses = []
        for _ in range(4):
            statuses += [_list(sim).status_code for _ in range(5)]  # a burst of one second's worth
            sim.advance(1.0)
        assert statuses == [200] * 20
        assert sim.stats.rate_limited == 0


def test_the_limit_counts_authenticated_keys_only() -> None:
    with EtelecomSimulator(consents=20, api_key=KEY, rate_limit_per_s=0.1) as sim:
        assert _list(sim).status_code == 200
        assert _list(sim, key="someone-else").status_code == 401, "a wrong key is refused, not rate-limited"
        assert _list(sim).status_code == 429
        assert sim.stats.rate_limited == 1


def test_rate_is_settable_and_off_by_default() -> None:
    with EtelecomSimulator(consents=20, api_key=KEY) as sim:
        assert sim.rate_limit_per_s is None
        assert [_list(sim).status_code for _ in range(30)] == [200] * 30
        sim.rate_limit_per_s = 0.1
        assert [_list(sim).status_code for _ in range(2)] == [200, 429]
        sim.rate_limit_per_s = 0.1  # setting it again refills the bucket
        assert _list(sim).status_code == 200
        assert "rate_limit_per_s" in SETTINGS
        answer = requests.post(sim.root_url + "/_simulator/settings", json={"rate_limit_per_s": None}, timeout=5)
        assert answer.json()["rate_limit_per_s"] is None
        assert [_list(sim).status_code for _ in range(5)] == [200] * 5
        with pytest.raises(ValueError, match="rate_limit_per_s"):
            sim.rate_limit_per_s = -1


def test_the_client_under_the_limit_loses_no_consent() -> None:
    with EtelecomSimulator(consents=350, seed=7, api_key=KEY, start=START, end=END, rate_limit_per_s=0.1) as sim:
        expected = [c["id"] for c in sim.consents()]
        waits: list[float] = []

        def sleep(seconds: float) -> None:  # the client's waits move the simulator's clock instead
            waits.append(seconds)
            sim.advance(seconds)

        config = ClientConfig.build(base_url=sim.base_url, api_key=KEY)
        with EtelecomClient(config, sleep=sleep) as client:
            listed = [c["id"] for c in client.iter_consents(ConsentQuery.build(page_size=50))]
        assert sorted(listed) == sorted(expected) and len(set(listed)) == len(listed)
        # seven pages and the empty last one, with whatever the listing spent learning its cursor
        answered = sim.stats.count("Zalo/ListRequestConsent", 200)
        assert answered == client.stats.pages + 1 + client.stats.probes >= 350 // 50 + 1
        assert sim.stats.rate_limited == client.stats.rate_limited == answered - 1  # every request after the first
        assert all(0 < wait <= 10.0 for wait in waits), "the client waited what Retry-After said"
