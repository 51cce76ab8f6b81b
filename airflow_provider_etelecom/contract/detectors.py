"""One detector per platform behaviour nobody has confirmed: what it finds, and the setting that follows.

Each detector sends a few requests through a :class:`~.probe.Probe` and returns a :class:`Finding`:
a ``verdict`` (a short code the tests compare), one line saying what it found, and what follows for
the user's connection (a setting for the connection's extra, or "nothing to set: the provider
handles it", with the cost when there is one). They read; only the detectors that need a fresh
consent (:func:`send_fresh_consent` and those given its result) send ``RequestConsent``, a charged
message, and only through a probe built with a budget for it.

What a read-only probe cannot see, each detector says in its finding rather than guessing: a
platform consistently in local time with no recent consents, a cursor that cannot be reused under
another filter, a tie that the newest pages do not hold. ``tests/contract/test_unknowns.py`` proves
every detector against the simulator playing each variant (``PLATFORM_VARIANTS``) and its defaults,
and runs it against the real platform when given a key; ``python -m airflow_provider_etelecom.contract``
runs them all against a user's connection (:mod:`.runner`).
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from airflow_provider_etelecom.contract.probe import (
    HOUR_US,
    LIST,
    REQUEST_CONSENT,
    US,
    Probe,
    Walk,
    consent_id,
    fraction_digits,
    list_body,
    listed,
    micros,
    next_cursor,
    time_or_none,
    walk_newest,
    window,
    wire,
)
from airflow_provider_etelecom.exceptions import EtelecomBadRequestError

#: What follows for the connection when the provider copes with what was found by itself.
NOTHING = "nothing to set: the provider handles it"
SORTS: tuple[str, ...] = ("created_at", "-created_at", "updated_at", "-updated_at")
#: The behaviours, in the order the check reports them, with what each is about.
BEHAVIOURS: dict[str, str] = {
    "ids": "ids written as JSON strings (documented) or numbers",
    "empty_page": 'how an empty page is written ([] or Go\'s "consents": null)',
    "page_cap": "the most consents a page holds, and what paging.limit echoes",
    "short_pages": "pages shorter than the largest in the middle of a listing (rows dropped after the LIMIT)",
    "order": "whether the newest-first order is a created_at order or an id order",
    "crowded_second": "the most consents sharing one second, against the page cap",
    "cursor": "what the next cursor holds: (created_at, id), created_at only (< or <=), or a row offset",
    "cursor_expiry": "whether a cursor is refused after a while",
    "sorts": "which paging.sort values are accepted",
    "filter_zone": "which zone the date filters' wall clock is read in",
    "shown_zone": "which zone the times in answers are written in (labelled Z)",
    "filter_field": "which time the date filters apply to (created_at or updated_at)",
    "filter_precision": "how finely date_from/date_to are compared",
    "created_at_precision": "how finely answers write created_at",
    "date_to": "whether date_to is inclusive",
    "listing_lag": "how long a new consent takes to be listed (needs one RequestConsent)",
    "platform_clock": "the platform's clock against its Date header (needs one RequestConsent)",
    "answer_clock": "RequestConsent's answer times against the listing's (needs one RequestConsent)",
    "pending_conflict": "a second RequestConsent while one is pending (needs a second RequestConsent)",
}
#: A consent shown this far past the platform's clock is shown in the future.
FUTURE_TOLERANCE_S = 300.0
#: A fresh consent's created_at this close to the clock is on time.
CLOCK_TOLERANCE_S = 60.0
#: RequestConsentOperator's look-back on Airflow before 3.3 (``operators.request_consent.LOOK_BACK``).
LOOK_BACK_S = 3900.0
#: The whole-hour shifts the zone probe tries, nearest first.
ZONE_HOURS: tuple[int, ...] = (0, *(h for step in range(1, 15) for h in (step, -step)))
#: The offset (hours) the zone probe writes a window in to tell whether the platform honours it.
OTHER_OFFSET_H = 5
#: A window around a time: from this many µs before it ...
_BEFORE = 2 * US
#: ... to this many after it (wide enough for any precision the platform reads or writes).
_AFTER = 3 * US


#: The verdicts the simulator's defaults (today's guess) give, by behaviour: any other differs from them.
_DEFAULT_VERDICTS: dict[str, tuple[str, ...]] = {
    "ids": ("strings",),
    "empty_page": ("list",),
    "page_cap": ("cap=100 echo=effective", "cap=? echo=effective"),
    "short_pages": ("none_seen",),
    "order": ("created_at",),
    "crowded_second": ("within_a_page",),
    "cursor": ("keyset", "keyset_or_offset", "position"),
    "cursor_expiry": ("lasts",),
    "sorts": (",".join(SORTS),),
    "filter_zone": ("honours_offset",),
    "shown_zone": ("utc",),
    "filter_field": ("created_at",),
    "filter_precision": ("exact", "exact_or_ms"),
    "created_at_precision": ("whole",),
    "date_to": ("exclusive",),
    "listing_lag": ("none",),
    "platform_clock": ("in_step",),
    "answer_clock": ("same",),
    "pending_conflict": ("accepted",),
}


@dataclass(frozen=True)
class Finding:
    """What one detector found.

    :param behaviour: a key of :data:`BEHAVIOURS`.
    :param verdict: a short code (``keyset``, ``value_lt``, ``not_observable``, ...) the tests compare.
    :param found: what was found, in one line.
    :param action: what follows for the connection ("nothing to set: ...", "set ...", "not settled: ...").
    :param settings: the connection extra settings to add (``{"platform_filter_zone": "Asia/Ho_Chi_Minh"}``).
    :param differs: the platform does otherwise than the simulator's defaults (today's guess).
    :param data: the numbers behind the verdict (``cap``, ``shift_h``, ``waited_s``, ...).
    """

    behaviour: str
    verdict: str
    found: str
    action: str = NOTHING
    settings: Mapping[str, object] = field(default_factory=dict)
    differs: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)


def _finding(
    behaviour: str,
    verdict: str,
    found: str,
    action: str = NOTHING,
    data: Mapping[str, Any] | None = None,
    settings: Mapping[str, object] | None = None,
) -> Finding:
    """Return a finding; it differs from the simulator's defaults unless they give the same verdict."""
    differs = verdict not in _DEFAULT_VERDICTS[behaviour]
    return Finding(behaviour, verdict, found, action, settings or {}, differs, data or {})


def _filled(
    behaviour: str,
    verdict: str,
    texts: tuple[str, str],
    data: Mapping[str, Any] | None = None,
    settings: Mapping[str, object] | None = None,
    **values: Any,
) -> Finding:
    """Return :func:`_finding` with ``texts`` (what was found, what follows) filled in from ``data`` and ``values``.

    The texts are :meth:`str.format` templates; ``{NOTHING}`` stands for :data:`NOTHING`.
    """
    found, action = (text.format(NOTHING=NOTHING, **{**(data or {}), **values}) for text in texts)
    return _finding(behaviour, verdict, found, action, data, settings)


def _not_observable(behaviour: str, why: str, **data: Any) -> Finding:
    return Finding(behaviour, "not_observable", f"not observable: {why}", "nothing to set on what was seen", data=data)


def not_checked(behaviour: str, why: str) -> Finding:
    """Return the finding of a detector that was not run (``why`` says how to run it)."""
    return Finding(behaviour, "not_checked", f"not checked: {why}", "nothing to set until it is checked")


def failed(behaviour: str, error: BaseException) -> Finding:
    """Return the finding of a detector the platform's answers stopped (the error names the answer)."""
    message = getattr(error, "message", None) or str(error)
    return Finding(behaviour, "error", f"could not check: {message}", "not settled: rerun, or report it", differs=True)


def zone_name(offset_h: int) -> str:
    """Return an IANA zone for a whole-hour UTC offset: Vietnam's for +7 (the platform's home), else ``Etc/GMT``.

    ``Etc/GMT-7`` is UTC+7: the ``Etc`` zones flip the sign (POSIX).
    """
    if offset_h == 7:
        return "Asia/Ho_Chi_Minh"
    if offset_h == 0:
        return "UTC"
    return f"Etc/GMT{-offset_h:+d}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:+.2f} h" if abs(seconds) >= 3600 else f"{seconds:+.0f} s"


def _walk(probe: Probe, walk: Walk | None) -> Walk:
    return walk if walk is not None else walk_newest(probe)


# ------------------------------------------------------------------------- wire forms
def detect_ids(probe: Probe, walk: Walk | None = None) -> Finding:
    """Read the ids of the newest consents: JSON strings (documented), numbers (int64 without ``,string``), or both."""
    consents = _walk(probe, walk).consents()
    if not consents:
        return _not_observable("ids", "the account lists no consent")
    names = ("id", "shop_id", "user_id", "oa_id")
    ids = [c[name] for c in consents for name in names if isinstance(c.get(name), (str, int))]
    kinds = Counter("number" if isinstance(i, int) and not isinstance(i, bool) else "string" for i in ids)
    if not kinds["number"]:
        return _finding("ids", "strings", "ids (id, shop_id, user_id, oa_id) are JSON strings, as documented")
    large = any(isinstance(c.get("id"), int) and abs(c["id"]) > 2**53 for c in consents)
    return _finding(
        "ids",
        "mixed" if kinds["string"] else "numbers",
        f"ids are written as JSON numbers ({kinds['number']} of {sum(kinds.values())} id fields), not the "
        f"documented strings" + (", some above 2^53" if large else ""),
        f"{NOTHING} (every id is read exactly and kept as the documented string; another JSON reader of raw "
        f"answers that reads numbers as doubles loses digits above 2^53)",
        {"numbers": kinds["number"], "strings": kinds["string"]},
    )


def detect_empty_page(probe: Probe) -> Finding:
    """Ask a window two days in the future (empty whatever the zones) and see how the empty page is written."""
    start = probe.now_us() + 2 * 24 * HOUR_US
    data = probe.page(limit=10, flt=window(start, start + 24 * HOUR_US))
    if "consents" not in data:
        return _finding(
            "empty_page",
            "absent",
            f"an empty page has no consents key (keys: {sorted(data)})",
            f"{NOTHING} (an answer without consents and without a next cursor is an empty page)",
        )
    if data["consents"] is None:
        return _finding(
            "empty_page",
            "null",
            'an empty page is {"consents": null} (a Go nil slice)',
            f"{NOTHING} (null is read as an empty page; never as a listing's error)",
        )
    if data["consents"] == []:
        return _finding("empty_page", "list", 'an empty page is {"consents": []}')
    return _not_observable("empty_page", "a window two days in the future listed consents (see shown_zone)")


# ------------------------------------------------------------------------- pages
def _echo_of(data: Mapping[str, Any]) -> object:
    paging = data.get("paging")
    if not isinstance(paging, dict) or "limit" not in paging:
        return None
    value = paging["limit"]
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def detect_page_cap(probe: Probe, walk: Walk | None = None) -> Finding:
    """Ask ``limit`` 500 and 7 and compare with the pages of the walk: the cap, and what ``paging.limit`` echoes.

    The cap is the page size every full page of the walk has, when the page of ``limit`` 500 has it
    too. When pages vary (rows dropped after the LIMIT: :func:`detect_short_pages`) or the account
    holds less than a page, the cap is not measurable; the echo still is.
    """
    walk = _walk(probe, walk)
    refused = ""
    try:
        big = probe.page(limit=500)
    except EtelecomBadRequestError as error:
        big, refused = {}, error.message
    small = probe.page(limit=7)
    echo500, echo7 = _echo_of(big), _echo_of(small)
    n500 = len(big.get("consents") or [])
    sizes = walk.sizes
    full = sizes if walk.stopped == "page budget" else sizes[:-1]
    cap: int | None = None
    if full and len(set(full)) == 1 and (refused or n500 == full[0]):
        cap = full[0]
    elif n500 > 100:
        cap = n500
    echo = "refused" if refused else "absent" if echo500 is None else "other"
    if echo == "other" and echo7 == 7 and isinstance(echo500, int) and echo500 <= 500:
        echo = "asked" if echo500 == 500 else "effective"
    if cap is None and len(set(full)) > 1:
        cap_text = f"the cap is not measurable: full pages vary from {min(full)} to {max(full)} consents"
    elif cap is None:
        cap_text = f"the cap is not measurable: the account lists {sum(sizes)} consents, not two pages"
    elif cap > 100:
        cap_text = f"a page holds more than 100 consents ({n500} for limit=500)"
    else:
        cap_text = f"a page holds at most {cap} consents whatever limit asks (limit=500 gave {n500})"
    echo_text = {
        "effective": f"paging.limit echoes the limit applied ({echo500} for 500, {echo7} for 7)",
        "asked": "paging.limit echoes the limit asked (500 for 500), not the one applied",
        "absent": "paging has no limit key",
        "refused": f"limit=500 is refused ({refused})",
        "other": f"paging.limit echoes {echo500!r} for 500 and {echo7!r} for 7",
    }[echo]
    action = NOTHING + " (it asks at most 100 and never reads paging.limit; a short page is not an end)"
    if cap is not None and cap < 100:
        action += f"; cost: pages of {cap} take about {100 / cap:.1f}x the requests of pages of 100"
    verdict = f"cap={cap if cap is not None else '?'} echo={echo}"
    data = {"cap": cap, "echo": echo, "n500": n500, "echo500": echo500, "echo7": echo7}
    return _finding("page_cap", verdict, f"{cap_text}; {echo_text}", action, data)


def detect_short_pages(probe: Probe, walk: Walk | None = None) -> Finding:
    """Look for a page shorter than the largest of the walk that is not the last: rows dropped after the LIMIT.

    A cap below the limit makes every page short alike (:func:`detect_page_cap`); pages of different
    sizes before the end are what a backend that drops rows after its SQL ``LIMIT`` serves.
    """
    walk = _walk(probe, walk)
    # Pages that bring nothing new (a cursor serving its last page again) do not follow a page.
    seen: set[str] = set()
    read = 0
    for number, page in enumerate(walk.pages, 1):
        ids = {consent_id(c) for c in page.consents}
        read = number if ids - seen else read
        seen |= ids
    sizes = walk.sizes[:read]
    if len(sizes) < 2:
        return _not_observable("short_pages", f"the newest pages are {len(sizes)} (two or more are needed)")
    largest = max(sizes)
    short = [(i, size) for i, size in enumerate(sizes[:-1]) if size < largest]
    if not short:
        found = f"every page but the last held the same number of consents ({largest}; {len(sizes)} pages read)"
        return _finding("short_pages", "none_seen", found, data={"sizes": sizes})
    first, size = short[0]
    return _finding(
        "short_pages",
        "short_pages",
        f"{len(short)} of {len(sizes)} pages were shorter than the largest ({largest}) with more pages after "
        f"them (page {first + 1}: {size}): rows dropped after the LIMIT",
        f"{NOTHING} (a listing ends only on an empty page, which it reads anyway; no extra cost)",
        {"sizes": sizes},
    )


def _inversions(walk: Walk, descending: bool) -> tuple[list[float], bool, int]:
    """Return a walk's inversions of ``created_at`` order (seconds each), whether ids kept the order, and its size."""
    rows = [(t, consent_id(c)) for c in walk.consents() if (t := time_or_none(c, "created_at")) is not None]
    sign = 1 if descending else -1
    inversions = [
        sign * (later - earlier) / US for (earlier, _), (later, _) in pairwise(rows) if sign * (later - earlier) > 0
    ]
    ids = [int(i) for _, i in rows if i.lstrip("-").isdigit()]
    by_id = len(ids) == len(rows) and all(sign * (later - earlier) < 0 for earlier, later in pairwise(ids))
    return inversions, by_id, len(rows)


def detect_order(probe: Probe, walk: Walk | None = None) -> Finding:
    """Check the default order (newest first) and ``sort=created_at`` (oldest first) are ``created_at`` orders.

    Page boundaries included. Out of order, it tells an id order (ids following the order while
    ``created_at`` does not) from another. Consents served again (a cursor repeating a tie) are left
    out: a repeat is not an inversion. ``sort=created_at`` is read for two pages, unless the
    platform refuses it.
    """
    walks = [("the default order", _walk(probe, walk), True)]
    with contextlib.suppress(EtelecomBadRequestError):  # a refused sort is the sorts detector's finding
        walks.append(("sort=created_at", walk_newest(probe, 2, sort="created_at"), False))
    seen = 0
    for name, read, descending in walks:
        inversions, by_id, size = _inversions(read, descending)
        seen += size
        if not inversions:
            continue
        what = (
            "in id order (ids follow it while created_at does not)" if by_id else "in neither created_at nor id order"
        )
        return _finding(
            "order",
            "id" if by_id else "other",
            f"{name} is {what}: {len(inversions)} of {size} consents came after one created "
            f"{'earlier' if descending else 'later'}, by up to {max(inversions):.0f} s",
            f"{NOTHING} (from the first page out of order a listing takes no date-bound step and ends only on an "
            f"empty page; cost: each window is read to its end)",
            {"inversions": len(inversions), "worst_s": max(inversions), "sort": name},
        )
    if seen < 2:
        return _not_observable("order", "fewer than two consents listed")
    names = " and ".join(name for name, _, _ in walks)
    return _finding("order", "created_at", f"{names} came in created_at order ({seen} consents read)")


def detect_crowded_second(probe: Probe, walk: Walk | None = None, cap: int | None = None) -> Finding:
    """Report the most consents sharing one second (and one exact ``created_at``) in the newest pages.

    :param cap: the page cap found (default 100): a second holding more consents than a page can
        only be paged through by a cursor that continues inside a tie.
    """
    consents = _walk(probe, walk).consents()
    times = [t for c in consents if (t := time_or_none(c, "created_at")) is not None]
    if not times:
        return _not_observable("crowded_second", "the account lists no consent")
    second, crowd = Counter(t // US for t in times).most_common(1)[0]
    exact = Counter(times).most_common(1)[0][1]
    page = cap or 100
    at = wire(second * US)[:19] + "Z"
    data = {"largest": crowd, "second": at, "largest_exact": exact, "read": len(times)}
    if crowd <= page:
        found = (
            f"at most {crowd} of the newest {len(times)} consents share a second ({at}); {exact} share an exact "
            f"created_at"
        )
        return _finding("crowded_second", "within_a_page", found, data=data)
    return _finding(
        "crowded_second",
        "past_a_page",
        f"{crowd} of the newest {len(times)} consents share the second {at} ({exact} one exact created_at), more "
        f"than a page of {page}",
        f"{NOTHING} while the cursor is a (created_at, id) keyset: the listing is carried through that second by "
        f"the cursor; with a created_at-only cursor a listing through it fails loudly, naming the second (report "
        f"it to eTelecom)",
        data,
    )


# ------------------------------------------------------------------------- cursors
def _tie_probe(probe: Probe, walk: Walk) -> str | None:
    """End a page inside a tie of the walk and follow its ``next``: ``continues``, ``repeats``, ``skips`` or ``None``.

    The head is asked with ``limit`` one more than the consents up to the tie's first member (a few
    more when rows dropped after the LIMIT shorten it, until it ends on that member); the step after
    its cursor is asked with a small limit rather than 1, so a dropped row cannot empty it. At most
    three ties are tried.
    """
    seen: set[str] = set()
    tries = 0
    for page in walk.pages:
        ids = [consent_id(c) for c in page.consents]
        times = [time_or_none(c, "created_at") for c in page.consents]
        for t in range(len(ids) - 1):
            if tries >= 3:
                return None
            if times[t] is None or times[t] != times[t + 1] or ids[t] in seen or ids[t + 1] in seen:
                continue
            tries += 1
            for limit in range(t + 1, t + 12):
                answer = probe.page(page.after, limit)
                head, cursor = [consent_id(c) for c in answer.get("consents") or []], next_cursor(answer)
                if len(head) > t or head != ids[: len(head)]:
                    break
            if head != ids[: t + 1] or not cursor:
                continue
            step = probe.page(cursor, 5).get("consents") or []
            if not step:
                continue
            first, at = consent_id(step[0]), time_or_none(step[0], "created_at")
            if first == ids[t + 1]:
                return "continues"
            if at == times[t]:
                return "repeats"
            if at is not None and at < times[t]:  # type: ignore[operator]
                return "skips"
        seen.update(ids)
    return None


def _reuse_probe(probe: Probe, walk: Walk) -> str | None:
    """Reuse a cursor from the unfiltered listing under a date filter: ``position``, ``offset``, ``bound`` or ``None``.

    The cursor after the ``k``-th (5th) newest consent holds its position (a keyset or a sort value:
    under a filter whose consents all lie further on, it serves the filter's first consent) or a row
    count (it serves the filter's ``k``-th consent on).
    """
    k = 5
    consents = walk.consents()
    edge = next((time_or_none(c, "created_at") for c in consents[4 * k :] if time_or_none(c, "created_at")), None)
    if len(consents) < 6 * k or edge is None:
        return None
    cursor = next_cursor(probe.page(limit=k))
    flt = {"date_to": wire(edge)}
    expected = [consent_id(c) for c in probe.page(limit=2 * k, flt=flt).get("consents") or []]
    if len(expected) <= k or not cursor:
        return None
    response = probe.post(LIST, list_body(cursor, k, flt=flt))
    if response.status_code == 400:
        return "bound"
    served = [consent_id(c) for c in probe.answer(LIST, response).get("consents") or []]
    first = served[0] if served else None
    return "position" if first == expected[0] else "offset" if first == expected[k] else None


_CURSORS = {
    "value_lt": (
        "a page ended inside a tie went on past it: the cursor holds created_at only and the next page is < it (the "
        "tie's rest is skipped)",
        "{NOTHING}: it pages by date bounds instead of this cursor; cost: about one consent read twice per page",
    ),
    "value_le": (
        "a page ended inside a tie began the next with the tie again: the cursor holds created_at only and the next "
        "page is <= it",
        "{NOTHING}: it follows the cursor and drops the consents served again; cost: the tie at each page's end is "
        "read twice, and a second holding more than a page cannot be paged through (fails loudly)",
    ),
    "offset": (
        "a cursor reused under a date filter served that filter's rows from the same count on: the cursor is a row "
        "offset (rows deleted during a listing are skipped, rows inserted ahead of it repeated)",
        "nothing to set on the connection; offset cursor: run exports with verification (a second listing in the "
        "other order, compared by id) if consents are deleted during exports",
    ),
    "keyset": (
        "a page ended inside a tie went on with the rest of it, and a cursor reused under a filter kept its "
        "position: the cursor is a (created_at, id) keyset",
        "{NOTHING}",
    ),
    "keyset_or_offset": (
        "a page ended inside a tie went on with the rest of it: the cursor is a (created_at, id) keyset or a row "
        "offset; a read-only probe cannot tell which ({why})",
        "{NOTHING}; if it is an offset, run exports with verification if consents are deleted during exports",
    ),
    "position": (
        "a cursor reused under a filter kept its position (a keyset or created_at only); no tie in the newest pages "
        "showed whether ties are skipped or repeated",
        "{NOTHING} (until a listing has shown the cursor on a tie, it moves by date bounds: about one consent read "
        "twice per page)",
    ),
}


def detect_cursor(probe: Probe, walk: Walk | None = None) -> Finding:
    """Tell what the ``next`` cursor holds, from a tie in the newest pages and a cursor reused under a filter.

    A page asked to end inside a tie, followed by its ``next``: the rest of the tie (a ``(created_at,
    id)`` keyset, or an offset), the tie again (``created_at <=``), or what lies past it
    (``created_at <``: the tie's rest skipped). A keyset and an offset both continue a tie; they part
    when a cursor of the unfiltered listing is reused under a date filter (:func:`_reuse_probe`). A
    platform that refuses a cursor under another filter leaves "keyset or offset"; without a tie in
    the newest pages, ``<`` and ``<=`` cannot be seen.
    """
    walk = _walk(probe, walk)
    tie = _tie_probe(probe, walk)
    reuse = _reuse_probe(probe, walk)
    if tie in ("skips", "repeats"):
        verdict = "value_lt" if tie == "skips" else "value_le"
    elif reuse == "offset":
        verdict = "offset"
    elif tie == "continues":
        verdict = "keyset" if reuse == "position" else "keyset_or_offset"
    elif reuse == "position":
        verdict = "position"
    else:
        return _not_observable("cursor", "no tie in the newest pages, and a cursor reused under a filter told nothing")
    why = "the platform refuses a cursor under another filter" if reuse == "bound" else "reuse was inconclusive"
    return _filled("cursor", verdict, _CURSORS[verdict], {"tie": tie, "reuse": reuse}, why=why)


def detect_cursor_expiry(probe: Probe, wait_s: float, sleep: Callable[[float], object]) -> Finding:
    """Keep a cursor, use it at once, wait ``wait_s`` seconds and use it again: refused means it expires.

    :param sleep: how to wait (``time.sleep``; the simulator's ``advance`` in tests).
    """
    cursor = next_cursor(probe.page(limit=2))
    if not cursor:
        return _not_observable("cursor_expiry", "the first page had no next cursor")
    at_once = probe.post(LIST, list_body(cursor, 2))
    if at_once.status_code != 200:
        found = f"a cursor was refused when reused at once (HTTP {at_once.status_code})"
        return _finding("cursor_expiry", "refused_at_once", found, "not settled: report it to eTelecom")
    if wait_s <= 0:
        return not_checked("cursor_expiry", "give --cursor-wait SECONDS to reuse a cursor after that long")
    sleep(wait_s)
    later = probe.post(LIST, list_body(cursor, 2))
    if later.status_code == 200:
        found = f"a cursor still works {wait_s:g} s after it was issued (a longer expiry is not excluded)"
        return _finding("cursor_expiry", "lasts", found, data={"wait_s": wait_s})
    return _finding(
        "cursor_expiry",
        "expires",
        f"a cursor {wait_s:g} s old is refused: {probe.refusal(LIST, later).message}",
        f"{NOTHING}: a listing whose cursor is refused goes on from its last consent by a date bound (while pages "
        f"come in created_at order); cost: one page read again per expiry",
        {"wait_s": wait_s, "status": later.status_code},
    )


def detect_accepted_sorts(probe: Probe) -> Finding:
    """Ask for each sort by name; a refusal should be a 400 ``invalid_argument`` that names ``sort``."""
    accepted: list[str] = []
    refusals: dict[str, dict[str, Any]] = {}
    for sort in SORTS:
        response = probe.post(LIST, list_body(limit=1, sort=sort))
        if response.status_code == 200:
            accepted.append(sort)
            continue
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        names_sort = "sort" in str(body.get("meta")) + str(body.get("msg"))
        refusals[sort] = {"status": response.status_code, "code": body.get("code"), "names_sort": names_sort}
    found, action = f"sorts accepted: {', '.join(accepted) or 'none'}", NOTHING
    if refusals:
        found += "; refused: " + ", ".join(
            f"{sort} ({r['status']} {r['code']}{', naming sort' if r['names_sort'] else ''})"
            for sort, r in refusals.items()
        )
        action += (
            " (waits read in the default order when sort=-updated_at is refused; exports never sort by updated_at)"
        )
    data = {"accepted": tuple(accepted), "refusals": refusals}
    return _finding("sorts", ",".join(accepted) or "none", found, action, data)


# ------------------------------------------------------------------------- zones and fields
@dataclass(frozen=True)
class ZoneProbe:
    """Where a narrow window must be put to find a consent, and whether the offset it carries matters.

    :param consent_id: the consent probed (``None``: the account lists none).
    :param shown_at: its ``created_at`` as the answer showed it (epoch µs).
    :param shift_h: the whole hours added to the shown time's wall clock (labelled ``Z``) of the window
        that finds it (``None``: no shift from -14 to +14 does).
    :param honours_offset: whether the same window written in UTC+5 finds it too (the platform
        honours offsets), ``None`` when not checked or refused.
    :param same_field: the consent's ``updated_at`` is its ``created_at``, so the field the filters
        apply to cannot matter.
    """

    consent_id: str | None
    shown_at: int | None = None
    shift_h: int | None = None
    honours_offset: bool | None = None
    same_field: bool = False


def _timed(walk: Walk) -> list[tuple[dict[str, Any], int, int]]:
    """Return the walk's consents whose ``created_at`` and ``updated_at`` are readable, with both (epoch µs)."""
    return [
        (c, created, updated)
        for c in walk.consents()
        if (created := time_or_none(c, "created_at")) is not None
        and (updated := time_or_none(c, "updated_at")) is not None
    ]


def probe_zones(probe: Probe, walk: Walk | None = None) -> ZoneProbe:
    """Find the whole-hour shift that makes a window around a consent's shown ``created_at`` find it.

    The consent is one whose ``updated_at`` equals its ``created_at`` where there is one, so that it
    does not matter which time the filters bound. Windows are 5 s wide, labelled ``Z``, tried at 0,
    +1, -1, ... up to ±14 h; the one that finds it is then written in UTC+5 (the same instants): a
    platform that honours offsets finds it again, one that reads the wall clock does not.
    """
    timed = _timed(_walk(probe, walk))
    if not timed:
        return ZoneProbe(None)
    same = [row for row in timed if abs(row[2] - row[1]) < US]
    consent, at, _ = (same or timed)[0]
    wanted = consent_id(consent)
    for hours in ZONE_HOURS:
        low, high = at - _BEFORE + hours * HOUR_US, at + _AFTER + hours * HOUR_US
        if listed(probe, wanted, window(low, high)):
            break
    else:
        return ZoneProbe(wanted, at, None, None, bool(same))
    try:
        honours: bool | None = listed(probe, wanted, window(low, high, OTHER_OFFSET_H))
    except EtelecomBadRequestError:
        honours = None
    return ZoneProbe(wanted, at, hours, honours, bool(same))


_SET_SHOWN_ZONE = 'set platform_shown_zone: "{zone}" (every time read is rewritten to true UTC; no extra cost)'
#: What the shown zone detector says, by what showed it and verdict.
_SHOWN_ZONES = {
    ("windows", "local_as_z"): (
        "a window must be moved {shift_h:+d} h from a consent's shown created_at to find it, while the filters "
        "honour the offset sent: answers show the wall clock of UTC{shown_h:+d} labelled Z",
        _SET_SHOWN_ZONE,
    ),
    ("windows", "future"): (
        "answers show true UTC (windows find consents at their shown times), yet a consent is shown {ahead} past the "
        "platform's Date header",
        "not settled: the platform's clock and its Date header disagree; report it to eTelecom",
    ),
    ("windows", "utc"): ("answers show true UTC (windows find consents at their shown times)", "{NOTHING}"),
    ("fresh", "local_as_z"): (
        "a consent just requested is listed {fresh} from the clock it was requested at: answers show the wall clock "
        "of UTC{shown_h:+d} labelled Z (or the platform's clock is that many whole hours off)",
        _SET_SHOWN_ZONE,
    ),
    ("fresh", "utc"): ("a consent just requested is listed at the clock's time: answers show UTC", "{NOTHING}"),
    ("future", "local_as_z"): (
        "a consent is shown {ahead} past the platform's Date header: answers show a local clock labelled Z, at least "
        "that far ahead (Vietnam's UTC+7 fits; --allow-request-consent settles it)",
        _SET_SHOWN_ZONE,
    ),
}


def detect_shown_zone(
    probe: Probe,
    walk: Walk | None = None,
    zones: ZoneProbe | None = None,
    fresh_delta_s: float | None = None,
) -> Finding:
    """Tell in which zone answers write their times although they label them ``Z``.

    Exact when the platform honours the offset of a filter: then a window must be moved by the shown
    zone's offset to find a consent (:func:`probe_zones`). Otherwise only a consent shown in the
    future against the platform's clock (its ``Date`` header) shows a local clock, and only as "at
    least this far ahead": a platform consistently in local time with no recent consent is invisible
    read-only. ``fresh_delta_s``, the listed ``created_at`` of a consent just requested minus the
    clock when it was requested (one ``RequestConsent``), settles it to the hour.
    """
    walk = _walk(probe, walk)
    zones = zones if zones is not None else probe_zones(probe, walk)
    clock = probe.now_us()
    shown = [t for c in walk.consents() for name in ("created_at", "updated_at") if (t := time_or_none(c, name))]
    ahead_s = (max(shown) - clock) / US if shown else None
    in_future = ahead_s is not None and ahead_s > FUTURE_TOLERANCE_S
    data: dict[str, Any] = {"ahead_s": ahead_s, "shown_h": None, "exact": False}
    if zones.honours_offset and zones.shift_h is not None:
        data.update(shown_h=-zones.shift_h, exact=True)
        how, verdict = "windows", "local_as_z" if zones.shift_h else "future" if in_future else "utc"
    elif fresh_delta_s is not None and abs(fresh_delta_s) >= 1800:
        data.update(shown_h=round(fresh_delta_s / 3600), exact=True)
        how, verdict = "fresh", "local_as_z"
    elif in_future:
        assert ahead_s is not None
        data.update(shown_h=7 if ahead_s <= 7 * 3600 else math.ceil(ahead_s / 3600))
        how, verdict = "future", "local_as_z"
    elif fresh_delta_s is not None:
        data.update(shown_h=0, exact=True)
        how, verdict = "fresh", "utc"
    else:
        if ahead_s is None:
            newest = "none listed"
        else:
            newest = f"the newest is shown {_hours(abs(ahead_s))[1:]} {'after' if ahead_s > 0 else 'before'} the clock"
        filters = "ignore the offset sent" if zones.honours_offset is False else "may not honour the offset sent"
        return _not_observable(
            "shown_zone",
            f"the filters {filters}, so windows cannot tell the shown zone, and no consent is shown in the "
            f"future ({newest}): a platform consistently in local time with no recent consent is invisible "
            f"read-only; one RequestConsent (--allow-request-consent) settles it",
            **data,
        )
    zone = zone_name(data["shown_h"])
    return _filled(
        "shown_zone",
        verdict,
        _SHOWN_ZONES[how, verdict],
        data,
        {"platform_shown_zone": zone} if verdict == "local_as_z" else None,
        shift_h=zones.shift_h,
        ahead=_hours(ahead_s or 0),
        fresh=_hours(fresh_delta_s or 0),
        zone=zone,
    )


#: What the filter zone detector says, by verdict.
_FILTER_ZONES = {
    "not_found": (
        "no window from -14 h to +14 h around consent {zones.consent_id}'s shown created_at lists it (a half-hour "
        "zone, or filters on another field: see filter_field)",
        "not settled: report it to eTelecom",
    ),
    "honours_offset": (
        "the date filters honour the offset sent (a window written in UTC+5 finds the same consent)",
        "{NOTHING}",
    ),
    "offset_refused": (
        "the platform refuses a date filter written with an offset other than Z; written in Z, a window finds "
        "consents at their shown times",
        "{NOTHING} (it writes Z); do not set platform_filter_zone, whose filters carry that zone's offset",
    ),
    "offset_refused_shifted": (
        "the platform refuses a date filter written with an offset other than Z, and a window written in Z finds "
        "consent {zones.consent_id} only {zones.shift_h:+d} h from its shown created_at",
        "not settled: no connection setting writes filters shifted in Z; report it to eTelecom",
    ),
    "same_as_shown": (
        "the date filters ignore the offset sent and read their wall clock in the zone the answers are shown in (a "
        "window at a consent's shown time finds it; in UTC+5 it does not): UTC throughout, or local time "
        "throughout, which a read-only probe cannot tell (see shown_zone)",
        "nothing to set if the platform is in UTC throughout; if it is in local time throughout, set "
        "platform_filter_zone and platform_shown_zone to that zone (one RequestConsent, --allow-request-consent, "
        "tells which)",
    ),
    "ignores_offset_utc": (
        "the date filters ignore the offset sent and read their wall clock as UTC{because}",
        "{NOTHING} (it writes its filters in UTC with Z)",
    ),
    "ignores_offset": (
        "the date filters ignore the offset sent and read their wall clock as UTC{filter_h:+d}{because}: a window "
        "finds consent {zones.consent_id} {where}",
        'set platform_filter_zone: "{zone}" (filters are then written in that zone; no extra cost)',
    ),
}


def detect_filter_zone(probe: Probe, zones: ZoneProbe | None = None, shown: Finding | None = None) -> Finding:
    """Tell whether the date filters honour the offset sent, and if not, whose wall clock they read.

    A platform that ignores the offset finds a consent at a shift of ``filter zone - shown zone``; the
    shown zone comes from :func:`detect_shown_zone` (assumed UTC when it could not be seen, which
    the finding says).
    """
    zones = zones if zones is not None else probe_zones(probe)
    if zones.consent_id is None:
        return _not_observable("filter_zone", "the account lists no consent")
    shown_h = shown.data.get("shown_h") if shown is not None else None
    data: dict[str, Any] = {"shift_h": zones.shift_h, "filter_h": None}
    if zones.shift_h is None:
        verdict, data = "not_found", {"shift_h": None}
    elif zones.honours_offset:
        verdict = "honours_offset"
    elif zones.honours_offset is None:
        verdict = "offset_refused_shifted" if zones.shift_h else "offset_refused"
    elif shown_h is None and zones.shift_h == 0:
        verdict = "same_as_shown"
    else:
        data["filter_h"] = zones.shift_h + (shown_h or 0)
        verdict = "ignores_offset" if data["filter_h"] else "ignores_offset_utc"
    zone = zone_name(data.get("filter_h") or 0)
    where = (
        f"only {zones.shift_h:+d} h from its shown created_at"
        if zones.shift_h
        else f"at its shown created_at, and not with the same instants written in UTC+{OTHER_OFFSET_H}"
    )
    return _filled(
        "filter_zone",
        verdict,
        _FILTER_ZONES[verdict],
        data,
        {"platform_filter_zone": zone} if verdict == "ignores_offset" else None,
        zones=zones,
        zone=zone,
        where=where,
        because=" (assuming answers show UTC: nothing shows otherwise)" if shown_h is None else "",
    )


_FIELD_UNSETTLED = "not settled: see filter_zone; report it to eTelecom"
#: What the filter field detector says, by verdict.
_FILTER_FIELDS = {
    "created_at": ("the date filters bound created_at (consent {consent_id}, updated {gap} later)", "{NOTHING}"),
    "updated_at": (
        "the date filters bound updated_at: a window around consent {consent_id}'s updated_at lists it, one around "
        "its created_at ({gap} earlier) does not",
        "set date_filters_on_client: true (the provider sends no date filter and keeps each window by created_at "
        "itself; cost: each listing reads the whole history newer than its window)",
    ),
    "both": ("windows around consent {consent_id}'s created_at and updated_at both list it", _FIELD_UNSETTLED),
    "neither": ("windows around consent {consent_id}'s created_at and updated_at both miss it", _FIELD_UNSETTLED),
}


def detect_filter_field(probe: Probe, walk: Walk | None = None) -> Finding:
    """Tell which time the date filters bound, with a consent updated an hour or more after it was created.

    Two windows of 5 s (moved by the probe's ``filter_shift_h``, the zone shift found): one around
    its ``created_at``, one around its ``updated_at``. Whichever lists it is the filtered time.
    """
    apart = [row for row in _timed(_walk(probe, walk)) if abs(row[2] - row[1]) >= HOUR_US]
    if not apart:
        return _not_observable(
            "filter_field", "no consent among the newest was updated an hour or more after it was created"
        )
    consent, created, updated = apart[0]
    wanted = consent_id(consent)
    by_created = listed(probe, wanted, probe.window(created - _BEFORE, created + _AFTER))
    by_updated = listed(probe, wanted, probe.window(updated - _BEFORE, updated + _AFTER))
    verdict = {(True, False): "created_at", (False, True): "updated_at", (True, True): "both"}.get(
        (by_created, by_updated), "neither"
    )
    settings = {"date_filters_on_client": True} if verdict == "updated_at" else None
    data = {"consent_id": wanted, "gap": _hours((updated - created) / US)}
    return _filled("filter_field", verdict, _FILTER_FIELDS[verdict], data, settings)


# ------------------------------------------------------------------------- precision
def _newest(probe: Probe) -> list[dict[str, Any]]:
    """Return the newest 100 consents, or none when the account lists fewer than 10."""
    consents: list[dict[str, Any]] = probe.page().get("consents") or []
    return consents if len(consents) >= 10 else []


def _listed_from(probe: Probe, consent: Mapping[str, Any], date_from: int) -> bool:
    """Is ``consent`` listed by ``date_from`` (µs), the other bound three whole seconds later?"""
    later = micros(consent["created_at"]) // US * US + 3 * US
    return listed(probe, consent_id(consent), probe.window(date_from, later))


FILTER_FINDINGS = {
    "exact": "date filters compared exactly (fractions kept)",
    "ms": "date filters compared at milliseconds, truncated",
    "s_truncate": "date filters compared at whole seconds, truncated (10:00:00.3 reads as 10:00:00)",
    "s_round": "date filters compared at whole seconds, rounded half-up (10:00:00.5 reads as 10:00:01)",
    "exact_or_ms": "date filters compared exactly or at milliseconds (the consents seen give no sub-ms probe)",
    "inconsistent": "date filter probes disagree with every model",
}
SHOWN_FINDINGS = {
    "exact": "answers show created_at with its full fraction",
    "ms": "answers show created_at to the millisecond",
    "s_truncate": "answers show created_at cut to whole seconds; the stored time has a fraction",
    "s_round": "answers show created_at rounded to whole seconds; the stored time can lie before it",
    "whole": "created_at is whole seconds, as shown and as stored",
}
DATE_TO_FINDINGS = {
    "exclusive": "filter.date_to is exclusive (created_at < date_to)",
    "inclusive": "filter.date_to is inclusive (created_at <= date_to)",
    "not_observable": "date_to edge not observable: no consent lies exactly on a time the platform reads",
    "inconsistent": "date_to probes disagree with every model",
}
_PRECISION_ACTION = f"{NOTHING} (its date filters reach a second past each window, which it then keeps by created_at)"


def _precision(behaviour: str, verdict: str, found: Mapping[str, str]) -> Finding:
    action = "not settled: report it to eTelecom" if verdict == "inconsistent" else _PRECISION_ACTION
    return _finding(behaviour, verdict, found[verdict], action)


def detect_date_filter_precision(probe: Probe) -> Finding:
    """Find how ``filter.date_from`` is read, with probes inside one second of a consent.

    Take a consent at ``s + f`` (``f`` in [0.1, 0.4) when answers show fractions, else ``f = 0``:
    then we assume the stored time is the shown whole second). ``date_from = s + 0.45`` finds it only
    when the platform reads whole seconds; ``date_from = s + 0.6`` then tells cutting (still ``s``)
    from rounding (``s + 1``). Otherwise ``date_from`` one microsecond after a consent with sub-ms
    digits tells milliseconds (cut back to the consent's millisecond: found) from exact (not found).
    """
    consents = _newest(probe)
    if not consents:
        return _not_observable("filter_precision", "the account lists fewer than 10 consents")
    fractional = [c for c in consents if fraction_digits(c["created_at"])]
    if fractional:
        quarter = [c for c in fractional if 0.1 * US <= micros(c["created_at"]) % US < 0.4 * US]
        if not quarter:
            return _not_observable("filter_precision", "no consent with a fraction in [0.1, 0.4) among the newest")
        consent = quarter[0]
    else:
        consent = consents[len(consents) // 2]
    second = micros(consent["created_at"]) // US * US
    cut_or_round = _listed_from(probe, consent, second + 450_000)
    cut = _listed_from(probe, consent, second + 600_000)
    models = {(True, True): "s_truncate", (True, False): "s_round", (False, True): "inconsistent"}
    verdict = models.get((cut_or_round, cut), "")
    if not verdict:
        sub_ms = [c for c in fractional if micros(c["created_at"]) % 1000 not in (0, 999)]
        if not sub_ms:
            verdict = "exact_or_ms"
        else:
            verdict = "ms" if _listed_from(probe, sub_ms[0], micros(sub_ms[0]["created_at"]) + 1) else "exact"
    return _precision("filter_precision", verdict, FILTER_FINDINGS)


def detect_created_at_precision(probe: Probe) -> Finding:
    """Find how answers write ``created_at``: from the fraction digits, else from filter probes.

    Answers with more than three fraction digits are exact, with one to three milliseconds. Whole
    seconds may be the truth or a rounded view of it; assuming ``date_from`` compares at least as
    finely as a second, a consent shown at ``T`` that ``date_from = T`` misses was stored *before*
    ``T`` (rounded), and one that ``date_from = T + 1 µs`` still finds was stored after it (cut).
    Eight consents of distinct times are probed.
    """
    consents = _newest(probe)
    if not consents:
        return _not_observable("created_at_precision", "the account lists fewer than 10 consents")
    digits = max(fraction_digits(c.get(name)) for c in consents for name in ("created_at", "updated_at"))
    if digits:
        verdict = "exact" if digits > 3 else "ms"
    else:
        probes = list({c["created_at"]: c for c in consents}.values())[:8]
        if any(not _listed_from(probe, c, micros(c["created_at"])) for c in probes):
            verdict = "s_round"
        elif any(_listed_from(probe, c, micros(c["created_at"]) + 1) for c in probes):
            verdict = "s_truncate"
        else:
            verdict = "whole"
    return _precision("created_at_precision", verdict, SHOWN_FINDINGS)


def detect_date_to(probe: Probe, filter_precision: str) -> Finding:
    """Find whether ``filter.date_to`` is inclusive: ``date_to`` = a consent's own ``created_at``.

    The consent must lie exactly on a time the platform reads as itself (a whole second when it reads
    seconds, a whole millisecond when it may read milliseconds), or the edge cannot be seen. A
    consent *shown* on a whole second is taken to lie on it: on a platform that rounds the times it
    shows, the answer is "exclusive" whatever the truth (the created_at detector reports rounding).
    """
    unit = {"s_truncate": US, "s_round": US, "ms": 1000, "exact_or_ms": 1000}.get(filter_precision, 1)
    consents = _newest(probe)
    if not consents:
        return _not_observable("date_to", "the account lists fewer than 10 consents")
    on_edge = [c for c in consents if micros(c["created_at"]) % unit == 0]
    if not on_edge:
        return Finding(
            "date_to", "not_observable", DATE_TO_FINDINGS["not_observable"], "nothing to set on what was seen"
        )
    at, wanted = micros(on_edge[0]["created_at"]), consent_id(on_edge[0])
    if not listed(probe, wanted, probe.window(at - 2 * US, at + 2 * US)):
        verdict = "inconsistent"
    else:
        verdict = "inclusive" if listed(probe, wanted, probe.window(at - 2 * US, at)) else "exclusive"
    return _precision("date_to", verdict, DATE_TO_FINDINGS)


# ------------------------------------------------------------------------- with RequestConsent
@dataclass(frozen=True)
class FreshConsent:
    """A consent just requested: the answer as sent, and the platform's clock when it answered.

    :param answer: the ``RequestConsent`` answer's JSON object.
    :param asked_at: the answer's ``Date`` header (else this machine's clock), epoch µs.
    """

    oa_id: str
    phone: str
    answer: Mapping[str, Any]
    asked_at: int

    @property
    def consent_id(self) -> str:
        """The new consent's id, as a string."""
        return consent_id(self.answer)

    @property
    def pending(self) -> bool:
        """Whether it was delivered and waits for the customer (``status`` P, ``reply_status`` S)."""
        return self.answer.get("status") == "P" and self.answer.get("reply_status") == "S"


def send_fresh_consent(probe: Probe, oa_id: str, phone: str) -> FreshConsent:
    """Send ONE ``RequestConsent`` (a charged message to ``phone``, an audio call for product consulting).

    It is the consent the clock detectors read.

    :raises PermissionError: when the probe's budget allows no ``RequestConsent`` (nothing is sent).
    :raises EtelecomError: when the platform refuses it or no answer arrived.
    """
    response = probe.request_consent(oa_id, phone, "audio", "product_service_consulting")
    return FreshConsent(oa_id, phone, probe.answer(REQUEST_CONSENT, response), probe.now_us())


def detect_listing_lag(
    probe: Probe,
    fresh: FreshConsent,
    wait: Callable[[float], object],
    step_s: float = 5.0,
    budget_s: float = 300.0,
) -> Finding:
    """Look for the fresh consent among its OA and phone's newest every ``step_s`` seconds, up to ``budget_s``.

    The look has no date filter, so neither clock nor zone can hide it. ``data["waited_s"]``: the
    seconds waited until it was listed (the lag lies in ``(waited - step_s, waited]``), ``None`` when
    it was not listed within ``budget_s``; ``data["listed"]``: the consent as the listing shows it.
    """
    waited = 0.0
    while True:
        page = probe.page(flt={"oa_id": fresh.oa_id, "phone": fresh.phone})
        match = next((c for c in page.get("consents") or [] if consent_id(c) == fresh.consent_id), None)
        if match is not None:
            break
        if waited >= budget_s:
            return _finding(
                "listing_lag",
                "not_listed",
                f"a new consent was not listed within {budget_s:g} s",
                "not settled: report it to eTelecom; set RequestConsentOperator's listing_lag_grace above the lag",
                {"waited_s": None, "listed": None},
            )
        wait(step_s)
        waited += step_s
    data = {"waited_s": waited, "listed": match}
    if waited == 0:
        return _finding("listing_lag", "none", "a new consent is listable at once (no listing lag seen)", data=data)
    return _finding(
        "listing_lag",
        "lag",
        f"a new consent became listable after {waited - step_s:g}-{waited:g} s (listing lag)",
        f"nothing to set on the connection; keep RequestConsentOperator's listing_lag_grace above {waited:g} s "
        f"(default 60 s)",
        data,
    )


def detect_platform_clock(
    fresh: FreshConsent, listed_consent: Mapping[str, Any] | None, shown_h: int | None
) -> Finding:
    """Compare the fresh consent's listed ``created_at`` (less the shown zone) with the clock it was requested at."""
    created = time_or_none(listed_consent if listed_consent is not None else fresh.answer, "created_at")
    if created is None:
        return _not_observable("platform_clock", "the new consent has no readable created_at")
    delta = (created - fresh.asked_at) / US - (shown_h or 0) * 3600
    if abs(delta) <= CLOCK_TOLERANCE_S:
        found = f"a new consent is stamped at the clock's time ({delta:+.0f} s)"
        return _finding("platform_clock", "in_step", found, data={"delta_s": delta})
    way = "behind" if delta < 0 else "ahead"
    risk = (
        "; it is more than RequestConsentOperator's look-back (1 h 5 min) on Airflow before 3.3, where a retried task "
        "could send again: use Airflow 3.3+"
        if abs(delta) > LOOK_BACK_S
        else ""
    )
    return _finding(
        "platform_clock",
        way,
        f"the platform stamps a new consent {_hours(delta)} off its Date header: its clock is {way}",
        f"{NOTHING} (it recognises a new consent by its id, and waits read once more a day earlier){risk}",
        {"delta_s": delta},
    )


def detect_answer_clock(fresh: FreshConsent, listed_consent: Mapping[str, Any] | None) -> Finding:
    """Compare the fresh consent's ``created_at`` in ``RequestConsent``'s answer with the listing's."""
    if listed_consent is None:
        return _not_observable("answer_clock", "the new consent was not listed")
    answered, shown = time_or_none(fresh.answer, "created_at"), time_or_none(listed_consent, "created_at")
    if answered is None or shown is None:
        return _not_observable("answer_clock", "the new consent has no readable created_at")
    delta = (answered - shown) / US
    if abs(delta) <= 5:
        found = "RequestConsent's answer shows the listing's created_at"
        return _finding("answer_clock", "same", found, data={"delta_s": delta})
    return _finding(
        "answer_clock",
        "ahead" if delta > 0 else "behind",
        f"RequestConsent's answer shows created_at {_hours(delta)} off the listing's (another clock)",
        f"{NOTHING} (it reads consents' times from the listing; a wait about to end not_found reads once more from "
        f"a day earlier)",
        {"delta_s": delta},
    )


def detect_pending_conflict(probe: Probe, fresh: FreshConsent) -> Finding:
    """Send a SECOND ``RequestConsent`` to the fresh consent's OA and phone while it is pending.

    Sent only when the first was delivered and waits for its reply; that second message is charged
    too when the platform accepts it.
    """
    if not fresh.pending:
        status = f"status {fresh.answer.get('status')!r}, reply_status {fresh.answer.get('reply_status')!r}"
        return _not_observable("pending_conflict", f"the first request is not pending ({status}); nothing more sent")
    response = probe.request_consent(
        fresh.oa_id,
        fresh.phone,
        str(fresh.answer.get("call_type") or "audio"),
        str(fresh.answer.get("reason_code") or "product_service_consulting"),
    )
    if response.status_code == 200:
        found = "a second RequestConsent while one is pending was accepted (a second message sent)"
        return _finding("pending_conflict", "accepted", found, data={"status": 200})
    error = probe.refusal(REQUEST_CONSENT, response)
    if response.status_code == 409:
        return _finding(
            "pending_conflict",
            "conflict",
            f"a second RequestConsent while one is pending is refused with 409 {error.code or ''}".rstrip(),
            f"{NOTHING} (RequestConsentOperator answers a 409 already_exists with the newest pending consent of the "
            f"OA and phone, sending nothing)",
            {"status": 409, "code": error.code},
        )
    return _finding(
        "pending_conflict",
        "other",
        f"a second RequestConsent while one is pending got {error.message}",
        "not settled: report it to eTelecom",
        {"status": response.status_code, "code": error.code},
    )
