"""Named simulator settings, one per platform behaviour nobody has confirmed, for parametrised tests.

Nobody here can reach eTelecom, so the simulator's defaults are one guess among several. A test that
must hold *whatever* the platform turns out to be runs under each of these::

    @pytest.mark.parametrize("variant", PLATFORM_VARIANTS)
    def test_export_is_exact(variant: str) -> None:
        with EtelecomSimulator(consents=500, **PLATFORM_VARIANTS[variant]) as sim:
            ...

Every precision variant turns ``fractional_times`` on: with whole-second data, how the platform
reads or writes fractions changes nothing. :data:`PLATFORM_VARIANT_DESCRIPTIONS` says in one line what
each variant plays (same keys). Every entry is checked at import against the switch declarations
(:class:`~airflow_provider_etelecom.testing.switches.PlatformSwitches`): a name that is no switch,
or a value the switch refuses, fails the import.

Some variants play platforms that lose or repeat consents for a client that trusts the obvious
reading: a short page (``page_cap_50``, ``drop_after_limit``), a cursor on the sort value or an
offset (``cursor_value_lt``, ``cursor_value_le``, ``cursor_offset``), an id order (``order_by_id``),
a zone or clock misread (``filter_local_zone``, ``shown_local_as_z``, ``platform_clock_behind``).
What an exact export of them must hold is ``sim.consents(visible_only=True)``.
"""

from __future__ import annotations

from airflow_provider_etelecom.testing.switches import PlatformSwitches

_FRACTIONAL: dict[str, object] = {"fractional_times": True}

#: Constructor keyword arguments of :class:`~airflow_provider_etelecom.testing.EtelecomSimulator`, by name.
PLATFORM_VARIANTS: dict[str, dict[str, object]] = {
    "defaults": {},
    "filter_exact_fractional": {**_FRACTIONAL},
    "filter_s_truncate": {**_FRACTIONAL, "date_filter_precision": "s_truncate"},
    "filter_s_round": {**_FRACTIONAL, "date_filter_precision": "s_round"},
    "filter_ms": {**_FRACTIONAL, "date_filter_precision": "ms"},
    "shown_s_truncate": {**_FRACTIONAL, "created_at_precision": "s_truncate"},
    "shown_s_round": {**_FRACTIONAL, "created_at_precision": "s_round"},
    "shown_ms": {**_FRACTIONAL, "created_at_precision": "ms"},
    "date_to_inclusive": {"date_to_inclusive": True},
    "filter_s_truncate+date_to_inclusive": {
        **_FRACTIONAL,
        "date_filter_precision": "s_truncate",
        "date_to_inclusive": True,
    },
    "shown_s_round+filter_s_truncate": {
        **_FRACTIONAL,
        "created_at_precision": "s_round",
        "date_filter_precision": "s_truncate",
    },
    "listing_lag": {"listing_lag_s": 30.0},
    "updated_at_sort_refused": {"accepted_sorts": ("created_at", "-created_at")},
    "updated_at_sort_ignored": {"ignored_sorts": ("updated_at", "-updated_at")},
    "reply_keeps_updated_at": {"reply_moves_updated_at": False},
    "crowded_second": {**_FRACTIONAL, "burst_share": 0.5, "burst_span_s": 1.0},
    "page_cap_50": {"page_cap": 50},
    "page_cap_50+limit_asked": {"page_cap": 50, "limit_echo": "asked"},
    "limit_absent": {"limit_echo": "absent"},
    "null_empty_page": {"null_empty_page": True},
    "drop_after_limit": {"drop_after_limit": 0.1},
    "cursor_value_lt": {"cursor_kind": "value_lt"},
    "cursor_value_le": {"cursor_kind": "value_le"},
    "cursor_offset": {"cursor_kind": "offset"},
    "cursor_expiry": {"cursor_ttl_s": 60.0},
    "order_by_id": {"order_by_id": True, "id_time_jitter_s": 300.0},
    "filter_on_updated_at": {"date_filter_field": "updated_at"},
    "filter_local_zone": {"filter_zone_offset_h": 7.0},
    "shown_local_as_z": {"shown_zone_offset_h": 7.0},
    "numeric_ids": {"numeric_ids": True},
    "pending_conflict": {"pending_conflict": True},
    "platform_clock_behind": {"clock_offset_s": -3600.0},
    "answer_clock_ahead": {"answer_clock_offset_s": 900.0},
    # 30 % of the seeded consents in one whole second: 240 of the exactness suite's 800, 300 of the
    # simulator's default 1,000 (more than two pages of 100); it scales with ``consents``.
    "second_past_a_page": {"burst_share": 0.3, "burst_span_s": 1.0},
}

#: The variants that change how the waiting side's changed reads (``sort=-updated_at``) behave.
READING_VARIANTS: tuple[str, ...] = (
    "defaults",
    "updated_at_sort_refused",
    "updated_at_sort_ignored",
    "reply_keeps_updated_at",
)

#: What real-platform behaviour each of :data:`PLATFORM_VARIANTS` plays, in one line.
PLATFORM_VARIANT_DESCRIPTIONS: dict[str, str] = {
    "defaults": "whole-second times, exact filters, date_to exclusive, no lag, every sort accepted",
    "filter_exact_fractional": "created_at has microseconds; date filters compared exactly",
    "filter_s_truncate": "date filters cut to whole seconds (10:00:00.3 reads as 10:00:00)",
    "filter_s_round": "date filters rounded half-up to whole seconds (10:00:00.5 reads as 10:00:01)",
    "filter_ms": "date filters cut to milliseconds",
    "shown_s_truncate": "answers show times cut to whole seconds; filters compare the exact value",
    "shown_s_round": "answers show times rounded to whole seconds; filters compare the exact value",
    "shown_ms": "answers show times cut to milliseconds; filters compare the exact value",
    "date_to_inclusive": "filter.date_to is inclusive (created_at <= date_to)",
    "filter_s_truncate+date_to_inclusive": "date filters cut to whole seconds, and date_to inclusive",
    "shown_s_round+filter_s_truncate": "answers show rounded seconds while filters cut to seconds",
    "listing_lag": "a new consent is listable only 30 s after it was created",
    "updated_at_sort_refused": "only created_at sorts accepted; sort=updated_at gets 400 naming sort",
    "updated_at_sort_ignored": "sort=updated_at accepted and echoed, but answered newest created_at first",
    "reply_keeps_updated_at": "a reply (P, N, NS) leaves updated_at at its old value",
    "crowded_second": "half of the seeded consents created inside one second, with microseconds",
    "page_cap_50": "at most 50 consents a page whatever limit asks; paging.limit echoes 50",
    "page_cap_50+limit_asked": "at most 50 consents a page, while paging.limit echoes the limit asked",
    "limit_absent": "the answer's paging has no limit key",
    "null_empty_page": 'an empty page is {"consents": null}, as Go encodes a nil slice',
    "drop_after_limit": "a tenth of the consents dropped after the SQL LIMIT: short pages mid-listing",
    "cursor_value_lt": "the cursor holds the sort value only; the next page is < it: ties past a page's edge skipped",
    "cursor_value_le": "the cursor holds the sort value only; the next page is <= it: a page's ties served again",
    "cursor_offset": "the cursor is a row offset: inserts ahead of it repeat rows, deletes skip rows",
    "cursor_expiry": "a cursor is refused (400 invalid_argument on after) once it is 60 s old",
    "order_by_id": "created_at sorts served in id order, and ids follow created_at only within 5 minutes",
    "filter_on_updated_at": "date_from/date_to bound updated_at, not created_at",
    "filter_local_zone": "date filters read as Vietnam wall clock (UTC+7), whatever offset they carry",
    "shown_local_as_z": "answers show Vietnam wall clock (UTC+7) labelled Z; filters use the true time",
    "numeric_ids": "id, shop_id, user_id and oa_id are JSON numbers (an int64 without the ,string tag)",
    "pending_conflict": "RequestConsent to a phone with a request still waiting (P, S) gets 409 already_exists",
    "platform_clock_behind": "the platform's clock is an hour behind: new consents are stamped an hour in the past",
    "answer_clock_ahead": "RequestConsent's answer shows created_at/updated_at 15 minutes ahead of the listing",
    "second_past_a_page": "30% of the seeded consents share one exact whole-second created_at: over two pages",
}


def _check_variants() -> None:
    """Refuse, at import, a variant that names no switch or gives a bad value, or one left undescribed."""
    for name, switches in PLATFORM_VARIANTS.items():
        PlatformSwitches.of(switches, where=f"PLATFORM_VARIANTS[{name!r}]")
    if set(PLATFORM_VARIANT_DESCRIPTIONS) != set(PLATFORM_VARIANTS):
        raise ValueError(
            "PLATFORM_VARIANT_DESCRIPTIONS must describe every variant, and only them: "
            f"{sorted(set(PLATFORM_VARIANT_DESCRIPTIONS) ^ set(PLATFORM_VARIANTS))}"
        )


_check_variants()
