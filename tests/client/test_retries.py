"""Retry policy and error mapping against real faults from the simulator (time driven, not slept)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from airflow_provider_etelecom.client import ClientConfig, ConsentQuery, EtelecomClient, RateLimitGate
from airflow_provider_etelecom.client.errors import parse_retry_after
from airflow_provider_etelecom.exceptions import (
    EtelecomAuthError,
    EtelecomBadRequestError,
    EtelecomError,
    EtelecomMalformedResponseError,
    EtelecomNotFoundError,
    EtelecomRateLimitError,
    EtelecomTransientError,
)
from airflow_provider_etelecom.testing import EtelecomSimulator, FaultConfig
from tests.client.conftest import CannedServer

KEY = "retry-test-SECRET-0123456789"
LIST = "Zalo/ListRequestConsent"


class Sleeps(list[float]):
    """Records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sim() -> Iterator[EtelecomSimulator]:
    with EtelecomSimulator(consents=120, seed=11, api_key=KEY) as simulator:
        yield simulator


def make_client(base_url: str, sleeps: Sleeps | None = None, **kwargs: object) -> EtelecomClient:
    config = ClientConfig.build(base_url=base_url, api_key=KEY, **kwargs)  # type: ignore[arg-type]
    return EtelecomClient(config, sleep=sleeps if sleeps is not None else Sleeps())


@pytest.mark.parametrize(
    "fault", ["500", "502", "503", "drop", "truncate", ("429", 1.0), "403_exhausted", ("timeout", 1.5)]
)
def test_each_fault_kind_is_retried_and_the_listing_is_exact(sim: EtelecomSimulator, fault: object) -> None:
    sim.script_faults([fault, fault])
    sleeps = Sleeps()
    client = make_client(sim.base_url, sleeps, timeout=0.5)
    ids = [c["id"] for c in client.iter_consents()]
    assert sorted(ids) == sorted(c["id"] for c in sim.consents())
    assert len(ids) == len(set(ids))
    assert client.stats.retries == 2
    assert len(sleeps) == 2
    kind = fault if isinstance(fault, str) else fault[0]
    assert sim.stats.faults[kind] == 2


def test_retry_after_is_honoured(sim: EtelecomSimulator) -> None:
    sim.script_faults([("429", 2.0), ("429", 0.5)])
    sleeps = Sleeps()
    client = make_client(sim.base_url, sleeps)
    assert len(list(client.iter_consents())) == 120
    assert sleeps == [2.0, 0.5]
    assert client.stats.rate_limited == 2
    assert client.stats.rate_limit_waited_s == 2.5


def test_backoff_grows_exponentially_with_jitter(sim: EtelecomSimulator) -> None:
    sim.script_faults(["503"] * 5)
    sleeps = Sleeps()
    client = make_client(sim.base_url, sleeps)
    list(client.iter_consents())
    policy = client.config.retry
    for number, wait in enumerate(sleeps, start=1):
        ceiling = min(policy.backoff_max, policy.backoff_initial * 2 ** (number - 1))
        assert ceiling / 2 <= wait <= ceiling


def test_retries_stop_at_the_attempt_cap(sim: EtelecomSimulator) -> None:
    sim.script_faults(["503"] * 10)
    client = make_client(sim.base_url, max_retries=2)
    with pytest.raises(EtelecomTransientError) as caught:
        list(client.iter_consents())
    assert caught.value.status == 503
    assert caught.value.code == "unavailable"
    assert sim.stats.count(method=LIST) == 3


def test_a_retry_after_beyond_the_time_budget_gives_up_at_once(sim: EtelecomSimulator) -> None:
    sim.script_faults([("429", 30.0)])
    sleeps = Sleeps()
    client = make_client(sim.base_url, sleeps, max_retry_time=10)
    with pytest.raises(EtelecomRateLimitError) as caught:
        list(client.iter_consents())
    assert caught.value.retry_after == 30.0
    assert sleeps == []
    assert sim.stats.count(method=LIST) == 1


def test_zero_retries_fails_on_the_first_fault(sim: EtelecomSimulator) -> None:
    sim.script_faults(["502"])
    with pytest.raises(EtelecomTransientError, match="HTTP 502"):
        list(make_client(sim.base_url, max_retries=0).iter_consents())


def test_wrong_key_is_not_retried(sim: EtelecomSimulator) -> None:
    client = EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key="wrong-key-abcdef"), sleep=Sleeps())
    with pytest.raises(EtelecomAuthError) as caught:
        list(client.iter_consents())
    assert caught.value.status == 401
    assert caught.value.code == "unauthenticated"
    assert "Zalo/ListRequestConsent" in str(caught.value)
    assert "API key" in str(caught.value)
    assert sim.stats.count(method=LIST) == 1


def test_bad_request_is_not_retried_and_carries_the_platform_code(canned_server: CannedServer) -> None:
    canned_server.add({"code": "invalid_argument", "msg": "sort không hợp lệ", "meta": {"field": "sort"}}, status=400)
    with pytest.raises(EtelecomBadRequestError) as caught:
        list(make_client(canned_server.base_url).iter_consents())
    assert (caught.value.status, caught.value.code, caught.value.msg) == (400, "invalid_argument", "sort không hợp lệ")
    assert caught.value.meta == {"field": "sort"}
    assert len(canned_server.received) == 1


@pytest.mark.parametrize(
    ("status", "code", "error_class", "retried"),
    [
        (400, "malformed", EtelecomBadRequestError, False),
        (401, "unauthenticated", EtelecomAuthError, False),
        (403, "permission_denied", EtelecomAuthError, False),
        (403, "resource_exhausted", EtelecomRateLimitError, True),
        (404, "not_found", EtelecomNotFoundError, False),
        (408, "deadline_exceeded", EtelecomTransientError, True),
        (409, "already_exists", EtelecomBadRequestError, False),
        (412, "failed_precondition", EtelecomBadRequestError, False),
        (429, "resource_exhausted", EtelecomRateLimitError, True),
        (500, "internal", EtelecomTransientError, True),
        (501, "unimplemented", EtelecomBadRequestError, False),
        (503, "unavailable", EtelecomTransientError, True),
        (504, "deadline_exceeded", EtelecomTransientError, True),
    ],
)
def test_status_table(
    canned_server: CannedServer, status: int, code: str, error_class: type[EtelecomError], retried: bool
) -> None:
    for _ in range(2):
        canned_server.add({"code": code, "msg": "x"}, status=status)
    client = make_client(canned_server.base_url, max_retries=1)
    with pytest.raises(error_class) as caught:
        client.current_account()
    assert type(caught.value) is error_class
    assert len(canned_server.received) == (2 if retried else 1)


def test_html_error_pages_are_mapped_too(canned_server: CannedServer) -> None:
    canned_server.add(b"<html>502 Bad Gateway</html>", status=502, headers={"Content-Type": "text/html"})
    with pytest.raises(EtelecomTransientError, match="HTTP 502"):
        make_client(canned_server.base_url, max_retries=0).current_account()


def test_non_json_200_is_malformed(canned_server: CannedServer) -> None:
    canned_server.add(b"<html>login</html>")
    with pytest.raises(EtelecomMalformedResponseError, match="not JSON"):
        make_client(canned_server.base_url, max_retries=0).current_account()


def test_unreachable_host_is_transient_and_not_sent() -> None:
    with EtelecomSimulator(consents=1, api_key=KEY) as sim:
        url = sim.base_url
    client = make_client(url, max_retries=1, timeout=1)
    with pytest.raises(EtelecomTransientError, match="could not connect") as caught:
        client.current_account()
    assert caught.value.reached_server is False
    assert "retries network errors" in str(caught.value)


def test_request_consent_is_never_retried_once_it_may_have_reached_the_server(sim: EtelecomSimulator) -> None:
    sim.script_faults(["503"])
    client = make_client(sim.base_url)
    consent = sim.consents()[0]
    with pytest.raises(EtelecomTransientError):
        client.request_consent(
            oa_id=consent["oa_id"], phone=consent["phone"], call_type="audio", reason_code="update_order"
        )
    assert sim.stats.count(method="Zalo/RequestConsent") == 1


@pytest.mark.parametrize("fault", ["503", "drop", ("429", 1.0)])
def test_a_failed_request_consent_never_claims_it_will_be_retried(sim: EtelecomSimulator, fault: object) -> None:
    sim.script_faults([fault])
    consent = sim.consents()[0]
    with pytest.raises(EtelecomTransientError) as caught:
        make_client(sim.base_url).request_consent(
            oa_id=consent["oa_id"], phone=consent["phone"], call_type="audio", reason_code="update_order"
        )
    message = str(caught.value)
    assert "does not send it again" in message and "retries" not in message
    assert sim.stats.count(method="Zalo/RequestConsent") == 1


def test_an_answer_cut_off_mid_stream_is_reported_as_such(sim: EtelecomSimulator) -> None:
    sim.script_faults(["drop"])
    with pytest.raises(EtelecomTransientError) as caught:
        make_client(sim.base_url, max_retries=0).current_account()
    message = str(caught.value)
    assert "answer was cut off" in message and "before an answer arrived" not in message


def test_a_refused_sort_names_the_sort_parameter(canned_server: CannedServer) -> None:
    canned_server.add({"code": "invalid_argument", "msg": "không hỗ trợ"}, status=400)
    client = make_client(canned_server.base_url)
    with pytest.raises(EtelecomBadRequestError, match=r"sort='created_at'.*sort=None"):
        list(client.iter_consents(ConsentQuery.build(sort="created_at")))
    assert canned_server.received[0]["paging"]["sort"] == "created_at"


def test_a_refused_sort_falls_back_to_the_default_order_where_asked(canned_server: CannedServer) -> None:
    """Finding 9: the waits and RequestConsent read in the default order when the platform refuses a sort."""
    canned_server.add({"code": "invalid_argument", "msg": "không hỗ trợ", "meta": {"field": "sort"}}, status=400)
    canned_server.add({"consents": [{"id": "7", "created_at": "2026-01-01T00:00:07Z"}], "paging": {"next": "x"}})
    canned_server.add({"consents": None, "paging": {}})
    canned_server.add({"consents": None, "paging": {}})
    client = make_client(canned_server.base_url)
    listing = client.listing(ConsentQuery.build(sort="created_at"), sort_fallback=True)
    assert [c["id"] for page in listing for c in page["consents"]] == ["7"]
    assert [body["paging"].get("sort") for body in canned_server.received] == ["created_at", None, None]
    assert client.facts.refused_sorts == {"created_at"}
    # The next listing of this client does not ask for the refused sort again.
    assert list(client.listing(ConsentQuery.build(sort="created_at"), sort_fallback=True)) == []
    assert canned_server.received[-1]["paging"].get("sort") is None


def test_request_consent_is_retried_when_it_certainly_never_left(sim: EtelecomSimulator) -> None:
    consent = sim.consents()[0]
    sim.stop()
    # The first attempt meets a closed port; the "sleep" brings the server back, the retry lands.
    client = EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key=KEY), sleep=lambda s: sim.start())
    created = client.request_consent(
        oa_id=consent["oa_id"], phone=consent["phone"], call_type="video", reason_code="delivery_notification"
    )
    assert created["reply_status"] == "S"
    assert sim.stats.count(method="Zalo/RequestConsent") == 1
    assert client.stats.retries == 1


def test_a_shared_gate_slows_every_client_after_a_rate_limit(sim: EtelecomSimulator) -> None:
    gate = RateLimitGate()
    first_sleeps, second_sleeps = Sleeps(), Sleeps()
    config = ClientConfig.build(base_url=sim.base_url, api_key=KEY)
    first = EtelecomClient(config, sleep=first_sleeps, gate=gate)
    second = EtelecomClient(config, sleep=second_sleeps, gate=gate)
    sim.script_faults([("429", 3.0)])
    first.current_account()
    second.current_account()
    assert first_sleeps == [3.0]
    assert len(second_sleeps) == 1 and 2.0 < second_sleeps[0] <= 3.0


def test_the_key_never_reaches_messages_logs_or_reprs(sim: EtelecomSimulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim.script_faults(["503", "drop", ("429", 0.0)])
    client = make_client(sim.base_url)
    list(client.iter_consents(ConsentQuery.build(page_size=50)))
    bad = EtelecomClient(ClientConfig.build(base_url=sim.base_url, api_key=KEY + "-old"), sleep=Sleeps())
    with pytest.raises(EtelecomAuthError) as caught:
        bad.current_account()
    texts = [caplog.text, str(caught.value), repr(caught.value), repr(client), repr(client.config), repr(bad.config)]
    assert caplog.text  # retries were logged
    assert all(KEY not in text for text in texts)


@pytest.mark.parametrize(("header", "expected"), [("2", 2.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), (None, None)])
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_random_faults_with_a_seed_still_give_the_exact_listing() -> None:
    faults = FaultConfig(
        error_rate=0.1, drop_rate=0.05, truncate_rate=0.05, rate_limit_rate=0.03, exhausted_rate=0.02, seed=5
    )
    with EtelecomSimulator(consents=2000, seed=2, api_key=KEY, faults=faults) as sim:
        client = make_client(sim.base_url, max_retries=8)
        ids = [c["id"] for c in client.iter_consents()]
        assert len(ids) == len(set(ids)) == 2000
        assert sum(sim.stats.faults.values()) >= 5
        assert client.stats.retries == sum(sim.stats.faults.values())


def test_proxy_environment_is_read_once_and_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/company.pem")
    proxied = EtelecomClient(ClientConfig.build(base_url="https://api.etelecom.vn/v1/shop", api_key=KEY))
    assert proxied._session.proxies.get("https") == "http://proxy.example:3128"
    assert proxied._session.verify == "/etc/ssl/certs/company.pem"
    direct = EtelecomClient(ClientConfig.build(base_url="https://internal.example/v1/shop", api_key=KEY))
    assert "https" not in direct._session.proxies
    assert direct._session.trust_env is False  # a ~/.netrc entry can never replace the Bearer header


def test_tls_verification_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = EtelecomClient(ClientConfig.build(base_url="https://api.etelecom.vn/v1/shop", api_key=KEY))
    assert client._session.verify is True


def test_a_proxy_echoing_the_key_never_puts_it_into_errors(canned_server: CannedServer) -> None:
    echoed = f"echo Authorization: Bearer {KEY}".encode()
    canned_server.add(b"x" * 480 + echoed, status=401)  # the key straddles any 500-char cut
    canned_server.add({"code": "permission_denied", "msg": "m" * 490 + KEY, "meta": {"auth": KEY}}, status=403)
    canned_server.add(echoed + b" <html>", status=200)
    client = make_client(canned_server.base_url, max_retries=0)
    for _ in range(3):
        with pytest.raises(EtelecomError) as caught:
            client.current_account()
        everything = f"{caught.value} {caught.value.msg} {caught.value.meta}"
        assert KEY not in everything and KEY[:12] not in everything
