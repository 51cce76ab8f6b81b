"""EtelecomHook: connection parsing, the client it builds, test_connection and the form metadata."""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from collections.abc import Iterator

import pytest

from airflow_provider_etelecom import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_provider_etelecom.client.config import base_url_from_fields
from airflow_provider_etelecom.exceptions import EtelecomConfigError, EtelecomValidationError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.testing import EtelecomSimulator
from tests.conftest import SECRET_KEY


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "etelecom_default", **fields: object) -> None:
    body = {"conn_type": "etelecom", **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))


@pytest.fixture
def sim() -> Iterator[EtelecomSimulator]:
    with EtelecomSimulator(consents=230, seed=9, api_key=SECRET_KEY) as simulator:
        yield simulator


def test_lists_every_consent_through_an_env_var_connection(
    sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, host=sim.base_url, password=SECRET_KEY)
    hook = EtelecomHook()
    ids = [c["id"] for c in hook.list_consents()]
    assert sorted(ids) == sorted(c["id"] for c in sim.consents())
    assert hook.get_conn() is hook.client
    assert sim.stats.connections == 1
    pages = list(hook.list_consent_pages(page_size=100, max_pages=2))
    assert len(pages) == 2


def test_filters_are_validated_before_any_request(sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, host=sim.base_url, password=SECRET_KEY)
    with pytest.raises(EtelecomValidationError, match="reply_status"):
        EtelecomHook().list_consents(reply_status="maybe")
    assert sim.stats.count() == 0


def test_partner_connection_uses_the_partner_path(sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, host=sim.partner_base_url, password=SECRET_KEY, extra={"account_type": "partner"})
    hook = EtelecomHook()
    assert hook.client.config.account_type == "partner"
    assert len(list(hook.list_consents(max_pages=1))) == 100
    assert hook.client.current_account()["type"] == "partner"


def test_settings_come_from_the_extra_plain_or_prefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(
        monkeypatch,
        host="https://api.etelecom.vn/v1/shop",
        password="k" * 20,
        extra={"account_type": "shop", "extra__etelecom__timeout": "12", "max_retries": "3", "max_retry_time": 40},
    )
    config = EtelecomHook().client.config
    assert (config.timeout, config.connect_timeout) == (12.0, 10.0)
    assert (config.retry.max_retries, config.retry.max_retry_time) == (3, 40.0)
    hook = EtelecomHook(timeout=5, max_retries=0)
    assert (hook.client.config.timeout, hook.client.config.retry.max_retries) == (5.0, 0)


def test_empty_base_url_means_the_default_for_the_account_type(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, password="k" * 20, extra={"account_type": "partner"})
    assert EtelecomHook().client.config.base_url == "https://api.etelecom.vn/v1/partner"
    set_connection(monkeypatch, password="k" * 20)
    assert EtelecomHook().client.config.base_url == "https://api.etelecom.vn/v1/shop"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"host": "https://api.etelecom.vn/v1/partner", "extra": {"account_type": "shop"}}, "is a partner URL"),
        ({"host": "api.etelecom.vn/v1/shop"}, "has no scheme"),
        ({"host": "https://api.etelecom.vn/v1/shop.Zalo"}, "without a method"),
        ({"host": "https://api.etelecom.vn/v1/shop.Zalo/ListRequestConsent"}, "without a method"),
        ({"host": "http://api.etelecom.vn/v1/shop"}, "plain http://"),
        ({"extra": {"account_type": "reseller"}}, "'shop' or 'partner'"),
        ({"extra": {"timeout": "soon"}}, "timeout='soon' must be empty or a number"),
        ({"extra": {"timeout": "nan"}}, "timeout='nan' must be empty or a number"),
        ({"extra": {"max_retries": 2.5}}, "whole number"),
        ({"extra": {"max_retries": -1}}, "max_retries"),
        ({"extra": {"allow_insecure_http": "perhaps"}}, "true or false"),
    ],
)
def test_connection_errors_say_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, object], fragment: str
) -> None:
    set_connection(monkeypatch, conn_id="bad", password=SECRET_KEY, **fields)
    with pytest.raises(EtelecomConfigError) as caught:
        EtelecomHook("bad").get_conn()
    assert fragment in str(caught.value)
    assert "'bad'" in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


def fill(fields: dict[str, object], sim: EtelecomSimulator) -> dict[str, object]:
    """Put the simulator's URL, port and key into a connection template."""
    text = json.dumps(fields).replace('"{port}"', str(sim.port)).replace("{port}", str(sim.port))
    return dict(json.loads(text.replace("{root}", sim.root_url).replace("{key}", SECRET_KEY)))


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"host": "{root}"}, "/v1/shop"),
        ({"host": "{root}/"}, "/v1/shop"),
        ({"host": "127.0.0.1", "schema": "http", "port": "{port}"}, "/v1/shop"),
        (
            {"host": "127.0.0.1", "schema": "HTTP", "port": "{port}", "extra": {"account_type": "partner"}},
            "/v1/partner",
        ),
        ({"host": "127.0.0.1:{port}", "schema": "http"}, "/v1/shop"),
        ({"host": "127.0.0.1/v1/partner/", "schema": "http", "port": "{port}"}, "/v1/partner"),
        ({"host": "http://127.0.0.1/v1/shop", "port": "{port}"}, "/v1/shop"),
    ],
)
def test_a_connection_without_a_path_gets_the_account_path(
    sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, fields: dict[str, object], path: str
) -> None:
    set_connection(monkeypatch, password=SECRET_KEY, **fill(fields, sim))
    hook = EtelecomHook()
    ok, message = hook.test_connection()
    assert ok, message
    assert hook.client.config.base_url == f"{sim.root_url}{path}"
    assert len(list(hook.list_consents(max_pages=1))) == 100
    assert [entry["path"] for entry in sim.requests_log] == [
        f"{path}.Misc/CurrentAccount",
        f"{path}.Zalo/ListRequestConsent",
    ]


def test_the_uri_form_with_a_schema_reaches_the_simulator(
    sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Airflow's URI form cannot carry a path for us: its path is the connection's schema.
    monkeypatch.setenv("AIRFLOW_CONN_ETELECOM_DEFAULT", f"etelecom://:{SECRET_KEY}@127.0.0.1:{sim.port}/http")
    ok, message = EtelecomHook().test_connection()
    assert ok, message
    assert [entry["path"] for entry in sim.requests_log] == ["/v1/shop.Misc/CurrentAccount"]


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"host": "127.0.0.1", "port": "{port}"}, ["Base URL (host) '127.0.0.1' has no scheme", "schema is empty"]),
        ({"host": "127.0.0.1", "schema": "v1/shop", "port": "{port}"}, ["schema is 'v1/shop'", "'https://127.0.0.1'"]),
        ({"host": "{root}", "schema": "https"}, ["schema is 'https' but its Base URL (host)", "starts with http://"]),
        ({"host": "{root}", "port": 1}, ["port is 1 but its Base URL (host)", "names port"]),
        ({"schema": "http", "port": "{port}"}, ["Base URL (host) is empty but its schema is 'http'"]),
        ({"host": "{root}/api"}, ["has the path '/api', which is not an eTelecom API path"]),
        (
            {"host": "127.0.0.1/api", "schema": "http", "port": "{port}"},
            ["not an eTelecom API path", "made of the connection's schema 'http', host '127.0.0.1/api'"],
        ),
        ({"host": "http://user:{key}@127.0.0.1:{port}/v1/shop"}, ["must not carry a user name or password"]),
    ],
)
def test_fields_that_cannot_make_an_api_url_fail_before_any_request(
    sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, fields: dict[str, object], fragments: list[str]
) -> None:
    set_connection(monkeypatch, conn_id="bad", password=SECRET_KEY, **fill(fields, sim))
    with pytest.raises(EtelecomConfigError) as caught:
        list(EtelecomHook("bad").list_consents(max_pages=1))
    ok, message = EtelecomHook("bad").test_connection()
    assert not ok
    for fragment in fragments:
        assert fragment in caught.value.message
        assert fragment in message
    assert "'bad'" in caught.value.message
    assert SECRET_KEY not in caught.value.message
    assert sim.requests_log == []


@pytest.mark.parametrize("port", [None, "", 0, "0"])
def test_an_empty_or_zero_port_means_the_scheme_default(port: object) -> None:
    # Airflow 3.3's UI sends port 0 for the hidden port field (scripts/_local_airflow.py stores it).
    assert base_url_from_fields("https://api.etelecom.vn/v1/shop", None, port) == (
        "https://api.etelecom.vn/v1/shop",
        False,
    )
    assert base_url_from_fields("api.etelecom.vn", "https", port) == ("https://api.etelecom.vn", True)


@pytest.mark.parametrize("port", ["eighty", -1, 70000, True, 44.5])
def test_a_port_that_is_no_port_names_the_port_field(port: object) -> None:
    # Airflow itself refuses some of these in an AIRFLOW_CONN_ variable; a secrets backend may not.
    with pytest.raises(EtelecomConfigError, match=r"The connection's port is .* whole number from 1 to 65535"):
        base_url_from_fields("api.etelecom.vn", "https", port)


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, password: str | None) -> None:
    fields = {} if password is None else {"password": password}
    set_connection(monkeypatch, host="https://api.etelecom.vn/v1/shop", **fields)
    with pytest.raises(EtelecomConfigError, match="no API key"):
        EtelecomHook().get_conn()


def test_plain_http_can_be_allowed_explicitly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    set_connection(
        monkeypatch, host="http://etelecom.internal/v1/shop", password=SECRET_KEY, extra={"allow_insecure_http": True}
    )
    with caplog.at_level(logging.WARNING):
        assert EtelecomHook().client.config.base_url == "http://etelecom.internal/v1/shop"
    assert "unencrypted" in caplog.text


def test_unknown_connection_id_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="nope_not_here"):
        EtelecomHook("nope_not_here").get_conn()


def test_test_connection_both_ways(sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, host=sim.base_url, password=SECRET_KEY)
    ok, message = EtelecomHook().test_connection()
    assert ok and "Connected" in message
    assert sim.stats.count(method="Misc/CurrentAccount") == 1

    set_connection(monkeypatch, conn_id="wrong_key", host=sim.base_url, password="not-the-key-123456")
    ok, message = EtelecomHook("wrong_key").test_connection()
    assert not ok and "401" in message and "API key" in message

    port = sim.port
    sim.stop()
    set_connection(
        monkeypatch,
        conn_id="gone",
        host=f"http://127.0.0.1:{port}/v1/shop",
        password=SECRET_KEY,
        extra={"max_retries": 0},
    )
    ok, message = EtelecomHook("gone").test_connection()
    assert not ok and "reachable" in message
    assert SECRET_KEY not in message


def test_request_and_check_consent(sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, host=sim.base_url, password=SECRET_KEY)
    hook = EtelecomHook()
    oa_id = sim.oa_ids[0]
    consent = hook.request_consent(oa_id=oa_id, phone="0912 000 111", call_type="audio", reason_code="update_order")
    assert consent["phone"] == "84912000111"
    assert (consent["status"], consent["reply_status"]) == ("P", "S")
    assert hook.find_consent(consent["id"], oa_id=oa_id, phone="+84912000111") == consent
    assert sim.stats.count(method="Zalo/ListRequestConsent") == 1
    assert hook.check_consent(oa_id=oa_id, phone="0912000111")["error"] != 0
    sim.reply(consent["id"], "P")
    assert hook.check_consent(oa_id=oa_id, phone="0912000111")["error"] == 0


def test_close_releases_the_session(sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, host=sim.base_url, password=SECRET_KEY)
    hook = EtelecomHook()
    first = hook.client
    hook.close()
    assert hook.client is not first


def test_async_client_reads_the_connection_each_time(sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = EtelecomHook()
    set_connection(monkeypatch, host=sim.base_url, password="old-key-0123456789")
    assert asyncio.run(hook.aget_client()).config.api_key == "old-key-0123456789"
    set_connection(monkeypatch, host=sim.base_url, password=SECRET_KEY)
    client = asyncio.run(hook.aget_client())
    assert client.current_account()["id"]


def test_form_fields_match_provider_info() -> None:
    behaviour = EtelecomHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key"}
    assert set(behaviour["hidden_fields"]) == {"schema", "login", "port", "extra"}
    assert behaviour == {
        "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
        "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
        "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
    }
    assert [f["label"] for f in CONN_FIELDS.values()] == ["Account type", "Timeout", "Max retries", "Max retry time"]


def test_form_widgets_show_the_documented_fields() -> None:
    from airflow import __version__ as airflow_version

    labels = [f["label"] for f in CONN_FIELDS.values()]
    if airflow_version.startswith("2."):
        # Airflow 2.x builds the form from the hook's methods.
        widgets = EtelecomHook.get_connection_form_widgets()
        assert list(widgets) == list(CONN_FIELDS)
        assert [str(w.args[0]) for w in widgets.values()] == labels
    else:
        # Airflow 3.2+ builds it from provider info, without calling the hook's methods.
        from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS
        from airflow.providers_manager import ProvidersManager

        if not AIRFLOW_V_3_2_PLUS:
            pytest.skip(
                "Airflow 3.0 and 3.1 build the form from the hook's methods, and only with flask_appbuilder "
                "(the FAB provider) installed; provider info's conn-fields are read from 3.2 on"
            )

        widgets = ProvidersManager().connection_form_widgets
        ours = {k.rsplit("__", 1)[-1]: w for k, w in widgets.items() if k.startswith("extra__etelecom__")}
        assert [ours[name].field["schema"]["title"] for name in CONN_FIELDS] == labels


def test_hook_raises_no_deprecation_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EtelecomHook()


# -- a key rotated while a task runs -----------------------------------------------------------------

ROTATED = "etl-ROTATED-key-4d2b8e6f10"
LIST = "Zalo/ListRequestConsent"


def test_a_rotated_key_is_picked_up_by_reading_the_connection_once(
    sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, host=sim.base_url, password=SECRET_KEY)
    hook = EtelecomHook()
    hook.check_consent(oa_id="4239023413265392134", phone="0912000333")
    sim.api_key = ROTATED  # the platform now refuses the old key ...
    set_connection(monkeypatch, host=sim.base_url, password=ROTATED)  # ... and the connection holds the new one
    hook.check_consent(oa_id="4239023413265392134", phone="0912000333")
    assert sim.stats.count(status=401) == 1
    assert sim.stats.count(method="Zalo/CheckConsent", status=200) == 2
    hook.check_consent(oa_id="4239023413265392134", phone="0912000333")  # the new key sticks
    assert sim.stats.count(status=401) == 1


@pytest.mark.parametrize("parallel_windows", [None, 3])
def test_a_key_rotated_mid_export_loses_no_page(
    sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch, parallel_windows: int | None
) -> None:
    set_connection(monkeypatch, host=sim.base_url, password=SECRET_KEY)
    hook = EtelecomHook()
    pages = hook.list_consent_pages(
        page_size=20,
        date_from="2000-01-01T00:00:00Z",
        date_to="2100-01-01T00:00:00Z",
        max_parallel_windows=parallel_windows,
    )
    ids = [c["id"] for c in next(pages)["consents"]]
    sim.api_key = ROTATED
    set_connection(monkeypatch, host=sim.base_url, password=ROTATED)
    for page in pages:
        ids.extend(c["id"] for c in page["consents"])
    assert sorted(ids) == sorted(c["id"] for c in sim.consents())
    # Each client that met the refusal read the connection once and went on: one 401 per worker at most.
    assert 1 <= sim.stats.count(status=401) <= (parallel_windows or 1)


def test_the_same_key_is_not_sent_twice_and_a_refused_new_key_is_final(
    sim: EtelecomSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_etelecom.exceptions import EtelecomAuthError

    sim.api_key = ROTATED
    set_connection(monkeypatch, host=sim.base_url, password=SECRET_KEY)
    with pytest.raises(EtelecomAuthError, match="holds the same key"):
        EtelecomHook().check_consent(oa_id="4239023413265392134", phone="0912000333")
    assert sim.stats.count(status=401) == 1
    hook = EtelecomHook()
    hook.client  # noqa: B018 - built with the connection's key
    set_connection(monkeypatch, host=sim.base_url, password="etl-ANOTHER-key-77aa01")
    with pytest.raises(EtelecomAuthError, match="new key was refused too") as raised:
        hook.check_consent(oa_id="4239023413265392134", phone="0912000333")
    assert sim.stats.count(status=401) == 3
    assert "etl-ANOTHER-key-77aa01" not in str(raised.value) and SECRET_KEY not in str(raised.value)
