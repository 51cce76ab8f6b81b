"""Validate and normalise what users pass in, before any request is sent.

Every error names the parameter, shows the bad value (never a secret) and says what is allowed,
so a DAG author can fix it from the message alone. The same functions run at DAG parse time
(operator ``__init__``) and again on rendered values at the start of ``execute``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Annotated, Any, TypedDict, Unpack, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_etelecom.client.models import (
    CALL_TYPES,
    REASON_CODES,
    REPLY_STATUSES,
    SEND_STATUSES,
    SORT_FIELDS,
    CallType,
    ReasonCode,
    ReplyStatus,
    SendStatus,
    parse_api_time,
)
from airflow_provider_etelecom.exceptions import EtelecomValidationError

__all__ = [
    "FILTER_FIELDS",
    "FILTER_MARGIN",
    "LISTING_FIELDS",
    "MAX_PAGE_SIZE",
    "PAGING_FIELDS",
    "REQUEST_FIELDS",
    "ConsentFilters",
    "ConsentListing",
    "ConsentPaging",
    "ConsentQuery",
    "ConsentRequest",
    "ConsentRequestArguments",
    "ceil_second",
    "floor_second",
    "format_api_time",
    "format_filter_time",
    "listing_param_docs",
    "mask_phone",
    "normalize_phone",
    "validate_bool",
    "validate_enum",
    "validate_int64_id",
    "validate_optional_positive_int",
    "validate_page_size",
    "validate_request_arguments",
    "validate_sort",
    "validate_time",
    "validate_timezone",
]

#: The platform's page cap: a larger ``limit`` is silently cut to 100, so asking for more would
#: only make the "short page means last page" check wrong.
MAX_PAGE_SIZE = 100
INT64_MAX = 2**63 - 1
#: How far the date filters sent to eTelecom reach beyond the window asked for, on each side, after
#: rounding the bounds outward to whole seconds. Nobody has confirmed how precisely the platform
#: compares ``date_from``/``date_to`` (exactly, at milliseconds, truncated or rounded to seconds) nor
#: how precisely it writes ``created_at`` (a consent created at 09:59:59.6 may be shown as
#: 10:00:00). With whole-second bounds every reading of the filter is the same, and one more second
#: on each side covers a ``created_at`` shown up to a second away from the value the platform
#: filters on. The client then keeps exactly ``[date_from, date_to)`` by the ``created_at`` it was
#: shown (:meth:`ConsentQuery.in_window`), so adjacent windows still never overlap nor leave a gap.
FILTER_MARGIN = timedelta(seconds=1)
_PHONE_SEPARATORS = re.compile(r"[\s\-.()]")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_enum(parameter: str, value: object, allowed: Iterable[str]) -> str:
    """Return ``value`` as the wire string if it is one of ``allowed`` (an Enum member is fine).

    :raises EtelecomValidationError: when it is not.
    """
    allowed_sorted = sorted(allowed)
    raw = getattr(value, "value", value)
    if isinstance(raw, str) and raw in allowed_sorted:
        return raw
    raise EtelecomValidationError(
        f"{parameter}={_show(value)} is not valid; allowed values: {', '.join(allowed_sorted)}.",
        parameter=parameter,
    )


def validate_int64_id(parameter: str, value: object) -> str:
    """Return an eTelecom id (int64) as the decimal string the API expects.

    Accepts an ``int`` or a string of digits. Ids travel as strings because JSON numbers above
    2**53 lose precision in many JSON parsers.

    :raises EtelecomValidationError: for other types, non-digits, negatives or int64 overflow.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise EtelecomValidationError(
            f"{parameter}={_show(value)} must be an int64 id: an int or a string of digits "
            f"(got {type(value).__name__}).",
            parameter=parameter,
        )
    text = str(value).strip()
    if not text.isdigit() or not text.isascii():
        raise EtelecomValidationError(
            f"{parameter}={_show(value)} must be an int64 id: a non-negative whole number such as "
            f"'1234567890123456789'.",
            parameter=parameter,
        )
    if int(text) > INT64_MAX:
        raise EtelecomValidationError(
            f"{parameter}={_show(value)} is larger than the int64 maximum {INT64_MAX}.",
            parameter=parameter,
        )
    return str(int(text))


def validate_bool(parameter: str, value: object) -> bool:
    """Return ``value`` if it is a real ``bool`` (``"false"`` as a string is a classic bug).

    :raises EtelecomValidationError: otherwise.
    """
    if isinstance(value, bool):
        return value
    raise EtelecomValidationError(
        f"{parameter}={_show(value)} must be True or False (a bool, not {type(value).__name__}).",
        parameter=parameter,
    )


def validate_page_size(value: object, parameter: str = "page_size") -> int:
    """Return a page size between 1 and the platform's cap of 100.

    :raises EtelecomValidationError: otherwise, explaining the cap.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise EtelecomValidationError(
            f"{parameter}={_show(value)} must be an int from 1 to {MAX_PAGE_SIZE}: eTelecom caps pages "
            f"at {MAX_PAGE_SIZE} consents and silently cuts larger limits.",
            parameter=parameter,
        )
    return value


def validate_optional_positive_int(parameter: str, value: object) -> int | None:
    """Return ``None`` or a positive ``int``.

    :raises EtelecomValidationError: otherwise.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EtelecomValidationError(
            f"{parameter}={_show(value)} must be None or a positive int.", parameter=parameter
        )
    return value


def validate_seconds(parameter: str, value: object) -> float:
    """Check a duration given as seconds or a ``timedelta``.

    :raises EtelecomValidationError: unless it is a non-negative number of seconds or a timedelta.
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise EtelecomValidationError(
            f"{parameter}={value!r} must be a non-negative number of seconds or a timedelta.", parameter=parameter
        )
    return float(seconds)


def is_unrendered(value: object) -> bool:
    """Tell whether a templated argument can only be checked once rendered (Jinja text, an XComArg).

    Operators and sensors check their arguments at DAG parse time when they are plain values, and
    again when rendered; this says which ones have to wait.
    """
    if isinstance(value, (list, tuple)):
        return any(is_unrendered(item) for item in value)
    if isinstance(value, str):
        return "{{" in value
    return not isinstance(value, (int, datetime, Mapping))


def validate_sort(value: object) -> str | None:
    """Return a sort a listing can be walked exactly in: ``created_at`` or ``-created_at`` (``None``: newest first).

    A listing's cursor is a position in its sort: on ``updated_at``, a value that changes while the
    listing pages, a consent answered mid-listing moves past the cursor (lost) or back before it
    (repeated). The waits read changes by ``updated_at`` internally, with their own checks.

    :raises EtelecomValidationError: for any other sort, naming ``sort``.
    """
    if value is None:
        return None
    allowed = sorted(f"{sign}{f}" for f in SORT_FIELDS for sign in ("", "-"))
    if isinstance(value, str) and value.strip() in allowed:
        return value.strip()
    raise EtelecomValidationError(
        f"sort={_show(value)} is not valid: a listing is exact only by created_at; allowed: "
        f"{', '.join(allowed)} (None = newest first). Sorting by updated_at loses or repeats consents "
        f"answered while the listing pages.",
        parameter="sort",
    )


def validate_timezone(timezone_name: str | None) -> ZoneInfo | None:
    """Return the IANA zone named ``timezone_name`` (``None``: none), for ``timezone`` parameters.

    :raises EtelecomValidationError: for a name that is not an IANA time zone.
    """
    if timezone_name is None:
        return None
    try:
        return ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise EtelecomValidationError(
            f"timezone={_show(timezone_name)} is not an IANA time zone such as 'Asia/Ho_Chi_Minh'.",
            parameter="timezone",
        ) from error


def validate_time(parameter: str, value: object, *, timezone_name: str | None = None) -> datetime:
    """Return ``value`` as an aware UTC ``datetime``.

    Accepts a ``datetime`` (pendulum's included) or an ISO-8601 string. A value without an offset
    is ambiguous (whose midnight?), so it is refused unless ``timezone_name`` says where it is.

    :raises EtelecomValidationError: for other types, malformed strings, or naive values without
        a ``timezone``.
    """
    zone = validate_timezone(timezone_name)
    parsed: datetime
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        raise EtelecomValidationError(
            f"{parameter}={_show(value)} is a date without a time; pass a datetime with an offset, "
            f"e.g. '2026-01-31T00:00:00+07:00'.",
            parameter=parameter,
        )
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError as error:
            raise EtelecomValidationError(
                f"{parameter}={_show(value)} is not an ISO-8601 date-time; use e.g. "
                f"'2026-01-31T00:00:00+07:00' or '2026-01-30T17:00:00Z'.",
                parameter=parameter,
            ) from error
    else:
        raise EtelecomValidationError(
            f"{parameter}={_show(value)} must be a datetime or an ISO-8601 string (got {type(value).__name__}).",
            parameter=parameter,
        )
    if parsed.tzinfo is None or parsed.tzinfo.utcoffset(parsed) is None:
        if zone is None:
            raise EtelecomValidationError(
                f"{parameter}={_show(value)} has no UTC offset, so it is ambiguous; add an offset "
                f"(e.g. '+07:00') or pass timezone='Asia/Ho_Chi_Minh' to say where it is.",
                parameter=parameter,
            )
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(timezone.utc)


def floor_second(moment: datetime) -> datetime:
    """Return ``moment`` without its fraction of a second (the whole second at or before it)."""
    return moment.replace(microsecond=0)


def ceil_second(moment: datetime) -> datetime:
    """Return the whole second at or after ``moment``."""
    floor = moment.replace(microsecond=0)
    return floor if floor == moment else floor + timedelta(seconds=1)


def format_api_time(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with ``Z``, the way the API writes times."""
    utc = moment.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_filter_time(moment: datetime, zone: tzinfo | None = None) -> str:
    """Format a date filter: RFC 3339 UTC with ``Z``, or ``zone``'s wall clock with its offset.

    ``2025-03-01T00:00:00Z`` in ``Asia/Ho_Chi_Minh`` is ``2025-03-01T07:00:00+07:00``: the same
    instant for a platform that honours offsets, and the right one for a platform that reads the
    wall clock in that zone whatever the offset says.
    """
    if zone is None:
        return format_api_time(moment)
    local = moment.astimezone(zone)
    return local.isoformat(timespec="microseconds" if local.microsecond else "seconds")


def normalize_phone(value: object, *, normalize: bool = True, parameter: str = "phone") -> str:
    """Return a Vietnamese phone number in the ``84…`` form the platform's samples use.

    ``0912 345 678``, ``+84-912-345-678`` and ``84912345678`` all become ``84912345678``, so
    filters, lookups and the no-double-send check agree on one spelling.

    :param normalize: ``False`` sends the value as given (spaces trimmed), for numbers that are
        not Vietnamese.
    :raises EtelecomValidationError: for non-strings, or (when normalising) anything that is
        not a plausible Vietnamese number.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise EtelecomValidationError(
            f"{parameter}={_show(value)} must be a non-empty phone number string such as '0912345678'.",
            parameter=parameter,
        )
    if not normalize:
        return value.strip()
    digits = _PHONE_SEPARATORS.sub("", value)
    if digits.startswith("+"):
        digits = digits[1:]
    if digits.startswith("0"):
        digits = "84" + digits[1:]
    if not (digits.isascii() and digits.isdigit() and digits.startswith("84") and 10 <= len(digits) <= 12):
        raise EtelecomValidationError(
            f"{parameter}={mask_phone(str(value))!r} is not a Vietnamese phone number; use '0912345678', "
            f"'+84912345678' or '84912345678' (or turn phone normalisation off for other numbers).",
            parameter=parameter,
        )
    return digits


def mask_phone(phone: str | None) -> str:
    """Mask a phone number for logs (phones are personal data): ``84912345678`` → ``849*****678``."""
    if not phone:
        return ""
    text = str(phone)
    if len(text) <= 6:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 6) + text[-3:]


Settings = tuple[str | None, bool]
"""What a check may need besides the value: ``(timezone, normalize_phones)``."""


@dataclass(frozen=True)
class Param:
    """What one argument means (``why``, one line for the docs) and how it is checked.

    The metadata of every field of :class:`ConsentFilters`, :class:`ConsentPaging` and
    :class:`ConsentRequestArguments`, so name, type, meaning and check are written in one place.
    ``check(name, value, settings)`` returns the wire-ready value or raises
    :class:`EtelecomValidationError` naming ``name``.
    """

    why: str
    check: Callable[[str, object, Settings], object]


def _enum(allowed: frozenset[str]) -> Callable[[str, object, Settings], object]:
    return lambda name, value, _: validate_enum(name, value, allowed)


def _int64(name: str, value: object, _: Settings) -> object:
    return validate_int64_id(name, value)


def _time(name: str, value: object, settings: Settings) -> object:
    return validate_time(name, value, timezone_name=settings[0])


def _phone(name: str, value: object, settings: Settings) -> object:
    return normalize_phone(value, normalize=settings[1], parameter=name)


def _bool(name: str, value: object, _: Settings) -> object:
    return validate_bool(name, value)


def _page_size(name: str, value: object, _: Settings) -> object:
    return validate_page_size(value, name)


def _sort(_name: str, value: object, _: Settings) -> object:
    return validate_sort(value)


def _max_pages(name: str, value: object, _: Settings) -> object:
    return validate_optional_positive_int(name, value)


class ConsentFilters(TypedDict, total=False):
    """The filters of ``ListRequestConsent``, declared once for the query, the hook and the operators.

    Every filter is optional; ``None`` (or leaving it out) means no filter. Values are validated
    before any request (see :meth:`ConsentQuery.build`), with an error naming the parameter.
    """

    call_type: Annotated[
        CallType | str | None, Param("``audio``, ``video`` or ``audio_and_video``.", _enum(CALL_TYPES))
    ]
    date_from: Annotated[
        datetime | str | None,
        Param("window start, inclusive, on ``created_at`` (aware datetime or ISO-8601 with an offset).", _time),
    ]
    date_to: Annotated[
        datetime | str | None,
        Param("window end, exclusive: never a consent with ``created_at >= date_to``.", _time),
    ]
    is_charged: Annotated[bool | None, Param("only charged (``True``) or free (``False``) requests.", _bool)]
    oa_id: Annotated[int | str | None, Param("the Zalo Official Account id (int64).", _int64)]
    phone: Annotated[str | None, Param("the customer's phone (normalised to ``84…`` unless turned off).", _phone)]
    reason_code: Annotated[ReasonCode | str | None, Param("one of eTelecom's five reason codes.", _enum(REASON_CODES))]
    reply_status: Annotated[
        ReplyStatus | str | None, Param("the customer's answer: ``S``, ``P``, ``N`` or ``NS``.", _enum(REPLY_STATUSES))
    ]
    status: Annotated[
        SendStatus | str | None, Param("send status ``P`` (sent) or ``N`` (failed).", _enum(SEND_STATUSES))
    ]
    user_id: Annotated[int | str | None, Param("the eTelecom user id (int64).", _int64)]


class ConsentPaging(TypedDict, total=False):
    """How a listing is paged: the page size, the order and a bound on the pages read."""

    page_size: Annotated[int, Param("consents per request, 1 to 100 (the platform's cap).", _page_size)]
    sort: Annotated[
        str | None,
        Param("``created_at`` (oldest first) or ``-created_at``; default newest first.", _sort),
    ]
    max_pages: Annotated[int | None, Param("stop after this many pages (default: until the listing ends).", _max_pages)]


class ConsentListing(ConsentFilters, ConsentPaging, total=False):
    """Every argument of a listing: :class:`ConsentFilters` and :class:`ConsentPaging`."""


class ConsentRequestArguments(TypedDict):
    """The arguments of ``RequestConsent``: who is asked, for which call and why (all required)."""

    oa_id: Annotated[int | str, Param("the Official Account id (int64).", _int64)]
    phone: Annotated[str, Param("the customer's phone (normalised to ``84…`` unless turned off).", _phone)]
    call_type: Annotated[CallType | str, Param("``audio``, ``video`` or ``audio_and_video``.", _enum(CALL_TYPES))]
    reason_code: Annotated[ReasonCode | str, Param("one of eTelecom's five reason codes.", _enum(REASON_CODES))]


def _params(typed_dict: type) -> dict[str, Param]:
    hints = get_type_hints(typed_dict, include_extras=True)
    return {name: next(m for m in hint.__metadata__ if isinstance(m, Param)) for name, hint in hints.items()}


_FILTER_PARAMS = _params(ConsentFilters)
_PAGING_PARAMS = _params(ConsentPaging)
_REQUEST_PARAMS = _params(ConsentRequestArguments)
#: The filter names, in declaration order (template fields, ``partial().expand_kwargs()`` keys).
FILTER_FIELDS: tuple[str, ...] = tuple(_FILTER_PARAMS)
#: The paging argument names.
PAGING_FIELDS: tuple[str, ...] = tuple(_PAGING_PARAMS)
#: Every listing argument: the filters, then the paging arguments.
LISTING_FIELDS: tuple[str, ...] = FILTER_FIELDS + PAGING_FIELDS
#: The arguments of ``RequestConsent``.
REQUEST_FIELDS: tuple[str, ...] = tuple(_REQUEST_PARAMS)


def listing_param_docs(indent: str = "    ") -> str:
    """Return the ``:param:`` lines of every listing argument, for an operator's docstring.

    The listing operators append it to their ``__doc__``, so ``help()`` and Sphinx show the
    filters and paging arguments as :class:`ConsentFilters` and :class:`ConsentPaging` declare them.
    """
    params = {**_FILTER_PARAMS, **_PAGING_PARAMS}
    return "".join(f"{indent}:param {name}: {param.why}\n" for name, param in params.items())


def _unknown(arguments: Mapping[str, object], known: Iterable[str], what: str) -> None:
    unknown = sorted(set(arguments) - set(known))
    if unknown:
        raise TypeError(f"{what} got unexpected keyword argument(s) {', '.join(unknown)}; known: {', '.join(known)}.")


@dataclass(frozen=True)
class ConsentQuery:
    """A validated ``ListRequestConsent`` query: the filter, page size, sort and page bound.

    Build it with :meth:`build` (or :meth:`updated`); the fields hold wire-ready values, one per
    name of :class:`ConsentFilters` and :class:`ConsentPaging`. ``date_from``/``date_to`` are
    kept as datetimes because the client also enforces the half-open window on what it yields.
    """

    call_type: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    is_charged: bool | None = None
    oa_id: str | None = None
    phone: str | None = None
    reason_code: str | None = None
    reply_status: str | None = None
    status: str | None = None
    user_id: str | None = None
    page_size: int = MAX_PAGE_SIZE
    sort: str | None = None
    max_pages: int | None = None

    @classmethod
    def build(
        cls, *, timezone: str | None = None, normalize_phones: bool = True, **arguments: Unpack[ConsentListing]
    ) -> ConsentQuery:
        """Validate every argument and return the query (the one query builder of the provider).

        :param timezone: IANA zone for naive ``date_from``/``date_to`` values (else they are refused).
        :param normalize_phones: put ``phone`` in the ``84…`` form (see :func:`normalize_phone`).
        :param arguments: the filters (:class:`ConsentFilters`) and paging (:class:`ConsentPaging`).
        :raises EtelecomValidationError: naming the first invalid parameter.
        :raises TypeError: for an argument that is not a listing argument.
        """
        return cls().updated(timezone=timezone, normalize_phones=normalize_phones, **arguments)

    def updated(
        self, *, timezone: str | None = None, normalize_phones: bool = True, **arguments: Unpack[ConsentListing]
    ) -> ConsentQuery:
        """Return this query with ``arguments`` validated and set; the other fields are kept as they are.

        Each argument is validated once: an operator checks its literal values when the DAG is
        parsed and, once rendered, only the values rendering changed, through this method. The
        window order (``date_from`` before ``date_to``) is checked on the result.

        :raises EtelecomValidationError: naming the first invalid parameter.
        :raises TypeError: for an argument that is not a listing argument.
        """
        _unknown(arguments, LISTING_FIELDS, "ConsentQuery")
        settings = (timezone, normalize_phones)
        values: dict[str, Any] = {}
        for name in LISTING_FIELDS:  # declaration order: the first invalid one is named
            if name in arguments:
                value = arguments[name]  # type: ignore[literal-required]
                if name in _FILTER_PARAMS:
                    values[name] = None if value is None else _FILTER_PARAMS[name].check(name, value, settings)
                else:
                    values[name] = _PAGING_PARAMS[name].check(name, value, settings)
        query = dataclasses.replace(self, **values)
        query._check_window()
        return query

    def _check_window(self) -> None:
        start, end = self.date_from, self.date_to
        if start is not None and end is not None and start >= end:
            cause = (
                " An empty window (start == end) is what Airflow 3's default daily schedule gives a run; "
                "use a timetable with real data intervals, e.g. CronDataIntervalTimetable."
                if start == end
                else ""
            )
            raise EtelecomValidationError(
                f"date_from={format_api_time(start)} must be before date_to={format_api_time(end)}: the "
                f"window [date_from, date_to) is half-open.{cause}",
                parameter="date_from",
            )

    def sent_window(self) -> tuple[datetime | None, datetime | None]:
        """Return the date filters to send: the window rounded outward to whole seconds, widened by
        :data:`FILTER_MARGIN` on each side (``None`` where unbounded).

        Whole seconds read the same at every precision, and the margin covers a ``created_at`` shown
        up to a second away from the value the platform filters on; :meth:`in_window` then keeps
        exactly ``[date_from, date_to)``.
        """
        return (
            None if self.date_from is None else floor_second(self.date_from) - FILTER_MARGIN,
            None if self.date_to is None else ceil_second(self.date_to) + FILTER_MARGIN,
        )

    def filter_body(
        self,
        *,
        window: tuple[datetime | None, datetime | None] | None = None,
        zone: tzinfo | None = None,
    ) -> dict[str, Any]:
        """Return the ``filter`` object of the request, with only the fields that are set.

        :param window: the date filters to send (default :meth:`sent_window`; ``(None, None)`` sends none).
        :param zone: write the date filters as this zone's wall clock, with its offset (for a platform
            that reads the wall clock in its own zone); default UTC with ``Z``.
        """
        body: dict[str, Any] = {}
        for name in FILTER_FIELDS:
            value = getattr(self, name)
            if value is not None and name not in ("date_from", "date_to"):
                body[name] = value
        date_from, date_to = self.sent_window() if window is None else window
        if date_from is not None:
            body["date_from"] = format_filter_time(date_from, zone)
        if date_to is not None:
            body["date_to"] = format_filter_time(date_to, zone)
        return body

    def in_window(self, created_at: object) -> bool:
        """Tell whether a consent created at ``created_at`` lies in ``[date_from, date_to)``.

        The listing applies this to every consent it yields, by the ``created_at`` the platform
        shows, so adjacent windows never overlap nor leave a gap whatever the platform does at the
        ``date_to`` edge or with fractions of a second (the filter sent is a wider superset, see
        :meth:`sent_window`).

        :raises ValueError: when the query has a window and ``created_at`` is not an RFC 3339 time:
            keeping such a consent could put it in two adjacent windows, dropping it would lose it.
        """
        if self.date_from is None and self.date_to is None:
            return True
        if not isinstance(created_at, str):
            raise ValueError(f"created_at {created_at!r} is not an RFC 3339 time string")
        return self.holds(parse_api_time(created_at).timestamp())

    def holds(self, moment: float) -> bool:
        """Tell whether ``moment`` (epoch seconds) lies in ``[date_from, date_to)``: the half-open rule."""
        if self.date_from is not None and moment < self.date_from.timestamp():
            return False
        return not (self.date_to is not None and moment >= self.date_to.timestamp())

    def describe(self) -> str:
        """Describe the query for logs, with the phone masked and the window as asked for."""
        parts = []
        for key, value in self.filter_body().items():
            if key in ("date_from", "date_to"):
                value = format_api_time(getattr(self, key))
            parts.append(f"{key}={mask_phone(value) if key == 'phone' else value}")
        return ", ".join(parts) or "no filter"


def validate_request_arguments(arguments: Mapping[str, object], *, normalize_phones: bool = True) -> dict[str, str]:
    """Validate the ``RequestConsent`` arguments given (any subset) and return their wire values.

    :raises EtelecomValidationError: naming the first invalid parameter (``None`` is invalid: each is required).
    :raises TypeError: for an argument that is not a ``RequestConsent`` argument.
    """
    _unknown(arguments, REQUEST_FIELDS, "ConsentRequest")
    settings = (None, normalize_phones)
    return {
        name: str(_REQUEST_PARAMS[name].check(name, arguments[name], settings))
        for name in REQUEST_FIELDS
        if name in arguments
    }


@dataclass(frozen=True)
class ConsentRequest:
    """A validated ``RequestConsent`` body: who is asked (``oa_id``, ``phone``), for which call and why.

    Built once, then sent as it is: the client does not validate it again.
    """

    oa_id: str
    phone: str
    call_type: str
    reason_code: str

    @classmethod
    def build(cls, *, normalize_phones: bool = True, **arguments: Unpack[ConsentRequestArguments]) -> ConsentRequest:
        """Validate the four arguments and return the request.

        :raises EtelecomValidationError: naming the first invalid parameter.
        """
        return cls(**validate_request_arguments(arguments, normalize_phones=normalize_phones))

    def body(self) -> dict[str, str]:
        """Return the JSON body of ``Zalo/RequestConsent``."""
        return dataclasses.asdict(self)
