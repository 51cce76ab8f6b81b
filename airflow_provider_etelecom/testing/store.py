"""In-memory consent store of the eTelecom simulator: seeded data, filters, keyset paging, lifecycle.

This module knows nothing about HTTP. It owns the simulated clock, the consents, the two sorted
indexes that make a page request cost O(page) (``bisect`` over ``(sort value, id)`` keys, which is
also what makes the cursors *keyset* cursors: a row inserted while someone pages can never shift an
existing row out of, or into, a page already served), and the consent lifecycle
(``S`` → ``P``/``N`` by reply, ``S`` → ``NS`` when the reply window ends).

Times are ``int`` epoch **microseconds** internally, exact. By default every time the simulator
makes is a whole second and is written ``YYYY-MM-DDTHH:MM:SSZ``: whole seconds make ties on
``created_at`` common, and ties are what break naive ``created_at`` watermarks. With
``fractional_times`` the times it makes get a seeded sub-second part, written with the fraction
(``…:05.123456Z``, trailing zeros dropped as Go's RFC 3339 writer does). How the platform reads the
fractions of date filters, and how it writes them in answers, are switches
(``date_filter_precision``, ``created_at_precision``) because nobody has confirmed either.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import heapq
import json
import random
import re
import threading
import time
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import Any, NamedTuple

from airflow_provider_etelecom.testing.switches import (
    DEFAULT_SWITCHES,
    MAX_LIMIT,
    SORTS,
    PlatformSwitches,
)

CALL_TYPES: tuple[str, ...] = ("audio", "video", "audio_and_video")
REASON_CODES: tuple[str, ...] = (
    "product_service_consulting",
    "order_appointment_confirmation",
    "delivery_notification",
    "flight_announcement",
    "update_order",
)
REPLY_STATUSES: tuple[str, ...] = ("S", "NS", "P", "N")
STATUSES: tuple[str, ...] = ("P", "N")
DELIVERY_STATUSES: tuple[str, ...] = ("unknown", "received", "seen")
UNKNOWN = "unknown"
ZERO_STATUS = "Z"
DEFAULT_SORT = "-created_at"
DEFAULT_LIMIT = 100
US = 1_000_000
AGREEMENT_US = 30 * 86400 * US
_DAY_US = 86400 * US
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
INT64_MAX = 2**63 - 1
_ID_BITS = 64
_ID_MASK = (1 << _ID_BITS) - 1


def _key(micros: int, consent_id: int) -> int:
    """Pack ``(sort value, id)`` into one int: sorted indexes of ints bisect faster than of tuples."""
    return (micros << _ID_BITS) | consent_id


def drop_fraction(consent_id: int) -> float:
    """A fraction in ``[0, 1)`` fixed for ``consent_id`` in every process (``hash()`` is salted per process).

    ``drop_after_limit`` drops the consents whose fraction is below its share.
    """
    digest = hashlib.blake2b(b"%d:drop" % consent_id, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _within(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value < high)


def _fits(cursor: Cursor, kind: str, on_id: bool) -> bool:
    """Whether ``cursor`` holds what a platform of ``cursor_kind`` ``kind`` reads (in an id order if ``on_id``)."""
    if kind == "offset":
        return cursor.offset is not None
    return cursor.on_id == on_id and cursor.value is not None and (kind != "keyset" or cursor.consent_id is not None)


def _cursor_bound(index: list[int], cursor: Cursor, kind: str, below: bool) -> int:
    """Where ``cursor`` cuts the ascending ``index``: the end of what lies below it, or the start of what lies above.

    ``keyset`` cuts at ``(value, id)`` exactly; ``value_lt`` leaves every row of ``value`` out
    (``<`` / ``>``), ``value_le`` keeps them all (``<=`` / ``>=``).
    """
    value = cursor.value
    assert value is not None
    if kind == "keyset":
        assert cursor.consent_id is not None
        key = _key(value, cursor.consent_id)
        return bisect_left(index, key) if below else bisect_right(index, key)
    if (kind == "value_lt") == below:
        return bisect_left(index, _key(value, 0))
    return bisect_left(index, _key(value + 1, 0))


#: Send failures the seeded data uses (Zalo error codes as eTelecom relays them).
SEND_ERRORS: tuple[tuple[int, str], ...] = (
    (-213, "Người dùng chưa quan tâm OA hoặc không tương tác với OA trong 7 ngày qua"),
    (-201, "Số điện thoại không hợp lệ"),
    (-124, "Access token không hợp lệ"),
    (-224, "OA chưa được cấp quyền gọi"),
)

_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_PHONE_RE = re.compile(r"^\+?\d{9,15}$")


class InvalidArgument(ValueError):
    """A request field is wrong; the HTTP layer answers 400 ``invalid_argument`` naming ``field``."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field
        self.msg = msg


class NotFound(KeyError):
    """The consent asked for does not exist."""


class AlreadyExists(Exception):
    """A consent request the platform refuses because one is pending (``pending_conflict``): 409 ``already_exists``."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


_DAY_PREFIX: dict[int, str] = {}
_TIME_OF_DAY: list[str] = []


def reduce_time(value: int, precision: str, unit: int = US) -> int:
    """Read a time (``unit`` ticks per second) the way a platform of ``precision`` would.

    ``"ms"`` and ``"s_truncate"`` cut the fraction (times are after 1970, so cutting is flooring);
    ``"s_round"`` rounds half-up (``10:00:00.5`` reads as ``10:00:01``).
    """
    if precision == "exact":
        return value
    if precision == "ms":
        return value - value % (unit // 1000)
    if precision == "s_truncate":
        return value - value % unit
    return (value + unit // 2) // unit * unit


def format_time(micros: int, precision: str = "exact") -> str:
    """Render epoch microseconds as RFC 3339 UTC with ``Z``, the platform's wire form.

    A time without a fraction is written without one (``"2026-01-05T03:04:05Z"``); a fraction is
    written with its trailing zeros dropped (``"…:05.25Z"``), as Go's RFC 3339 writer does.
    Day prefixes and the 86,400 times of day are cached (built on first use, not at import), because
    ``strftime`` for four fields of every consent was most of a page's server time.

    :param micros: microseconds since the epoch.
    :param precision: one of :data:`TIME_PRECISIONS`, applied before writing.
    :return: e.g. ``"2026-01-05T03:04:05Z"``.
    """
    if precision != "exact":
        micros = reduce_time(micros, precision)
    day, rest = divmod(int(micros), _DAY_US)
    second, fraction = divmod(rest, US)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        moment = time.gmtime(day * 86400)
        # Years below 1000 (Go's zero time is year 1) keep four digits, as RFC 3339 requires.
        prefix = _DAY_PREFIX[day] = f"{moment.tm_year:04d}-{moment.tm_mon:02d}-{moment.tm_mday:02d}T"
    if not _TIME_OF_DAY:
        _TIME_OF_DAY[:] = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]
    if fraction:
        return f"{prefix}{_TIME_OF_DAY[second]}.{fraction:06d}".rstrip("0") + "Z"
    return prefix + _TIME_OF_DAY[second] + "Z"


def parse_time_and_offset(value: str, field: str) -> tuple[int, int]:
    """Parse an RFC 3339 date-time (offset required) into exact epoch nanoseconds and the offset sent.

    Written by hand rather than with ``datetime.fromisoformat`` because Python 3.10 accepts neither
    ``Z`` nor fractions other than 3 or 6 digits, both of which clients send. Integer nanoseconds,
    not a float, so ``10:00:00.3`` compares exactly (digits past the ninth are dropped).

    :param value: the wire string.
    :param field: the request field, named in the error.
    :return: (epoch nanoseconds, the offset the string carries in seconds east of UTC).
    :raises InvalidArgument: the value is not RFC 3339.
    """
    match = _TIME_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidArgument(field, f"{field}: giá trị thời gian không hợp lệ (cần RFC 3339): {value!r}")
    year, month, day, hour, minute, second, frac, offset = match.groups()
    try:
        if offset in ("Z", "z"):
            tz = timezone.utc
        else:
            sign = 1 if offset[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
    except ValueError as exc:
        raise InvalidArgument(field, f"{field}: giá trị thời gian không hợp lệ: {value!r}") from exc
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    offset_s = 0 if tz is timezone.utc else tz.utcoffset(None) // timedelta(seconds=1)
    return seconds * 1_000_000_000 + (int((frac[1:] + "000000000")[:9]) if frac else 0), offset_s


def to_micros(value: datetime | str | float | int, field: str = "time") -> int:
    """Turn a datetime (aware), RFC 3339 string or epoch seconds into exact epoch microseconds.

    :raises ValueError: a naive datetime (its zone would be a guess).
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{field} must be timezone-aware")
        return (value - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, str):
        return parse_time_and_offset(value, field)[0] // 1000
    if isinstance(value, int):
        return value * US
    return round(value * US)


def to_epoch(value: datetime | str | float | int, field: str = "time") -> int:
    """Turn a datetime (aware), RFC 3339 string or epoch number into whole epoch seconds (floored).

    :raises ValueError: a naive datetime (its zone would be a guess).
    """
    return to_micros(value, field) // US


def parse_int64(value: Any, field: str) -> int:
    """Parse an int64 id sent as a JSON string (or number), as the platform carries ids.

    :raises InvalidArgument: not an integer or out of the int64 range.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidArgument(field, f"{field}: phải là số nguyên int64")
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument(field, f"{field}: phải là số nguyên int64: {value!r}") from None
    if not -(2**63) <= number <= INT64_MAX:
        raise InvalidArgument(field, f"{field}: vượt quá phạm vi int64")
    return number


def normalize_phone(value: Any, field: str = "phone") -> str:
    """Bring a Vietnamese phone number to the ``84xxxxxxxxx`` form the platform stores.

    :raises InvalidArgument: not a phone number.
    """
    if not isinstance(value, str) or not _PHONE_RE.match(value.strip()):
        raise InvalidArgument(field, f"{field}: số điện thoại không hợp lệ: {value!r}")
    phone = value.strip().lstrip("+")
    if phone.startswith("0"):
        phone = "84" + phone[1:]
    return phone


class WireForm(NamedTuple):
    """How answers are written: the switches that shape them (not what they hold)."""

    precision: str = "exact"
    """``created_at_precision``: how times are written."""
    shift_us: int = 0
    """``shown_zone_offset_h`` in microseconds: added to every time written (the wall clock of a zone, labelled Z)."""
    numeric_ids: bool = False
    """``numeric_ids``: ids written as JSON numbers (a Go int64 without the ``,string`` tag)."""


#: Times exactly, in UTC, and ids as strings: the stored values.
EXACT = WireForm()


@dataclass(slots=True, eq=False)  # eq=False: a consent is itself (list.index and remove find it by identity)
class Consent:
    """One consent request as the store keeps it (times as epoch microseconds, ids as ints where sorted).

    The defaults are those of a consent just sent: delivered to Zalo, charged, waiting for its reply.
    """

    id: int
    shop_id: str
    user_id: str
    oa_id: str
    phone: str
    call_type: str
    reason_code: str
    created: int
    updated: int
    delivery_time: int
    expires: int
    reply_status: str = "S"
    status: str = "P"
    delivery_status: str = UNKNOWN
    is_charged: bool = True
    error_code: int = 0
    error_message: str = ""
    visible_at: int = 0
    version: int = dataclasses.field(default=0, init=False)
    served_as: tuple[dict[str, Any], frozenset[str]] | None = dataclasses.field(default=None, init=False)
    """Fields added to, and fields left out of, the wire form (``add(unknown_fields=, omit_fields=)``)."""
    _wire: dict[str, Any] | None = dataclasses.field(default=None, init=False, repr=False)

    def wire(self, form: WireForm = EXACT) -> dict[str, Any]:
        """Return the wire dict, cached until the next change (shared: callers must not mutate it).

        :param form: how the answer is written; the store clears every cache when the switches that
            shape it change, so one cached form is enough.
        """
        if self._wire is None:
            self._wire = self.wire_uncached(form)
        return self._wire

    def wire_uncached(self, form: WireForm = EXACT) -> dict[str, Any]:
        """Build the wire dict afresh, written in ``form``."""
        precision, shift = form.precision, form.shift_us
        number: Callable[[Any], Any] = int if form.numeric_ids else str
        wire = {
            "id": number(self.id),
            "shop_id": number(self.shop_id),
            "user_id": number(self.user_id),
            "oa_id": number(self.oa_id),
            "phone": self.phone,
            "call_type": self.call_type,
            "reason_code": self.reason_code,
            "reply_status": self.reply_status,
            "status": self.status,
            "delivery_status": self.delivery_status,
            "delivery_time": format_time(self.delivery_time + shift, precision),
            "is_charged": self.is_charged,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "created_at": format_time(self.created + shift, precision),
            "updated_at": format_time(self.updated + shift, precision),
            "expires_at": format_time(self.expires + shift, precision),
        }
        if self.served_as is not None:
            added, omitted = self.served_as
            wire = {name: value for name, value in wire.items() if name not in omitted}
            wire.update(added)
        return wire

    def touch(self) -> None:
        """Invalidate the cached wire form and any scheduled transition after a change."""
        self._wire = None
        self.version += 1


@dataclass(frozen=True)
class ConsentFilter:
    """A validated ``ListRequestConsent`` filter. ``None`` means "not filtered".

    ``date_from`` and ``date_to`` are exact epoch **nanoseconds** as sent; how the platform reads
    them is the store's business (:meth:`date_bounds`).
    """

    call_type: str | None = None
    date_from: int | None = None
    date_to: int | None = None
    date_from_offset_s: int = 0
    """The offset ``date_from`` was sent with, seconds east of UTC (``filter_zone_offset_h`` ignores it)."""
    date_to_offset_s: int = 0
    is_charged: bool | None = None
    oa_id: str | None = None
    phone: str | None = None
    reason_code: str | None = None
    reply_status: str | None = None
    status: str | None = None
    user_id: str | None = None

    def date_bounds(
        self, precision: str, date_to_inclusive: bool, zone_offset_h: float = 0.0
    ) -> tuple[int | None, int | None]:
        """Turn the date filters into ``[low, high)`` bounds on the exact filtered time (microseconds).

        Each filter is first read at ``precision`` (the platform may cut or round its fraction), then
        ``date_from`` is inclusive and ``date_to`` exclusive, or inclusive with ``date_to_inclusive``.
        A ``zone_offset_h`` other than 0 reads each filter's wall clock as the time in UTC+that many
        hours, whatever offset was sent (``2025-03-01T00:00:00Z`` with 7 is ``2025-02-28T17:00:00Z``).

        :return: ``(low, high)``; ``None`` where the filter is not set.
        """
        ns = 1_000_000_000

        def read(moment: int, offset_s: int) -> int:
            zone_shift = offset_s * ns - round(zone_offset_h * 3600 * ns) if zone_offset_h else 0
            return reduce_time(moment + zone_shift, precision, ns)

        low = high = None
        if self.date_from is not None:
            low = -(-read(self.date_from, self.date_from_offset_s) // 1000)  # created >= from
        if self.date_to is not None:
            to = read(self.date_to, self.date_to_offset_s)
            high = to // 1000 + 1 if date_to_inclusive else -(-to // 1000)  # created <= to / < to
        return low, high

    def matches(self, consent: Consent, low: int | None = None, high: int | None = None) -> bool:
        """Tell whether ``consent`` passes every set field, ``created_at`` within ``[low, high)``."""
        if low is not None and consent.created < low:
            return False
        if high is not None and consent.created >= high:
            return False
        return (
            (self.call_type is None or consent.call_type == self.call_type)
            and (self.is_charged is None or consent.is_charged is self.is_charged)
            and (self.oa_id is None or consent.oa_id == self.oa_id)
            and (self.phone is None or consent.phone == self.phone)
            and (self.reason_code is None or consent.reason_code == self.reason_code)
            and (self.reply_status is None or consent.reply_status == self.reply_status)
            and (self.status is None or consent.status == self.status)
            and (self.user_id is None or consent.user_id == self.user_id)
        )


def _enum(raw: Mapping[str, Any], field: str, allowed: Sequence[str], zero: str) -> str | None:
    value = raw.get(field)
    # A protobuf enum's zero value ("unknown" / "Z") and "" mean "not set" [assumed].
    if value is None or value == "" or value == zero:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise InvalidArgument(field, f"{field}: giá trị không hợp lệ: {value!r} (hợp lệ: {', '.join(allowed)})")
    return value


#: The enum filters, each with its values and the zero value that means "not set".
_ENUM_FILTERS: tuple[tuple[str, Sequence[str], str], ...] = (
    ("call_type", CALL_TYPES, UNKNOWN),
    ("reason_code", REASON_CODES, UNKNOWN),
    ("reply_status", REPLY_STATUSES, ZERO_STATUS),
    ("status", STATUSES, ZERO_STATUS),
)


def parse_filter(raw: Any) -> ConsentFilter:
    """Validate the ``filter`` object of a ``ListRequestConsent`` body.

    :raises InvalidArgument: a field has a wrong type or value (the error names it).
    """
    if raw is None:
        return ConsentFilter()
    if not isinstance(raw, dict):
        raise InvalidArgument("filter", "filter: phải là một object")
    is_charged_raw = raw.get("is_charged")
    is_charged: bool | None
    if is_charged_raw is None or is_charged_raw == "":
        is_charged = None
    elif isinstance(is_charged_raw, bool):
        is_charged = is_charged_raw
    elif is_charged_raw in ("true", "false"):
        is_charged = is_charged_raw == "true"
    else:
        raise InvalidArgument("is_charged", f"is_charged: phải là boolean: {is_charged_raw!r}")
    values: dict[str, Any] = {"is_charged": is_charged}
    for field in ("oa_id", "user_id"):
        value = raw.get(field)
        values[field] = None if value in (None, "", "0", 0) else str(parse_int64(value, field))
    for field in ("date_from", "date_to"):
        value = raw.get(field)
        moment = (None, 0) if value in (None, "") else parse_time_and_offset(value, field)
        values[field], values[f"{field}_offset_s"] = moment
    for field, allowed, zero in _ENUM_FILTERS:
        values[field] = _enum(raw, field, allowed, zero)
    phone = raw.get("phone")
    return ConsentFilter(**values, phone=None if phone in (None, "") else normalize_phone(phone))


@dataclass(frozen=True)
class Paging:
    """A validated ``paging`` object: effective sort and limit, decoded cursors, and the raw echo."""

    sort: str
    limit: int
    asked_limit: int
    """The ``limit`` asked for, as a number (``0`` when none was sent, as Go reads a missing field)."""
    after: Cursor | None
    before: Cursor | None
    raw_after: str
    raw_before: str
    raw_sort: str


@dataclass(frozen=True)
class Cursor:
    """What an opaque cursor holds, decoded: a keyset ``(value, consent_id)``, a sort value, or an offset.

    Which of these the platform puts in its cursors is the ``cursor_kind`` switch.
    """

    value: int | None = None
    """The sort value of the consent it points at (microseconds of a time)."""
    consent_id: int | None = None
    """The id that breaks ties of ``value`` (keyset cursors)."""
    offset: int | None = None
    """A row offset into the filtered order (offset cursors)."""
    issued: int | None = None
    """When it was issued, simulated epoch microseconds (only while ``cursor_ttl_s`` is set)."""
    on_id: bool = False
    """``value`` is an id (an order served by id, ``order_by_id``), not a time."""


def encode_cursor(
    sort: str,
    key: int | None,
    consent_id: int | None = None,
    *,
    offset: int | None = None,
    issued: int | None = None,
    on_id: bool = False,
) -> str:
    """Build an opaque cursor: urlsafe base64 of JSON holding the sort and a position in its order.

    The sort is inside so a cursor used with another sort is refused instead of silently paging the
    wrong order. The position is a keyset ``(key, consent_id)``, a sort value alone (``key``) or a
    row ``offset``. ``key`` is in microseconds; the cursor holds its whole seconds (``k``) and, only
    when there is one, its microsecond fraction (``f``), so whole-second cursors are unchanged.
    ``issued`` (microseconds), when given, lets a platform with ``cursor_ttl_s`` refuse it later.
    With ``on_id`` the key is an id (an id order), held as a string (``n``).
    """
    seconds, fraction = divmod(key, US) if key is not None and not on_id else (None, 0)
    n = str(key) if key is not None and on_id else None
    i = None if consent_id is None else str(consent_id)
    held = {"s": sort, "n": n, "k": seconds, "i": i, "f": fraction or None, "o": offset, "t": issued}
    raw = json.dumps({name: value for name, value in held.items() if value is not None}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _in_range(number: int, high: int = INT64_MAX) -> int:
    if not 0 <= number <= high:
        raise ValueError("cursor out of range")
    return number


def _json_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("cursor out of range")
    return value


def decode_cursor(cursor: str, sort: str, field: str) -> Cursor:
    """Decode a cursor made by :func:`encode_cursor` and check it belongs to ``sort``.

    Whether it holds what the platform's ``cursor_kind`` needs is the store's check.

    :raises InvalidArgument: garbage, or a cursor of another sort.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        cursor_sort = data["s"]
        value = None
        if "k" in data:
            value = _in_range(int(data["k"]), 2**40 - 1) * US + _in_range(int(data.get("f", 0)), US - 1)
        elif "n" in data:
            value = _in_range(int(data["n"]))
        consent_id = _in_range(int(data["i"])) if "i" in data else None
        offset = _in_range(_json_int(data["o"])) if "o" in data else None
        issued = _in_range(_json_int(data["t"]), 2**62 - 1) if "t" in data else None
        if value is None and offset is None:
            raise ValueError("cursor holds no position")
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(field, f"paging.{field}: cursor không hợp lệ") from None
    if cursor_sort != sort:
        raise InvalidArgument(
            field, f"paging.{field}: cursor thuộc về sort {cursor_sort!r}, không dùng được với {sort!r}"
        )
    return Cursor(value, consent_id, offset, issued, on_id="n" in data)


def parse_paging(
    raw: Any,
    accepted_sorts: Collection[str] = SORTS,
    ignored_sorts: Collection[str] = (),
    page_cap: int = MAX_LIMIT,
) -> Paging:
    """Validate ``paging``: one sort field of :data:`SORTS`, limit cut to ``page_cap``, cursors.

    :param accepted_sorts: the sorts this platform accepts when asked for by name (the default
        order is served whatever this says: a platform does not refuse its own default).
    :param ignored_sorts: accepted sorts answered in the default order all the same (the request's
        ``sort`` is still echoed); their cursors are the default order's.
    :param page_cap: the most consents a page holds; a larger (or the default) limit is cut to it.
    :raises InvalidArgument: bad or refused sort, limit type or cursor.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidArgument("paging", "paging: phải là một object")
    raw_sort = raw.get("sort") or ""
    if not isinstance(raw_sort, str):
        raise InvalidArgument("sort", "paging.sort: phải là chuỗi")
    sort = raw_sort.strip() or DEFAULT_SORT
    if sort not in SORTS or (raw_sort.strip() and sort not in accepted_sorts):
        raise InvalidArgument("sort", f"paging.sort: không hỗ trợ sắp xếp theo {raw_sort!r}")
    if sort in ignored_sorts:
        sort = DEFAULT_SORT
    raw_limit = raw.get("limit")
    if raw_limit in (None, ""):
        limit = 0
    else:
        if isinstance(raw_limit, bool):
            raise InvalidArgument("limit", "paging.limit: phải là số nguyên")
        try:
            limit = int(raw_limit)
        except (TypeError, ValueError):
            raise InvalidArgument("limit", f"paging.limit: phải là số nguyên: {raw_limit!r}") from None
        if isinstance(raw_limit, float) and raw_limit != limit:
            raise InvalidArgument("limit", f"paging.limit: phải là số nguyên: {raw_limit!r}")
    asked = limit
    if limit <= 0:
        limit = DEFAULT_LIMIT
    limit = min(limit, page_cap)
    cursors: dict[str, tuple[str, Cursor | None]] = {}
    for field in ("after", "before"):
        value = raw.get(field) or ""
        if not isinstance(value, str):
            raise InvalidArgument(field, f"paging.{field}: phải là chuỗi")
        cursors[field] = value, decode_cursor(value, sort, field) if value else None
    (raw_after, after), (raw_before, before) = cursors["after"], cursors["before"]
    return Paging(sort, limit, asked, after, before, raw_after, raw_before, raw_sort)


def _cum(weights: Iterable[float]) -> list[float]:
    """Cumulative shares in [0, 1] for one-draw weighted choice with ``bisect_right``."""
    values = list(weights)
    total, out, run = sum(values), [], 0.0
    for weight in values[:-1]:
        run += weight
        out.append(run / total)
    return out


# Zero values ("unknown", "Z") appear in a small share, as in the doc's own examples.
_CALL_VALUES = (UNKNOWN, *CALL_TYPES)
_CALL_CUM = _cum((0.5, 55, 25, 20))
_REASON_VALUES = (UNKNOWN, *REASON_CODES)
_REASON_CUM = _cum((0.5, 30, 25, 20, 10, 15))
_OLD_REPLY = ("P", "N", "NS", ZERO_STATUS)
_OLD_REPLY_CUM = _cum((50, 15, 34, 1))
_RECENT_REPLY = ("S", "P", "N")
_RECENT_REPLY_CUM = _cum((80, 15, 5))


class Store:
    """Thread-safe consents plus the simulated clock; every public method takes the lock.

    :param consents: number of seeded consents.
    :param seed: makes data (and later inserts) reproducible.
    :param start: first second of seeded ``created_at`` (inclusive), epoch seconds.
    :param end: end of seeded ``created_at`` (exclusive), epoch seconds.
    :param reply_window_s: simulated seconds a pending ``S`` consent waits before turning ``NS``.
    :param auto_reply_after_s: consents made by ``RequestConsent`` get ``auto_reply_status`` this many
        simulated seconds after they were created (``None``: never).
    :param auto_reply_status: ``"P"`` or ``"N"``.
    :param oa_ids: OA ids to generate data for.
    :param phones: phone pool to generate data for.
    :param switches: the platform switches (:class:`~.switches.PlatformSwitches`; default: their
        defaults). The store reads every switch from :attr:`switches`; :meth:`configure` changes them.
        A burst window left to its default is stored resolved (``burst_start``, ``burst_span_s``).
    """

    def __init__(
        self,
        *,
        consents: int,
        seed: int,
        start: int | None = None,
        end: int | None = None,
        reply_window_s: float = 86400.0,
        auto_reply_after_s: float | None = None,
        auto_reply_status: str = "P",
        oa_ids: Sequence[str] | None = None,
        phones: Sequence[str] | None = None,
        switches: PlatformSwitches = DEFAULT_SWITCHES,
    ) -> None:
        if consents < 0:
            raise ValueError("consents must be >= 0")
        if auto_reply_status not in ("P", "N"):
            raise ValueError("auto_reply_status must be 'P' or 'N'")
        self._lock = threading.RLock()
        self._offset = 0.0
        now = int(self.now_s())
        self.end = end if end is not None else now
        self.start = start if start is not None else self.end - 30 * 86400
        if self.end <= self.start or self.start < 0:
            raise ValueError("end must be after start, and both after 1970")
        self.reply_window_s = float(reply_window_s)
        self.auto_reply_after_s = auto_reply_after_s
        self.auto_reply_status = auto_reply_status
        self.switches = switches
        self._init_burst()
        rng = self._rng = random.Random(seed)
        self.shop_id = str(1_100_000_000_000_000_000 + rng.randrange(10**15))
        self.oa_ids = (
            [str(o) for o in oa_ids]
            if oa_ids
            else [str(4_300_000_000_000_000_000 + rng.randrange(10**15)) for _ in range(3)]
        )
        for oa in self.oa_ids:
            parse_int64(oa, "oa_id")
        pool = max(5, consents // 10)
        if phones:
            self.phones = [normalize_phone(p) for p in phones]
        else:
            self.phones = sorted({"84" + str(rng.randrange(300_000_000, 999_999_999)) for _ in range(pool)})
        self._user_of_phone = {
            phone: str(1_500_000_000_000_000_000 + i * 7919 + rng.randrange(1000))
            for i, phone in enumerate(self.phones)
        }
        self._id_index: list[int] | None = None
        """``(id, id)`` keys in id order, built at the first listing served by id (``order_by_id``)."""
        self._by_oa_phone: dict[tuple[str, str], list[Consent]] = {}
        self._timers: list[tuple[int, int, int, str]] = []
        self._failing_phones: dict[str, tuple[dict[str, Any], bool]] = {}
        """By phone: the fields of a failed send, and whether the consent was delivered all the same."""
        self._max_id = 1_200_000_000_000_000_000
        self._seed(consents)

    def _init_burst(self) -> None:
        """Resolve the burst window: centred in ``[start, end)`` (and cut to it) unless given."""
        switches = self.switches
        share, span_s = switches.burst_share, switches.burst_span_s
        seeded = self.end - self.start
        if switches.burst_start is None:
            span_s = min(span_s, float(seeded))
            burst_start = self.start + int((seeded - span_s) // 2)
        else:
            burst_start = to_epoch(switches.burst_start, "burst_start")
            if share > 0 and (burst_start < self.start or burst_start + span_s > self.end):
                raise ValueError(
                    f"the burst window [burst_start, burst_start + burst_span_s) must lie inside the seeded "
                    f"[start, end): burst_start={burst_start}, burst_span_s={span_s}, "
                    f"start={self.start}, end={self.end}"
                )
        self._burst_start, self._burst_span_s = burst_start, span_s
        moment = datetime.fromtimestamp(burst_start, tz=timezone.utc)
        self.switches = replace(switches, burst_start=moment, burst_span_s=span_s)

    # -------------------------------------------------------------- switches
    @property
    def switches(self) -> PlatformSwitches:
        """The platform switches in force (frozen: :meth:`configure` replaces them)."""
        return self._switches

    @switches.setter
    def switches(self, switches: PlatformSwitches) -> None:
        self._switches = switches
        shift = round(switches.shown_zone_offset_h * 3600 * US)
        self._wire_form = WireForm(switches.created_at_precision, shift, switches.numeric_ids)

    def configure(self, **changes: Any) -> PlatformSwitches:
        """Change switches a running simulator may change (:data:`~.switches.SETTINGS`), all checked first.

        :return: the switches after the change.
        :raises ValueError: an unknown or seeding-only name, or a bad value (nothing changes then).
        """
        with self._lock:
            before = self._wire_form
            self.switches = self.switches.changed(**changes)
            if self._wire_form != before:
                for consent in self._by_id.values():
                    consent._wire = None
            return self.switches

    # ----------------------------------------------------------------- clock
    def now_s(self) -> float:
        """Simulated now in epoch seconds: real time plus the accumulated :meth:`advance`."""
        return time.time() + self._offset

    def now_us(self) -> int:
        """Simulated now in epoch microseconds."""
        return int(self.now_s() * US)

    def advance(self, seconds: float) -> float:
        """Move the simulated clock forward and apply the transitions now due.

        :return: the new simulated now (epoch seconds).
        """
        if seconds < 0:
            raise ValueError("the simulated clock only moves forward")
        with self._lock:
            self._offset += seconds
            self._settle()
            return self.now_s()

    def _platform_us(self, now: int) -> int:
        """The platform's clock at simulated ``now`` (``clock_offset_s`` off): what stamps the consents it makes."""
        return now + round(self.switches.clock_offset_s * US)

    def _stamp(self, now: int) -> int:
        """``now`` as the simulator writes a moment it records: whole seconds unless fractional."""
        return now if self.switches.fractional_times else now - now % US

    def _made_at(self, now: int) -> int:
        """A ``created_at`` for a consent made at ``now``: its second, plus a seeded fraction (never after now)."""
        second = now - now % US
        if not self.switches.fractional_times:
            return second
        made = second + self._rng.randrange(US)
        return made if made <= now else made - US

    def _window_us(self) -> int:
        """``expires_at - created_at`` of a pending consent (whole seconds unless fractional)."""
        window = self.reply_window_s
        return int(window * US) if self._switches.fractional_times else int(window) * US

    def _lag_until(self, now: int) -> int:
        lag = self.switches.listing_lag_s
        return now + round(lag * US) if lag > 0 else 0

    # ------------------------------------------------------------ generation
    def _generate(self, created: int, now: int) -> Consent:
        """Make one plausible consent created at ``created`` as seen at ``now`` (uses the store rng).

        Written for speed (one draw per field, fields left at a fresh consent's defaults): seeding 300,000 consents
        must stay within a few seconds because benchmarks export that many. Times are microseconds;
        offsets are whole seconds unless ``fractional_times``, so the default data is unchanged.
        """
        rand = self._rng.random
        fractional = self._switches.fractional_times
        self._max_id += 1 + int(rand() * 1000)
        phone = self.phones[int(rand() * len(self.phones))]
        call_type = _CALL_VALUES[bisect_right(_CALL_CUM, rand())]
        reason = _REASON_VALUES[bisect_right(_REASON_CUM, rand())]
        expires = created + self._window_us()
        consent = Consent(
            self._max_id, self.shop_id, "", "", phone, call_type, reason, created, created, created, expires
        )
        r = rand()
        if r < 0.05:
            consent.status, consent.is_charged = "N", False
            consent.error_code, consent.error_message = SEND_ERRORS[int(r * 80) % len(SEND_ERRORS)]
        elif r < 0.06:
            consent.status, consent.reply_status, consent.is_charged = ZERO_STATUS, ZERO_STATUS, False
        else:
            consent.is_charged = r < 0.99
            r = rand()
            if created + round(self.reply_window_s * US) <= now:
                reply = consent.reply_status = _OLD_REPLY[bisect_right(_OLD_REPLY_CUM, r)]
            else:
                reply = consent.reply_status = _RECENT_REPLY[bisect_right(_RECENT_REPLY_CUM, r)]
            r = rand()
            if reply == "P" or reply == "N":
                consent.delivery_status = "seen"
                delivered = created + (int((1 + r * 29) * US) if fractional else (1 + int(r * 29)) * US)
                latest = max(created + 31 * US, min(expires, now))
                spread = latest - created - 30 * US
                offset = int(rand() * spread) if fractional else int(rand() * (spread // US)) * US
                consent.updated = max(delivered, min(created + 30 * US + offset, now))
                consent.delivery_time = delivered
                if reply == "P":
                    consent.expires = consent.updated + AGREEMENT_US
            elif (reply == "NS" and r < 0.6) or (reply == "S" and r < 0.7):
                consent.delivery_status = "received"
                consent.delivery_time = created + (int((1 + r * 40) * US) if fractional else (1 + int(r * 40)) * US)
            if reply == "NS":
                consent.updated = expires
        consent.user_id = self._user_of_phone.get(phone) or self._new_user(phone)
        consent.oa_id = self.oa_ids[int(rand() * len(self.oa_ids))]
        return consent

    def _new_user(self, phone: str) -> str:
        user = str(1_600_000_000_000_000_000 + self._rng.randrange(10**15))
        self._user_of_phone[phone] = user
        return user

    def _seed_times(self, n: int) -> list[int]:
        """Seeded ``created_at`` values, sorted: the burst share inside its window, the rest spread."""
        rand = self._rng.random
        burst = round(n * self.switches.burst_share)

        def draw(start: int, span_s: float, k: int) -> list[int]:
            if self.switches.fractional_times:
                span = int(span_s * US)
                return [start * US + int(rand() * span) for _ in range(k)]
            return [(start + int(rand() * span_s)) * US for _ in range(k)]

        created = draw(self.start, self.end - self.start, n - burst)
        created += draw(self._burst_start, self._burst_span_s, burst)
        created.sort()
        # A few deliberate exact ties even in small data sets.
        for i in range(1, n):
            if rand() < 0.03:
                created[i] = created[i - 1]
        return created

    def _seed(self, n: int) -> None:
        created = self._seed_times(n)
        now = self._stamp(self.now_us())
        records = [self._generate(c, now) for c in created]
        jitter = self.switches.id_time_jitter_s
        if jitter > 0:
            # The same ids, handed out in the order of created_at plus a seeded jitter in [-J, +J].
            rand, span = self._rng.random, jitter * US
            moved = [c.created + (2 * rand() - 1) * span for c in records]
            ids = [c.id for c in records]
            for consent_id, at in zip(ids, sorted(range(n), key=moved.__getitem__), strict=True):
                records[at].id = consent_id
        self._by_id: dict[int, Consent] = {c.id: c for c in records}
        self._created_index = sorted([_key(c.created, c.id) for c in records])
        self._updated_index = sorted([_key(c.updated, c.id) for c in records])
        for c in records:
            self._by_oa_phone.setdefault((c.oa_id, c.phone), []).append(c)
            self._schedule(c)
        heapq.heapify(self._timers)

    def _schedule(self, consent: Consent, auto_reply_at: int | None = None) -> None:
        """Queue the pending consent's next transition (NS at window end, or an auto-reply)."""
        if consent.status != "P" or consent.reply_status != "S":
            return
        expiry = consent.created + round(self.reply_window_s * US)
        heapq.heappush(self._timers, (expiry, consent.id, consent.version, "expire"))
        if auto_reply_at is not None and auto_reply_at < expiry:
            heapq.heappush(self._timers, (auto_reply_at, consent.id, consent.version, "auto"))

    def _settle(self) -> None:
        """Apply every transition whose time has come on the platform's clock (lazy lifecycle, O(due) per call)."""
        now = self._platform_us(self.now_us())
        timers = self._timers
        while timers and timers[0][0] <= now:
            due, consent_id, version, kind = heapq.heappop(timers)
            consent = self._by_id.get(consent_id)
            if consent is None or consent.version != version or consent.reply_status != "S":
                continue
            reply = "NS" if kind == "expire" else self.auto_reply_status
            self._set_reply(consent, reply, self._stamp(due))

    def _set_reply(self, consent: Consent, reply: str, at: int) -> None:
        self._updated_index.pop(bisect_left(self._updated_index, _key(consent.updated, consent.id)))
        consent.reply_status = reply
        if self.switches.reply_moves_updated_at:
            consent.updated = at
        if reply == "P":
            consent.expires = at + AGREEMENT_US
            consent.delivery_status = "seen"
        elif reply == "N":
            consent.delivery_status = "seen"
        if consent.delivery_status != UNKNOWN and consent.delivery_time <= consent.created:
            consent.delivery_time = min(at, consent.created + 2 * US)
        consent.touch()
        insort(self._updated_index, _key(consent.updated, consent.id))

    def _add(self, consent: Consent, auto_reply_at: int | None = None) -> None:
        if consent.id in self._by_id:
            raise ValueError(f"duplicate consent id {consent.id}")
        self._max_id = max(self._max_id, consent.id)
        self._by_id[consent.id] = consent
        insort(self._created_index, _key(consent.created, consent.id))
        insort(self._updated_index, _key(consent.updated, consent.id))
        if self._id_index is not None:
            insort(self._id_index, _key(consent.id, consent.id))
        self._by_oa_phone.setdefault((consent.oa_id, consent.phone), []).append(consent)
        self._schedule(consent, auto_reply_at)

    def _ids_in_order(self) -> list[int]:
        if self._id_index is None:
            self._id_index = sorted(_key(consent_id, consent_id) for consent_id in self._by_id)
        return self._id_index

    def _wire(self, consent: Consent) -> dict[str, Any]:
        return consent.wire(self._wire_form)

    def _show(self, micros: int) -> str:
        """Write a time as answers do (``created_at_precision``, ``shown_zone_offset_h``)."""
        form = self._wire_form
        return format_time(micros + form.shift_us, form.precision)

    # ---------------------------------------------------------------- reads
    def get(self, consent_id: int | str) -> dict[str, Any] | None:
        """Return a copy of one consent's wire dict, or ``None``."""
        with self._lock:
            self._settle()
            consent = self._by_id.get(int(consent_id))
            return dict(self._wire(consent)) if consent else None

    def all(self, exact: bool = False, visible_only: bool = False) -> list[dict[str, Any]]:
        """Return copies of every consent, newest ``created_at`` first, listing lag ignored.

        :param exact: write the times exactly (microseconds) whatever ``created_at_precision`` says:
            the values the filters compare with.
        :param visible_only: only the consents ``ListRequestConsent`` can serve now: past their
            listing lag and not dropped after the page's LIMIT (``drop_after_limit``).
        """
        with self._lock:
            self._settle()
            by_id = self._by_id
            consents: Iterable[Consent] = (by_id[k & _ID_MASK] for k in reversed(self._created_index))
            if visible_only:
                now = self.now_us()
                consents = [c for c in consents if c.visible_at <= now and not self._dropped(c.id)]
            if exact:
                return [c.wire_uncached(EXACT) for c in consents]
            return [dict(self._wire(c)) for c in consents]

    def _dropped(self, consent_id: int) -> bool:
        share = self.switches.drop_after_limit
        return share > 0 and drop_fraction(consent_id) < share

    def list_page(self, flt: ConsentFilter, paging: Paging) -> tuple[list[dict[str, Any]], str, str]:
        """Serve one ``ListRequestConsent`` page.

        Walks the sorted index from the cursor position, so a keyset page costs O(limit) when nothing
        is filtered out, and ``date_from``/``date_to`` with a ``created_at`` sort narrow the walk by
        bisection. ``after`` returns items after the cursor in the sort order; ``before`` returns the
        ``limit`` items just before it, still in the sort order. Date filters are read at
        ``date_filter_precision`` and compared with the exact ``created_at``.

        What a cursor holds is ``cursor_kind``: a keyset ``(sort value, id)`` (items strictly after
        it), the sort value alone (``value_lt``: items strictly after that value, so the ties of it
        that did not fit on the page are skipped; ``value_le``: items from that value on, so the
        page's ties of it come back), or an ``offset`` into the filtered order as it is at request
        time (a walk from the start: O(offset + limit)). With ``cursor_ttl_s`` a cursor carries its
        issue time and is refused once it is older than that. With ``order_by_id`` the ``created_at``
        sorts (and the default order) walk an id index instead (cursors on the id), while the date
        filters still apply to ``created_at``, row by row. ``date_filter_field`` says which time the
        date filters bound; the walk is narrowed by bisection when the sort is on that time.

        With ``drop_after_limit``, the consents it drops are taken (they count against ``limit``) and
        then left out of the answer, as a backend that checks rows in code after its SQL ``LIMIT``:
        pages come back short mid-listing. The cursors are those of the first and last consent
        *returned*, as a handler that builds them from its response items; a page whose rows were
        all dropped is empty, with empty cursors.

        :return: (wire dicts in sort order, next cursor, prev cursor); both cursors are ``""`` on an
            empty page and filled on every non-empty page, the last one included.
        :raises InvalidArgument: a cursor that does not hold what ``cursor_kind`` needs, or has expired.
        """
        with self._lock:
            self._settle()
            now = self.now_us()
            switches = self.switches
            kind = switches.cursor_kind
            by_created = paging.sort.endswith("created_at")
            on_id = by_created and switches.order_by_id
            self._check_cursors(paging, on_id, now)
            index = self._ids_in_order() if on_id else self._created_index if by_created else self._updated_index
            descending = paging.sort.startswith("-")
            low, high = flt.date_bounds(
                switches.date_filter_precision, switches.date_to_inclusive, switches.filter_zone_offset_h
            )
            lo, hi = 0, len(index)
            on_updated = switches.date_filter_field == "updated_at"
            if not on_id and by_created != on_updated:  # the walk's order is the filtered time's: bisect
                lo = lo if low is None else bisect_left(index, _key(low, 0))
                hi = hi if high is None else bisect_left(index, _key(high, 0))
            # ConsentFilter.matches bounds created_at; updated_at bounds are checked here.
            low_c, high_c, low_u, high_u = (None, None, low, high) if on_updated else (low, high, None, None)

            def listable(c: Consent) -> bool:
                return c.visible_at <= now and flt.matches(c, low_c, high_c) and _within(c.updated, low_u, high_u)

            by_id = self._by_id

            def rows(lo: int, hi: int, backwards: bool) -> Iterator[Consent]:
                """The listable consents of ``index[lo:hi]``, walked up (or down, ``backwards``)."""
                positions = range(hi - 1, lo - 1, -1) if backwards else range(lo, hi)
                return filter(listable, (by_id[index[pos] & _ID_MASK] for pos in positions))

            first_at = 0
            if kind == "offset":  # count the listable rows of the order from its start
                start = 0 if paging.after is None else paging.after.offset or 0
                stop = None if paging.before is None else paging.before.offset
                counted = islice(enumerate(rows(lo, hi, descending)), start, stop)
                if paging.after is None and stop is not None:  # the rows just before ``before``
                    taken = list(deque(counted, maxlen=paging.limit))
                else:
                    taken = list(islice(counted, paging.limit))
                picked = [consent for _, consent in taken]
                first_at = taken[0][0] if taken else 0
            else:  # bisect to the cursors, then walk ``limit`` listable rows
                for cursor, is_after in ((paging.after, True), (paging.before, False)):
                    if cursor is not None:
                        # "after" in a descending order means "smaller keys" in the ascending index.
                        below = is_after == descending
                        bound = _cursor_bound(index, cursor, kind, below)
                        lo, hi = (lo, min(hi, bound)) if below else (max(lo, bound), hi)
                # Walk from the side nearest the "after" cursor, or from the "before" cursor backwards.
                picked = list(islice(rows(lo, hi, (paging.before is None) == descending), paging.limit))
                if paging.before is not None:
                    picked.reverse()
            served = picked
            if switches.drop_after_limit > 0:
                served = [c for c in picked if not self._dropped(c.id)]
            if not served:
                return [], "", ""
            first, last = served[0], served[-1]
            issued = None if switches.cursor_ttl_s is None else now

            def cursor_of(consent: Consent, end: bool) -> str:
                if kind == "offset":
                    # Past the last row returned, or at the first (index() finds a row by identity).
                    at = first_at + picked.index(consent) + end
                    return encode_cursor(paging.sort, None, offset=at, issued=issued)
                value = consent.id if on_id else consent.created if by_created else consent.updated
                tie = consent.id if kind == "keyset" else None
                return encode_cursor(paging.sort, value, tie, issued=issued, on_id=on_id)

            form = self._wire_form
            return [c.wire(form) for c in served], cursor_of(last, True), cursor_of(first, False)

    def _check_cursors(self, paging: Paging, on_id: bool, now: int) -> None:
        """Refuse a cursor that does not hold what ``cursor_kind`` reads, or has outlived ``cursor_ttl_s``."""
        switches = self.switches
        ttl = None if switches.cursor_ttl_s is None else round(switches.cursor_ttl_s * US)
        for cursor, field in ((paging.after, "after"), (paging.before, "before")):
            if cursor is None:
                continue
            if not _fits(cursor, switches.cursor_kind, on_id):
                raise InvalidArgument(field, f"paging.{field}: cursor không hợp lệ")
            if ttl is not None and cursor.issued is not None and now - cursor.issued > ttl:
                raise InvalidArgument(field, f"paging.{field}: cursor đã hết hạn (cursor expired), hãy bắt đầu lại")

    def check(self, oa_id: str, phone: str) -> tuple[int, str, str]:
        """Answer ``CheckConsent`` from the consents of (OA, phone).

        :return: (error, expired_time, message): ``0`` with the newest agreement's ``expires_at`` when
            an agreed, unexpired consent exists; otherwise ``-1`` none, ``-2`` pending, ``-3`` refused,
            ``-4`` not answered in time, ``-5`` agreement expired (with its time), ``-6`` not delivered.
        """
        with self._lock:
            self._settle()
            now = self._platform_us(self.now_us())
            consents = self._by_oa_phone.get((oa_id, phone), [])
            agreed = [c for c in consents if c.status == "P" and c.reply_status == "P"]
            valid = [c for c in agreed if c.expires > now]
            if valid:
                newest = max(valid, key=lambda c: (c.updated, c.id))
                return 0, self._show(newest.expires), "Khách hàng đã đồng ý cho phép gọi"
            if not consents:
                return -1, "", "Chưa có yêu cầu cấp quyền gọi cho số điện thoại này"
            latest = max(consents, key=lambda c: (c.created, c.id))
            if latest.status != "P":
                return -6, "", "Yêu cầu cấp quyền gọi gửi không thành công"
            if latest.reply_status == "S":
                return -2, self._show(latest.expires), "Đang chờ khách hàng phản hồi"
            if latest.reply_status == "N":
                return -3, "", "Khách hàng đã từ chối cấp quyền gọi"
            if agreed:
                newest = max(agreed, key=lambda c: (c.updated, c.id))
                return -5, self._show(newest.expires), "Quyền gọi đã hết hạn"
            return -4, "", "Khách hàng không phản hồi yêu cầu cấp quyền gọi"

    # --------------------------------------------------------------- writes
    def request_consent(self, oa_id: str, phone: str, call_type: str, reason_code: str) -> dict[str, Any]:
        """Create a consent as ``RequestConsent`` does (arguments already validated).

        :return: the new consent's wire dict (a copy).
        :raises AlreadyExists: with ``pending_conflict``, when (OA, phone) already has a consent
            delivered (``status`` ``P``) and waiting for its reply (``S``); nothing is created.
        """
        with self._lock:
            self._settle()
            if self.switches.pending_conflict and any(
                c.status == "P" and c.reply_status == "S" for c in self._by_oa_phone.get((oa_id, phone), ())
            ):
                raise AlreadyExists("Đã có yêu cầu cấp quyền gọi đang chờ khách hàng phản hồi cho số điện thoại này")
            now = self.now_us()
            self._max_id += 1 + self._rng.randrange(1000)
            made = self._made_at(self._platform_us(now))
            user = self._user_of_phone.get(phone) or self._new_user(phone)
            expires = made + self._window_us()
            consent = Consent(
                self._max_id, self.shop_id, user, oa_id, phone, call_type, reason_code, made, made, made, expires
            )
            consent.visible_at = self._lag_until(now)
            failed, delivered = self._failing_phones.get(phone, ({}, False))
            for name, value in () if delivered else failed.items():
                setattr(consent, name, value)
            after = self.auto_reply_after_s
            self._add(consent, None if after is None else made + round(after * US))
            if oa_id not in self.oa_ids:
                self.oa_ids.append(oa_id)
            answer = {**self._wire(consent), **failed}
            skew = round(self.switches.answer_clock_offset_s * US)
            if skew:
                answer.update(
                    created_at=self._show(consent.created + skew), updated_at=self._show(consent.updated + skew)
                )
            return answer

    def reply(self, consent_id: int | str, reply_status: str) -> dict[str, Any]:
        """Record the customer's answer now (``P`` agrees for 30 days, ``N`` refuses).

        :raises NotFound: no such consent.
        :raises ValueError: ``reply_status`` is not ``P`` or ``N``.
        """
        if reply_status not in ("P", "N"):
            raise ValueError("reply_status must be 'P' or 'N'")
        with self._lock:
            self._settle()
            consent = self._by_id.get(int(consent_id))
            if consent is None:
                raise NotFound(str(consent_id))
            self._set_reply(consent, reply_status, self._stamp(self._platform_us(self.now_us())))
            return dict(self._wire(consent))

    def insert(self, n: int, created_at: datetime | str | float | None = None) -> list[dict[str, Any]]:
        """Insert ``n`` generated consents created at ``created_at`` (default: simulated now).

        A given ``created_at`` (aware datetime, RFC 3339 string or epoch seconds) is kept exactly;
        by default each consent gets the current second, plus its own seeded fraction with
        ``fractional_times``. The consents are listable after ``listing_lag_s``.

        :return: their wire dicts (copies).
        """
        with self._lock:
            self._settle()
            now = self.now_us()
            given = None if created_at is None else to_micros(created_at, "created_at")
            out = []
            for _ in range(n):
                consent = self._fresh(now, given)
                self._add(consent)
                out.append(dict(self._wire(consent)))
            return out

    def _fresh(self, now: int, created: int | None) -> Consent:
        """A generated consent made at simulated ``now`` (created at ``created`` if given), listable after the lag."""
        clock = self._platform_us(now)
        consent = self._generate(self._made_at(clock) if created is None else created, self._stamp(clock))
        consent.visible_at = self._lag_until(now)
        return consent

    def add(
        self,
        fields: Mapping[str, Any],
        *,
        unknown_fields: Mapping[str, Any] | None = None,
        omit_fields: Collection[str] = (),
    ) -> dict[str, Any]:
        """Insert one consent with ``fields`` (wire names) set and the rest generated.

        ``unknown_fields`` are served as they are, beside the known ones (a field a future platform
        version may add); ``omit_fields`` names known fields the answer leaves out.

        Times may be aware datetimes, RFC 3339 strings or epoch seconds, and are kept exactly
        (microseconds). When ``updated_at`` or ``expires_at`` are not given they follow
        ``created_at``; without ``created_at`` the consent is created now (with a seeded fraction
        under ``fractional_times``). The consent is listable after ``listing_lag_s``.

        :raises ValueError: unknown field or bad value.
        """
        known = set(Consent.__slots__) | {"created_at", "updated_at", "expires_at"}
        unknown = set(fields) - known
        if unknown:
            raise ValueError(f"unknown consent fields: {sorted(unknown)}")
        wire_names = known - {"created", "updated", "expires", "visible_at", "version", "_wire", "served_as"}
        if set(omit_fields) - wire_names or set(unknown_fields or ()) & wire_names:
            raise ValueError(
                f"omit_fields must name wire fields and unknown_fields must not: {sorted(omit_fields)}, "
                f"{sorted(unknown_fields or ())}"
            )
        times = {"created_at": "created", "updated_at": "updated", "expires_at": "expires"}
        with self._lock:
            self._settle()
            created = to_micros(fields["created_at"], "created_at") if "created_at" in fields else None
            consent = self._fresh(self.now_us(), created)
            for name, value in fields.items():
                if name in ("created_at", "updated_at", "expires_at", "delivery_time", "visible_at"):
                    setattr(consent, times.get(name, name), to_micros(value, name))
                elif name == "id":
                    consent.id = parse_int64(value, "id")
                    if consent.id <= 0:
                        raise ValueError("id must be a positive int64")
                elif name == "phone":
                    consent.phone = normalize_phone(value)
                    if "user_id" not in fields:
                        consent.user_id = self._user_of_phone.get(consent.phone) or self._new_user(consent.phone)
                elif name in ("oa_id", "user_id", "shop_id"):
                    consent.__setattr__(name, str(parse_int64(value, name)))
                elif name not in ("_wire", "version", "served_as"):
                    setattr(consent, name, value)
            if "updated_at" not in fields:
                if consent.reply_status in ("S", ZERO_STATUS) or consent.status != "P":
                    consent.updated = consent.created
                elif consent.reply_status == "NS":
                    consent.updated = consent.created + self._window_us()
                else:
                    consent.updated = max(consent.created, consent.updated)
            if "expires_at" not in fields:
                consent.expires = (
                    consent.updated + AGREEMENT_US
                    if consent.reply_status == "P"
                    else consent.created + self._window_us()
                )
            if unknown_fields or omit_fields:
                consent.served_as = (dict(unknown_fields or {}), frozenset(omit_fields))
            consent.touch()
            self._add(consent)
            return dict(self._wire(consent))

    def delete(self, consent_ids: Iterable[int | str]) -> int:
        """Remove consents (as a deletion on the platform would), all or none.

        :return: how many were removed.
        :raises NotFound: an id the store does not hold (nothing is removed then).
        """
        with self._lock:
            self._settle()
            wanted = {parse_int64(consent_id, "id") for consent_id in consent_ids}
            missing = sorted(wanted - set(self._by_id))
            if missing:
                raise NotFound(", ".join(map(str, missing)))
            for consent_id in wanted:
                consent = self._by_id.pop(consent_id)
                for index, value in ((self._created_index, consent.created), (self._updated_index, consent.updated)):
                    index.pop(bisect_left(index, _key(value, consent_id)))
                if self._id_index is not None:
                    self._id_index.pop(bisect_left(self._id_index, _key(consent_id, consent_id)))
                self._by_oa_phone[(consent.oa_id, consent.phone)].remove(consent)
            return len(wanted)

    def fail_send_to(self, phone: str, error_code: int, error_message: str, delivered: bool = False) -> None:
        """Make every later ``RequestConsent`` to ``phone`` fail to send with this Zalo error.

        :param delivered: answer the failure, but store (and list) the consent as sent and charged (delivered
            after all: eTelecom's call to Zalo timed out while Zalo delivered).
        """
        with self._lock:
            failed = {"status": "N", "is_charged": False, "error_code": error_code, "error_message": error_message}
            self._failing_phones[normalize_phone(phone)] = (failed, delivered)
