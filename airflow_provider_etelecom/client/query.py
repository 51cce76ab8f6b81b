"""What a listing asks and what RequestConsent sends, validated once: the query model.

:class:`ConsentQuery` (filters and paging of ``ListRequestConsent``) and :class:`ConsentRequest`
(the four arguments of ``RequestConsent``) are built from user input by their ``build``
classmethods, which check every argument with the validators of
:mod:`~airflow_provider_etelecom.client.validation` and say what is wrong, naming the parameter.
Each argument's meaning and check is declared once, as metadata of the ``TypedDict`` fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Annotated, Any, TypedDict, Unpack, get_type_hints

from airflow_provider_etelecom.client.models import (
    CALL_TYPES,
    REASON_CODES,
    REPLY_STATUSES,
    SEND_STATUSES,
    CallType,
    ReasonCode,
    ReplyStatus,
    SendStatus,
    parse_api_time,
)
from airflow_provider_etelecom.client.validation import (
    FILTER_MARGIN,
    MAX_PAGE_SIZE,
    ceil_second,
    floor_second,
    format_api_time,
    format_filter_time,
    mask_phone,
    normalize_phone,
    validate_bool,
    validate_enum,
    validate_int64_id,
    validate_number,
    validate_sort,
    validate_time,
)
from airflow_provider_etelecom.exceptions import EtelecomValidationError

__all__ = ["FILTER_FIELDS", "LISTING_FIELDS", "REQUEST_FIELDS", "listing_param_docs", "validate_request_arguments"]

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
    return validate_number(
        name,
        value,
        minimum=1,
        maximum=MAX_PAGE_SIZE,
        why=f"eTelecom caps pages at {MAX_PAGE_SIZE} consents and silently cuts larger limits",
    )


def _sort(_name: str, value: object, _: Settings) -> object:
    return validate_sort(value)


def _max_pages(name: str, value: object, _: Settings) -> object:
    return validate_number(name, value, minimum=1, optional=True)


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
