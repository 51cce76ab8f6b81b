"""The platform switches of the eTelecom simulator, each declared once.

Nobody here can reach eTelecom, so every platform behaviour the docs leave open is a switch. A switch
is one field of :class:`PlatformSwitches`: its type, its default (today's guess) and, in the field's
metadata, what it plays, how a value is checked, whether a running simulator may change it and how
the command line spells it. Everything else is derived from that one declaration:

* the store reads its switches from a :class:`PlatformSwitches` (``store.switches.listing_lag_s``);
* ``EtelecomSimulator(listing_lag_s=30, ...)`` builds one from its keyword arguments, and
  ``sim.listing_lag_s`` / ``sim.listing_lag_s = 5`` read and change it;
* :data:`SETTINGS` (the switches a running simulator may change), ``sim.settings()``,
  ``sim.configure(...)`` and ``GET/POST /_simulator/settings``;
* one command-line flag per switch (:data:`SWITCHES`, read by ``python -m airflow_provider_etelecom.testing``);
* the check of every :data:`~airflow_provider_etelecom.testing.variants.PLATFORM_VARIANTS` entry at import.

Adding a switch is one field here plus its behaviour in the store or the server (and, if it plays a
plausible platform, a variant). Standard library only, like the rest of the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any

SORTS: tuple[str, ...] = ("created_at", "-created_at", "updated_at", "-updated_at")
#: How the platform may read a time's fraction: kept exactly, cut to milliseconds, cut to whole
#: seconds, or rounded half-up to whole seconds.
TIME_PRECISIONS: tuple[str, ...] = ("exact", "ms", "s_truncate", "s_round")
#: The page cap the simulator plays by default (``page_cap``).
MAX_LIMIT = 100
#: Which time the date filters apply to (``date_filter_field``).
DATE_FILTER_FIELDS: tuple[str, ...] = ("created_at", "updated_at")
#: What an opaque cursor holds (``cursor_kind``).
CURSOR_KINDS: tuple[str, ...] = ("keyset", "value_lt", "value_le", "offset")
#: What ``paging.limit`` echoes (``limit_echo``).
LIMIT_ECHOES: tuple[str, ...] = ("effective", "asked", "absent")

Check = Callable[[str, Any], Any]
"""``check(name, value)`` returns the value as the switch holds it, or raises ``ValueError`` naming ``name``."""


# ------------------------------------------------------------------ checks
def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _number(
    low: float | None = None,
    high: float | None = None,
    *,
    above: bool = False,
    optional: bool = False,
    integer: bool = False,
) -> Check:
    """A check for a finite number in ``[low, high]`` (``(low, high]`` with ``above``), ``None`` if ``optional``."""

    def check(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not math.isfinite(value):
            kind = "an integer" if integer else "a number"
            raise ValueError(f"{name} must be {kind}{' or null' if optional else ''}, got {value!r}")
        if (low is not None and (value <= low if above else value < low)) or (high is not None and value > high):
            bounds = f"{'(' if above else '['}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            raise ValueError(f"{name} must be within {bounds}, got {value!r}")
        return int(value) if integer else float(value)

    return check


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return check


def _sort_set(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a collection of sort values, not {value!r}")
    wanted = set(value)
    unknown = wanted - set(SORTS)
    if unknown:
        raise ValueError(f"{name}: unknown sorts {sorted(unknown, key=str)}; known: {', '.join(SORTS)}")
    return tuple(s for s in SORTS if s in wanted)


def _moment(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime or None, got {value!r}")
    return value


# ------------------------------------------------------------ command line parsers
def parse_sorts(text: str) -> tuple[str, ...]:
    """Read ``created_at,-created_at`` (the command line's form of a set of sorts)."""
    return tuple(s.strip() for s in text.split(",") if s.strip())


def parse_moment(text: str) -> datetime:
    """Read an ISO 8601 time; without an offset it is UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Switch:
    """One switch as declared on :class:`PlatformSwitches` (the field's metadata, named after the field)."""

    name: str
    default: Any
    help: str
    check: Check
    runtime: bool
    """Whether a running simulator may change it (else it is fixed when the data is seeded)."""
    flag: str
    """The command-line flag: ``--name-with-dashes`` unless declared otherwise."""
    parse: Callable[[str], Any] | None
    """Reads the flag's argument; ``None`` for a flag without one (a bool: the flag sets ``not default``)."""
    choices: tuple[str, ...]


def _switch(
    default: Any,
    help: str,
    check: Check | None = None,
    *,
    runtime: bool = True,
    flag: str = "",
    parse: Callable[[str], Any] | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """Declare one switch: a dataclass field whose metadata, a :class:`Switch`, says everything else about it.

    Without ``check``, a bool switch is checked as a flag and one with ``choices`` as one of them; without
    ``parse``, a flag's argument is read as the type of the default (a bool's flag takes none).
    """
    check = check or (_flag if isinstance(default, bool) else _one_of(choices))
    if parse is None and not isinstance(default, bool):
        parse = str if choices else type(default)
    switch = Switch("", default, help, check, runtime, flag, parse, choices)  # named by _named
    return field(default=default, metadata={"switch": switch})


@dataclass(frozen=True)
class PlatformSwitches:
    """Every platform switch with its value; the defaults are today's guess, not the platform.

    Frozen: a change is a new object (:meth:`changed`), checked whole before it replaces the old one,
    so a refused change leaves every switch as it was. ``docs/simulator.md`` says what each one plays.
    """

    # ------------------------------------------------------------ how the filters read
    listing_lag_s: float = _switch(
        0.0,
        "seconds (simulated) before a consent added later is listed",
        _number(0.0),
        flag="--listing-lag",
    )
    date_to_inclusive: bool = _switch(False, "filter.date_to is inclusive (created_at <= date_to)")
    fractional_times: bool = _switch(
        False, "times the simulator makes get a seeded sub-second part (default whole seconds)"
    )
    date_filter_precision: str = _switch(
        "exact", "how filter.date_from/date_to are read before comparing", choices=TIME_PRECISIONS
    )
    created_at_precision: str = _switch("exact", "how times are written in answers", choices=TIME_PRECISIONS)
    date_filter_field: str = _switch(
        "created_at", "the time filter.date_from/date_to apply to", choices=DATE_FILTER_FIELDS
    )
    filter_zone_offset_h: float = _switch(
        0.0,
        "read the wall clock of filter.date_from/date_to as UTC+this many hours, ignoring the offset sent (0: as sent)",
        _number(-14.0, 14.0),
    )
    shown_zone_offset_h: float = _switch(
        0.0, "write every time in answers as the wall clock of UTC+this many hours, labelled Z", _number(-14.0, 14.0)
    )
    # ------------------------------------------------------------ sorts and order
    accepted_sorts: tuple[str, ...] = _switch(
        SORTS,
        f"comma-separated paging.sort values accepted (default {','.join(SORTS)})",
        _sort_set,
        parse=parse_sorts,
    )
    ignored_sorts: tuple[str, ...] = _switch(
        (),
        "comma-separated paging.sort values accepted but answered in the default order (default none)",
        _sort_set,
        parse=parse_sorts,
    )
    order_by_id: bool = _switch(
        False, "created_at sorts (and the default order) are served as an id order; filters still use the time"
    )
    # ------------------------------------------------------------ pages and cursors
    page_cap: int = _switch(
        MAX_LIMIT, "the most consents a page holds, whatever limit asks", _number(1.0, integer=True)
    )
    limit_echo: str = _switch(
        "effective", "what paging.limit echoes: the effective limit, the one asked, or no key", choices=LIMIT_ECHOES
    )
    null_empty_page: bool = _switch(False, 'an empty page is {"consents": null} (a Go nil slice)')
    drop_after_limit: float = _switch(
        0.0,
        "share of consents dropped after the page's LIMIT (never listed, still counted): short pages mid-listing",
        _number(0.0, 1.0),
    )
    cursor_kind: str = _switch(
        "keyset",
        "what a cursor holds: (sort value, id), the sort value only (next page < or <= it), or a row offset",
        choices=CURSOR_KINDS,
    )
    cursor_ttl_s: float | None = _switch(
        None,
        "a cursor older than this many (simulated) seconds is refused (default: never)",
        _number(0.0, above=True, optional=True),
        parse=float,
    )
    # ------------------------------------------------------------ answers
    reply_moves_updated_at: bool = _switch(
        True, "a reply leaves updated_at as it was (default: a reply sets it)", flag="--reply-keeps-updated-at"
    )
    rate_limit_per_s: float | None = _switch(
        None,
        "the platform's rate limit: requests per second per API key, 429 with Retry-After beyond (default off)",
        _number(0.0, optional=True),
        flag="--rate-limit-per-s",
        parse=float,
    )
    numeric_ids: bool = _switch(False, "id, shop_id, user_id and oa_id are written as JSON numbers")
    pending_conflict: bool = _switch(
        False, "RequestConsent to an (OA, phone) with a pending consent is refused 409 already_exists"
    )
    clock_offset_s: float = _switch(
        0.0, "the platform's clock is this many seconds off: consents made from now on are stamped by it", _number()
    )
    answer_clock_offset_s: float = _switch(
        0.0, "RequestConsent's answer shows created_at/updated_at this many seconds off the listing's", _number()
    )
    # ------------------------------------------------------------ seeded data (fixed once seeded)
    burst_share: float = _switch(
        0.0, "share of seeded consents inside the burst window (default 0)", _number(0.0, 1.0), runtime=False
    )
    burst_start: datetime | None = _switch(  # noqa: RUF009  # _switch returns a dataclasses.field
        None, "burst window start (ISO 8601; default centred)", _moment, runtime=False, parse=parse_moment
    )
    burst_span_s: float = _switch(
        3600.0, "burst window length in s (default 3600)", _number(0.0, above=True), runtime=False, flag="--burst-span"
    )

    id_time_jitter_s: float = _switch(
        0.0,
        "seeded ids follow created_at only within +-this many seconds (seeded)",
        _number(0.0),
        runtime=False,
    )

    def __post_init__(self) -> None:
        for switch in SWITCHES:
            object.__setattr__(self, switch.name, switch.check(switch.name, getattr(self, switch.name)))
        if self.rate_limit_per_s == 0:
            object.__setattr__(self, "rate_limit_per_s", None)

    @classmethod
    def of(cls, values: Mapping[str, Any], where: str = "EtelecomSimulator()") -> PlatformSwitches:
        """Build from switch names and values.

        :raises TypeError: a name that is no switch (the message lists the known ones).
        :raises ValueError: a bad value (the message names the switch).
        """
        _check_names(values, SWITCH_NAMES, where, TypeError)
        return cls(**values)

    def changed(self, **changes: Any) -> PlatformSwitches:
        """Return a copy with ``changes``, each checked; only :data:`SETTINGS` may change once seeded.

        :raises ValueError: an unknown or seeding-only name, or a bad value (nothing changes).
        """
        _check_names(changes, SETTINGS, "settings", ValueError)
        return replace(self, **changes)

    def settings(self) -> dict[str, Any]:
        """The switches a running simulator may change (:data:`SETTINGS`), JSON-safe."""
        return {name: _json(getattr(self, name)) for name in SETTINGS}

    def as_dict(self) -> dict[str, Any]:
        """Every switch, JSON-safe (tuples as lists, times as ISO 8601)."""
        return {switch.name: _json(getattr(self, switch.name)) for switch in SWITCHES}


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _check_names(values: Mapping[str, Any], known: tuple[str, ...], where: str, error: type[Exception]) -> None:
    unknown = set(values) - set(known)
    if unknown:
        seeded = unknown & set(SWITCH_NAMES)
        why = f" ({', '.join(sorted(seeded))}: fixed when the data is seeded)" if seeded else ""
        raise error(f"{where}: unknown switches {sorted(unknown)}{why}; known: {', '.join(known)}")


def _named(spec: Field[Any]) -> Switch:
    """The switch declared by ``spec``, with its name (and its flag, unless declared otherwise)."""
    switch: Switch = spec.metadata["switch"]
    return replace(switch, name=spec.name, flag=switch.flag or "--" + spec.name.replace("_", "-"))


#: Every switch, in declaration order.
SWITCHES: tuple[Switch, ...] = tuple(_named(spec) for spec in fields(PlatformSwitches))
SWITCH_NAMES: tuple[str, ...] = tuple(switch.name for switch in SWITCHES)
#: The switches a running simulator can change (attributes, ``configure``, ``POST /_simulator/settings``).
SETTINGS: tuple[str, ...] = tuple(switch.name for switch in SWITCHES if switch.runtime)
#: The defaults, checked.
DEFAULT_SWITCHES = PlatformSwitches()
