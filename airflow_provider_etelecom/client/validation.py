"""Validate and normalise what users pass in, before any request is sent.

Every error names the parameter, shows the bad value (never a secret) and says what is allowed,
so a DAG author can fix it from the message alone. The same functions run at DAG parse time
(operator ``__init__``) and again on rendered values at the start of ``execute``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_etelecom.client.models import (
    SORT_FIELDS,
)
from airflow_provider_etelecom.exceptions import EtelecomConfigError, EtelecomValidationError

__all__ = [
    "MAX_PAGE_SIZE",
    "floor_second",
    "format_api_time",
    "normalize_phone",
    "validate_bool",
    "validate_int64_id",
    "validate_number",
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


def validate_number(
    parameter: str,
    value: object,
    *,
    whole: bool = True,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    optional: bool = False,
    why: str = "",
    from_text: bool = False,
    error: type[EtelecomValidationError] | type[EtelecomConfigError] = EtelecomValidationError,
) -> Any:
    """Return ``value`` if it is a number in range: the one numeric check, one message shape for all.

    ``True`` is never a number here (``isinstance(True, int)`` holds), nor are NaN and infinities.

    :param whole: an ``int`` is required (else an int or float, returned as given).
    :param minimum: the smallest value allowed; ``above``: the value must be greater than this.
    :param maximum: the largest value allowed.
    :param optional: ``None`` is allowed (and returned).
    :param why: what the bound means, appended to the message after a colon.
    :param from_text: a numeric string is read too (a connection form stores numbers as text).
    :param error: the exception raised: a task argument's, or a connection's (``EtelecomConfigError``).
    :raises EtelecomValidationError: (or ``error``) naming the parameter, the value and the range.
    """
    if value is None and optional:
        return None
    number: object = value
    if from_text and isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = value
        if isinstance(number, float) and whole and number.is_integer():
            number = int(number)
    ok = (
        isinstance(number, (int, float))
        and not isinstance(number, bool)
        and math.isfinite(number)
        and (not whole or isinstance(number, int))
        and (minimum is None or number >= minimum)
        and (maximum is None or number <= maximum)
        and (above is None or number > above)
    )
    if ok:
        return number
    connection = error is EtelecomConfigError  # a connection's field: text typed in a form
    kind = ("a whole number" if connection else "an int") if whole else "a number"
    bounds = []
    if above is not None:
        bounds.append(f"above {above:g}")
    if minimum is not None:
        bounds.append(f">= {minimum:g}" if maximum is None else f"from {minimum:g}")
    if maximum is not None:
        bounds.append(f"to {maximum:g}" if minimum is not None else f"at most {maximum:g}")
    empty = ("empty or " if connection else "None or ") if optional else ""
    message = f"{parameter}={_show(value)} must be {empty}{kind} {' '.join(bounds)}".rstrip()
    message += f": {why}." if why else "."
    if connection:
        raise EtelecomConfigError(f"The connection's {message}")
    raise EtelecomValidationError(message, parameter=parameter)


def validate_seconds(parameter: str, value: object) -> float:
    """Check a duration given as seconds or a ``timedelta``.

    :raises EtelecomValidationError: unless it is a non-negative number of seconds or a timedelta.
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    return float(validate_number(parameter, seconds, whole=False, minimum=0, why="seconds, or a timedelta"))


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
