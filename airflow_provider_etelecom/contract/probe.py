"""The raw HTTP side of the platform check: one :class:`Probe` per platform, and the newest pages read once.

The detectors must see answers exactly as the platform writes them (an id as a JSON number, an
empty page as ``null``, the ``Date`` header, a refused cursor's status), so they do not go through
:class:`~airflow_provider_etelecom.client.EtelecomClient`, which normalises all of that away. A
:class:`Probe` is plain ``requests`` with a transport-level retry policy for reads (urllib3's
``Retry``: 429/502/503/504 and dropped connections, ``Retry-After`` honoured) and none for
``RequestConsent``, which it sends only within a budget fixed when it is built (0 by default). A
non-200 answer is mapped by the provider's one error table
(:func:`~airflow_provider_etelecom.client.errors.error_from_response`); the key never reaches a
message. No Airflow here.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import requests
from urllib3.util.retry import Retry

from airflow_provider_etelecom import __version__
from airflow_provider_etelecom.client.errors import error_from_response
from airflow_provider_etelecom.exceptions import EtelecomError, EtelecomMalformedResponseError, EtelecomTransientError

LIST = "Zalo/ListRequestConsent"
REQUEST_CONSENT = "Zalo/RequestConsent"
US = 1_000_000
HOUR_US = 3600 * US
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Reads are retried on these answers (and on dropped connections), with ``Retry-After`` honoured.
_RETRIED_STATUSES = (429, 502, 503, 504)


# ------------------------------------------------------------------------- times
def micros(value: object) -> int:
    """Return the exact epoch microseconds of a wire time (digits past the sixth are dropped).

    :raises ValueError: when ``value`` is not an RFC 3339 time with an offset.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an RFC 3339 time")
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, rest = text.split(".", 1)
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{head}.{(digits + '000000')[:6]}{rest[len(digits) :]}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no offset")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def wire(at_us: int, offset_h: float = 0.0) -> str:
    """Write epoch microseconds with all six fraction digits: ``Z``, or the wall clock of UTC+``offset_h``.

    ``wire(t, 5)`` is the same instant as ``wire(t)`` for a platform that honours offsets, and a
    time five hours later for one that reads the wall clock and ignores the offset.
    """
    shift = round(offset_h * HOUR_US)
    seconds, fraction = divmod(at_us + shift, US)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:06d}"
    minutes = abs(shift) // (60 * US)
    return f"{text}{'+' if shift > 0 else '-'}{minutes // 60:02d}:{minutes % 60:02d}" if shift else text + "Z"


def fraction_digits(value: object) -> int:
    """Return how many fraction digits a wire time carries (0 for whole seconds)."""
    if not isinstance(value, str) or "." not in value:
        return 0
    rest = value.split(".", 1)[1]
    return len(rest) - len(rest.lstrip("0123456789"))


def time_or_none(consent: Mapping[str, Any], name: str) -> int | None:
    """Return a consent's time ``name`` in epoch microseconds, or ``None`` when unset or unreadable."""
    try:
        value = micros(consent.get(name))
    except (ValueError, OverflowError):
        return None
    return None if value <= micros("0001-01-02T00:00:00Z") else value


def consent_id(consent: Mapping[str, Any]) -> str:
    """Return a consent's id as a string, whether the platform wrote it as a string or a number."""
    return str(consent.get("id"))


# ------------------------------------------------------------------------- probe
class Probe:
    """Raw calls to one eTelecom base URL with one key; a context manager that closes its sessions.

    :param base_url: e.g. ``https://api.etelecom.vn/v1/shop`` (calls are ``{base_url}.{Service/Method}``).
    :param api_key: the Bearer key; kept out of every message and ``repr``.
    :param name: how findings name this platform (``platform``, ``simulator[defaults]``).
    :param timeout: seconds to wait for an answer (connect: at most 10).
    :param consent_requests: how many ``RequestConsent`` (charged messages) :meth:`request_consent`
        may send in this probe's life; 0, the default, refuses every one.
    :param retries: retries of a read on 429/502/503/504 or a dropped connection.
    :param backoff_s: the back-off factor between those retries (urllib3's: 0, then ``2 * backoff_s``, ...).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        name: str = "platform",
        timeout: float = 30.0,
        consent_requests: int = 0,
        retries: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.name = name
        self.timeout = (min(10.0, timeout), timeout)
        self.consent_requests_left = consent_requests
        self.consent_requests_sent = 0
        self.requests = 0
        self.filter_shift_h = 0.0
        """Whole hours added to the wall clock of every window a detector writes (see :meth:`window`)."""
        self.last_date: datetime | None = None
        """The ``Date`` header of the latest answer: the platform's clock, to the second."""
        # ``total`` caps connect, read and status retries alike; redirects are requests' own (never retried here).
        retry = Retry(
            total=retries,
            backoff_factor=backoff_s,
            status_forcelist=_RETRIED_STATUSES,
            allowed_methods=frozenset({"POST", "GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = self._session(retry)
        self._send_session = self._session(Retry(total=0))

    def _session(self, retry: Retry) -> requests.Session:
        session = requests.Session()
        # As the client does: no ~/.netrc entry may replace the Bearer header; proxies still apply.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            session.verify = ca_bundle
        adapter = requests.adapters.HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = f"airflow-provider-etelecom/{__version__} (contract check)"
        return session

    def __repr__(self) -> str:
        return f"Probe(name={self.name!r}, base_url={self.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close both HTTP sessions."""
        self.session.close()
        self._send_session.close()

    def scrub(self, text: str) -> str:
        """Return ``text`` with the key replaced by ``***``."""
        return text.replace(self.api_key, "***") if self.api_key else text

    def scrub_bytes(self, body: bytes) -> bytes:
        """Return ``body`` with the key replaced by ``***``."""
        return body.replace(self.api_key.encode(), b"***") if self.api_key else body

    # -- raw calls ---------------------------------------------------------------------------

    def post(self, method: str, body: Any, *, key: str | None = "") -> requests.Response:
        """POST ``body`` as JSON to ``{base_url}.{method}`` and return the answer as it came (any status).

        ``key=None`` sends no ``Authorization``, ``""`` this probe's key. ``RequestConsent`` is
        refused here: it goes through :meth:`request_consent`, which counts it.

        :raises EtelecomTransientError: when no answer arrived (the message names the cause, never the key).
        """
        if method == REQUEST_CONSENT:
            raise ValueError("RequestConsent is sent only through Probe.request_consent, which counts it")
        return self._post(self.session, method, body, key)

    def _post(self, session: requests.Session, method: str, body: Any, key: str | None = "") -> requests.Response:
        sent = {"Content-Type": "application/json", "Accept": "application/json"}
        if key is not None:
            sent["Authorization"] = f"Bearer {key or self.api_key}"
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.requests += 1
        try:
            response = session.post(f"{self.base_url}.{method}", data=payload, headers=sent, timeout=self.timeout)
        except requests.RequestException as error:
            cause = error.args[0] if error.args else error
            cause = getattr(cause, "reason", cause)
            raise EtelecomTransientError(
                self.scrub(f"eTelecom {method} at {self.base_url} gave no answer: {type(error).__name__}: {cause}"),
                endpoint=method,
            ) from None
        date = response.headers.get("Date")
        if date:
            with contextlib.suppress(TypeError, ValueError):
                self.last_date = parsedate_to_datetime(date).astimezone(timezone.utc)
        return response

    def refusal(self, method: str, response: requests.Response) -> EtelecomError:
        """Return what the provider's error table makes of a non-200 answer (status, eTelecom ``code``, endpoint)."""
        return error_from_response(method, response.status_code, self.scrub_bytes(response.content), response.headers)

    def answer(self, method: str, response: requests.Response) -> dict[str, Any]:
        """Return a 200 answer's JSON object, or raise what the provider's error table says.

        :raises EtelecomError: the mapped failure (status, eTelecom ``code``, endpoint; never the key).
        """
        if response.status_code != 200:
            raise self.refusal(method, response)
        body = self.scrub_bytes(response.content)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise EtelecomMalformedResponseError(
                f"eTelecom {method} answered HTTP 200 with a body that is not a JSON object ({body[:60]!r}).",
                endpoint=method,
                status=200,
            )
        return data

    def call(self, method: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a read and return its JSON object.

        :raises EtelecomError: for a non-200 answer or a body that is not a JSON object.
        """
        return self.answer(method, self.post(method, body))

    def list(self, **body: Any) -> dict[str, Any]:
        """``ListRequestConsent`` with ``body`` (``filter=...``, ``paging=...``), which must succeed."""
        return self.call(LIST, body)

    def page(
        self, after: str = "", limit: int = 100, *, sort: str | None = None, flt: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``ListRequestConsent``: the page of ``limit`` after cursor ``after``, in ``sort`` order, under ``flt``."""
        return self.call(LIST, list_body(after, limit, sort=sort, flt=flt))

    def request_consent(self, oa_id: str, phone: str, call_type: str, reason_code: str) -> requests.Response:
        """Send ONE ``RequestConsent`` (a charged message to ``phone``), never retried, within the budget.

        :raises PermissionError: when the budget given at construction is spent (nothing is sent).
        :raises EtelecomTransientError: when no answer arrived (it may still have been sent).
        """
        if self.consent_requests_left <= 0:
            raise PermissionError(
                "RequestConsent not sent: this check may send no more (it sends one only when allowed, "
                "with --oa-id, --phone and --allow-request-consent)."
            )
        self.consent_requests_left -= 1
        self.consent_requests_sent += 1
        body = {"oa_id": oa_id, "phone": phone, "call_type": call_type, "reason_code": reason_code}
        return self._post(self._send_session, REQUEST_CONSENT, body)

    # -- clocks and windows ------------------------------------------------------------------

    def now(self) -> datetime:
        """Return the platform's clock: the latest answer's ``Date`` header, else this machine's clock."""
        return self.last_date or datetime.now(timezone.utc)

    def now_us(self) -> int:
        """Return :meth:`now` in epoch microseconds."""
        return (self.now() - _EPOCH) // timedelta(microseconds=1)

    def window(self, low_us: int, high_us: int) -> dict[str, str]:
        """Return ``{"date_from", "date_to"}`` for ``[low, high)``, as times the answers show.

        Written in ``Z`` with :attr:`filter_shift_h` added to the wall clock: the shift the zone probe
        found between a time an answer shows and the wall clock a window must carry to find it.
        """
        shift = round(self.filter_shift_h * HOUR_US)
        return window(low_us + shift, high_us + shift)


def window(low_us: int, high_us: int, offset_h: float = 0.0) -> dict[str, str]:
    """Return ``{"date_from", "date_to"}`` for ``[low, high)``, written by :func:`wire` (``Z`` or UTC+``offset_h``)."""
    return {"date_from": wire(low_us, offset_h), "date_to": wire(high_us, offset_h)}


def list_body(
    after: str = "", limit: int = 100, *, sort: str | None = None, flt: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return a ``ListRequestConsent`` body: ``paging`` (``limit``; ``sort``, ``after`` when given) and ``filter``."""
    paging: dict[str, Any] = {"limit": limit}
    if sort:
        paging["sort"] = sort
    if after:
        paging["after"] = after
    return {"paging": paging} if flt is None else {"paging": paging, "filter": dict(flt)}


def next_cursor(answer: Mapping[str, Any]) -> str:
    """Return the ``paging.next`` cursor of a listing's answer, ``""`` when there is none."""
    paging = answer.get("paging")
    return str(paging.get("next") or "") if isinstance(paging, dict) else ""


# ------------------------------------------------------------------------- the newest pages
@dataclass(frozen=True)
class Page:
    """One page of a walk: its consents as sent, and the cursor it was asked with."""

    consents: list[dict[str, Any]]
    after: str


@dataclass
class Walk:
    """The newest pages of the default order, read once and shared by the detectors that need them."""

    pages: list[Page] = field(default_factory=list)
    ended: bool = False
    """The walk reached an empty page (the listing's end)."""
    stopped: str = ""
    """Why it stopped: ``empty page``, ``page budget``, ``repeated cursor``, ``no next cursor``."""

    def consents(self) -> list[dict[str, Any]]:
        """Return the consents read, each id once, in the order first served."""
        first: dict[str, dict[str, Any]] = {}
        for page in self.pages:
            for consent in page.consents:
                first.setdefault(consent_id(consent), consent)
        return list(first.values())

    @property
    def sizes(self) -> list[int]:
        """The number of consents on each non-empty page."""
        return [len(page.consents) for page in self.pages]


def walk_newest(probe: Probe, pages: int = 10, limit: int = 100, sort: str | None = None) -> Walk:
    """Read up to ``pages`` pages of the default order (newest first), or of ``sort``, by their ``next`` cursors.

    Stops on an empty page, a page without ``next``, or a cursor served before.
    """
    walk = Walk()
    after, cursors = "", set()
    while len(walk.pages) < pages:
        data = probe.page(after, limit, sort=sort)
        raw = data.get("consents")
        consents = [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []
        if not consents:
            walk.ended, walk.stopped = True, "empty page"
            return walk
        walk.pages.append(Page(consents, after))
        after = next_cursor(data)
        if not after or after in cursors:
            walk.stopped = "repeated cursor" if after else "no next cursor"
            return walk
        cursors.add(after)
    walk.stopped = "page budget"
    return walk


def listed(probe: Probe, wanted: str, flt: Mapping[str, Any], *, max_pages: int = 50) -> bool:
    """Page a (narrow) filtered listing to its end and tell whether consent ``wanted`` is in it.

    :raises EtelecomError: when the platform refuses the filter, or the window does not end within
        ``max_pages`` pages.
    """
    after, cursors = "", set()
    for _ in range(max_pages):
        page = probe.page(after, flt=flt)
        consents = page.get("consents") or []
        if not consents:
            return False
        if any(consent_id(c) == wanted for c in consents):
            return True
        after = next_cursor(page)
        if not after or after in cursors:
            return False
        cursors.add(after)
    raise EtelecomError(
        f"eTelecom {LIST}: a window of a few seconds did not end within {max_pages} pages", endpoint=LIST
    )
