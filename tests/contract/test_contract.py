"""The eTelecom rules our model relies on, one named test per **[inferred]** rule of the reference.

Each test runs against the simulator and, when ``ETELECOM_CONTRACT_BASE_URL`` and
``ETELECOM_CONTRACT_API_KEY`` are set, against the real platform (read-only), so the first person with a
real key learns in one command where the platform and our model differ::

    ETELECOM_CONTRACT_BASE_URL=https://api.etelecom.vn/v1/shop ETELECOM_CONTRACT_API_KEY=... \\
        pytest tests/contract -m contract -v

The behaviours with more than one plausible answer (date-filter precision, the precision of
``created_at`` in answers, ``date_to`` inclusive or not, listing lag, accepted sorts) are not
asserted here but detected and reported by ``test_unknowns.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from .conftest import Target

pytestmark = pytest.mark.contract


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _wire(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} {response.text[:300]}"
    body: dict[str, Any] = response.json()
    assert body.get("code") == code, body
    assert isinstance(body.get("msg"), str)
    assert isinstance(body.get("meta", {}), dict)
    return body


def _newest(target: Target, n: int) -> list[dict[str, Any]]:
    consents: list[dict[str, Any]] = target.list(paging={"limit": n})["consents"]
    if len(consents) < n:
        pytest.skip(f"{target.name} holds fewer than {n} consents")
    return consents


def _small_window(target: Target) -> dict[str, str]:
    """A filter that matches a handful of the newest consents (so paging to the end is cheap)."""
    newest = _newest(target, 5)
    return {"date_from": newest[-1]["created_at"]}


def test_page_cap_limit_500_is_cut_to_100_and_echoed(target: Target) -> None:
    first = _newest(target, 100)
    assert first, "needs data"
    more = target.list(paging={"limit": 100})["paging"]["next"]
    if not target.list(paging={"limit": 1, "after": more})["consents"]:
        pytest.skip(f"{target.name} holds fewer than 101 consents")
    page = target.list(paging={"limit": 500})
    assert len(page["consents"]) == 100
    assert int(page["paging"]["limit"]) == 100


def test_next_is_filled_on_the_last_non_empty_page(target: Target) -> None:
    page = target.list(filter=_small_window(target), paging={"limit": 100})
    assert 0 < len(page["consents"]) < 100, "the window should fit in one page"
    assert page["paging"]["next"], "next must be filled on the last non-empty page"


def test_listing_ends_with_an_empty_page(target: Target) -> None:
    window = _small_window(target)
    after = ""
    for _ in range(20):
        page = target.list(filter=window, paging={"after": after, "limit": 2})
        if not page["consents"]:
            assert not page["paging"].get("next")
            return
        assert page["paging"]["next"]
        after = page["paging"]["next"]
    pytest.fail("the listing never returned an empty page")


def test_default_order_is_newest_first(target: Target) -> None:
    consents = _newest(target, 20)
    created = [_time(c["created_at"]) for c in consents]
    assert created == sorted(created, reverse=True)


def test_prev_cursor_pages_backwards(target: Target) -> None:
    _newest(target, 30)
    first = target.list(paging={"limit": 10})
    second = target.list(paging={"limit": 10, "after": first["paging"]["next"]})
    back = target.list(paging={"limit": 10, "before": second["paging"]["prev"]})
    assert [c["id"] for c in back["consents"]] == [c["id"] for c in first["consents"]]


def test_error_shape_missing_key_is_401_unauthenticated(target: Target) -> None:
    _assert_error(target.post("Misc/CurrentAccount", {}, key=None), 401, "unauthenticated")


def test_error_shape_wrong_key_is_401_unauthenticated(target: Target) -> None:
    _assert_error(target.post("Misc/CurrentAccount", {}, key="contract-wrong-key"), 401, "unauthenticated")


def test_error_shape_bad_enum_is_400_invalid_argument(target: Target) -> None:
    response = target.post("Zalo/ListRequestConsent", {"filter": {"reply_status": "NOPE"}})
    _assert_error(response, 400, "invalid_argument")


def test_error_shape_unknown_method_is_404_bad_route(target: Target) -> None:
    _assert_error(target.post("Zalo/NoSuchMethod", {}), 404, "bad_route")


def test_error_shape_missing_content_type_is_404_bad_route(target: Target) -> None:
    response = target.session.post(
        f"{target.base_url}.Misc/CurrentAccount",
        data=b"{}",
        headers={"Authorization": f"Bearer {target.api_key}", "Content-Type": "text/plain"},
        timeout=30,
    )
    _assert_error(response, 404, "bad_route")


def test_error_shape_non_post_is_bad_route(target: Target) -> None:
    response = target.session.get(
        f"{target.base_url}.Misc/CurrentAccount",
        headers={"Authorization": f"Bearer {target.api_key}"},
        timeout=30,
    )
    assert response.status_code in (404, 405)
    assert response.json()["code"] == "bad_route"


def test_current_account_answers_with_the_key(target: Target) -> None:
    response = target.post("Misc/CurrentAccount", {})
    assert response.status_code == 200
    assert response.json().get("id")


def _edge(target: Target) -> dict[str, Any]:
    return _newest(target, 30)[15]


def test_date_from_is_inclusive(target: Target) -> None:
    consent = _edge(target)
    page = target.list(filter={"date_from": consent["created_at"]}, paging={"sort": "created_at", "limit": 100})
    assert consent["id"] in {c["id"] for c in page["consents"]}
    assert all(_time(c["created_at"]) >= _time(consent["created_at"]) for c in page["consents"])


def test_date_to_keeps_what_is_before_it(target: Target) -> None:
    consent = _edge(target)
    edge = _time(consent["created_at"])
    window = {"date_from": _wire(edge - timedelta(days=2)), "date_to": consent["created_at"]}
    page = target.list(filter=window, paging={"limit": 100})
    # Inclusive or not (test_unknowns.py says which), nothing after date_to is listed.
    assert page["consents"]
    assert all(_time(c["created_at"]) <= edge for c in page["consents"])


def test_sort_by_id_is_rejected(target: Target) -> None:
    for sort in ("id", "-id"):
        _assert_error(target.post("Zalo/ListRequestConsent", {"paging": {"sort": sort}}), 400, "invalid_argument")


def test_multi_field_sort_is_rejected(target: Target) -> None:
    response = target.post("Zalo/ListRequestConsent", {"paging": {"sort": "created_at,updated_at"}})
    _assert_error(response, 400, "invalid_argument")


def test_single_field_sorts_order_or_are_refused_naming_sort(target: Target) -> None:
    for sort in ("created_at", "-created_at", "updated_at", "-updated_at"):
        response = target.post("Zalo/ListRequestConsent", {"paging": {"sort": sort, "limit": 5}})
        if response.status_code != 200:
            # Which sorts are accepted is an unknown (test_unknowns.py); a refusal must name sort.
            body = _assert_error(response, 400, "invalid_argument")
            assert "sort" in str(body.get("meta")) + body["msg"], body
            continue
        stamps = [_time(c[sort.lstrip("-")]) for c in response.json()["consents"]]
        assert stamps == sorted(stamps, reverse=sort.startswith("-"))


def test_cursor_is_bound_to_its_sort(target: Target) -> None:
    _newest(target, 3)
    cursor = target.list(paging={"sort": "created_at", "limit": 2})["paging"]["next"]
    response = target.post("Zalo/ListRequestConsent", {"paging": {"sort": "-created_at", "after": cursor}})
    _assert_error(response, 400, "invalid_argument")


def test_response_echoes_paging_and_effective_limit(target: Target) -> None:
    _newest(target, 3)
    first = target.list(paging={"limit": 2})
    page = target.list(paging={"limit": 2, "after": first["paging"]["next"]})
    assert page["paging"]["after"] == first["paging"]["next"]
    assert int(page["paging"]["limit"]) == 2
