"""HTTP surface of the eTelecom simulator: routing, auth, errors, faults, counters, control endpoints.

The real platform is Twirp-style: every call is ``POST {base}.{Service}/{Method}`` with a JSON body, and
errors come back as ``{"code", "msg", "meta"}``. This module reproduces that surface on loopback with
the standard library only (no Airflow, no third-party packages), so the simulator runs anywhere the
provider's tests run. Data and lifecycle live in :mod:`.store`.

Control endpoints live under ``/_simulator/`` (a path the real API never uses). They are test-only,
take no authentication and are never subject to faults.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from airflow_provider_etelecom.testing.store import (
    CALL_TYPES,
    REASON_CODES,
    SEND_ERRORS,
    AlreadyExists,
    InvalidArgument,
    NotFound,
    Store,
    normalize_phone,
    parse_filter,
    parse_int64,
    parse_paging,
    to_epoch,
)
from airflow_provider_etelecom.testing.switches import SETTINGS, SWITCH_NAMES, PlatformSwitches

API_PATH = re.compile(r"^/v1/(shop|partner)\.([A-Za-z]+/[A-Za-z]+)$")
API_METHODS = ("Zalo/ListRequestConsent", "Zalo/RequestConsent", "Zalo/CheckConsent", "Misc/CurrentAccount")
CONTROL_PREFIX = "/_simulator/"
#: A proxy or gateway answering 200 with an error body: an eTelecom-shaped error, a gateway's
#: ``errors`` list, or a listing without its ``paging`` (error-body faults).
ERROR_BODY_FAULTS = ("200_code", "200_errors", "200_no_paging")
FAULT_KINDS = ("500", "502", "503", "429", "403_exhausted", "drop", "truncate", "timeout", *ERROR_BODY_FAULTS)
#: Faults counted only where they apply (a 200 answer; a listing with consents).
_COUNTED_WHEN_APPLIED = ("truncate", "200_no_paging")
DEFAULT_TIMEOUT_FAULT_S = 5.0
LOG_LIMIT = 10_000

BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class FaultConfig:
    """Random faults applied to API requests (never to control endpoints), reproducible from ``seed``.

    :param error_rate: share of requests answered 500/502/503 before they reach the application
        (so a ``RequestConsent`` hit by one was certainly not created).
    :param drop_rate: share of requests processed, then answered with headers and part of the body
        before the TCP connection is closed (the ambiguous case: the server did the work).
    :param truncate_rate: share of 200 answers whose body is cut; ``Content-Length`` matches the cut
        body, so the client sees a well-formed 200 with invalid JSON.
    :param rate_limit_rate: chance per request that a burst of ``rate_limit_burst`` 429 answers starts.
    :param rate_limit_burst: consecutive 429 answers per burst.
    :param retry_after_s: value of the ``Retry-After`` header of 429 answers.
    :param exhausted_rate: share of 403 ``resource_exhausted`` answers (the platform's quota signal).
    :param error_body_rate: share of requests answered 200 with an error body (a proxy in front of
        the platform), split evenly among ``200_code`` (``{"code": "unavailable", "msg"}``, before
        the application runs), ``200_errors`` (``{"errors": [{"message"}]}``, before it runs) and
        ``200_no_paging`` (a ``ListRequestConsent`` page with its consents but no ``paging``; any
        other answer, or a page without consents, is served normally).
    :param seed: seed of the ``random.Random`` that decides every fault.
    """

    error_rate: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    rate_limit_rate: float = 0.0
    rate_limit_burst: int = 3
    retry_after_s: float = 1.0
    exhausted_rate: float = 0.0
    error_body_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        rates = ("error_rate", "drop_rate", "truncate_rate", "rate_limit_rate", "exhausted_rate", "error_body_rate")
        for name in rates:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.rate_limit_burst < 1:
            raise ValueError("rate_limit_burst must be >= 1")
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s must be >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from a JSON object (the control endpoint's body); unknown keys are refused."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown FaultConfig fields: {sorted(unknown)}")
        return replace(cls(), **dict(data))


class Stats:
    """Thread-safe request counters a test reads to prove what went over the wire.

    ``requests`` is keyed by ``(method, status)`` e.g. ``("Zalo/ListRequestConsent", 200)``, where
    method is ``Service/Method`` for API routes and the raw path otherwise; control endpoints are not
    counted there. ``connections`` counts accepted TCP connections (control calls included), so a
    test can prove a whole export used one keep-alive connection. ``rate_limited`` counts the 429
    answers of the per-key rate limit (``rate_limit_per_s``), apart from the random 429 faults.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.requests_by_method: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.connections = 0
        self.rate_limited = 0

    def record(self, method: str, status: int) -> None:
        """Count one answered API request."""
        with self._lock:
            self.requests[(method, status)] += 1
            self.requests_by_method[method] += 1

    def fault(self, kind: str) -> None:
        """Count one injected fault (when it is applied, before any sleep)."""
        with self._lock:
            self.faults[kind] += 1

    def connection(self) -> None:
        """Count one accepted TCP connection."""
        with self._lock:
            self.connections += 1

    def rate_limit(self) -> None:
        """Count one request refused by the per-key rate limit."""
        with self._lock:
            self.rate_limited += 1

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            for counter in (self.requests, self.requests_by_method, self.faults):
                counter.clear()
            self.connections = self.rate_limited = 0

    def count(self, method: str | None = None, status: int | None = None) -> int:
        """Return how many API requests matched ``method`` and/or ``status`` (``None`` = any)."""
        with self._lock:
            return sum(
                n
                for (m, s), n in self.requests.items()
                if (method is None or m == method) and (status is None or s == status)
            )

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe snapshot (``requests`` keys rendered as ``"method status"``)."""
        with self._lock:
            return {
                "requests": {f"{m} {s}": n for (m, s), n in sorted(self.requests.items())},
                "requests_by_method": dict(self.requests_by_method),
                "faults": dict(self.faults),
                "connections": self.connections,
                "rate_limited": self.rate_limited,
            }


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    fault: str | None = None


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class _ApiError(Exception):
    """An error answer in the platform's shape, ``{"code", "msg", "meta"}``."""

    def __init__(self, status: int, code: str, msg: str, meta: Mapping[str, str] | None = None) -> None:
        super().__init__(msg)
        self.answer = _Answer(status, _json_bytes({"code": code, "msg": msg, "meta": dict(meta or {})}))


ScriptedFault = str | tuple[str, float]


class _FaultEngine:
    """Decides the fault of each API request: scripted ones first, then the seeded random ones.

    Every request draws the same number of random numbers whatever happens, so a sequential run with
    the same seed meets the same faults at the same requests. (The error-body draws are made only when
    ``error_body_rate`` is set, so the sequences of configurations without it are the ones they were.)
    """

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self._script: deque[tuple[str, float | None]] = deque()
        self._by_method: dict[str, deque[tuple[str, float | None]]] = {}
        self.configure(config)

    def configure(self, config: FaultConfig) -> FaultConfig:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._burst_left = 0
            return config

    def script(self, faults: Iterable[ScriptedFault], method: str | None = None) -> None:
        parsed = []
        for fault in faults:
            kind, arg = (fault, None) if isinstance(fault, str) else (fault[0], float(fault[1]))
            if kind not in FAULT_KINDS and kind != "none":
                raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}, none")
            parsed.append((kind, arg))
        if method is not None and method not in API_METHODS:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(API_METHODS)}")
        with self._lock:
            (self._script if method is None else self._by_method.setdefault(method, deque())).extend(parsed)

    def clear_script(self) -> None:
        with self._lock:
            self._script.clear()
            self._by_method.clear()

    def next(self, method: str = "") -> tuple[str | None, float]:
        """Return the fault for the next API request of ``method`` (``None`` = none) and its argument."""
        with self._lock:
            script = self._by_method.get(method) or self._script
            if script:
                kind, arg = script.popleft()
                if arg is None:
                    arg = self.config.retry_after_s if kind == "429" else DEFAULT_TIMEOUT_FAULT_S
                return (None if kind == "none" else kind), arg
            cfg, rng = self.config, self._rng
            draws = [rng.random() for _ in range(6)]
            body_draws = (rng.random(), rng.random()) if cfg.error_body_rate > 0 else (1.0, 0.0)
            if self._burst_left > 0:
                self._burst_left -= 1
                return "429", cfg.retry_after_s
            if draws[0] < cfg.rate_limit_rate:
                self._burst_left = cfg.rate_limit_burst - 1
                return "429", cfg.retry_after_s
            chances = (
                (draws[1], cfg.error_rate, ("500", "502", "503")[int(draws[5] * 3) % 3]),
                (draws[2], cfg.exhausted_rate, "403_exhausted"),
                (draws[3], cfg.drop_rate, "drop"),
                (draws[4], cfg.truncate_rate, "truncate"),
                (body_draws[0], cfg.error_body_rate, ERROR_BODY_FAULTS[int(body_draws[1] * 3) % 3]),
            )
            return next(((kind, 0.0) for draw, rate, kind in chances if draw < rate), (None, 0.0))


_BUSY = "Hệ thống đang bận, vui lòng thử lại sau"
#: The error answers of the faults a gateway gives before the application runs (JSON bodies), by fault.
_GATEWAY_ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "500": (500, {"code": "internal", "msg": "Lỗi hệ thống", "meta": {}}),
    "503": (503, {"code": "unavailable", "msg": _BUSY, "meta": {}}),
    "403_exhausted": (403, {"code": "resource_exhausted", "msg": "Vượt quá giới hạn số lượng yêu cầu", "meta": {}}),
    "200_code": (200, {"code": "unavailable", "msg": _BUSY}),
    "200_errors": (200, {"errors": [{"message": "Service temporarily unavailable"}]}),
}
_TOO_MANY = _json_bytes({"code": "resource_exhausted", "msg": "Too Many Requests", "meta": {}})


def _too_many(seconds: float, fault: str | None = None) -> _Answer:
    """A 429 ``resource_exhausted`` whose ``Retry-After`` is ``seconds`` (``"1"``, or ``"0.5"`` when fractional)."""
    retry_after = str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
    return _Answer(429, _TOO_MANY, headers=(("Retry-After", retry_after),), fault=fault)


class _RateLimiter:
    """A token bucket per API key: ``rate_per_s`` requests per second, bursts up to one second's worth.

    A bucket holds at most ``max(1, rate_per_s)`` tokens and starts full; each request takes one,
    and time refills them at ``rate_per_s``. The clock is the simulator's (real time plus what
    :meth:`EtelecomSimulator.advance` added), so real traffic meets the limit in real time while a
    test moves time on without sleeping.
    """

    def __init__(self, clock: Callable[[], float], rate_per_s: float | None = None) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self.rate_per_s: float | None = None
        self.configure(rate_per_s)

    def configure(self, rate_per_s: float | None) -> None:
        """Set the rate (``None`` or 0 turns the limit off) and refill every bucket.

        The value is the ``rate_limit_per_s`` switch's, which checked it.
        """
        with self._lock:
            self.rate_per_s = float(rate_per_s) if rate_per_s else None
            self._buckets.clear()

    def take(self, key: str) -> float:
        """Take a token for ``key``: return 0 if it had one, else the seconds until it will have one."""
        with self._lock:
            rate = self.rate_per_s
            if rate is None:
                return 0.0
            capacity = max(1.0, rate)
            now = self._clock()
            tokens, since = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + max(0.0, now - since) * rate)
            if tokens >= 1.0 - 1e-9:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            # Rounded up to the millisecond: a client that waits exactly this long finds a token.
            return math.ceil((1.0 - tokens) / rate * 1000.0) / 1000.0


class _Server(ThreadingHTTPServer):
    """Threading server that counts connections and can cut every open one on stop."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: EtelecomSimulator) -> None:
        self.sim = sim
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_open_connections(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
            self.open_sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """One keep-alive connection; ``protocol_version`` HTTP/1.1 so clients reuse it across pages."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (~40 ms per answer), which would make every page look slow.
    disable_nagle_algorithm = True
    server_version = "eTelecomSimulator/1.0"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.sim.stats.connection()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: the default logger writes to stderr and a log must never hold the key."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """Write the ``Date`` header on the simulated clock (``sim.now()``), as a platform's front writes its own.

        ``clock_offset_s`` is not applied: it plays a platform whose consents are stamped off the clock
        its answers' ``Date`` header shows.
        """
        moment = self.server.sim.now().timestamp() if timestamp is None else timestamp
        return formatdate(moment, usegmt=True)

    # --------------------------------------------------------------- plumbing
    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, answer: _Answer) -> None:
        body, drop = answer.body, answer.fault == "drop"
        if answer.fault == "truncate":
            body = body[: max(1, len(body) // 2)]
        self.send_response(answer.status)
        headers = (("Content-Type", answer.content_type), ("Content-Length", str(len(body))), *answer.headers)
        for name, value in (*headers, ("Connection", "close")) if drop else headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if drop:
            self.close_connection = True
            self.wfile.write(body[: max(1, len(body) // 3)])
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def _dispatch(self) -> None:
        """Answer any HTTP method: ``http.server`` calls ``do_<METHOD>``, all of them this."""
        sim, verb = self.server.sim, self.command
        path = self.path.split("?", 1)[0]
        try:
            raw_body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        if path.startswith(CONTROL_PREFIX):
            self._send(sim._control(verb, path[len(CONTROL_PREFIX) :], raw_body))
            return
        match = API_PATH.match(path)
        method = match.group(2) if match and match.group(2) in API_METHODS else path
        answer = sim._api(verb, match, method, raw_body, self.headers)
        # Count before answering: a client that reads its answer and then checks the counters must
        # already find its request there.
        sim._log(method, path, raw_body, self.headers, answer)
        try:
            self._send(answer)
        except OSError:
            self.close_connection = True

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class EtelecomSimulator:
    """A local, faithful eTelecom Zalo Cloud API on loopback, for tests, demos and benchmarks.

    Use it as a context manager (``with EtelecomSimulator(...) as sim:``) or with :meth:`start` /
    :meth:`stop`. Seeded data is generated in the constructor, so :meth:`consents` works before the
    server starts; :meth:`start` after :meth:`stop` serves again on the same port, which lets a test
    cut the server mid-export and bring it back.

    :param consents: number of seeded consents.
    :param seed: seed of the data; the same seed gives the same consents.
    :param api_key: the Bearer key accepted on ``/v1/shop`` and ``/v1/partner``.
    :param start: first ``created_at`` of seeded data (inclusive, aware datetime).
    :param end: end of seeded ``created_at`` (exclusive); default: the 30 days ending now.
    :param host: bind address; loopback only, the simulator is not meant to be exposed.
    :param port: bind port; ``0`` picks a free one.
    :param latency_ms: added to every API request (real sleep).
    :param faults: random faults, see :class:`FaultConfig`.
    :param reply_window_s: simulated seconds before a pending ``S`` consent turns ``NS``.
    :param auto_reply_after_s: if set, consents made by ``RequestConsent`` get ``auto_reply_status``
        after this many simulated seconds (if that is inside the reply window).
    :param auto_reply_status: ``"P"`` or ``"N"``.
    :param oa_ids: OA ids to generate data for (default: three generated ids).
    :param phones: phone pool to generate data for (default: ``max(5, consents // 10)`` numbers).
    :param switches: the platform switches by name, e.g. ``listing_lag_s=30, date_to_inclusive=True``:
        every field of :class:`~.switches.PlatformSwitches` (``docs/simulator.md`` says what each
        plays; :data:`~.variants.PLATFORM_VARIANTS` names plausible sets). Each is also an attribute
        (``sim.listing_lag_s``); those of :data:`SETTINGS` can be set on a running simulator
        (``sim.listing_lag_s = 5``, :meth:`configure`, ``POST /_simulator/settings``), the seeding
        ones (``burst_*``, ``id_time_jitter_s``) cannot. ``rate_limit_per_s`` is the platform's rate
        limit: requests per second per API key (a token bucket holding one second's worth, at least
        one request), a request beyond it answered 429 ``resource_exhausted`` with a ``Retry-After``,
        counted on the simulator's clock, so a test refills it with :meth:`advance`.
    :raises TypeError: a switch name that does not exist.
    :raises ValueError: a bad switch value (the message names the switch).
    """

    def __init__(
        self,
        consents: int = 1000,
        seed: int = 7,
        api_key: str = "test-key-0123456789",
        start: datetime | None = None,
        end: datetime | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        faults: FaultConfig | None = None,
        reply_window_s: float = 86400.0,
        auto_reply_after_s: float | None = None,
        auto_reply_status: str = "P",
        oa_ids: Sequence[str] | None = None,
        phones: Sequence[str] | None = None,
        **switches: Any,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._store = Store(
            consents=consents,
            seed=seed,
            start=None if start is None else to_epoch(start, "start"),
            end=None if end is None else to_epoch(end, "end"),
            reply_window_s=reply_window_s,
            auto_reply_after_s=auto_reply_after_s,
            auto_reply_status=auto_reply_status,
            oa_ids=oa_ids,
            phones=phones,
            switches=PlatformSwitches.of(switches),
        )
        self.api_key = api_key
        self.host = host
        self._port = port
        self.latency_ms = latency_ms
        self.stats = Stats()
        self._fault_engine = _FaultEngine(faults or FaultConfig())
        self._rate_limiter = _RateLimiter(self._store.now_s, self._store.switches.rate_limit_per_s)
        self._log_entries: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.account_id = str(int(self._store.shop_id) + 1)

    # ------------------------------------------------------------- lifecycle
    def start(self) -> EtelecomSimulator:
        """Bind and serve in a background thread (idempotent); reuses the port of an earlier start.

        :return: ``self``, so ``sim = EtelecomSimulator(...).start()`` reads well.
        """
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self._port), self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="etelecom-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open keep-alive connections, as a real outage would (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EtelecomSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (the requested one before the first start)."""
        return self._port

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT``: where the control endpoints live."""
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The shop base URL, ``{root_url}/v1/shop``; calls are ``base_url + ".Zalo/ListRequestConsent"``."""
        return f"{self.root_url}/v1/shop"

    @property
    def partner_base_url(self) -> str:
        """The partner base URL, ``{root_url}/v1/partner``."""
        return f"{self.root_url}/v1/partner"

    # ---------------------------------------------------------------- config
    @property
    def faults(self) -> FaultConfig:
        """The random fault configuration; setting it restarts the fault random sequence."""
        return self._fault_engine.config

    @faults.setter
    def faults(self, config: FaultConfig | None) -> None:
        self._fault_engine.configure(config or FaultConfig())

    # ------------------------------------------------------------- switches
    def __getattr__(self, name: str) -> Any:
        """Read a platform switch as an attribute (``sim.listing_lag_s``); called only for names not found."""
        if name in SWITCH_NAMES and "_store" in self.__dict__:
            return getattr(self._store.switches, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        """Set a platform switch as an attribute (``sim.listing_lag_s = 5``): :meth:`configure` of one."""
        if name not in SWITCH_NAMES:
            object.__setattr__(self, name, value)
        elif name not in SETTINGS:
            raise AttributeError(f"{name} is fixed when the data is seeded")
        else:
            self.configure(**{name: value})

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *SWITCH_NAMES})

    @property
    def switches(self) -> PlatformSwitches:
        """Every platform switch in force (frozen; change them with :meth:`configure`)."""
        return self._store.switches

    def settings(self) -> dict[str, Any]:
        """Return the platform switches a running simulator can change (:data:`SETTINGS`, JSON-safe)."""
        return self._store.switches.settings()

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change several platform switches at once (names of :data:`SETTINGS`); all are checked first.

        Setting ``rate_limit_per_s`` (even to the value it has) refills every key's bucket.

        :return: :meth:`settings` after the change.
        :raises ValueError: an unknown name or a bad value (nothing is changed then).
        """
        switches = self._store.configure(**settings)
        if "rate_limit_per_s" in settings:
            self._rate_limiter.configure(switches.rate_limit_per_s)
        return switches.settings()

    @property
    def auto_reply_after_s(self) -> float | None:
        """Auto-reply delay for later ``RequestConsent`` consents (settable)."""
        return self._store.auto_reply_after_s

    @auto_reply_after_s.setter
    def auto_reply_after_s(self, value: float | None) -> None:
        self._store.auto_reply_after_s = value

    @property
    def auto_reply_status(self) -> str:
        """The answer auto-replies give, ``"P"`` or ``"N"`` (settable)."""
        return self._store.auto_reply_status

    @auto_reply_status.setter
    def auto_reply_status(self, value: str) -> None:
        if value not in ("P", "N"):
            raise ValueError("auto_reply_status must be 'P' or 'N'")
        self._store.auto_reply_status = value

    @property
    def oa_ids(self) -> list[str]:
        """The OA ids data is generated for."""
        return list(self._store.oa_ids)

    @property
    def phones(self) -> list[str]:
        """The phone pool data is generated for."""
        return list(self._store.phones)

    @property
    def shop_id(self) -> str:
        """The shop id every consent carries."""
        return self._store.shop_id

    # ---------------------------------------------------------- test control
    def script_faults(self, faults: Iterable[ScriptedFault], method: str | None = None) -> None:
        """Give the next API requests these faults, in order, before random faults apply again.

        With ``method`` (``"Zalo/RequestConsent"``, ...), only that method's next requests get them,
        before the faults scripted for any request: a test can lose the answer of a send whatever
        the listings before it.

        Kinds: ``"500"``, ``"502"``, ``"503"``, ``"429"``, ``"403_exhausted"``, ``"drop"``,
        ``"truncate"``, ``"timeout"``, the error bodies in a 200 (``"200_code"``, ``"200_errors"``,
        ``"200_no_paging"``: see :class:`FaultConfig`) and ``"none"`` (a normal answer). A tuple ``("timeout", 2.0)``
        sets the sleep of a timeout, ``("429", 0.5)`` the ``Retry-After`` of a 429.
        """
        self._fault_engine.script(faults, method)

    def clear_scripted_faults(self) -> None:
        """Drop scripted faults not yet used."""
        self._fault_engine.clear_script()

    def now(self) -> datetime:
        """Return the simulated now: real time plus everything :meth:`advance` added."""
        return datetime.fromtimestamp(self._store.now_s(), tz=timezone.utc)

    def advance(self, seconds: float) -> datetime:
        """Move the simulated clock forward (drives auto-replies and ``NS`` expiry) without sleeping.

        :return: the new simulated now.
        """
        return datetime.fromtimestamp(self._store.advance(seconds), tz=timezone.utc)

    def consents(self, exact: bool = False, visible_only: bool = False) -> list[dict[str, Any]]:
        """Return every consent as the API would serve it (copies, newest first, listing lag ignored).

        :param exact: write the times exactly (microseconds), whatever ``created_at_precision`` says:
            the values the date filters compare with, for computing what a window must hold.
        :param visible_only: only the consents a listing can return now: past their listing lag and
            not dropped after the LIMIT (``drop_after_limit``). What an exact export must hold.
        """
        return self._store.all(exact, visible_only)

    def consent(self, consent_id: str | int) -> dict[str, Any] | None:
        """Return one consent's wire dict, or ``None``."""
        return self._store.get(consent_id)

    def reply(self, consent_id: str | int, reply_status: str) -> dict[str, Any]:
        """Answer as the customer, now: ``"P"`` agrees (valid 30 days), ``"N"`` refuses.

        :raises KeyError: unknown consent.
        :raises ValueError: other status.
        """
        return self._store.reply(consent_id, reply_status)

    def insert_consents(self, n: int, created_at: datetime | None = None) -> list[dict[str, Any]]:
        """Insert ``n`` generated consents, e.g. mid-export.

        :param created_at: kept exactly for all ``n``; default: the simulated now (each with its own
            seeded fraction under ``fractional_times``).
        """
        return self._store.insert(n, created_at)

    def add_consent(
        self,
        *,
        unknown_fields: Mapping[str, Any] | None = None,
        omit_fields: Collection[str] = (),
        **fields: Any,
    ) -> dict[str, Any]:
        """Insert one consent with the given wire fields set and the others generated.

        For boundary tests, e.g. ``sim.add_consent(created_at=window_start)``; for schema tests,
        ``sim.add_consent(unknown_fields={"campaign_id": "42"}, omit_fields=["delivery_time"])`` serves a
        field the provider does not know and leaves a known one out.
        """
        return self._store.add(fields, unknown_fields=unknown_fields, omit_fields=omit_fields)

    def delete_consents(self, consent_ids: Iterable[str | int]) -> int:
        """Remove consents, e.g. mid-listing (what an offset cursor then skips); all or none.

        :return: how many were removed.
        :raises KeyError: an unknown id (nothing is removed then).
        """
        return self._store.delete(consent_ids)

    def fail_send_to(
        self,
        phone: str,
        error_code: int = SEND_ERRORS[0][0],
        error_message: str = SEND_ERRORS[0][1],
        *,
        delivered: bool = False,
    ) -> None:
        """Make ``RequestConsent`` to ``phone`` return a consent with ``status`` ``N`` and this error.

        :param delivered: a guess, not documented: eTelecom's call to Zalo timed out while Zalo delivered
            the message. The answer says ``N``; the consent stored and listed says ``P``, charged.
        """
        self._store.fail_send_to(phone, error_code, error_message, delivered)

    def reset_stats(self) -> None:
        """Zero the counters and clear the request log."""
        self.stats.reset()
        with self._log_lock:
            self._log_entries.clear()

    @property
    def requests_log(self) -> list[dict[str, Any]]:
        """Recorded API requests, oldest first (the last 10,000).

        Each entry has ``method``, ``path``, ``body``, ``headers``, ``status``, ``fault`` and ``time``.

        ``Authorization`` is redacted to ``"Bearer ***"``: a test log must never hold the key.
        """
        with self._log_lock:
            return list(self._log_entries)

    # -------------------------------------------------------------- internals
    def _log(self, method: str, path: str, raw_body: bytes, headers: Any, answer: _Answer) -> None:
        self.stats.record(method, answer.status)
        try:
            body: Any = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = raw_body.decode("utf-8", "replace")
        redacted = {k: ("Bearer ***" if k.lower() == "authorization" else v) for k, v in headers.items()}
        entry = {
            "method": method,
            "path": path,
            "body": body,
            "headers": redacted,
            "status": answer.status,
            "fault": answer.fault,
            "time": time.time(),
        }
        with self._log_lock:
            self._log_entries.append(entry)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _api(self, verb: str, match: re.Match[str] | None, method: str, raw: bytes, headers: Any) -> _Answer:
        """Answer one API request: faults first (as a gateway would), then route, auth and method."""
        self._sleep(self.latency_ms / 1000.0)
        fault, arg = self._fault_engine.next(method)
        if fault is not None and fault not in _COUNTED_WHEN_APPLIED:
            self.stats.fault(fault)
        if fault == "timeout":
            self._sleep(arg)
        elif fault == "429":
            return _too_many(arg, fault)
        elif fault == "502":
            return _Answer(502, BAD_GATEWAY_HTML, content_type="text/html", fault=fault)
        elif fault in _GATEWAY_ERRORS:
            status, body = _GATEWAY_ERRORS[fault]
            return _Answer(status, _json_bytes(body), fault=fault)
        try:
            answer = self._route(verb, match, method, raw, headers)
        except _ApiError as err:
            answer = err.answer
        except Exception:  # the simulator must answer like a server, not hang the client
            answer = _ApiError(500, "internal", "Lỗi hệ thống (simulator)").answer
        if fault in ("drop", "timeout"):
            answer.fault = fault
        elif fault == "truncate" and answer.status == 200:
            self.stats.fault(fault)
            answer.fault = fault
        elif fault == "200_no_paging" and method == "Zalo/ListRequestConsent" and answer.status == 200:
            page = json.loads(answer.body)
            if page.get("consents"):
                del page["paging"]
                self.stats.fault(fault)
                answer.body, answer.fault = _json_bytes(page), fault
        return answer

    def _route(self, verb: str, match: re.Match[str] | None, method: str, raw: bytes, headers: Any) -> _Answer:
        if verb != "POST":
            raise _ApiError(405, "bad_route", f"unsupported method {verb} (only POST is allowed)")
        if match is None or method not in API_METHODS:
            raise _ApiError(404, "bad_route", f"no handler for path {method!r}")
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise _ApiError(404, "bad_route", f"unexpected Content-Type: {content_type!r}")
        scheme, _, key = (headers.get("Authorization") or "").partition(" ")
        token = key.strip().encode()
        if scheme.lower() != "bearer" or not key or not hmac.compare_digest(token, self.api_key.encode()):
            raise _ApiError(401, "unauthenticated", "Yêu cầu xác thực: api key không hợp lệ")
        wait = self._rate_limiter.take(key.strip())
        if wait > 0:
            self.stats.rate_limit()
            return _too_many(wait)
        try:
            body = json.loads(raw)
        except ValueError:
            raise _ApiError(400, "malformed", "the json request could not be decoded") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "malformed", "the json request must be an object")
        try:
            return _Answer(200, _json_bytes(self._handle(method, match.group(1), body)))
        except InvalidArgument as exc:
            raise _ApiError(400, "invalid_argument", exc.msg, {"field": exc.field}) from None
        except AlreadyExists as exc:
            raise _ApiError(409, "already_exists", exc.msg) from None

    def _handle(self, method: str, account: str, body: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        if method == "Zalo/ListRequestConsent":
            flt = parse_filter(body.get("filter"))
            switches = store.switches
            paging = parse_paging(
                body.get("paging"), switches.accepted_sorts, switches.ignored_sorts, switches.page_cap
            )
            items, next_cursor, prev_cursor = store.list_page(flt, paging)
            echo: dict[str, Any] = {"after": paging.raw_after, "before": paging.raw_before}
            if switches.limit_echo != "absent":
                echo["limit"] = paging.limit if switches.limit_echo == "effective" else paging.asked_limit
            echo.update(next=next_cursor, prev=prev_cursor, sort=paging.raw_sort)
            return {"consents": items or (None if switches.null_empty_page else []), "paging": echo}
        if method in ("Zalo/RequestConsent", "Zalo/CheckConsent"):
            oa = str(parse_int64(_required(body, "oa_id"), "oa_id"))
            phone = normalize_phone(_required(body, "phone"))
            if method == "Zalo/RequestConsent":
                call_type = _required(body, "call_type", CALL_TYPES)
                return store.request_consent(oa, phone, call_type, _required(body, "reason_code", REASON_CODES))
            error, expired_time, message = store.check(oa, phone)
            return {"error": error, "expired_time": expired_time, "message": message}
        account_id = int(self.account_id) if store.switches.numeric_ids else self.account_id
        return {"id": account_id, "name": "Simulated Shop", "type": account}

    def _control(self, verb: str, name: str, raw: bytes) -> _Answer:
        """Serve a test-only ``/_simulator/<name>`` endpoint (no auth, no faults, not counted)."""
        try:
            body: Any = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            routes: dict[tuple[str, str], Callable[[], Any]] = {
                ("GET", "stats"): self.stats.as_dict,
                ("POST", "reset_stats"): self.reset_stats,
                ("GET", "requests_log"): lambda: {"requests": self.requests_log},
                ("GET", "now"): lambda: {"now": _iso(self.now())},
                ("POST", "advance"): lambda: {"now": _iso(self.advance(float(body["seconds"])))},
                ("POST", "reply"): lambda: self.reply(str(body["consent_id"]), str(body["reply_status"])),
                ("POST", "faults"): lambda: asdict(self._fault_engine.configure(FaultConfig.from_dict(body))),
                ("POST", "script_faults"): lambda: self.script_faults(_scripted(body), body.get("method")),
                ("POST", "insert"): lambda: {
                    "consents": self._store.insert(
                        int(body.get("count", 1)), str(body["created_at"]) if body.get("created_at") else None
                    )
                },
                ("POST", "delete"): lambda: {"deleted": self.delete_consents(_list(body, "ids"))},
                ("GET", "consents"): lambda: {"consents": self.consents()},
                ("POST", "consents"): lambda: {
                    "consents": self.consents(bool(body.get("exact")), bool(body.get("visible_only")))
                },
                ("GET", "settings"): self.settings,
                ("POST", "settings"): lambda: self.configure(**body),
            }
            handler = routes.get((verb, name))
            if handler is None:
                status = 405 if any(route_name == name for _, route_name in routes) else 404
                raise _ApiError(status, "bad_route", f"no control endpoint {verb} /_simulator/{name}")
            answer = handler()
            return _Answer(200, _json_bytes({} if answer is None else answer))
        except _ApiError as err:
            error = err
        except NotFound as exc:
            error = _ApiError(404, "not_found", f"no consent {exc.args[0]}")
        except KeyError as exc:
            error = _ApiError(400, "invalid_argument", f"missing field {exc.args[0]}")
        except (ValueError, TypeError, InvalidArgument) as exc:
            error = _ApiError(400, "invalid_argument", str(exc))
        return error.answer


def _required(body: Mapping[str, Any], field: str, allowed: Collection[str] | None = None) -> Any:
    """Return ``body[field]``, which must be set (and one of ``allowed``, if given)."""
    value = body.get(field)
    if value in (None, ""):
        raise InvalidArgument(field, f"{field}: bắt buộc")
    if allowed is not None and value not in allowed:
        raise InvalidArgument(field, f"{field}: giá trị không hợp lệ: {value!r}")
    return value


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _list(body: Mapping[str, Any], field: str) -> list[Any]:
    if not isinstance(body[field], list):
        raise ValueError(f"{field} must be a list")
    return list(body[field])


def _scripted(body: Mapping[str, Any]) -> list[ScriptedFault]:
    return [item if isinstance(item, str) else (str(item[0]), float(item[1])) for item in _list(body, "faults")]
