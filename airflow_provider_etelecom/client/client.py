"""The eTelecom HTTP client: one session, timeouts, retry policy, error mapping and paging.

No Airflow import here: the hook only turns an Airflow Connection into a :class:`ClientConfig`.
Everything that talks to eTelecom (hook, operators, sensor, trigger) goes through
:class:`EtelecomClient`, so retries and errors behave the same everywhere.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import requests
import tenacity
import urllib3
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from airflow_provider_etelecom import __version__
from airflow_provider_etelecom.client.config import ClientConfig
from airflow_provider_etelecom.client.errors import NOT_RESENT_ADVICE, error_from_response
from airflow_provider_etelecom.client.models import CallType, Consent, ConsentCheck, ConsentPage, ReasonCode
from airflow_provider_etelecom.client.paging import Listing, PlatformFacts, normalize_consent
from airflow_provider_etelecom.client.query import ConsentQuery, ConsentRequest
from airflow_provider_etelecom.client.seen import SeenIds
from airflow_provider_etelecom.client.validation import mask_phone, normalize_phone, validate_int64_id
from airflow_provider_etelecom.exceptions import (
    EtelecomError,
    EtelecomMalformedResponseError,
    EtelecomRateLimitError,
    EtelecomTransientError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Bytes asked of the socket at a time while an answer's body is read (a page is about 50 KB).
_READ_CHUNK = 64 * 1024


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
    #: Consents a cursor served again, dropped by the once-each rule: a sign of an unstable cursor.
    repeats: int = 0
    #: Consents a date-bound step read again (the expected overlap of continuing without a cursor).
    rereads: int = 0
    #: Pages continued by a date bound because their cursor was missing or refused.
    resumes: int = 0
    #: Requests spent learning what the platform's cursor holds (two, once, from a tie in a page).
    probes: int = 0

    def as_dict(self) -> dict[str, float]:
        """Return the counters as a plain dict."""
        return dict(self.__dict__)

    def paging_note(self) -> tuple[bool, str]:
        """Describe what the listing met beyond plain paging, for a task's closing log lines.

        :return: ``(worth a warning, text)``; the text is empty when there is nothing to say. Repeats
            and pages without a usable cursor are worth a warning: signs of an unstable cursor.
        """
        parts = []
        if self.repeats:
            parts.append(
                f"{self.repeats} consents served twice by the cursor and dropped (a sign of an unstable cursor)"
            )
        if self.resumes:
            parts.append(f"{self.resumes} pages continued by a date bound (no next cursor, or the cursor was refused)")
        if self.rereads:
            parts.append(
                f"{self.rereads} consents read twice by date-bound steps (the cost of not trusting the cursor)"
            )
        if self.probes:
            parts.append(f"{self.probes} requests spent learning what the cursor holds")
        return bool(self.repeats or self.resumes), "; ".join(parts)


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


class EtelecomClient:
    """A client for eTelecom's Zalo Cloud API.

    One ``requests.Session`` per client, reused for every call: a whole listing goes over one
    keep-alive TCP connection. Not thread-safe; give each thread its own client (they can share
    a :class:`RateLimitGate`).

    :param config: the validated settings.
    :param sleep: how to wait between retries (tests pass a recorder to drive time).
    :param gate: a pause shared with other clients after a rate limit.
    :param rng: random source for jitter (seedable in tests).
    :param facts: what is known of the platform's paging, shared with other clients (parallel windows).
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        gate: RateLimitGate | None = None,
        rng: random.Random | None = None,
        facts: PlatformFacts | None = None,
    ) -> None:
        self.config = config
        self.stats = ClientStats()
        self.facts = facts if facts is not None else PlatformFacts()
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

    def _send_once(
        self, endpoint: str, payload: bytes, idempotent: bool = True, parse: Callable[[Any], Any] | None = None
    ) -> Any:
        try:
            return self._attempt(endpoint, payload, idempotent, parse)
        except EtelecomError as error:
            # One scrub for every message built from an answer, after any decoding: a key echoed in a
            # 200's error body, or JSON-escaped ('\\/') where the raw bytes held another spelling.
            raise self._scrubbed(error) from None

    def _scrubbed(self, error: EtelecomError) -> EtelecomError:
        key = self.config.api_key
        if key and key in f"{error.message}{error.msg}{error.meta}":
            error.message = self._scrub(error.message)
            error.args = (error.message,)
            error.msg = None if error.msg is None else self._scrub(error.msg)
            error.meta = {name: self._scrub(value) for name, value in error.meta.items()}
        return error

    def _attempt(self, endpoint: str, payload: bytes, idempotent: bool, parse: Callable[[Any], Any] | None) -> Any:
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
        started = time.monotonic()
        try:
            response = self._session.post(
                url, data=payload, timeout=(self.config.connect_timeout, self.config.timeout), stream=True
            )
            body = self._read(response, started)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            raise self._network_error(endpoint, error, idempotent) from None
        if response.status_code != 200:
            # Scrub before anything reads the body: a proxy that echoes headers must not put the key
            # into a message, an attribute (msg/meta) or a log line, even partly after truncation.
            raise error_from_response(
                endpoint, response.status_code, self._scrub_bytes(body), response.headers, idempotent=idempotent
            )
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            body = self._scrub_bytes(body)
            raise EtelecomMalformedResponseError(
                f"eTelecom {endpoint} answered HTTP 200 with a body that is not JSON ({len(body)} bytes, "
                f"starting {body[:60]!r}); usually a truncated answer, retried.",
                endpoint=endpoint,
                status=200,
            ) from None
        return data if parse is None else parse(data)

    def _read(self, response: requests.Response, started: float) -> bytes:
        """Read an answer's body within ``timeout`` seconds in all, however slowly it comes.

        ``timeout`` bounds each wait for the socket; an answer trickling a byte at a time (a proxy's
        keep-alive bytes, a failing link) would otherwise hold the task for as long as it trickles.

        :raises TimeoutError: when the whole answer takes longer than ``timeout``.
        """
        read1 = getattr(response.raw, "read1", None)
        if read1 is None:  # urllib3 1.x: no partial reads; the per-read timeout is all there is
            return response.content
        deadline = started + self.config.connect_timeout + self.config.timeout
        chunks: list[bytes] = []
        try:
            while chunk := read1(_READ_CHUNK, decode_content=True):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the answer took longer than timeout={self.config.timeout:g} s to arrive in full"
                    )
        except BaseException:
            response.close()  # a connection left mid-answer is never reused
            raise
        response.raw.release_conn()  # read to its end: the keep-alive connection serves the next page
        return b"".join(chunks)

    def _network_error(self, endpoint: str, error: BaseException, idempotent: bool) -> EtelecomTransientError:
        not_sent = isinstance(error, requests.RequestException) and _certainly_not_sent(error)
        if isinstance(error, requests.RequestException) and not isinstance(
            error, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)
        ):
            what = "could not connect" if not_sent else "failed before an answer arrived"
        else:
            what = "began to answer, but the answer was cut off"
        if idempotent or not_sent:
            advice = (
                f"The provider retries network errors within its budget; if this persists, check that "
                f"{self.config.base_url} is reachable from this worker."
            )
        else:
            advice = NOT_RESENT_ADVICE
        cause = (
            _network_cause(error)
            if isinstance(error, requests.RequestException)
            else f"{type(error).__name__}: {error}"
        )
        transient = EtelecomTransientError(
            f"eTelecom {endpoint} {what}: {self._scrub(cause)[:300]}. {advice}",
            endpoint=endpoint,
        )
        transient.reached_server = not not_sent
        return transient

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

    def call(
        self,
        endpoint: str,
        body: dict[str, Any],
        *,
        idempotent: bool = True,
        parse: Callable[[Any], Any] | None = None,
    ) -> Any:
        """POST ``body`` to ``{base_url}.{endpoint}`` and return the decoded JSON answer (or ``parse``'s result).

        Transient failures are retried per the :class:`RetryPolicy`; the same request is
        re-sent, so a fault on page 40 never restarts a listing from page 1.

        :param endpoint: ``Service/Method``, e.g. ``Zalo/ListRequestConsent``.
        :param body: the JSON body.
        :param idempotent: ``False`` for calls that act on the world (``RequestConsent``): they are
            retried only when the request certainly never reached the server.
        :param parse: checks and converts the decoded answer inside the retry loop, so an answer of the
            wrong shape (:class:`EtelecomMalformedResponseError`) is retried like a network fault.
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
            return retrying(self._send_once, endpoint, payload, idempotent, parse)
        except EtelecomError as error:
            attempts = retrying.statistics.get("attempt_number", 1)
            if attempts > 1:
                spent = retrying.statistics.get("delay_since_first_attempt", 0.0)
                error.message = f"{error.message} Gave up after {attempts} attempts in {spent:.1f} s."
                error.args = (error.message,)
            raise

    def _call_object(self, endpoint: str, body: dict[str, Any], *, idempotent: bool = True) -> dict[str, Any]:
        def parse(data: Any) -> dict[str, Any]:
            if not isinstance(data, dict):
                raise EtelecomMalformedResponseError(
                    f"eTelecom {endpoint} answered with JSON {type(data).__name__}, expected an object.",
                    endpoint=endpoint,
                    status=200,
                )
            if "errors" in data or ("code" in data and "msg" in data):
                raise EtelecomMalformedResponseError(
                    f"eTelecom {endpoint} answered HTTP 200 with an error body (code={data.get('code')!r}, "
                    f"msg={str(data.get('msg') or data.get('errors'))[:200]!r}), which is not its answer.",
                    endpoint=endpoint,
                    status=200,
                )
            return data

        return cast(dict[str, Any], self.call(endpoint, body, idempotent=idempotent, parse=parse))

    # -- paging ------------------------------------------------------------------------------

    def listing(
        self, query: ConsentQuery | None = None, *, seen: SeenIds | None = None, sort_fallback: bool = False
    ) -> Listing:
        """Return the listing of ``query``: iterate it for its pages (see :mod:`.paging` for the rules).

        :param seen: the ids already yielded (parallel windows share one); default: the listing's own.
        :param sort_fallback: read in the default order when the platform refuses the query's sort.
        """
        return Listing(self, query or ConsentQuery(), seen=seen, sort_fallback=sort_fallback)

    def iter_consent_pages(self, query: ConsentQuery | None = None) -> Iterator[ConsentPage]:
        """Yield the pages of ``ListRequestConsent`` for ``query``, lazily, about one request per page.

        The contract the listing relies on is only what eTelecom documents or what the listing in
        hand has shown (:mod:`airflow_provider_etelecom.client.paging`): it ends on an empty page (or
        ``max_pages``), never on a short page or a missing ``next`` cursor (it continues from the
        last consent by a date bound); every answer's shape is checked inside the retry loop; each
        consent id is yielded once; a cursor that skips ties is never followed; a consent answered
        outside the date filters sent fails loudly; consents outside ``[date_from, date_to)`` are
        dropped, so adjacent windows never overlap whatever the platform does at the ``date_to``
        edge. Pages may hold fewer consents than the platform served (``listed``).

        :param query: the validated query (default: everything, newest first).
        :raises EtelecomContractError: when an answer breaks what the listing relies on.
        :raises EtelecomPagingError: when the platform hands back a cursor it gave before.
        :raises EtelecomError: for failures that outlast the retry budget.
        """
        return iter(self.listing(query))

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
        answer = self._call_object("Zalo/RequestConsent", request.body(), idempotent=False)
        # Its outcome is unknown if the answer is not a consent: never sent again here (send-once rules).
        consent = normalize_consent(answer, self.config.shown_zone)
        if consent["id"].strip("0") == "":
            # Go's zero value (an empty struct, e.g. after an asynchronous create): no consent to name.
            raise EtelecomMalformedResponseError(
                f"eTelecom Zalo/RequestConsent answered HTTP 200 with consent id {consent['id']!r}, an empty "
                f"record: the request may have been created all the same. {NOT_RESENT_ADVICE}",
                endpoint="Zalo/RequestConsent",
                status=200,
            )
        return consent

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
