"""The report: one entry per finding, the extra to paste, and what the connection already holds."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from airflow_provider_etelecom.contract.detectors import NOTHING, Finding
from airflow_provider_etelecom.contract.report import (
    EXTRA_HEADING,
    current_settings,
    render,
    suggested_extra,
    unneeded_settings,
)

ZONE = Finding(
    "filter_zone",
    "ignores_offset",
    "the date filters read their wall clock as UTC+7",
    'set platform_filter_zone: "Asia/Ho_Chi_Minh"',
    settings={"platform_filter_zone": "Asia/Ho_Chi_Minh"},
    differs=True,
)
FIELD = Finding(
    "filter_field",
    "updated_at",
    "the date filters bound updated_at",
    "set date_filters_on_client: true",
    settings={"date_filters_on_client": True},
    differs=True,
)
CURSOR = Finding("cursor", "keyset", "the cursor is a (created_at, id) keyset")


def _render(*findings: Finding, current: dict[str, object] | None = None) -> list[str]:
    text = render(
        findings,
        target="https://x/v1/shop (connection 'e')",
        account="Shop",
        requests=9,
        consent_requests=0,
        current=current,
    )
    return text.splitlines()


def test_each_finding_is_an_entry_and_the_extra_is_one_json_line() -> None:
    lines = _render(CURSOR, ZONE, FIELD)
    assert lines[:2] == [
        "eTelecom platform check of https://x/v1/shop (connection 'e')",
        "account: Shop; 9 requests sent, 0 of them RequestConsent",
    ]
    assert "cursor: the cursor is a (created_at, id) keyset" in lines
    assert f"  -> {NOTHING}" in lines
    assert (
        "filter_zone (differs from the simulator's defaults): the date filters read their wall clock as UTC+7" in lines
    )
    assert lines[-2].startswith(f"{EXTRA_HEADING} (merge these keys")
    assert json.loads(lines[-1]) == {"date_filters_on_client": True, "platform_filter_zone": "Asia/Ho_Chi_Minh"}


def test_nothing_to_add_is_said_and_still_valid_json() -> None:
    lines = _render(CURSOR)
    assert lines[-2] == f"{EXTRA_HEADING}: none; the provider handles everything found as it is."
    assert json.loads(lines[-1]) == {}


def test_settings_the_connection_holds_are_not_asked_again() -> None:
    current = {"platform_filter_zone": "Asia/Ho_Chi_Minh"}
    assert suggested_extra([ZONE, FIELD], current) == {"date_filters_on_client": True}
    lines = _render(ZONE, current=current)
    assert 'already set: platform_filter_zone: "Asia/Ho_Chi_Minh"' in lines
    assert json.loads(lines[-1]) == {}


def test_settings_the_findings_show_wrong_or_costly_are_named() -> None:
    utc = Finding("shown_zone", "utc", "answers show true UTC")
    created = Finding("filter_field", "created_at", "the date filters bound created_at")
    honours = Finding("filter_zone", "honours_offset", "the filters honour the offset sent")
    current = current_settings(ZoneInfo("Asia/Ho_Chi_Minh"), ZoneInfo("Asia/Ho_Chi_Minh"), True)
    assert current == {
        "platform_filter_zone": "Asia/Ho_Chi_Minh",
        "platform_shown_zone": "Asia/Ho_Chi_Minh",
        "date_filters_on_client": True,
    }
    notes = unneeded_settings([utc, created, honours], current)
    assert [note.split(":")[0] for note in notes] == [
        "remove platform_shown_zone",
        "remove date_filters_on_client",
        "platform_filter_zone may stay",
    ]
    assert notes[0] in _render(utc, created, honours, current=current)
    assert unneeded_settings([utc, created, honours], {}) == []
    assert current_settings(None, None, False) == {}
