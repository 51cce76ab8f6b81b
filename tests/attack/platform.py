"""A small, programmable eTelecom for red-team tests: a SQL-cursor backend over real loopback HTTP.

The simulator plays the platform's documented rules and one switch per inferred behaviour; the
attacks here need behaviours it has no switch for (a cursor built from the SQL rows, a value cursor
at a finer precision than the times shown, rows dropped in clusters, a RequestConsent that lies).
:class:`MiniPlatform` plays a Go/Twirp handler over ``SELECT ... ORDER BY created_at, id LIMIT n``:

* rows hold their stored time in microseconds; answers show it at ``shown`` precision (``"s"``:
  ``time.RFC3339``, ``"ms"``, ``"us"``);
* ``cursor`` is what ``next`` holds: ``keyset`` ``(created_at, id)``, ``value_lt`` (the stored
  ``created_at`` alone, next page strictly past it), ``offset`` or ``page`` (a page number, read back
  times the ``limit`` of the request that sends it: a cursor bound to the limit);
* ``cursor_from`` is the row the cursor is built from: ``"sql"`` (the last row the SQL ``LIMIT``
  returned, as a handler that pages its query) or ``"served"`` (the last consent answered);
* rows with ``hidden=True`` are taken by the SQL ``LIMIT`` and then dropped in code (soft-deleted,
  another OA the key may not see): pages come back short, or empty, mid-listing;
* ``order_by_id`` serves the ``created_at`` sorts in id order (a keyset on the id);
* ``hooks`` lets a test replace any answer (``hook(method, body, n) -> answer or None``);
* ``cursor_precision`` (``"s"``, ``"ms"``, ``"us"``) is the precision of the time a ``value_lt`` or
  ``keyset`` cursor holds (a handler writing ``UnixMilli()`` or ``time.RFC3339`` into its cursor);
* ``updated_at`` sorts order by the ``updated_at`` a row shows (``fields["updated_at"]``, else its
  ``created_at``), as parsed from the answer: a coarser or zoned ``updated_at`` ties or shifts as shown;
* ``tie_order="shuffle"`` orders rows sharing a stored time anew at every request (``ORDER BY
  created_at`` alone, no tiebreaker: Postgres may return ties in any order, differently per ``LIMIT``/``OFFSET``).

Nothing in the client is mocked: the client talks HTTP to this server.
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

US = 1_000_000
UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KEY = "attack-SECRET-key-5d1e0c"
OA = "4239023413265392134"
PHONE = "84912000444"
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

Answer = tuple[int, Any, dict[str, str]]
Hook = Callable[[str, dict[str, Any], int], "Answer | None"]


def to_us(text: str) -> int:
    """Read an RFC 3339 time (any fraction, any offset) as exact epoch microseconds."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not RFC 3339: {text!r}")
    day, hh, mm, ss, frac, zone = match.groups()
    offset = timedelta(0)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    moment = datetime.fromisoformat(f"{day}T{hh}:{mm}:{ss}").replace(tzinfo=UTC) - offset
    micros = int(((frac or ".")[1:] + "000000")[:6])
    return int((moment - EPOCH).total_seconds()) * US + micros


def show(micros: int, precision: str = "us") -> str:
    """Write epoch microseconds as RFC 3339 UTC at ``precision`` (``s``, ``ms`` or ``us``), as Go does."""
    seconds, fraction = divmod(micros, US)
    text = (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if precision == "ms":
        fraction -= fraction % 1000
    if precision != "s" and fraction:
        text += f".{fraction:06d}".rstrip("0")
    return text + "Z"


def at(moment: datetime) -> int:
    """Epoch microseconds of an aware datetime."""
    delta = moment - EPOCH
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


@dataclass
class Row:
    """One stored consent: its id, its stored ``created_at`` (epoch microseconds), what else it holds."""

    id: int
    us: int
    hidden: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


class MiniPlatform:
    """A programmable eTelecom (``ListRequestConsent``, ``RequestConsent``) over loopback HTTP."""

    def __init__(
        self,
        rows: Iterable[Row] = (),
        *,
        api_key: str = KEY,
        shown: str = "us",
        cursor: str = "keyset",
        cursor_from: str = "sql",
        cap: int = 100,
        ignore_limit: bool = False,
        next_on_empty: bool = True,
        order_by_id: bool = False,
        cursor_precision: str = "us",
        tie_order: str = "id",
        seed: int = 0,
    ) -> None:
        self.rows: list[Row] = list(rows)
        self.api_key = api_key
        self.shown = shown
        self.cursor = cursor
        self.cursor_from = cursor_from
        self.cap = cap
        self.ignore_limit = ignore_limit
        self.next_on_empty = next_on_empty
        self.order_by_id = order_by_id
        self.cursor_precision = cursor_precision
        self.tie_order = tie_order
        self.rng = random.Random(seed)
        self._limit = 100
        self._sort_name = "created_at"
        self.hooks: list[Hook] = []
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.sends = 0
        self.next_id = 9_000_000_000_000_000_000
        self._lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                method = self.path.rsplit("/", 1)[-1]
                body = json.loads(raw) if raw else {}
                with platform._lock:
                    platform.log.append((method, body))
                    n = sum(1 for m, _ in platform.log if m == method)
                    answer = platform.answer(method, body, n, self.headers.get("Authorization", ""))
                status, payload, headers = answer
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/shop"

    # -- plumbing -------------------------------------------------------------------------------

    def __enter__(self) -> MiniPlatform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def connection_json(self) -> str:
        return json.dumps({"conn_type": "etelecom", "host": self.base_url, "password": self.api_key, "extra": {}})

    def bodies(self, method: str = "ListRequestConsent") -> list[dict[str, Any]]:
        return [body for m, body in self.log if m == method]

    def visible_ids(self, low: datetime | None = None, high: datetime | None = None) -> set[str]:
        """The ids an exact listing of ``[low, high)`` must yield (by stored time; shown is floor of it)."""
        lo = None if low is None else at(low)
        hi = None if high is None else at(high)
        return {
            str(r.id) for r in self.rows if not r.hidden and (lo is None or r.us >= lo) and (hi is None or r.us < hi)
        }

    # -- the platform ---------------------------------------------------------------------------

    def answer(self, method: str, body: dict[str, Any], n: int, auth: str) -> Answer:
        for hook in self.hooks:
            answer = hook(method, body, n)
            if answer is not None:
                return answer
        if auth != f"Bearer {self.api_key}":
            return 401, {"code": "unauthenticated", "msg": "invalid key"}, {}
        if method == "ListRequestConsent":
            return 200, self.list_page(body), {}
        if method == "RequestConsent":
            return 200, self.request_consent(body), {}
        return 404, {"code": "bad_route", "msg": "no such method"}, {}

    def wire(self, row: Row) -> dict[str, Any]:
        shown = show(row.us, self.shown)
        base = {
            "id": str(row.id),
            "shop_id": "1234",
            "user_id": "5678",
            "oa_id": OA,
            "phone": PHONE,
            "call_type": "audio",
            "reason_code": "order_appointment_confirmation",
            "reply_status": "S",
            "status": "P",
            "delivery_status": "received",
            "delivery_time": shown,
            "is_charged": True,
            "error_code": 0,
            "error_message": "",
            "created_at": shown,
            "updated_at": shown,
            "expires_at": show(row.us + 86400 * US, self.shown),
        }
        return {**base, **row.fields}

    def _matches(self, row: Row, flt: dict[str, Any], lo: int | None, hi: int | None) -> bool:
        if (lo is not None and row.us < lo) or (hi is not None and row.us >= hi):
            return False
        wire = self.wire(row)
        return all(
            str(wire.get(name)) == str(value) for name, value in flt.items() if name not in ("date_from", "date_to")
        )

    def sort_us(self, row: Row, name: str) -> int:
        """The stored value a sort on ``name`` orders by (``updated_at``: the time the row shows)."""
        return to_us(self.wire(row)["updated_at"]) if name == "updated_at" else row.us

    def encode(self, row: Row, offset: int) -> str:
        unit = {"s": US, "ms": 1000, "us": 1}[self.cursor_precision]
        stored = self.sort_us(row, self._sort_name)
        value = stored - stored % unit
        keyset = [row.id, row.id] if self.order_by_id and self._sort_name != "updated_at" else [value, row.id]
        page = offset // max(1, self._limit)  # "page": the page number, read back times the limit asked then
        raw = {"keyset": keyset, "value_lt": [value], "offset": [offset], "page": [page]}[self.cursor]
        return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode()

    def list_page(self, body: dict[str, Any]) -> dict[str, Any]:
        flt = body.get("filter") or {}
        paging = body.get("paging") or {}
        sort = paging.get("sort") or "-created_at"
        descending = sort.startswith("-")
        lo = to_us(flt["date_from"]) if flt.get("date_from") else None
        hi = to_us(flt["date_to"]) if flt.get("date_to") else None
        name = self._sort_name = sort.lstrip("-")
        if name == "updated_at":
            order: Callable[[Row], tuple[int, int]] = lambda r: (self.sort_us(r, name), r.id)  # noqa: E731
        else:
            order = (lambda r: (r.id, r.id)) if self.order_by_id else (lambda r: (r.us, r.id))
        rows = sorted((r for r in self.rows if self._matches(r, flt, lo, hi)), key=order, reverse=descending)
        if self.tie_order == "shuffle":
            draw = {r.id: self.rng.random() for r in rows}
            rows = sorted(rows, key=lambda r: (order(r)[0], draw[r.id]), reverse=descending)
        start = 0
        limit = self.cap if self.ignore_limit else min(int(paging.get("limit") or 100), self.cap)
        if paging.get("after"):
            cursor = json.loads(base64.urlsafe_b64decode(paging["after"]))
            if self.cursor == "offset":
                start = cursor[0]
            elif self.cursor == "page":
                start = cursor[0] * limit
            elif self.cursor == "keyset":
                key = tuple(cursor)
                rows = [r for r in rows if (order(r) < key if descending else order(r) > key)]
            else:
                rows = [r for r in rows if (order(r)[0] < cursor[0] if descending else order(r)[0] > cursor[0])]
        self._limit = limit
        sql = rows[start : start + limit]
        served = [r for r in sql if not r.hidden]
        source = sql if self.cursor_from == "sql" else served
        next_cursor = self.encode(source[-1], start + len(sql)) if source else ""
        if not served and not self.next_on_empty:
            next_cursor = ""
        return {
            "consents": [self.wire(r) for r in served],
            "paging": {"limit": limit, "next": next_cursor, "prev": "", "sort": sort},
        }

    def request_consent(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a consent now (its stored time: the newest row's + 1 s) and answer it."""
        self.sends += 1
        self.next_id += 1
        newest = max((r.us for r in self.rows), default=at(datetime.now(UTC)))
        row = Row(
            self.next_id,
            newest + US,
            fields={
                "phone": body.get("phone"),
                "oa_id": body.get("oa_id"),
                "call_type": body.get("call_type"),
                "reason_code": body.get("reason_code"),
            },
        )
        self.rows.append(row)
        return self.wire(row)
