"""The eTelecom HTTP client: one session, timeouts, retry policy, error mapping and paging.

No Airflow import here: the hook only turns an Airflow Connection into a :class:`ClientConfig`.
Everything that talks to eTelecom (hook, operators, sensor, trigger) goes through
:class:`EtelecomClient`, so retries and errors behave the same everywhere.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import requests
import tenacity
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from airflow_provider_etelecom import __version__
from airflow_provider_etelecom.client.errors import NOT_RESENT_ADVICE, error_from_response
from airflow_provider_etelecom.client.models import CallType, Consent, ConsentCheck, ConsentPage, Paging, ReasonCode
from airflow_provider_etelecom.client.validation import (
    MAX_PAGE_SIZE,
    ConsentQuery,
    ConsentRequest,
    mask_phone,
    normalize_phone,
    validate_int64_id,
)
from airflow_provider_etelecom.exceptions import (
    EtelecomBadRequestError,
    EtelecomConfigError,
    EtelecomError,
    EtelecomMalformedResponseError,
    EtelecomPagingError,
    EtelecomRateLimitError,
    EtelecomTransientError,
)

__all__ = [
    "DEFAULT_BASE_URLS",
    "ClientConfig",
    "ClientStats",
    "EtelecomClient",
    "RateLimitGate",
    "RetryPolicy",
]

log = logging.getLogger(__name__)

#: Base URLs by account type (inferred with high confidence from eTelecom's docs).
DEFAULT_BASE_URLS = {
    "shop": "https://api.etelecom.vn/v1/shop",
    "partner": "https://api.etelecom.vn/v1/partner",
}
ACCOUNT_TYPES = frozenset(DEFAULT_BASE_URLS)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, how long to wait, and when to give up.

    Retried: network errors, timeouts, dropped connections, truncated or non-JSON 200 bodies,
    408, 429, 403 ``resource_exhausted``, 5xx except 501 (see :mod:`.errors`). Waits grow
    exponentially with jitter, a ``Retry-After`` is honoured, and both the number of retries and
    the total time one request may spend (waits included) are capped.

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param max_retry_time: seconds one request may spend from its first attempt to its last.
    :param backoff_initial: first wait, in seconds, before jitter.
    :param backoff_max: the longest wait between two attempts (except a longer ``Retry-After``).
    """

    max_retries: int = 5
    max_retry_time: float = 300.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Return the wait before retry ``retry_number`` (1-based): exponential, half jittered."""
        ceiling: float = min(self.backoff_max, self.backoff_initial * 2 ** (retry_number - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class ClientStats:
    """What a client did, for progress lines and the final summary of a task.

    ``waited_s`` is every second spent waiting before a request (retry back-offs and shared
    rate-limit pauses); ``rate_limit_waited_s`` is the part of it caused by rate limits, so it is
    never larger. ``rate_limited`` counts rate-limited answers (429, 403 ``resource_exhausted``).
    Summed over parallel windows, the waits are worker-seconds: the windows wait at the same time.
    """

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    rate_limit_waited_s: float = 0.0
    pages: int = 0
    consents: int = 0

    def as_dict(self) -> dict[str, float]:
        """Return the counters as a plain dict."""
        return dict(self.__dict__)


class RateLimitGate:
    """A pause shared by several clients, so a 429 seen by one slows all of them.

    Parallel windowed exports give each window its own client; without a shared gate, eight
    windows answering one 429 each would turn into a 429 storm.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._resume_at = 0.0
        self._clock = clock

    def pause(self, seconds: float) -> float:
        """Hold every client sharing this gate for ``seconds`` from now.

        :return: the clock time at which the gate opens again.
        """
        with self._lock:
            self._resume_at = max(self._resume_at, self._clock() + seconds)
            return self._resume_at

    def pending(self) -> tuple[float, float]:
        """Return ``(resume_at, seconds_left)``; ``seconds_left`` is 0 when the gate is open."""
        with self._lock:
            return self._resume_at, max(0.0, self._resume_at - self._clock())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Base URLs whose missing account path was already reported (said once per process, not per client:
#: a trigger builds a fresh client on every check).
_COMPLETED_BASE_URLS: set[str] = set()
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _api_base_url(raw: str, kind: str | None) -> tuple[str, str, bool]:
    """Turn what a user typed as Base URL into the URL the client calls.

    A host without a path (``https://api.etelecom.vn``) or with ``/v1`` only gets the account
    type's path; ``/v1/shop`` and ``/v1/partner`` (after any prefix, for a gateway) are kept, with
    trailing slashes removed and the scheme, host and account path in lower case. Anything else
    cannot be an eTelecom API URL: the client appends ``.Service/Method`` to the base URL, so a
    wrong path would only show up as a 404 or, without a path, as an unreachable host
    ``api.etelecom.vn.Misc``, retried as a network error.

    :param raw: the Base URL, stripped; empty for the account type's default.
    :param kind: the account type given by the user, if any.
    :return: ``(base URL, account type its path names, whether the path was added)``.
    :raises EtelecomConfigError: naming what to change in the Base URL.
    """
    if not raw:
        default_kind = kind or "shop"
        return DEFAULT_BASE_URLS[default_kind], default_kind, False
    example = f"https://api.etelecom.vn/v1/{kind or 'shop'}"
    if "://" not in raw:
        raise EtelecomConfigError(
            f"Base URL {raw!r} must be a full URL with scheme and host, such as {example!r}: write "
            f"'https://{raw.lstrip('/')}'."
        )
    parts = urlsplit(raw)
    if parts.username is not None or parts.password is not None:
        # Never echo the URL: its user-info part may hold a secret.
        raise EtelecomConfigError(
            "Base URL must not carry a user name or password ('user:secret@host'): remove them; the key "
            "goes in the connection's 'API key' (password) field."
        )
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise EtelecomConfigError(
            f"Base URL {raw!r} must be a full URL with scheme (https://) and host, such as {example!r}."
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise EtelecomConfigError(
            f"Base URL {raw!r} has an invalid port: use a number from 1 to 65535 after the host, or none "
            f"for the scheme's default ({_DEFAULT_PORTS[parts.scheme]})."
        )
    if "." in parts.path or parts.query or parts.fragment:
        raise EtelecomConfigError(
            f"Base URL {raw!r} must end at the account path (/v1/shop or /v1/partner), without a "
            f"method such as '.Zalo/ListRequestConsent': the provider appends '.Service/Method' itself."
        )
    path = parts.path.rstrip("/")
    prefix, _, last = path.rpartition("/")
    completed = False
    if path == "" or last.lower() == "v1":
        path = f"{prefix}/v1/{kind or 'shop'}"
        completed = True
    elif last.lower() in ACCOUNT_TYPES and prefix.lower().endswith("/v1"):
        path = f"{prefix[:-3]}/v1/{last.lower()}"
    else:
        raise EtelecomConfigError(
            f"Base URL {raw!r} has the path {parts.path!r}, which is not an eTelecom API path: end it at "
            f"/v1/shop or /v1/partner (such as {example!r}), or give only scheme and host "
            f"('https://api.etelecom.vn') to get the account type's path."
        )
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{path}", path.rsplit("/", 1)[-1], completed


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs, validated once. Build it with :meth:`build`.

    The API key is kept out of ``repr`` so that it cannot reach a log line through this object.
    """

    base_url: str
    api_key: str = field(repr=False)
    account_type: str = "shop"
    timeout: float = 60.0
    connect_timeout: float = 10.0
    retry: RetryPolicy = RetryPolicy()
    normalize_phones: bool = True
    timezone: str | None = None

    @classmethod
    def build(
        cls,
        *,
        base_url: str | None,
        api_key: str | None,
        account_type: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_retry_time: float | None = None,
        allow_insecure_http: bool = False,
        normalize_phones: bool = True,
        timezone: str | None = None,
    ) -> ClientConfig:
        """Validate the settings of a connection and return the config.

        :param base_url: e.g. ``https://api.etelecom.vn/v1/shop``; scheme and host only
            (``https://api.etelecom.vn``) get the account type's path, said once in the log at INFO;
            empty means the default for the account type.
        :param api_key: the shop's ``api_key`` (shop) or the shop's ``shop_key`` (partner).
        :param account_type: ``shop`` or ``partner``; inferred from the base URL's path when empty.
        :param timeout: read timeout in seconds (the connect timeout is ``min(10, timeout)``).
        :param max_retries: retries after the first attempt.
        :param max_retry_time: seconds one request may spend retrying.
        :param allow_insecure_http: allow ``http://`` to a non-loopback host (a warning is logged).
        :param normalize_phones: put phone numbers in the ``84…`` form before sending them.
        :param timezone: IANA zone for naive datetimes in filters (else they are refused).
        :raises EtelecomConfigError: saying what is wrong and how to fix it.
        """
        if api_key is None or not str(api_key).strip():
            raise EtelecomConfigError(
                "The eTelecom connection has no API key: put the shop's api_key (or, for a partner, the "
                "shop's shop_key) in the connection's 'API key' (password) field."
            )
        kind = (account_type or "").strip().lower() or None
        if kind is not None and kind not in ACCOUNT_TYPES:
            raise EtelecomConfigError(f"Account type {account_type!r} is not valid; use 'shop' or 'partner'.")
        url, path_kind, completed = _api_base_url((base_url or "").strip(), kind)
        if kind is not None and kind != path_kind:
            raise EtelecomConfigError(
                f"Base URL {url!r} is a {path_kind} URL but the account type is {kind!r}: use the path "
                f"/v1/{kind}, or set the account type to {path_kind!r}."
            )
        parts = urlsplit(url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            if not allow_insecure_http:
                raise EtelecomConfigError(
                    f"Base URL {url!r} uses plain http:// to a non-loopback host, which would send the API "
                    f"key unencrypted; use https://, or set allow_insecure_http=true in the connection's "
                    f"extra if you really mean it."
                )
            log.warning("eTelecom base URL %s uses plain http://: the API key travels unencrypted.", url)
        read_timeout = 60.0 if timeout is None else timeout
        retries = 5 if max_retries is None else max_retries
        retry_time = 300.0 if max_retry_time is None else max_retry_time
        for name, value, minimum in (
            ("timeout", read_timeout, 0.001),
            ("max_retries", retries, 0),
            ("max_retry_time", retry_time, 0),
        ):
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not is_number or not math.isfinite(value) or value < minimum:
                raise EtelecomConfigError(
                    f"{name}={value!r} must be a number >= {minimum} (seconds for timeouts, a count for retries)."
                )
        if not isinstance(retries, int):
            raise EtelecomConfigError(f"max_retries={retries!r} must be a whole number.")
        if completed and url not in _COMPLETED_BASE_URLS:
            _COMPLETED_BASE_URLS.add(url)
            log.info(
                "eTelecom Base URL %r has no account path; calling %s (the %s path).",
                (base_url or "").strip(),
                url,
                path_kind,
            )
        return cls(
            base_url=url,
            api_key=str(api_key).strip(),
            account_type=path_kind,
            timeout=float(read_timeout),
            connect_timeout=min(10.0, float(read_timeout)),
            retry=RetryPolicy(max_retries=retries, max_retry_time=float(retry_time)),
            normalize_phones=normalize_phones,
            timezone=timezone,
        )


class EtelecomClient:
    """A client for eTelecom's Zalo Cloud API.

    One ``requests.Session`` per client, reused for every call: a whole listing goes over one
    keep-alive TCP connection. Not thread-safe; give each thread its own client (they can share
    a :class:`RateLimitGate`).

    :param config: the validated settings.
    :param sleep: how to wait between retries (tests pass a recorder to drive time).
    :param gate: a pause shared with other clients after a rate limit.
    :param rng: random source for jitter (seedable in tests).
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        gate: RateLimitGate | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.stats = ClientStats()
        self._sleep = sleep
        self._gate = gate
        self._rng = rng or random.Random()
        self._paused_until = 0.0
        self._session = requests.Session()
        # Read the proxy and CA-bundle environment once, not on every request (requests re-reads
        # the whole environment per call when trust_env is on: ~10% of a listing's CPU), and never
        # let a ~/.netrc entry replace the Bearer header.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(config.base_url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            self._session.verify = ca_bundle
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {config.api_key}",
                "User-Agent": f"airflow-provider-etelecom/{__version__}",
            }
        )

    def __repr__(self) -> str:
        return f"EtelecomClient(base_url={self.config.base_url!r}, account_type={self.config.account_type!r})"

    def __enter__(self) -> EtelecomClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session and its connections."""
        self._session.close()

    # -- transport ---------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self.config.api_key, "***") if self.config.api_key else text

    def _scrub_bytes(self, body: bytes) -> bytes:
        return body.replace(self.config.api_key.encode(), b"***") if self.config.api_key else body

    def _send_once(self, endpoint: str, payload: bytes, idempotent: bool = True) -> Any:
        if self._gate is not None:
            resume_at, pause = self._gate.pending()
            # A client that set the pause has already slept it as its retry wait.
            if pause > 0 and resume_at > self._paused_until:
                self._paused_until = resume_at
                self.stats.waited_s += pause
                self.stats.rate_limit_waited_s += pause
                self._sleep(pause)
        self.stats.requests += 1
        url = f"{self.config.base_url}.{endpoint}"
        try:
            response = self._session.post(url, data=payload, timeout=(self.config.connect_timeout, self.config.timeout))
        except requests.RequestException as error:
            not_sent = _certainly_not_sent(error)
            if isinstance(error, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
                what = "began to answer, but the answer was cut off"
            elif not_sent:
                what = "could not connect"
            else:
                what = "failed before an answer arrived"
            if idempotent or not_sent:
                advice = (
                    f"The provider retries network errors within its budget; if this persists, check that "
                    f"{self.config.base_url} is reachable from this worker."
                )
            else:
                advice = NOT_RESENT_ADVICE
            transient = EtelecomTransientError(
                f"eTelecom {endpoint} {what}: {self._scrub(_network_cause(error))[:300]}. {advice}",
                endpoint=endpoint,
            )
            transient.reached_server = not not_sent
            raise transient from None
        body = response.content
        if response.status_code != 200:
            # Scrub before anything reads the body: a proxy that echoes headers must not put the key
            # into a message, an attribute (msg/meta) or a log line, even partly after truncation.
            raise error_from_response(
                endpoint, response.status_code, self._scrub_bytes(body), response.headers, idempotent=idempotent
            )
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            body = self._scrub_bytes(body)
            raise EtelecomMalformedResponseError(
                f"eTelecom {endpoint} answered HTTP 200 with a body that is not JSON ({len(body)} bytes, "
                f"starting {body[:60]!r}); usually a truncated answer, retried.",
                endpoint=endpoint,
                status=200,
            ) from None

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, EtelecomRateLimitError) and error.retry_after is not None:
            return error.retry_after
        return self.config.retry.backoff(retry_state.attempt_number, self._rng)

    def _before_sleep(self, retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.upcoming_sleep
        self.stats.retries += 1
        self.stats.waited_s += wait
        if isinstance(error, EtelecomRateLimitError):
            self.stats.rate_limited += 1
            self.stats.rate_limit_waited_s += wait
            if self._gate is not None:
                self._paused_until = self._gate.pause(wait)
        log.warning(
            "eTelecom request failed (%s); retry %d of %d in %.2f s.",
            error,
            retry_state.attempt_number,
            self.config.retry.max_retries,
            wait,
        )

    def call(self, endpoint: str, body: dict[str, Any], *, idempotent: bool = True) -> Any:
        """POST ``body`` to ``{base_url}.{endpoint}`` and return the decoded JSON answer.

        Transient failures are retried per the :class:`RetryPolicy`; the same request is
        re-sent, so a fault on page 40 never restarts a listing from page 1.

        :param endpoint: ``Service/Method``, e.g. ``Zalo/ListRequestConsent``.
        :param body: the JSON body.
        :param idempotent: ``False`` for calls that act on the world (``RequestConsent``): they are
            retried only when the request certainly never reached the server.
        :raises EtelecomError: the mapped failure once retries are spent or for a final answer.
        """
        payload = json.dumps(body, separators=(",", ":")).encode()
        policy = self.config.retry

        def retryable(error: BaseException) -> bool:
            if not isinstance(error, EtelecomTransientError):
                return False
            return idempotent or not error.reached_server

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(policy.max_retries + 1)
            | tenacity.stop_before_delay(policy.max_retry_time),
            wait=self._wait,
            retry=tenacity.retry_if_exception(retryable),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return retrying(self._send_once, endpoint, payload, idempotent)
        except EtelecomError as error:
            attempts = retrying.statistics.get("attempt_number", 1)
            if attempts > 1:
                spent = retrying.statistics.get("delay_since_first_attempt", 0.0)
                error.message = f"{error.message} Gave up after {attempts} attempts in {spent:.1f} s."
                error.args = (error.message,)
            raise

    def _call_object(self, endpoint: str, body: dict[str, Any], *, idempotent: bool = True) -> dict[str, Any]:
        data = self.call(endpoint, body, idempotent=idempotent)
        if not isinstance(data, dict):
            raise EtelecomMalformedResponseError(
                f"eTelecom {endpoint} answered with JSON {type(data).__name__}, expected an object.",
                endpoint=endpoint,
                status=200,
            )
        return data

    # -- paging ------------------------------------------------------------------------------

    def iter_consent_pages(self, query: ConsentQuery | None = None) -> Iterator[ConsentPage]:
        """Yield the pages of ``ListRequestConsent`` for ``query``, lazily, one request per page.

        The contract (inferred from the platform's shared cursor paging): pages hold at most 100
        consents; the answer's ``paging.next`` is sent as ``paging.after`` for the following page;
        ``next`` is filled on every non-empty page, the last included, and there is no total. So
        the listing stops on an empty page, on an empty ``next``, or on a page shorter than the
        echoed effective ``limit``; ``max_pages`` bounds it; a cursor seen twice raises instead of
        looping. Consents outside ``[date_from, date_to)`` are dropped, so adjacent windows never
        overlap whatever the platform does at the ``date_to`` edge.

        :param query: the validated query (default: everything, newest first).
        :raises EtelecomPagingError: when the platform hands back a cursor it gave before.
        :raises EtelecomError: for failures that outlast the retry budget.
        """
        query = query or ConsentQuery()
        filter_body = query.filter_body()
        after: str | None = None
        seen_cursors: set[str] = set()
        pages = 0
        while query.max_pages is None or pages < query.max_pages:
            paging: dict[str, Any] = {"limit": query.page_size}
            if query.sort:
                paging["sort"] = query.sort
            if after:
                paging["after"] = after
            try:
                data = self._call_object("Zalo/ListRequestConsent", {"filter": filter_body, "paging": paging})
            except EtelecomBadRequestError as error:
                if query.sort:
                    # Which sorts the platform accepts is inferred, not documented: name the parameter.
                    error.message = (
                        f"{error.message} The listing asked for sort={query.sort!r}; eTelecom's docs do not "
                        f"confirm which sorts it accepts: try sort=None (newest first, by created_at)."
                    )
                    error.args = (error.message,)
                raise
            raw_consents, page_paging = _parse_page(data)
            if not raw_consents:
                return
            pages += 1
            try:
                consents = [c for c in raw_consents if query.in_window(c.get("created_at"))]
            except ValueError as error:
                raise EtelecomMalformedResponseError(
                    f"eTelecom ListRequestConsent answered with a consent whose {error}; the window "
                    f"[date_from, date_to) cannot be enforced on it.",
                    endpoint="Zalo/ListRequestConsent",
                    status=200,
                ) from None
            self.stats.pages += 1
            self.stats.consents += len(consents)
            yield ConsentPage(consents=consents, paging=page_paging, listed=len(raw_consents))
            next_cursor = page_paging.get("next") or ""
            effective_limit = page_paging.get("limit") or min(query.page_size, MAX_PAGE_SIZE)
            if not next_cursor or len(raw_consents) < effective_limit:
                return
            if next_cursor in seen_cursors or next_cursor == after:
                raise EtelecomPagingError(
                    f"eTelecom ListRequestConsent returned cursor {next_cursor[:40]!r} a second time after "
                    f"{pages} pages; stopping instead of looping. Retry the task; report it to eTelecom "
                    f"if it repeats.",
                    endpoint="Zalo/ListRequestConsent",
                )
            seen_cursors.add(next_cursor)
            after = next_cursor

    def iter_consents(self, query: ConsentQuery | None = None) -> Iterator[Consent]:
        """Yield every consent matching ``query`` across all pages (see :meth:`iter_consent_pages`)."""
        for page in self.iter_consent_pages(query):
            yield from page["consents"]

    def find_consent(
        self, consent_id: int | str, *, oa_id: int | str, phone: str, max_pages: int = 1
    ) -> Consent | None:
        """Find one consent by id among the newest consents for one OA and phone.

        The API has no filter by id, so the lookup lists ``oa_id`` + ``phone`` newest first and
        scans: one request when the consent is among the 100 newest for that pair (a freshly
        requested consent always is), at most ``max_pages`` requests otherwise. It never pages
        through the whole account.

        :return: the consent, or ``None`` when it is not among those pages.
        """
        wanted = validate_int64_id("consent_id", consent_id)
        query = ConsentQuery.build(
            oa_id=oa_id, phone=phone, max_pages=max_pages, normalize_phones=self.config.normalize_phones
        )
        for page in self.iter_consent_pages(query):
            for consent in page["consents"]:
                if consent.get("id") == wanted:
                    return consent
        return None

    # -- single calls ------------------------------------------------------------------------

    def request_consent(
        self, *, oa_id: int | str, phone: str, call_type: CallType | str, reason_code: ReasonCode | str
    ) -> Consent:
        """Ask a customer, in Zalo, for permission to call them (``Zalo/RequestConsent``).

        Validates the arguments (before anything is sent), then :meth:`send_consent_request`.

        :return: the created consent (``status`` ``P`` sent, or ``N`` with ``error_code``).
        :raises EtelecomValidationError: before sending, for invalid arguments.
        """
        request = ConsentRequest.build(
            oa_id=oa_id,
            phone=phone,
            call_type=call_type,
            reason_code=reason_code,
            normalize_phones=self.config.normalize_phones,
        )
        return self.send_consent_request(request)

    def send_consent_request(self, request: ConsentRequest) -> Consent:
        """Send an already validated ``Zalo/RequestConsent`` (see :meth:`ConsentRequest.build`).

        This sends a real, charged message to a person, so it is retried only when the request
        certainly never reached the server (connection refused or connect timeout).

        :return: the created consent (``status`` ``P`` sent, or ``N`` with ``error_code``).
        """
        log.info("Requesting consent from %s via OA %s.", mask_phone(request.phone), request.oa_id)
        return cast(Consent, self._call_object("Zalo/RequestConsent", request.body(), idempotent=False))

    def check_consent(self, *, oa_id: object, phone: object) -> ConsentCheck:
        """Ask whether the customer currently lets the OA call (``Zalo/CheckConsent``).

        :return: ``{"error", "expired_time", "message"}``; ``error`` 0 means yes.
        """
        body = {
            "oa_id": validate_int64_id("oa_id", oa_id),
            "phone": normalize_phone(phone, normalize=self.config.normalize_phones),
        }
        return cast(ConsentCheck, self._call_object("Zalo/CheckConsent", body))

    def current_account(self) -> dict[str, Any]:
        """Return the account the key belongs to (``Misc/CurrentAccount``): a cheap auth check."""
        return self._call_object("Misc/CurrentAccount", {})


def _network_cause(error: requests.RequestException) -> str:
    """Describe a network failure by its root cause, without urllib3's own "Max retries" wording."""
    cause: object = error.args[0] if error.args else error
    cause = getattr(cause, "reason", cause)
    return f"{type(error).__name__}: {cause}"


def _certainly_not_sent(error: requests.RequestException) -> bool:
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    reason: object = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _parse_page(data: dict[str, Any]) -> tuple[list[Consent], Paging]:
    consents = data.get("consents") or []
    paging = data.get("paging") or {}
    if not isinstance(consents, list) or not all(isinstance(c, dict) for c in consents):
        raise EtelecomMalformedResponseError(
            "eTelecom ListRequestConsent answered with 'consents' that is not a list of objects.",
            endpoint="Zalo/ListRequestConsent",
            status=200,
        )
    if not isinstance(paging, dict):
        raise EtelecomMalformedResponseError(
            "eTelecom ListRequestConsent answered with 'paging' that is not an object.",
            endpoint="Zalo/ListRequestConsent",
            status=200,
        )
    next_cursor = paging.get("next")
    limit = paging.get("limit")
    if (next_cursor is not None and not isinstance(next_cursor, str)) or (
        limit is not None and (isinstance(limit, bool) or not isinstance(limit, int))
    ):
        raise EtelecomMalformedResponseError(
            "eTelecom ListRequestConsent answered with a malformed 'paging' block (next must be a string, "
            "limit an integer).",
            endpoint="Zalo/ListRequestConsent",
            status=200,
        )
    return cast(list[Consent], consents), cast(Paging, paging)
