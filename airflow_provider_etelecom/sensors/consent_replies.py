"""Wait for replies to consent requests: :class:`ConsentRepliesSensor` (many), :class:`ConsentReplySensor` (one).

Both run the one decision, :meth:`~airflow_provider_etelecom.client.replies.ReplyWait.check`, in
every mode; the single-consent sensor is the many-consent sensor narrowed to one id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    conf,
)

from airflow_provider_etelecom.client import Consent, mask_phone
from airflow_provider_etelecom.client.models import WaitStatus
from airflow_provider_etelecom.client.replies import (
    CREATED_FROM_MARGIN_S,
    LISTING_LAG_GRACE_S,
    Decision,
    ReplyWait,
    validate_failure_statuses,
    wanted_consents,
)
from airflow_provider_etelecom.client.validation import (
    is_unrendered,
    normalize_phone,
    validate_int64_id,
    validate_number,
    validate_seconds,
    validate_time,
)
from airflow_provider_etelecom.exceptions import EtelecomError, EtelecomTransientError, EtelecomValidationError
from airflow_provider_etelecom.failure_policy import validate_retry_permanent_errors, with_failure_policy
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.task_state import TaskStateStore, task_state_store, value_size_limit
from airflow_provider_etelecom.triggers.consent_replies import ConsentRepliesTrigger, parse_event

__all__ = ["ConsentRepliesSensor", "ConsentReplySensor"]

#: The task state store key (Airflow 3.3+) of a wait in reschedule mode. Renaming it makes the waits
#: in flight during an upgrade list their span once more.
WAIT_RECORD_KEY = "etelecom_consent_replies_wait"
#: The version of that record (another one is ignored: the wait lists its span afresh).
WAIT_RECORD_VERSION = 1


class ConsentRepliesSensor(BaseSensorOperator):
    """Wait for the replies to one or many consent requests, with one listing per check.

    Each check is one paged ``ListRequestConsent`` listing (100 per page) narrowed by ``oa_id``,
    ``phone`` and ``created_from``, scanned for the consents still pending; consents already final
    are remembered within a try, the listing starts at the earliest pending one and stops once
    every pending id was seen. With ``created_from`` (or consent dicts, from which it is derived)
    the listing runs oldest first from it; without it, newest first.

    The one decision (:func:`~airflow_provider_etelecom.client.replies.decide`), in this order:

    * a consent with an unknown ``reply_status``: :class:`EtelecomConsentOutcomeError`, even with
      ``soft_fail`` (fail closed);
    * a reply in ``failure_statuses``, a failed send (``status`` ``N``) or an expired request:
      :class:`EtelecomConsentOutcomeError` listing every such consent, at the first check that sees one;
    * ids not listed: waited for during ``not_found_grace_period``, then
      :class:`EtelecomConsentNotFoundError` listing them;
    * success once at least ``min_share`` of the consents have left ``S``.

    Reschedule mode starts a new process for every check. On Airflow 3.3+ the wait keeps where it
    stands in the task state store between them (the consents settled, and the changed reads'
    watermark, ``WAIT_RECORD_KEY``), so a check after a reschedule reads only what changed, as in
    poke mode; on Airflow 2.11 and 3.0-3.2, and for a record larger than ``[state_store]
    max_value_storage_bytes``, every check lists the span again. The record holds the consents as
    listed (the task's result is made of them), never the key; a later try starts afresh.

    One policy in every mode (poke, reschedule, deferrable): a transient failure is retried within
    the connection's retry budget, and if it outlasts it the next check tries again; a refused key
    re-reads the connection once (a rotated key), then fails the task without Airflow retries; the
    ``timeout`` raises :class:`AirflowSensorTimeout`. ``soft_fail=True`` skips instead of failing
    for failing outcomes, not-found and the timeout.

    :param consent_ids: (templated) the consents to wait for: a list of ids, or of consent dicts as
        ``RequestConsentOperator`` returns them (e.g. a mapped task's ``.output``), or a template
        rendering to such a list.
    :param oa_id: (templated) narrow the listing to this Official Account.
    :param phone: (templated) narrow the listing to this phone.
    :param created_from: (templated) list only consents created at or after this time (aware
        datetime or ISO-8601). Default: the earliest ``created_at`` of the consent dicts passed,
        minus five minutes; none when only ids are passed.
    :param etelecom_conn_id: the eTelecom connection.
    :param min_share: succeed once this share (0 < share <= 1) of the consents have left ``S``.
    :param failure_statuses: final replies that fail the task, a subset of ``{"P", "N", "NS"}``.
    :param not_found_grace_period: how long ids that are not listed are waited for (seconds or
        timedelta), counted from the start of the wait; the listing may lag a fresh request.
    :param max_pages: bound on the pages of 100 one check reads (default: until every id is seen).
    :param deferrable: wait on the triggerer (:class:`ConsentRepliesTrigger`) without a worker slot.
    :param poke_interval: seconds between checks.
    :param retry_permanent_errors: let Airflow retry failures a retry cannot fix (off by default).
    :return: (XCom) ``{consent_id: consent}`` for every wanted consent, in input order, each as
        last listed (consents still waiting when ``min_share`` < 1 was reached read ``S``).
    """

    template_fields: tuple[str, ...] = ("consent_ids", "oa_id", "phone", "created_from")
    ui_color = "#d7ecfb"

    def __init__(
        self,
        *,
        consent_ids: str | Iterable[str | int | dict[str, Any]],
        oa_id: str | int | None = None,
        phone: str | None = None,
        created_from: datetime | str | None = None,
        etelecom_conn_id: str = EtelecomHook.default_conn_name,
        min_share: float = 1.0,
        failure_statuses: Iterable[str] = (),
        not_found_grace_period: float | timedelta = LISTING_LAG_GRACE_S,
        max_pages: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 60,
        retry_permanent_errors: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.consent_ids, self.oa_id, self.phone, self.created_from = consent_ids, oa_id, phone, created_from
        self.etelecom_conn_id, self.deferrable = etelecom_conn_id, deferrable
        self.min_share = float(
            validate_number("min_share", min_share, whole=False, above=0, maximum=1, why="1.0 waits for every consent")
        )
        self.failure_statuses = validate_failure_statuses(failure_statuses)
        self.not_found_grace_period = validate_seconds("not_found_grace_period", not_found_grace_period)
        self.max_pages = validate_number("max_pages", max_pages, minimum=1, optional=True)
        self.retry_permanent_errors = validate_retry_permanent_errors(retry_permanent_errors)
        if not is_unrendered(consent_ids):  # templates are checked once rendered (``wait``)
            wanted_consents(consent_ids)
        if oa_id is not None and not is_unrendered(oa_id):
            validate_int64_id("oa_id", oa_id)
        if phone is not None and not is_unrendered(phone):
            normalize_phone(phone)
        if created_from is not None and not is_unrendered(created_from):
            validate_time("created_from", created_from)

    @cached_property
    def hook(self) -> EtelecomHook:
        """The hook for ``etelecom_conn_id`` (with the connection's retry budget)."""
        return EtelecomHook(self.etelecom_conn_id)

    @cached_property
    def wait(self) -> ReplyWait:
        """The rendered wait; kept for the whole try, so consents already final are not listed again."""
        ids, earliest = wanted_consents(self.consent_ids)
        created_from = earliest and earliest - timedelta(seconds=CREATED_FROM_MARGIN_S)
        if self.created_from not in (None, ""):
            created_from = validate_time("created_from", self.created_from, timezone_name=self.hook.timezone)
        return ReplyWait(
            consent_ids=ids,
            oa_id=None if self.oa_id in (None, "") else str(self.oa_id),
            phone=None if self.phone in (None, "") else str(self.phone),
            created_from=created_from,
            min_share=self.min_share,
            failure_statuses=self.failure_statuses,
            max_pages=self.max_pages,
        )

    def _started_at(self, context: Context) -> datetime:
        """Return when this wait began, in a way that survives reschedule mode and deferral.

        Reschedule mode: the first reschedule's start (Airflow 3 asks for it; Airflow 2 already
        gives it as ``start_date``). Poke and deferrable modes: the try's ``start_date``, which
        Airflow keeps when a task resumes. Without a task instance, this object's first check.
        """
        ti: Any = context.get("ti")
        first_reschedule = getattr(ti, "get_first_reschedule_date", None)
        started = first_reschedule(context) if self.reschedule and callable(first_reschedule) else None
        started = started if isinstance(started, datetime) else getattr(ti, "start_date", None)
        if not isinstance(started, datetime):
            started = self.__dict__.setdefault("_first_check_at", datetime.now(timezone.utc))
        return started.astimezone(timezone.utc)

    @cached_property
    def _wait_identity(self) -> str:
        """A digest of the rendered wait (before any check): a record of another wait is not this one's."""
        return hashlib.sha256(json.dumps(self.wait.settings(), sort_keys=True).encode()).hexdigest()

    def _kept_wait(self, context: Context) -> TaskStateStore | None:
        """Return the task state store that keeps the wait between reschedules, resuming from it once.

        ``None`` outside reschedule mode, before Airflow 3.3, and for a one-page wait (``max_pages=1``,
        every ``ConsentReplySensor`` by default), whose every check is one span request anyway. A
        record of another wait, another try or another version is ignored: the wait then starts
        afresh, as before the store existed.
        """
        store = task_state_store(context) if self.reschedule and self.max_pages != 1 else None
        if store is None or "_kept_record" in self.__dict__:
            return store
        identity, try_number = self._wait_identity, getattr(context.get("ti"), "try_number", None)
        record = self._store_call(store.get, WAIT_RECORD_KEY)
        self._kept_record = isinstance(record, dict)
        if (
            isinstance(record, dict)
            and record.get("version") == WAIT_RECORD_VERSION
            and record.get("wait") == identity
            and record.get("try_number") == try_number
            and self.wait.resume(record.get("progress"))
        ):
            self.log.info(
                "Resuming the wait from the task state store: %d of %d consent(s) listed, %s.",
                len(self.wait.settled),
                len(self.wait.consent_ids),
                "reading what changed since the last check" if self.wait.feed.newest else "listing the span",
            )
        return store

    def _keep_wait(self, store: TaskStateStore, context: Context, decision: Decision) -> None:
        """Write where the wait stands for the next reschedule's check (or drop the record once decided)."""
        if decision.status != WaitStatus.WAITING:
            if self._kept_record:
                self._store_call(store.delete, WAIT_RECORD_KEY)
            return
        record = {
            "version": WAIT_RECORD_VERSION,
            "wait": self._wait_identity,
            "try_number": getattr(context.get("ti"), "try_number", None),
            "progress": self.wait.progress(),
        }
        size, limit = len(json.dumps(record)), value_size_limit()
        if limit and size > limit:
            self.log.info(
                "Where this wait stands is %d bytes, more than [state_store] max_value_storage_bytes=%d: not kept, "
                "so the next check after the reschedule lists the span again.",
                size,
                limit,
            )
            if self._kept_record:
                self._store_call(store.delete, WAIT_RECORD_KEY)
                self._kept_record = False
            return
        self._kept_record = self._store_call(store.set, WAIT_RECORD_KEY, record) is not False

    def _store_call(self, method: Any, *args: Any) -> Any:
        """Call the task state store; its failure costs a span read at the next check, never the wait."""
        try:
            return method(*args)
        except Exception as error:  # an API call to Airflow's server: anything may come back
            self.log.warning(
                "The task state store failed (%s: %s); the next check after the reschedule lists the span again.",
                type(error).__name__,
                error,
            )
            return False

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check once: not done while waiting (or after a transient failure), else the result.

        :raises EtelecomConsentOutcomeError: listing the consents whose outcome fails the task.
        :raises EtelecomConsentNotFoundError: listing the ids still unknown after the grace period.
        """
        store = self._kept_wait(context)
        wait, now, started = self.wait, datetime.now(timezone.utc), self._started_at(context)
        expired = (now - started).total_seconds() >= self.not_found_grace_period
        # Airflow times out once a check returns after the timeout: then this is the last check.
        ends = lambda: (datetime.now(timezone.utc) - started).total_seconds() + 1 > self.timeout  # noqa: E731
        try:
            decision = wait.check(self.hook.client, now, not_found_expired=expired, ends=ends)
        except EtelecomTransientError as error:
            self.log.warning("Checking %s failed (%s); checking again later.", wait.describe(), error.message)
            return False
        self.log.info("%s (min_share=%s).", wait.describe(decision), self.min_share)
        if store is not None:
            self._keep_wait(store, context, decision)
        if decision.status == WaitStatus.WAITING:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(decision))

    def _finish(self, decision: Decision) -> Any:
        """Turn a decision into the task's result or error: the same for every mode."""
        narrowing = (
            f"oa_id={self.oa_id!r}, phone={mask_phone(str(self.phone)) if self.phone else None}, "
            f"created_from={self.created_from!r} (or derived from the consents' created_at)"
        )
        problem = self.wait.error(decision, grace=self.not_found_grace_period, narrowing=narrowing)
        if problem is not None:
            error, skippable = problem
            if skippable and self.soft_fail:
                raise AirflowSkipException(f"{error.message} (soft_fail=True: skipping)") from error
            raise error
        return {consent_id: decision.consents[consent_id] for consent_id in self.wait.consent_ids}

    @with_failure_policy
    def execute(self, context: Context) -> Any:
        """Wait in poke or reschedule mode, or check once and defer to :class:`ConsentRepliesTrigger`."""
        if not self.deferrable:
            return super().execute(context)
        result = self.poke(context)
        if isinstance(result, PokeReturnValue):
            return result.xcom_value
        started, wait = self._started_at(context), self.wait
        deadline = started + timedelta(seconds=float(self.timeout))
        self.defer(
            trigger=ConsentRepliesTrigger(
                **wait.settings(),
                etelecom_conn_id=self.etelecom_conn_id,
                poke_interval=float(self.poke_interval),
                deadline=deadline,
                not_found_deadline=started + timedelta(seconds=self.not_found_grace_period),
                listed_from=wait.span_from(),  # where this check found the consents: a shared poll starts there
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=max(1.0, (deadline - datetime.now(timezone.utc)).total_seconds())),
        )

    @with_failure_policy
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: validate its event once, then end as ``poke`` would.

        :raises EtelecomError: for a malformed event (fail closed), or the error the trigger reported.
        """
        status, decision, message, error_class = parse_event(event)
        if decision is not None:
            if set(decision.consents) - set(self.wait.consent_ids):
                raise EtelecomError("The ConsentRepliesTrigger event holds consents not waited for; failing closed.")
            return self._finish(decision)
        if status == WaitStatus.TIMEOUT:
            if self.soft_fail:
                raise AirflowSkipException(f"{message} (soft_fail=True: skipping)")
            raise AirflowSensorTimeout(message)
        raise error_class(message or "The ConsentRepliesTrigger ended with an error.")


class ConsentReplySensor(ConsentRepliesSensor):
    """Wait until one consent's ``reply_status`` leaves ``S`` and push the consent to XCom.

    :class:`ConsentRepliesSensor` narrowed to one id: each check lists the consents of ``oa_id`` +
    ``phone``, newest first, and looks for ``consent_id``: one ``ListRequestConsent`` request when
    it is among the 100 newest for that pair (a fresh request always is), at most ``max_pages``.
    Outcomes, errors and the policy are :class:`ConsentRepliesSensor`'s, in every mode.

    :param consent_id: (templated) the consent's id, usually the upstream
        ``RequestConsentOperator``'s ``return_value["id"]``.
    :param phone: (templated) the customer's phone.
    :param oa_id: (templated) the Official Account id.
    :param max_pages: pages of 100 of the ``oa_id`` + ``phone`` listing scanned per check.
    :return: (XCom) the consent as last listed.
    """

    template_fields = ("consent_id", "phone", "oa_id")

    def __init__(self, *, consent_id: str | int, phone: str, oa_id: str | int, max_pages: int = 1, **kwargs: Any):
        if "min_share" in kwargs or "consent_ids" in kwargs or "created_from" in kwargs:
            raise EtelecomValidationError(
                "ConsentReplySensor waits for one consent_id: use ConsentRepliesSensor for consent_ids, "
                "min_share or created_from.",
                parameter="consent_ids",
            )
        validate_number("max_pages", max_pages, minimum=1, maximum=100, why="pages of 100 consents per check")
        self.consent_id = consent_id
        if not is_unrendered(consent_id):
            validate_int64_id("consent_id", consent_id)
        super().__init__(consent_ids=[consent_id], oa_id=oa_id, phone=phone, max_pages=max_pages, **kwargs)

    @cached_property
    def wait(self) -> ReplyWait:
        """The wait for ``consent_id`` among the newest consents of ``oa_id`` + ``phone``."""
        return ReplyWait(
            consent_ids=[validate_int64_id("consent_id", self.consent_id)],
            oa_id=validate_int64_id("oa_id", self.oa_id),
            phone=str(self.phone),
            failure_statuses=self.failure_statuses,
            max_pages=self.max_pages,
        )

    def _finish(self, decision: Decision) -> Consent:
        consent: Consent = super()._finish(decision)[self.wait.consent_ids[0]]
        self.log.info("Consent %s: reply_status=%s.", consent["id"], consent.get("reply_status"))
        return consent
