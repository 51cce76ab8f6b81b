"""ClientConfig.build: what a user types as Base URL becomes the URL the client calls, or a clear error.

A Base URL without a path (``https://api.etelecom.vn``) used to become ``https://api.etelecom.vn.Misc/
CurrentAccount``, an unreachable host retried as a network error for the whole retry budget. Now it
gets the account type's path; anything that still cannot be an eTelecom API URL is refused before
a client exists. Requests go to the simulator over loopback HTTP, and its request log shows the path
each call really used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from airflow_provider_etelecom.client import ClientConfig, EtelecomClient
from airflow_provider_etelecom.client import config as config_module
from airflow_provider_etelecom.exceptions import EtelecomConfigError
from airflow_provider_etelecom.testing import EtelecomSimulator

KEY = "config-test-SECRET-0123456789"


@pytest.fixture
def sim() -> Iterator[EtelecomSimulator]:
    with EtelecomSimulator(consents=30, seed=5, api_key=KEY) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def fresh_completion_log(monkeypatch: pytest.MonkeyPatch) -> None:
    # The added path is said once per process; each test starts as a new process would.
    monkeypatch.setattr(config_module, "_COMPLETED_BASE_URLS", set())


@pytest.mark.parametrize(
    ("base_url", "account_type", "expected"),
    [
        ("https://api.etelecom.vn", None, "https://api.etelecom.vn/v1/shop"),
        ("https://api.etelecom.vn", "partner", "https://api.etelecom.vn/v1/partner"),
        ("https://api.etelecom.vn/", "shop", "https://api.etelecom.vn/v1/shop"),
        ("  https://api.etelecom.vn  ", None, "https://api.etelecom.vn/v1/shop"),
        ("https://api.etelecom.vn:443", None, "https://api.etelecom.vn:443/v1/shop"),
        ("https://api.etelecom.vn:8443", None, "https://api.etelecom.vn:8443/v1/shop"),
        ("https://api.etelecom.vn/v1", "partner", "https://api.etelecom.vn/v1/partner"),
        ("https://api.etelecom.vn/v1/", None, "https://api.etelecom.vn/v1/shop"),
        ("https://api.etelecom.vn/v1/shop", None, "https://api.etelecom.vn/v1/shop"),
        ("https://api.etelecom.vn/v1/shop/", None, "https://api.etelecom.vn/v1/shop"),
        ("https://api.etelecom.vn/v1/partner//", None, "https://api.etelecom.vn/v1/partner"),
        ("HTTPS://API.eTelecom.VN/V1/Shop", None, "https://api.etelecom.vn/v1/shop"),
        ("https://gateway.example/etelecom/v1/partner", None, "https://gateway.example/etelecom/v1/partner"),
        ("https://gateway.example/etelecom/v1", None, "https://gateway.example/etelecom/v1/shop"),
        ("https://[2001:db8::1]:8443", None, "https://[2001:db8::1]:8443/v1/shop"),
        ("", "partner", "https://api.etelecom.vn/v1/partner"),
    ],
)
def test_base_url_becomes_the_api_url(base_url: str, account_type: str | None, expected: str) -> None:
    config = ClientConfig.build(base_url=base_url, api_key=KEY, account_type=account_type)
    assert config.base_url == expected
    assert config.account_type == expected.rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    ("suffix", "account_type", "path"),
    [
        ("", None, "/v1/shop"),
        ("/", "shop", "/v1/shop"),
        ("/v1", None, "/v1/shop"),
        ("", "partner", "/v1/partner"),
        ("/v1/partner/", None, "/v1/partner"),
        ("/v1/shop", None, "/v1/shop"),
    ],
)
def test_a_host_only_url_reaches_the_simulator(
    sim: EtelecomSimulator, suffix: str, account_type: str | None, path: str
) -> None:
    config = ClientConfig.build(base_url=sim.root_url.upper() + suffix, api_key=KEY, account_type=account_type)
    with EtelecomClient(config) as client:
        account = client.current_account()
        consents = list(client.iter_consents())
    assert account["type"] == path.rsplit("/", 1)[-1]
    assert len(consents) == 30
    paths = [entry["path"] for entry in sim.requests_log]
    assert paths[0] == f"{path}.Misc/CurrentAccount"
    assert set(paths[1:]) == {f"{path}.Zalo/ListRequestConsent"}
    assert all(entry["status"] == 200 for entry in sim.requests_log)


def test_the_added_path_is_said_once_at_info(sim: EtelecomSimulator, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_etelecom"):
        for _ in range(3):  # a trigger builds a fresh client on every check
            ClientConfig.build(base_url=sim.root_url, api_key=KEY)
        ClientConfig.build(base_url=sim.base_url, api_key=KEY)  # has its path: nothing to say
    said = [r for r in caplog.records if "no account path" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.INFO
    assert f"calling {sim.root_url}/v1/shop (the shop path)" in said[0].getMessage()


@pytest.mark.parametrize(
    ("base_url", "account_type", "fragment"),
    [
        ("{root}/api", None, "has the path '/api', which is not an eTelecom API path"),
        ("{root}/shop", None, "not an eTelecom API path"),
        ("{root}/v2/shop", None, "not an eTelecom API path"),
        ("{root}/v1/shop/extra", None, "not an eTelecom API path"),
        ("{root}/v1/shop.Zalo/ListRequestConsent", None, "without a method"),
        ("{root}/v1/shop?debug=1", None, "without a method"),
        ("{root}/v1/partner", "shop", "is a partner URL but the account type is 'shop'"),
        ("127.0.0.1:{port}/v1/shop", None, "must be a full URL with scheme"),
        ("ftp://127.0.0.1:{port}/v1/shop", None, "must be a full URL with scheme (https://)"),
        ("http://127.0.0.1:99999/v1/shop", None, "invalid port"),
        ("http://127.0.0.1:port/v1/shop", None, "invalid port"),
        ("http://user:{key}@127.0.0.1:{port}/v1/shop", None, "must not carry a user name or password"),
        ("http://etelecom.internal/v1/shop", None, "plain http://"),
        ("{root}", "reseller", "'shop' or 'partner'"),
    ],
)
def test_what_cannot_be_an_api_url_is_refused_before_any_request(
    sim: EtelecomSimulator, base_url: str, account_type: str | None, fragment: str
) -> None:
    url = base_url.format(root=sim.root_url, port=sim.port, key=KEY)
    with pytest.raises(EtelecomConfigError) as caught:
        ClientConfig.build(base_url=url, api_key=KEY, account_type=account_type)
    assert fragment in caught.value.message
    assert KEY not in caught.value.message
    assert sim.requests_log == []
