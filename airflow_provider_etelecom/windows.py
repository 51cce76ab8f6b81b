"""Split a half-open time range into windows for dynamic task mapping.

Backfilling a year is tens of thousands of pages; the Airflow way to spread that over workers is
one mapped task per window::

    windows = split_windows("2026-01-01T00:00:00+07:00", "2027-01-01T00:00:00+07:00", "1d",
                            output_path="s3://bucket/consents/{date}.jsonl")
    ListConsentsOperator.partial(task_id="export").expand_kwargs(windows)

Windows are half-open ``[date_from, date_to)``, adjacent windows share their edge, and together
they cover ``[start, end)`` exactly: no overlap, no gap. The client enforces the same half-open
window on what it yields, so a consent created exactly on an edge lands in one window only.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from datetime import timezone as dt_timezone

from airflow_provider_etelecom.client.validation import floor_second, validate_number, validate_time, validate_timezone
from airflow_provider_etelecom.exceptions import EtelecomValidationError

__all__ = ["split_windows"]

#: Airflow's ``[core] max_map_length`` default: a mapped task cannot expand to more than this.
DEFAULT_MAX_WINDOWS = 1024

_EVERY = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_every(every: timedelta | str) -> timedelta:
    """Return the window length as a ``timedelta``.

    :param every: a positive ``timedelta`` of whole seconds, or a string such as ``"1d"``, ``"6h"``,
        ``"30m"``, ``"1w"``, ``"90s"``.
    :raises EtelecomValidationError: for anything else, naming ``every``.
    """
    if isinstance(every, timedelta):
        step = every
    elif isinstance(every, str) and (match := _EVERY.match(every)):
        step = timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})
    else:
        raise EtelecomValidationError(
            f"every={every!r} must be a positive timedelta or a string such as '1d', '6h', '30m', '1w'.",
            parameter="every",
        )
    if step <= timedelta(0):
        raise EtelecomValidationError(f"every={every!r} must be longer than zero.", parameter="every")
    if step % timedelta(seconds=1):
        raise EtelecomValidationError(
            f"every={every!r} must be a whole number of seconds: window edges fall on whole seconds, "
            f"because nobody knows how precisely eTelecom compares date filters.",
            parameter="every",
        )
    return step


def split_windows(
    start: datetime | str,
    end: datetime | str,
    every: timedelta | str = "1d",
    *,
    timezone: str | None = None,
    output_path: str | None = None,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> list[dict[str, str]]:
    """Split ``[start, end)`` into consecutive half-open windows of length ``every``.

    Windows are laid out in ``timezone`` (or ``start``'s own offset). Whole-day steps follow the
    local wall clock, so ``"1d"`` windows start at local midnight even across a daylight-saving
    change; other steps are elapsed time. The last window ends at
    ``end`` and may be shorter.

    :param start: first instant, inclusive: an aware ``datetime`` or ISO-8601 string with offset
        (a naive one needs ``timezone``).
    :param end: last instant, exclusive.
    :param every: window length, e.g. ``"1d"`` or ``timedelta(hours=6)``.
    :param timezone: IANA zone the windows are laid out in and written with, e.g.
        ``"Asia/Ho_Chi_Minh"``; also how naive ``start``/``end`` are read.
    :param output_path: if given, each window also gets ``output_path`` formatted with
        ``{date}`` (local date of the window start, ``YYYY-MM-DD``), ``{date_from}``,
        ``{date_to}`` (ISO strings), ``{start}`` (``YYYYMMDDTHHMMSS``, local) and ``{index}``.
        Use it when windows are shorter than a day, so each window writes its own file.
    :param max_windows: refuse to make more windows than this (Airflow's default
        ``max_map_length`` is 1024; raise both together).
    :return: ``[{"date_from": iso, "date_to": iso[, "output_path": str]}, ...]`` ready for
        ``ListConsentsOperator.partial(...).expand_kwargs(...)``; plain strings, so the list is
        serialisable into the DAG.
    :raises EtelecomValidationError: for an unreadable or empty range, a bad ``every``, or too
        many windows.
    """
    step = parse_every(every)
    zone: tzinfo | None = validate_timezone(timezone)
    first = validate_time("start", start, timezone_name=timezone)
    last = validate_time("end", end, timezone_name=timezone)
    if first >= last:
        raise EtelecomValidationError(
            f"start={first.isoformat()} must be before end={last.isoformat()}: the range [start, end) is half-open.",
            parameter="start",
        )
    validate_number("max_windows", max_windows, minimum=1)
    if zone is None:
        zone = _original_zone(start)
    local_first = first.astimezone(zone)
    local_last = last.astimezone(zone)
    windows: list[dict[str, str]] = []
    cursor = local_first
    while cursor < local_last:
        # Wall-clock arithmetic: with a ZoneInfo, ``+ timedelta(days=1)`` keeps local midnight.
        # Inner edges on whole seconds (a fractional ``start`` only shortens the first window).
        following = min(floor_second(_add(cursor, step)), local_last)
        if len(windows) >= max_windows:
            raise EtelecomValidationError(
                f"[{first.isoformat()}, {last.isoformat()}) in steps of {step} makes more than "
                f"max_windows={max_windows} windows; use a longer 'every', a shorter range, or raise "
                f"max_windows together with Airflow's [core] max_map_length.",
                parameter="max_windows",
            )
        window = {"date_from": cursor.isoformat(), "date_to": following.isoformat()}
        if output_path is not None:
            window["output_path"] = _window_path(output_path, cursor, window, len(windows))
        windows.append(window)
        cursor = following
    if output_path is not None and len({w["output_path"] for w in windows}) < len(windows):
        raise EtelecomValidationError(
            f"output_path={output_path!r} gives several windows the same file, so mapped tasks would "
            f"overwrite each other; with steps shorter than a day use {{start}} or {{index}} instead of {{date}}.",
            parameter="output_path",
        )
    return windows


def _window_path(template: str, cursor: datetime, window: dict[str, str], index: int) -> str:
    """Fill a window's placeholders into ``template``, refusing Jinja and unknown names."""
    if "{{" in template:
        raise EtelecomValidationError(
            f"output_path={template!r} holds Jinja ('{{{{ ... }}}}'); split_windows fills its own "
            f"placeholders {{date}}, {{date_from}}, {{date_to}}, {{start}}, {{index}} when the DAG is parsed.",
            parameter="output_path",
        )
    try:
        return template.format(
            date=cursor.strftime("%Y-%m-%d"),
            date_from=window["date_from"],
            date_to=window["date_to"],
            start=cursor.strftime("%Y%m%dT%H%M%S"),
            index=index,
        )
    except (KeyError, IndexError, ValueError) as error:
        raise EtelecomValidationError(
            f"output_path={template!r} has a placeholder split_windows does not know ({error}); use "
            f"{{date}}, {{date_from}}, {{date_to}}, {{start}} or {{index}}.",
            parameter="output_path",
        ) from None


def _original_zone(value: datetime | str) -> tzinfo:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.tzinfo
    if isinstance(value, str):
        text = value.strip()
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        if parsed.tzinfo is not None:
            return parsed.tzinfo
    raise EtelecomValidationError("start has no time zone; pass timezone=...", parameter="timezone")


def _add(moment: datetime, step: timedelta) -> datetime:
    """Add ``step``: whole days on the local wall clock (local midnight stays local midnight across a
    daylight-saving change), anything else as elapsed time (so ``"1h"`` is always one hour)."""
    zone = moment.tzinfo
    if step % timedelta(days=1) == timedelta(0):
        moved = datetime.fromtimestamp((moment + step).timestamp(), tz=zone)
        if moved > moment:
            return moved
    return (moment.astimezone(dt_timezone.utc) + step).astimezone(zone)
