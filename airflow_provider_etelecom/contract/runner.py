"""Run every detector against one platform, in the order their results feed each other.

The newest pages are read once and shared; the zone probe runs before the detectors that write
windows (they move them by the shift it found); the detectors that need a fresh consent run only
when the probe was built with a ``RequestConsent`` budget and an OA id and phone were given, and
then send at most :data:`MAX_CONSENT_REQUESTS`. A detector the platform's answers stop is reported
as such and the others go on; a refused key or an unreachable platform stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from airflow_provider_etelecom.contract.detectors import (
    BEHAVIOURS,
    Finding,
    FreshConsent,
    ZoneProbe,
    detect_accepted_sorts,
    detect_answer_clock,
    detect_created_at_precision,
    detect_crowded_second,
    detect_cursor,
    detect_cursor_expiry,
    detect_date_filter_precision,
    detect_date_to,
    detect_empty_page,
    detect_filter_field,
    detect_filter_zone,
    detect_ids,
    detect_listing_lag,
    detect_order,
    detect_page_cap,
    detect_pending_conflict,
    detect_platform_clock,
    detect_short_pages,
    detect_shown_zone,
    failed,
    not_checked,
    probe_zones,
    send_fresh_consent,
)
from airflow_provider_etelecom.contract.probe import US, Probe, time_or_none, walk_newest
from airflow_provider_etelecom.exceptions import EtelecomAuthError, EtelecomError, EtelecomTransientError

#: The most ``RequestConsent`` a run sends when allowed: one fresh consent (listing lag, clocks,
#: shown zone), and one more to the same phone while the first is pending (the 409), only then.
MAX_CONSENT_REQUESTS = 2
_NEEDS_CONSENT = (
    "needs RequestConsent (a charged message): give --oa-id, --phone (your own) and --allow-request-consent"
)


@dataclass(frozen=True)
class CheckOptions:
    """How far a run looks.

    :param pages: newest pages (of 100) read for the order, ties, page sizes and crowded seconds.
    :param cursor_wait_s: seconds to keep a cursor before reusing it (0: not checked).
    :param oa_id: the OA a fresh consent is requested through (with ``phone``; and only when the
        probe has a ``RequestConsent`` budget).
    :param phone: the user's own phone, which receives the consent request(s).
    :param lag_step_s: seconds between two looks for the fresh consent in the listing.
    :param lag_budget_s: how long to look for it.
    """

    pages: int = 10
    cursor_wait_s: float = 65.0
    oa_id: str | None = None
    phone: str | None = None
    lag_step_s: float = 5.0
    lag_budget_s: float = 300.0


def _guard(behaviour: str, detect: Callable[[], Finding]) -> Finding:
    try:
        return detect()
    except (EtelecomAuthError, EtelecomTransientError):
        raise
    except EtelecomError as error:
        return failed(behaviour, error)


def run_checks(
    probe: Probe,
    options: CheckOptions | None = None,
    *,
    sleep: Callable[[float], object] = time.sleep,
    progress: Callable[[str], object] = lambda _: None,
) -> list[Finding]:
    """Run every detector and return the findings in :data:`BEHAVIOURS` order.

    :param sleep: how to wait (the cursor expiry, the listing lag); tests pass the simulator's ``advance``.
    :param progress: called with a short line before each step (the command prints it on stderr).
    :raises EtelecomAuthError: when the platform refuses the key.
    :raises EtelecomTransientError: when the platform cannot be reached.
    :raises EtelecomError: when the plain newest-first listing itself is refused.
    """
    options = options or CheckOptions()
    found: dict[str, Finding] = {}

    def run(behaviour: str, detect: Callable[[], Finding]) -> Finding:
        progress(f"checking {behaviour}: {BEHAVIOURS[behaviour]}")
        found[behaviour] = _guard(behaviour, detect)
        return found[behaviour]

    progress(f"reading the newest {options.pages} pages")
    walk = walk_newest(probe, options.pages)
    run("ids", lambda: detect_ids(probe, walk))
    run("empty_page", lambda: detect_empty_page(probe))
    cap = run("page_cap", lambda: detect_page_cap(probe, walk))
    run("short_pages", lambda: detect_short_pages(probe, walk))
    run("order", lambda: detect_order(probe, walk))
    run("crowded_second", lambda: detect_crowded_second(probe, walk, cap.data.get("cap")))
    run("cursor", lambda: detect_cursor(probe, walk))
    run("sorts", lambda: detect_accepted_sorts(probe))

    progress("probing the zones of the date filters and of the times shown (up to 30 narrow windows)")
    try:
        zones: ZoneProbe | None = probe_zones(probe, walk)
    except (EtelecomAuthError, EtelecomTransientError):
        raise
    except EtelecomError as error:
        zones, zone_error = None, error
    fresh, listed_consent = _fresh_consent(probe, options, sleep, run)
    fresh_delta = None
    if fresh is not None and listed_consent is not None:
        created = time_or_none(listed_consent, "created_at")
        fresh_delta = None if created is None else (created - fresh.asked_at) / US
    if zones is None:
        shown = run("shown_zone", lambda: failed("shown_zone", zone_error))
        run("filter_zone", lambda: failed("filter_zone", zone_error))
    else:
        shown = run("shown_zone", lambda: detect_shown_zone(probe, walk, zones, fresh_delta))
        run("filter_zone", lambda: detect_filter_zone(probe, zones, shown))
        probe.filter_shift_h = float(zones.shift_h or 0)
    field = run("filter_field", lambda: detect_filter_field(probe, walk))
    if field.verdict in ("created_at", "not_observable"):
        precision = run("filter_precision", lambda: detect_date_filter_precision(probe))
        run("created_at_precision", lambda: detect_created_at_precision(probe))
        run("date_to", lambda: detect_date_to(probe, precision.verdict))
    else:
        for behaviour in ("filter_precision", "created_at_precision", "date_to"):
            found[behaviour] = not_checked(behaviour, "the date filters do not bound created_at (see filter_field)")

    if fresh is None:
        for behaviour in ("platform_clock", "answer_clock", "pending_conflict"):
            found.setdefault(behaviour, not_checked(behaviour, _NEEDS_CONSENT))
    else:
        shown_h = shown.data.get("shown_h") if shown.data.get("exact") else None
        run("platform_clock", lambda: detect_platform_clock(fresh, listed_consent, shown_h))
        run("answer_clock", lambda: detect_answer_clock(fresh, listed_consent))
        run("pending_conflict", lambda: detect_pending_conflict(probe, fresh))

    if options.cursor_wait_s > 0:
        progress(f"keeping a cursor {options.cursor_wait_s:g} s before reusing it (--cursor-wait)")
    run("cursor_expiry", lambda: detect_cursor_expiry(probe, options.cursor_wait_s, sleep))
    return [found[behaviour] for behaviour in BEHAVIOURS if behaviour in found]


def _fresh_consent(
    probe: Probe,
    options: CheckOptions,
    sleep: Callable[[float], object],
    run: Callable[[str, Callable[[], Finding]], Finding],
) -> tuple[FreshConsent | None, dict[str, object] | None]:
    """Request the one fresh consent and measure its listing lag, when allowed; else note them not checked."""
    if not (options.oa_id and options.phone and probe.consent_requests_left > 0):
        run("listing_lag", lambda: not_checked("listing_lag", _NEEDS_CONSENT))
        return None, None
    oa_id, phone = options.oa_id, options.phone
    try:
        fresh = send_fresh_consent(probe, oa_id, phone)
    except (EtelecomAuthError, PermissionError):
        raise
    except EtelecomError as error:
        refused = error
        for behaviour in ("listing_lag", "platform_clock", "answer_clock", "pending_conflict"):
            run(behaviour, partial(failed, behaviour, refused))
        return None, None
    lag = run("listing_lag", lambda: detect_listing_lag(probe, fresh, sleep, options.lag_step_s, options.lag_budget_s))
    listed_consent = lag.data.get("listed")
    return fresh, listed_consent if isinstance(listed_consent, dict) else None
