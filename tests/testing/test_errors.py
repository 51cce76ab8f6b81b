"""Error answers in the platform's ``{"code", "msg", "meta"}`` shape with the platform's statuses."""

from __future__ import annotations

import http.client

import pytest
import requests

from airflow_provider_etelecom.testing import EtelecomSimulator

from .conftest import KEY, call


def _assert_error(response: requests.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "msg", "meta"}
    assert body["code"] == code
    assert isinstance(body["msg"], str) and body["msg"]
    assert isinstance(body["meta"], dict)
    return body


@pytest.mark.parametrize("method", ["Zalo/ListRequestConsent", "Misc/CurrentAccount", "Zalo/CheckConsent"])
def test_missing_key_is_401_unauthenticated(sim: EtelecomSimulator, method: str) -> None:
    _assert_error(call(sim, method, {}, key=None), 401, "unauthenticated")


def test_wrong_key_is_401_and_never_echoed(sim: EtelecomSimulator) -> None:
    response = call(sim, "Misc/CurrentAccount", {}, key="wrong-key-secret")
    _assert_error(response, 401, "unauthenticated")
    assert "wrong-key-secret" not in response.text and KEY not in response.text


def test_non_bearer_scheme_is_401(sim: EtelecomSimulator) -> None:
    response = requests.post(
        sim.base_url + ".Misc/CurrentAccount", json={}, headers={"Authorization": f"Basic {KEY}"}, timeout=5
    )
    _assert_error(response, 401, "unauthenticated")


def test_partner_base_url_accepts_the_key(sim: EtelecomSimulator) -> None:
    response = call(sim, "Misc/CurrentAccount", {}, base=sim.partner_base_url)
    assert response.status_code == 200
    assert response.json()["type"] == "partner"


def test_bad_argument_is_400_invalid_argument_with_meta(sim: EtelecomSimulator) -> None:
    body = _assert_error(call(sim, "Zalo/ListRequestConsent", {"filter": {"status": "X"}}), 400, "invalid_argument")
    assert body["meta"] == {"field": "status"}


@pytest.mark.parametrize("path", [".Zalo/ListConsents", ".Nope/Nothing", "/Zalo/ListRequestConsent", ""])
def test_unknown_path_is_404_bad_route(sim: EtelecomSimulator, path: str) -> None:
    response = requests.post(sim.base_url + path, json={}, headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
    _assert_error(response, 404, "bad_route")


def test_unknown_base_is_404_bad_route(sim: EtelecomSimulator) -> None:
    response = requests.post(sim.root_url + "/v2/shop.Misc/CurrentAccount", json={}, timeout=5)
    _assert_error(response, 404, "bad_route")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_missing_json_content_type_is_404_bad_route(sim: EtelecomSimulator, content_type: str | None) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = requests.post(sim.base_url + ".Misc/CurrentAccount", data=b"{}", headers=headers, timeout=5)
    _assert_error(response, 404, "bad_route")


def test_json_content_type_with_charset_is_accepted(sim: EtelecomSimulator) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json; charset=utf-8"}
    response = requests.post(sim.base_url + ".Misc/CurrentAccount", data=b"{}", headers=headers, timeout=5)
    assert response.status_code == 200


@pytest.mark.parametrize("verb", ["GET", "PUT", "DELETE", "PATCH"])
def test_non_post_is_405_bad_route(sim: EtelecomSimulator, verb: str) -> None:
    response = requests.request(
        verb, sim.base_url + ".Zalo/ListRequestConsent", headers={"Authorization": f"Bearer {KEY}"}, timeout=5
    )
    _assert_error(response, 405, "bad_route")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b"\xff\xfe"])
def test_non_json_body_is_400_malformed(sim: EtelecomSimulator, raw: bytes) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    response = requests.post(sim.base_url + ".Zalo/ListRequestConsent", data=raw, headers=headers, timeout=5)
    _assert_error(response, 400, "malformed")


def test_filter_and_paging_of_wrong_type_are_invalid_argument(sim: EtelecomSimulator) -> None:
    body = _assert_error(call(sim, "Zalo/ListRequestConsent", {"filter": []}), 400, "invalid_argument")
    assert body["meta"]["field"] == "filter"
    body = _assert_error(call(sim, "Zalo/ListRequestConsent", {"paging": "x"}), 400, "invalid_argument")
    assert body["meta"]["field"] == "paging"


def test_chunked_request_body_is_read(sim: EtelecomSimulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    conn.putrequest("POST", "/v1/shop.Misc/CurrentAccount")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Authorization", f"Bearer {KEY}")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"2\r\n{}\r\n0\r\n\r\n")
    response = conn.getresponse()
    assert response.status == 200
    conn.close()
