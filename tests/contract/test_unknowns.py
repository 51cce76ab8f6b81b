"""One detector per platform behaviour nobody has confirmed; the first real run settles each one.

Against the real platform each test *reports* what it found (a line in the "eTelecom platform
findings" summary and a test property), because there is no wrong answer there: the provider must be
correct under every one. Against the simulator, each runs once per relevant
:data:`~airflow_provider_etelecom.testing.PLATFORM_VARIANTS` entry and asserts the detector finds the
variant the simulator was started with, so the detector itself is proven before anyone trusts it on
the platform. Detectors only use HTTP, never the simulator's accessors::

    ETELECOM_CONTRACT_BASE_URL=https://api.etelecom.vn/v1/shop ETELECOM_CONTRACT_API_KEY=... \\
        pytest tests/contract -m contract -v

The detectors read times as the platform writes them; the probes are ``date_from`` filters placed
inside one second of a consent, and ask only "is this consent id listed?".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_etelecom.testing import PLATFORM_VARIANTS, SORTS

from .conftest import OA_ID_ENV, PHONE_ENV, Report, Target, detects

pytestmark = pytest.mark.contract

US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

FILTER_FINDINGS = {
    "exact": "date filters compared exactly (fractions kept)",
    "ms": "date filters compared at milliseconds, truncated",
    "s_truncate": "date filters compared at whole seconds, truncated (10:00:00.3 reads as 10:00:00)",
    "s_round": "date filters compared at whole seconds, rounded half-up (10:00:00.5 reads as 10:00:01)",
    "exact_or_ms": "date filters compared exactly or at milliseconds (the consents seen give no sub-ms probe)",
    "inconsistent": "date filter probes disagree with every model: read the test's log",
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
    "inconsistent": "date_to probes disagree with every model: read the test's log",
}


# ------------------------------------------------------------------------- helpers
def _micros(value: str) -> int:
    """Exact epoch microseconds of a wire time (digits past the sixth are dropped)."""
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, rest = text.split(".", 1)
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{head}.{(digits + '000000')[:6]}{rest[len(digits) :]}"
    return (datetime.fromisoformat(text) - _EPOCH) // timedelta(microseconds=1)


def _wire(micros: int) -> str:
    """Write epoch microseconds with all six fraction digits, as a careful client sends them."""
    seconds, fraction = divmod(micros, US)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:06d}Z"


def _fraction_digits(value: str) -> int:
    if "." not in value:
        return 0
    rest = value.split(".", 1)[1]
    return len(rest) - len(rest.lstrip("0123456789"))


def _newest(target: Target, n: int = 100) -> list[dict[str, Any]]:
    consents: list[dict[str, Any]] = target.list(paging={"limit": n})["consents"]
    if len(consents) < 10:
        pytest.skip(f"{target.name} holds fewer than 10 consents")
    return consents


def _listed(target: Target, consent_id: str, flt: dict[str, str], sort: str = "created_at") -> bool:
    """Page the (narrow) filtered listing to its end; tell whether ``consent_id`` is in it."""
    after = ""
    for _ in range(50):
        page = target.list(filter=flt, paging={"after": after, "limit": 100, "sort": sort})
        if not page["consents"]:
            return False
        if any(c["id"] == consent_id for c in page["consents"]):
            return True
        after = page["paging"]["next"]
    raise AssertionError(f"{target.name}: a 4-second window did not end within 50 pages")


def _listed_from(target: Target, consent: dict[str, Any], date_from: int) -> bool:
    """Is ``consent`` listed by ``date_from`` (µs), the other bound three whole seconds later?"""
    later = _micros(consent["created_at"]) // US * US + 3 * US
    return _listed(target, consent["id"], {"date_from": _wire(date_from), "date_to": _wire(later)})


# ------------------------------------------------------------------------ detectors
def detect_date_filter_precision(target: Target) -> str:
    """Find how ``filter.date_from`` is read, with probes inside one second of a consent.

    Take a consent at ``s + f`` (``f`` in [0.1, 0.4) when answers show fractions, else ``f = 0``:
    then we assume the stored time is the shown whole second). ``date_from = s + 0.45`` finds it only
    when the platform reads whole seconds; ``date_from = s + 0.6`` then tells cutting (still ``s``)
    from rounding (``s + 1``). Otherwise ``date_from`` one microsecond after a consent with sub-ms
    digits tells milliseconds (cut back to the consent's millisecond: found) from exact (not found).
    """
    consents = _newest(target)
    fractional = [c for c in consents if _fraction_digits(c["created_at"])]
    if fractional:
        quarter = [c for c in fractional if 0.1 * US <= _micros(c["created_at"]) % US < 0.4 * US]
        assert quarter, f"{target.name}: no consent with a fraction in [0.1, 0.4) among the newest"
        probe = quarter[0]
    else:
        probe = consents[len(consents) // 2]
    second = _micros(probe["created_at"]) // US * US
    cut_or_round = _listed_from(target, probe, second + 450_000)
    cut = _listed_from(target, probe, second + 600_000)
    if cut_or_round and cut:
        return "s_truncate"
    if cut_or_round:
        return "s_round"
    if cut:
        return "inconsistent"
    sub_ms = [c for c in fractional if _micros(c["created_at"]) % 1000 not in (0, 999)]
    if not sub_ms:
        return "exact_or_ms"
    return "ms" if _listed_from(target, sub_ms[0], _micros(sub_ms[0]["created_at"]) + 1) else "exact"


def detect_created_at_precision(target: Target, sample: int = 8) -> str:
    """Find how answers write ``created_at``: from the fraction digits, else from filter probes.

    Answers with more than three fraction digits are exact, with one to three milliseconds. Whole
    seconds may be the truth or a rounded view of it; assuming ``date_from`` compares at least as
    finely as a second, a consent shown at ``T`` that ``date_from = T`` misses was stored *before*
    ``T`` (rounded), and one that ``date_from = T + 1 µs`` still finds was stored after it (cut).
    """
    consents = _newest(target)
    digits = max(_fraction_digits(c[field]) for c in consents for field in ("created_at", "updated_at"))
    if digits > 3:
        return "exact"
    if digits:
        return "ms"
    probes = list({c["created_at"]: c for c in consents}.values())[:sample]
    if any(not _listed_from(target, c, _micros(c["created_at"])) for c in probes):
        return "s_round"
    if any(_listed_from(target, c, _micros(c["created_at"]) + 1) for c in probes):
        return "s_truncate"
    return "whole"


def detect_date_to(target: Target, filter_precision: str) -> str:
    """Find whether ``filter.date_to`` is inclusive: ``date_to`` = a consent's own ``created_at``.

    The consent must lie exactly on a time the platform reads as itself (a whole second when it reads
    seconds, a whole millisecond when it may read milliseconds), or the edge cannot be seen. A
    consent *shown* on a whole second is taken to lie on it: on a platform that rounds the times it
    shows, the answer is "exclusive" whatever the truth (the created_at detector reports rounding).
    """
    if filter_precision in ("s_truncate", "s_round"):
        unit = US
    elif filter_precision in ("ms", "exact_or_ms"):
        unit = 1000
    else:
        unit = 1
    on_edge = [c for c in _newest(target) if _micros(c["created_at"]) % unit == 0]
    if not on_edge:
        return "not_observable"
    consent = on_edge[0]
    at = _micros(consent["created_at"])
    if not _listed(target, consent["id"], {"date_from": _wire(at - 2 * US), "date_to": _wire(at + 2 * US)}):
        return "inconsistent"
    edge = {"date_from": _wire(at - 2 * US), "date_to": consent["created_at"]}
    return "inclusive" if _listed(target, consent["id"], edge) else "exclusive"


def detect_accepted_sorts(target: Target) -> set[str]:
    """Ask for each sort by name; a refusal must be a 400 ``invalid_argument`` that names ``sort``."""
    accepted = set()
    for sort in SORTS:
        response = target.post("Zalo/ListRequestConsent", {"paging": {"sort": sort, "limit": 1}})
        if response.status_code == 200:
            accepted.add(sort)
            continue
        body = response.json()
        assert response.status_code == 400 and body.get("code") == "invalid_argument", response.text[:300]
        assert "sort" in str(body.get("meta")) + str(body.get("msg")), f"the refusal does not name sort: {body}"
    return accepted


def detect_listing_lag(
    target: Target,
    oa_id: str,
    phone: str,
    wait: Callable[[float], object],
    step_s: float = 5.0,
    budget_s: float = 300.0,
) -> float | None:
    """Send ONE ``RequestConsent`` and look for it in the listing every ``step_s`` seconds.

    :return: the seconds waited until it was listed (the lag lies in ``(waited - step_s, waited]``),
        or ``None`` when it was not listed within ``budget_s``.
    """
    body = {"oa_id": oa_id, "phone": phone, "call_type": "audio", "reason_code": "product_service_consulting"}
    response = target.post("Zalo/RequestConsent", body)  # sent once, never retried: it is a charged message
    assert response.status_code == 200, response.text[:300]
    consent = response.json()
    since = {"phone": phone, "date_from": _wire(_micros(consent["created_at"]) // US * US - 5 * US)}
    waited = 0.0
    while not _listed(target, consent["id"], since, sort="-created_at"):
        if waited >= budget_s:
            return None
        wait(step_s)
        waited += step_s
    return waited


def _expected(target: Target, switch: str, default: object) -> object:
    assert target.variant is not None
    return PLATFORM_VARIANTS[target.variant].get(switch, default)


# --------------------------------------------------------------------------- tests
@detects("defaults", "filter_exact_fractional", "filter_s_truncate", "filter_s_round", "filter_ms")
def test_unknown_date_filter_precision(unknown_target: Target, report: Report) -> None:
    found = detect_date_filter_precision(unknown_target)
    report(unknown_target, "date_filter_precision", FILTER_FINDINGS[found])
    if unknown_target.sim is not None:
        fractional = _expected(unknown_target, "fractional_times", False)
        precision = _expected(unknown_target, "date_filter_precision", "exact")
        assert found == (precision if fractional else "exact_or_ms")


@detects(
    "defaults",
    "filter_exact_fractional",
    "shown_ms",
    "shown_s_truncate",
    "shown_s_round",
    "shown_s_round+filter_s_truncate",
)
def test_unknown_created_at_precision_in_answers(unknown_target: Target, report: Report) -> None:
    found = detect_created_at_precision(unknown_target)
    report(unknown_target, "created_at_precision", SHOWN_FINDINGS[found])
    if unknown_target.sim is not None:
        fractional = _expected(unknown_target, "fractional_times", False)
        assert found == (_expected(unknown_target, "created_at_precision", "exact") if fractional else "whole")


@detects("defaults", "date_to_inclusive", "filter_exact_fractional", "filter_s_truncate+date_to_inclusive")
def test_unknown_date_to_inclusive_or_exclusive(unknown_target: Target, report: Report) -> None:
    sim = unknown_target.sim
    precision = detect_date_filter_precision(unknown_target)
    found = detect_date_to(unknown_target, precision)
    report(unknown_target, "date_to", DATE_TO_FINDINGS[found])
    if sim is not None:
        inclusive = "inclusive" if _expected(unknown_target, "date_to_inclusive", False) else "exclusive"
        if precision in ("s_truncate", "s_round"):
            # Seeded fractional data has no consent on a whole second: the edge cannot be seen ...
            assert found == "not_observable"
            # ... until one lies there, as a platform with whole-second consents would have.
            sim.add_consent(created_at=datetime(2026, 1, 30, 12, tzinfo=timezone.utc))
            found = detect_date_to(unknown_target, precision)
        assert found == inclusive


@detects("defaults", "listing_lag")
def test_unknown_listing_lag(unknown_target: Target, report: Report) -> None:
    sim = unknown_target.sim
    if sim is None:
        oa_id, phone = os.environ.get(OA_ID_ENV), os.environ.get(PHONE_ENV)
        if not oa_id or not phone:
            pytest.skip(
                f"set {OA_ID_ENV} and {PHONE_ENV} (your own phone) to measure the listing lag: one charged request"
            )
        waited = detect_listing_lag(unknown_target, oa_id, phone, time.sleep)
    else:
        waited = detect_listing_lag(unknown_target, sim.oa_ids[0], "84912345678", sim.advance)
    step = 5.0
    if waited is None:
        finding = "a new consent was not listed within 300 s"
    elif waited == 0:
        finding = "a new consent is listable at once (no listing lag seen)"
    else:
        finding = f"a new consent became listable after {waited - step:g}-{waited:g} s (listing lag)"
    report(unknown_target, "listing_lag", finding)
    if sim is not None:
        lag = float(_expected(unknown_target, "listing_lag_s", 0.0))  # type: ignore[arg-type]
        assert waited is not None and (waited == 0 == lag or waited - step < lag <= waited)


@detects("defaults", "updated_at_sort_refused")
def test_unknown_accepted_sorts(unknown_target: Target, report: Report) -> None:
    accepted = detect_accepted_sorts(unknown_target)
    refused = [s for s in SORTS if s not in accepted]
    finding = f"sorts accepted: {', '.join(s for s in SORTS if s in accepted) or 'none'}"
    report(
        unknown_target,
        "accepted_sorts",
        finding + (f"; refused with 400 naming sort: {', '.join(refused)}" if refused else ""),
    )
    if unknown_target.sim is not None:
        assert accepted == set(_expected(unknown_target, "accepted_sorts", SORTS))  # type: ignore[call-overload]
