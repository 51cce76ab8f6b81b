"""The eTelecom hook: turns an Airflow Connection into an :class:`EtelecomClient`.

All HTTP, retry, error and paging behaviour lives in :mod:`airflow_provider_etelecom.client`;
this module only reads the connection (base URL, API key, account type, timeout, retries) and
offers the client's calls with Airflow's conventions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any, Unpack

from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_etelecom import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_provider_etelecom.client import (
    CallType,
    ClientConfig,
    Consent,
    ConsentCheck,
    ConsentFilters,
    ConsentListing,
    ConsentPage,
    ConsentQuery,
    EtelecomClient,
    RateLimitGate,
    ReasonCode,
)
from airflow_provider_etelecom.client.config import base_url_from_fields
from airflow_provider_etelecom.client.parallel import ParallelStats, iter_consent_pages_parallel
from airflow_provider_etelecom.client.validation import MAX_PAGE_SIZE, validate_number
from airflow_provider_etelecom.exceptions import EtelecomAuthError, EtelecomConfigError, EtelecomError

__all__ = ["EtelecomHook"]

log = logging.getLogger(__name__)

_EXTRA_PREFIX = "extra__etelecom__"


def _extra_value(extra: dict[str, Any], name: str) -> Any:
    """Read an extra field stored plainly (``timeout``) or with the UI's old prefix."""
    for key in (name, f"{_EXTRA_PREFIX}{name}"):
        value = extra.get(key)
        if value not in (None, ""):
            return value
    return None


def _connection_number(name: str, value: Any, *, whole: bool) -> Any:
    """Read a number from the connection form or extra (the UI may store it as text); ranges are checked by
    :meth:`ClientConfig.build`."""
    return validate_number(name, value, whole=whole, optional=True, from_text=True, error=EtelecomConfigError)


def _bool(name: str, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no", ""):
        return value.strip().lower() in ("true", "1", "yes")
    raise EtelecomConfigError(f"The connection's {name!r} is {value!r}; it must be true or false.")


class _RereadingClient(EtelecomClient):
    """An :class:`EtelecomClient` that reads its connection once more when the key is refused.

    The one re-read mechanism of the provider, for operators, sensors and the trigger alike
    (:attr:`EtelecomHook.client` and :meth:`EtelecomHook.aget_client` both build one): a key rotated
    in the connection while a task runs is picked up by reading the connection again, through the
    same :meth:`EtelecomHook.config_from_connection`.
    It happens inside :meth:`call`, so a listing refused on page 40 continues on page 40 with the
    new key. A key that is refused again after the re-read, or a connection that still holds
    the refused key, is final: the :class:`EtelecomAuthError` is raised (and the task fails
    without Airflow retries). A 401/403 answer means the platform refused the request before
    acting on it, so re-sending even a ``RequestConsent`` with the new key cannot send twice.

    :param reread: reads the connection again and returns its settings.
    :param conn_id: the connection's id, for messages.
    """

    def __init__(
        self, config: ClientConfig, *, reread: Callable[[], ClientConfig], conn_id: str, **kwargs: Any
    ) -> None:
        super().__init__(config, **kwargs)
        self._reread = reread
        self._conn_id = conn_id

    def call(
        self,
        endpoint: str,
        body: dict[str, Any],
        *,
        idempotent: bool = True,
        parse: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Call as :meth:`EtelecomClient.call`; after a refused key, read the connection once and try again."""
        try:
            return super().call(endpoint, body, idempotent=idempotent, parse=parse)
        except EtelecomAuthError as error:
            fresh = self._reread()
            if fresh.api_key == self.config.api_key:
                error.message = (
                    f"{error.message} The connection {self._conn_id!r} was read again and holds the same key."
                )
                error.args = (error.message,)
                raise
            log.warning("eTelecom refused the key; connection %r holds a new one, using it.", self._conn_id)
            self.config = fresh
            self._session.headers["Authorization"] = f"Bearer {fresh.api_key}"
        try:
            return super().call(endpoint, body, idempotent=idempotent, parse=parse)
        except EtelecomAuthError as again:
            again.message = (
                f"{again.message} The connection {self._conn_id!r} was read again after a first refusal, and "
                f"its new key was refused too."
            )
            again.args = (again.message,)
            raise


class EtelecomHook(BaseHook):
    """Talk to eTelecom's Zalo Cloud API through an Airflow connection of type ``etelecom``.

    Connection fields: **Base URL** (host; e.g. ``https://api.etelecom.vn/v1/shop``, or
    ``https://api.etelecom.vn`` to get the account type's path, empty for the default of the account
    type; see :func:`base_url_from_fields` for host/schema/port), **API key** (password), and in the
    extra **Account type**
    (``shop``/``partner``), **Timeout** (s), **Max retries**, **Max retry time** (s); optionally
    ``allow_insecure_http`` for plain http to a non-loopback host.

    :param etelecom_conn_id: the connection id.
    :param timeout: override the connection's read timeout, in seconds.
    :param max_retries: override the connection's retries per request.
    :param max_retry_time: override the connection's retry budget per request, in seconds.
    :param normalize_phones: normalise Vietnamese phone numbers to the ``84…`` form.
    :param timezone: IANA zone for naive datetimes passed as filters (else they are refused).
    :param gate: a rate-limit pause shared with other hooks' clients (parallel exports share one,
        so a 429 seen by one slows all of them).
    """

    conn_name_attr = "etelecom_conn_id"
    default_conn_name = "etelecom_default"
    conn_type = "etelecom"
    hook_name = "eTelecom"

    def __init__(
        self,
        etelecom_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_retry_time: float | None = None,
        normalize_phones: bool = True,
        timezone: str | None = None,
        gate: RateLimitGate | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.etelecom_conn_id = etelecom_conn_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_time = max_retry_time
        self.normalize_phones = normalize_phones
        self.timezone = timezone
        self.gate = gate

    # -- connection -> client ----------------------------------------------------------------

    def config_from_connection(self, conn: Any) -> ClientConfig:
        """Validate an Airflow ``Connection`` and return the client settings.

        :raises EtelecomConfigError: naming the wrong field and how to fix it.
        """
        extra = conn.extra_dejson if conn.extra else {}
        base_url, composed = base_url_from_fields(conn.host, conn.schema, conn.port)
        try:
            return ClientConfig.build(
                base_url=base_url,
                api_key=conn.password,
                account_type=_extra_value(extra, "account_type"),
                timeout=self.timeout
                if self.timeout is not None
                else _connection_number("timeout", _extra_value(extra, "timeout"), whole=False),
                max_retries=self.max_retries
                if self.max_retries is not None
                else _connection_number("max_retries", _extra_value(extra, "max_retries"), whole=True),
                max_retry_time=self.max_retry_time
                if self.max_retry_time is not None
                else _connection_number("max_retry_time", _extra_value(extra, "max_retry_time"), whole=False),
                allow_insecure_http=_bool("allow_insecure_http", _extra_value(extra, "allow_insecure_http")),
                normalize_phones=self.normalize_phones,
                timezone=self.timezone,
                platform_filter_zone=_extra_value(extra, "platform_filter_zone"),
                platform_shown_zone=_extra_value(extra, "platform_shown_zone"),
                date_filters_on_client=_bool("date_filters_on_client", _extra_value(extra, "date_filters_on_client")),
            )
        except EtelecomConfigError as error:
            if not composed or "Base URL" not in error.message:
                raise
            raise EtelecomConfigError(
                f"{error.message} (Base URL made of the connection's schema {conn.schema!r}, host "
                f"{conn.host!r} and port {conn.port!r})"
            ) from None

    def _config(self, conn: Any) -> ClientConfig:
        try:
            return self.config_from_connection(conn)
        except EtelecomConfigError as error:
            raise EtelecomConfigError(f"Connection {self.etelecom_conn_id!r}: {error.message}") from None

    def _make_client(self, conn: Any) -> EtelecomClient:
        return self._rereading_client(self._config(conn), self.gate)

    @cached_property
    def _reread_lock(self) -> threading.Lock:
        return threading.Lock()

    def _reread_config(self) -> ClientConfig:
        """Read the connection again (a key may have been rotated); parallel workers take turns."""
        with self._reread_lock:
            return self._config(self.get_connection(self.etelecom_conn_id))

    def _rereading_client(self, config: ClientConfig, gate: RateLimitGate | None) -> EtelecomClient:
        return _RereadingClient(config, gate=gate, reread=self._reread_config, conn_id=self.etelecom_conn_id)

    @cached_property
    def client(self) -> EtelecomClient:
        """The client for this hook's connection, built once (one HTTP session per hook).

        When the key is refused it reads the connection once more and, if the key changed (a
        rotation), goes on with the new one (see :class:`_RereadingClient`).
        """
        return self._rereading_client(self._config(self.get_connection(self.etelecom_conn_id)), self.gate)

    def get_conn(self) -> EtelecomClient:
        """Return the :class:`EtelecomClient` for this hook's connection."""
        return self.client

    async def aget_client(self) -> EtelecomClient:
        """Build a fresh client, reading the connection without blocking the event loop.

        Airflow 3 forbids synchronous connection lookups in the triggerer; the compat provider's
        ``get_async_connection`` uses ``aget_connection`` where it is safe (3.3.2+) and a worker
        thread otherwise (2.x, and 3.x releases whose ``aget_connection`` could deadlock the
        loop). A fresh client each time lets a trigger pick up a rotated key.
        """
        conn = await get_async_connection(self.etelecom_conn_id, hook=self)
        # Building the client (a requests.Session) costs CPU; keep it off the event loop too.
        return await asyncio.to_thread(self._make_client, conn)

    def close(self) -> None:
        """Close the HTTP session if one was opened."""
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    # -- API -----------------------------------------------------------------------------------

    def build_query(self, query: ConsentQuery | None = None, /, **arguments: Unpack[ConsentListing]) -> ConsentQuery:
        """Validate listing arguments (as :meth:`list_consents` takes them) without any request.

        Uses this hook's ``timezone`` and ``normalize_phones``. With ``query``, only ``arguments``
        are validated and set on it (its other fields already are): see :meth:`ConsentQuery.updated`.

        :raises EtelecomValidationError: naming the first invalid parameter.
        """
        return (query or ConsentQuery()).updated(
            timezone=self.timezone, normalize_phones=self.normalize_phones, **arguments
        )

    def list_consent_pages(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        sort: str | None = None,
        max_pages: int | None = None,
        max_parallel_windows: int | None = None,
        **filters: Unpack[ConsentFilters],
    ) -> Iterator[ConsentPage]:
        """Yield every page of consents matching the filters, lazily.

        Arguments as in :meth:`list_consents`. Validation happens before the first request.
        With ``max_parallel_windows`` > 1, ``[date_from, date_to)`` is split into windows paged
        concurrently (see :mod:`airflow_provider_etelecom.client.parallel`): pages then arrive in
        completion order, and the counters of every worker add up in ``self.client.stats``.
        """
        query = self.build_query(page_size=page_size, sort=sort, max_pages=max_pages, **filters)
        return self.iter_query_pages(query, max_parallel_windows=max_parallel_windows)

    def iter_query_pages(
        self,
        query: ConsentQuery,
        *,
        max_parallel_windows: int | None = None,
        parallel_stats: ParallelStats | None = None,
    ) -> Iterator[ConsentPage]:
        """Yield the pages of an already validated query (see :meth:`build_query`).

        :param max_parallel_windows: ``None`` or 1 pages sequentially; more splits
            ``[date_from, date_to)`` into windows paged concurrently, each on its own connection,
            all sharing one rate-limit pause, and splits the busiest window whenever a worker runs
            out of work (``created_at`` sorts). Validated before any request.
        :param parallel_stats: with ``max_parallel_windows`` > 1, where to record splits and each
            worker's pages and idle seconds (for the closing log line).
        """
        if max_parallel_windows is None or max_parallel_windows == 1:
            return self.client.iter_consent_pages(query)
        config = self.client.config
        return iter_consent_pages_parallel(
            lambda gate: self._rereading_client(config, gate),
            query,
            parallel_windows=max_parallel_windows,
            stats=self.client.stats,
            parallel_stats=parallel_stats,
            facts=self.client.facts,
        )

    def list_consents(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        sort: str | None = None,
        max_pages: int | None = None,
        max_parallel_windows: int | None = None,
        **filters: Unpack[ConsentFilters],
    ) -> Iterator[Consent]:
        """Yield every consent matching the filters, across all pages, lazily (one page in memory).

        Validation happens at the call, before any request (this is not a generator function).

        :param filters: any of :class:`~airflow_provider_etelecom.client.ConsentFilters`
            (``call_type``, ``date_from``, ``date_to``, ``is_charged``, ``oa_id``, ``phone``,
            ``reason_code``, ``reply_status``, ``status``, ``user_id``); ``None`` means no filter.
        :param page_size: 1 to 100 (the platform's cap).
        :param sort: ``created_at``, ``-created_at``, ``updated_at`` or ``-updated_at``; default newest first.
        :param max_pages: stop after this many pages.
        :param max_parallel_windows: page this many sub-windows of ``[date_from, date_to)`` at once
            (both dates required; off by default). Consents then arrive in no particular order.
        :return: an iterator of consent dicts exactly as the API returned them.
        :raises EtelecomValidationError: for invalid arguments, before any request.
        :raises EtelecomError: for failures that outlast the retry budget.
        """
        pages = self.list_consent_pages(
            page_size=page_size, sort=sort, max_pages=max_pages, max_parallel_windows=max_parallel_windows, **filters
        )
        return (consent for page in pages for consent in page["consents"])

    def request_consent(
        self, *, oa_id: int | str, phone: str, call_type: CallType | str, reason_code: ReasonCode | str
    ) -> Consent:
        """Send ``Zalo/RequestConsent``: a real, charged request to the customer's Zalo app.

        Never retried once it may have reached the server.

        :return: the created consent; check its ``status`` (``N`` means it failed to send).
        """
        return self.client.request_consent(oa_id=oa_id, phone=phone, call_type=call_type, reason_code=reason_code)

    def check_consent(self, *, oa_id: int | str, phone: str) -> ConsentCheck:
        """Send ``Zalo/CheckConsent``: may the OA call this phone now? (``error`` 0 = yes)."""
        return self.client.check_consent(oa_id=oa_id, phone=phone)

    def find_consent(
        self, consent_id: int | str, *, oa_id: int | str, phone: str, max_pages: int = 1
    ) -> Consent | None:
        """Find a consent by id among the newest for ``oa_id`` + ``phone`` (see the client)."""
        return self.client.find_consent(consent_id, oa_id=oa_id, phone=phone, max_pages=max_pages)

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with ``Misc/CurrentAccount``, a cheap authenticated call.

        :return: ``(True, message)`` when the key works, ``(False, reason)`` otherwise.
        """
        try:
            account = self.client.current_account()
        except EtelecomError as error:
            return False, error.message
        name = account.get("name") or account.get("id") or "unknown account"
        return True, f"Connected to eTelecom at {self.client.config.base_url} as {name}."

    # -- connection form (Airflow 2.x; 3.2+ reads the form from provider info) -------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the connection form's hidden fields, labels and placeholders (Airflow 2.x UI)."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the extra fields of the connection form (Airflow 2.x UI)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, StringField
        from wtforms.validators import AnyOf, NumberRange, Optional

        account = CONN_FIELDS["account_type"]
        return {
            "account_type": StringField(
                lazy_gettext(account["label"]),
                widget=BS3TextFieldWidget(),
                validators=[Optional(), AnyOf(["shop", "partner"])],
                description=account["description"],
                default="shop",
            ),
            "timeout": IntegerField(
                lazy_gettext(CONN_FIELDS["timeout"]["label"]),
                widget=BS3TextFieldWidget(),
                validators=[Optional(), NumberRange(min=1)],
                description=CONN_FIELDS["timeout"]["description"],
                default=60,
            ),
            "max_retries": IntegerField(
                lazy_gettext(CONN_FIELDS["max_retries"]["label"]),
                widget=BS3TextFieldWidget(),
                validators=[Optional(), NumberRange(min=0)],
                description=CONN_FIELDS["max_retries"]["description"],
                default=5,
            ),
            "max_retry_time": IntegerField(
                lazy_gettext(CONN_FIELDS["max_retry_time"]["label"]),
                widget=BS3TextFieldWidget(),
                validators=[Optional(), NumberRange(min=0)],
                description=CONN_FIELDS["max_retry_time"]["description"],
                default=300,
            ),
        }
