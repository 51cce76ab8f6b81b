"""Ask a customer for permission to call: :class:`RequestConsentOperator`."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from functools import cached_property, partial
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, Context, conf

from airflow_provider_etelecom.client import CallType, Consent, ConsentQuery, ConsentRequest, ReasonCode, mask_phone
from airflow_provider_etelecom.client.models import SendStatus
from airflow_provider_etelecom.client.query import REQUEST_FIELDS, validate_request_arguments
from airflow_provider_etelecom.client.replies import LISTING_LAG_GRACE_S
from airflow_provider_etelecom.client.send_once import (
    Look,
    SendDecision,
    SendOutcome,
    certainly_not_created,
    decide_send,
    earliest_sent,
    newest_pending,
    sent_record,
    under_way_record,
)
from airflow_provider_etelecom.client.validation import is_unrendered, validate_seconds
from airflow_provider_etelecom.exceptions import (
    EtelecomBadRequestError,
    EtelecomConsentOutcomeError,
    EtelecomError,
    EtelecomTransientError,
    EtelecomValidationError,
)
from airflow_provider_etelecom.failure_policy import (
    retry_policy_decides,
    validate_retry_permanent_errors,
    with_failure_policy,
)
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.operators.base import is_unchanged
from airflow_provider_etelecom.task_state import task_state_store

__all__ = ["RequestConsentOperator"]

#: Without a task state store, how far before the run became due a later try looks for the earlier
#: try's consent, by the platform's ``created_at``: a platform clock up to this far behind the
#: worker's still shows it. (A clock that far ahead makes a consent sent that long before the run
#: look like this run's: it is returned instead of sending.)
LOOK_BACK = timedelta(hours=1, minutes=5)

#: The task state store key (Airflow 3.3+) of a task instance's send. Renaming it breaks the
#: retries of task instances that are in flight during an upgrade.
SEND_RECORD_KEY = "etelecom_request_consent"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: object) -> datetime | None:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc)
    return None


def first_try_anchor(context: Context) -> datetime | None:
    """Return the earliest time this task instance's first try can have started.

    Neither Airflow 2 nor 3 tells a running try when try 1 started, and XComs are cleared
    between tries, so the anchor is the earliest of what the run knows about itself: when it
    became due (``run_after`` on Airflow 3, ``data_interval_end`` on Airflow 2), when it was
    queued and when it started. Clearing a run moves ``queued_at``/``start_date`` forward but
    not ``run_after``/``data_interval_end``, so a consent sent before the clear is still found.

    :return: the anchor (aware UTC), or ``None`` when the context has no run.
    """
    dag_run: Any = context.get("dag_run")
    ti: Any = context.get("ti")
    candidates = [
        _aware(getattr(dag_run, name, None)) for name in ("run_after", "data_interval_end", "queued_at", "start_date")
    ]
    candidates.append(_aware(getattr(ti, "start_date", None)))
    known = [moment for moment in candidates if moment is not None]
    return min(known) if known else None


class RequestConsentOperator(BaseOperator):
    """Send ``Zalo/RequestConsent`` and return the created consent (its ``id`` feeds the sensor).

    The request is a real, charged message on a person's phone, so the operator never sends it
    twice by accident:

    * no automatic HTTP retry once the request may have reached the server (the client retries
      only a request that certainly never left the worker);
    * on Airflow 3.3+ it keeps a record in the task state store, which survives retries: "send
      under way", with the ids of the consents already listed for the same OA, phone, call type
      and reason (one listing, just before sending), and then the consent. A later try that finds
      the consent returns it; one that finds only "under way" recognises the earlier try's consent
      as one listed now that was not listed before the send (no time window, so the platform's
      clock does not matter), and returns it; when none shows after the grace it fails with
      :class:`AirflowFailException` instead of sending, unless ``resend_if_unconfirmed``;
    * without a task state store (Airflow 2.11 and 3.0-3.2), a later try of the same task
      instance (an Airflow retry, or a clear and re-run: ``try_number > 1``) first lists consents
      for the same OA, phone, call type and reason created since :data:`LOOK_BACK` (an hour and
      five minutes) before the run became due (see :func:`first_try_anchor`), in the platform's
      default order, and returns the oldest one whose send did not fail, instead of sending;
    * either way, a consent the platform has created may take a while to be listed, so while none
      is found the operator keeps looking until ``listing_lag_grace`` has passed since this try
      started (the earlier try cannot have sent later than that). Waits longer than one look
      interval defer when ``deferrable``, so thousands of retrying mapped tasks hold no worker slots;
    * a 409 ``already_exists`` (Zalo refuses a second request while one is pending) returns the
      newest pending (``S``) consent of the OA and phone, whatever its call type or reason, and
      logs it; nothing is sent again. If the listing shows none within ``listing_lag_grace``, the
      task fails naming the 409.

    Not guaranteed: a consent sent meanwhile by something else (another DAG, a person in the
    eTelecom app) for the same OA, phone, call type and reason is indistinguishable and is
    returned instead of a new send; and, where there is no task state store (Airflow 2.11 and
    3.0-3.2), a consent the listing shows only after longer than ``listing_lag_grace``, or created
    by a platform clock more than :data:`LOOK_BACK` behind the worker's, is sent again. A send that
    failed (``status`` ``N``) reached nobody and is not reused: a later try sends again.
    ``docs/operator.md`` says exactly what holds on which Airflow version. The decision is
    :func:`~airflow_provider_etelecom.client.send_once.decide_send`; the operator gathers its facts
    and acts on it.

    :param oa_id: the Official Account id (templated).
    :param phone: the customer's phone (templated).
    :param call_type: ``audio``, ``video`` or ``audio_and_video`` (templated).
    :param reason_code: one of eTelecom's five reason codes (templated).
    :param etelecom_conn_id: the eTelecom connection.
    :param listing_lag_grace: how long after this try started a later try keeps looking for the
        earlier try's consent before it may send again (seconds or timedelta; default the
        sensors' not-found grace, 60 s). Set it above the longest listing lag you have seen.
    :param deferrable: wait out the grace on the triggerer instead of in a worker slot (default
        ``[operators] default_deferrable``); without a triggerer the wait is polled in-process.
    :param resend_if_unconfirmed: on Airflow 3.3+, send again when an earlier try started a send
        whose outcome is unknown (its answer was lost) and no consent appeared within the grace.
        Off by default: the earlier request may well have reached the customer.
    :param retry_permanent_errors: let Airflow retry failures a retry cannot fix (invalid rendered
        arguments, a wrong connection, a refused key); off by default (see
        :mod:`airflow_provider_etelecom.failure_policy`).
    :return: the consent dict (XCom ``return_value``).
    :raises EtelecomConsentOutcomeError: when eTelecom could not deliver the request (``status`` ``N``),
        with its ``error_code`` and ``error_message``.
    :raises AirflowFailException: when an earlier try's send is unconfirmed after the grace
        (Airflow 3.3+, ``resend_if_unconfirmed=False``), or a 409 names a pending request that is
        not listed within the grace: both wait for a person to check eTelecom, whatever the task's
        ``retry_policy``; and when a rendered argument is invalid, unless the task has a
        ``retry_policy`` (Airflow 3.3+: it gets the ``EtelecomValidationError``).
    """

    template_fields = ("oa_id", "phone", "call_type", "reason_code")
    ui_color = "#d7ecfb"

    #: Seconds between looks while the grace runs in-process; a wait no longer than this is
    #: slept in the worker even when deferrable (a deferral round trip costs more).
    listing_look_interval: float = 5.0

    def __init__(
        self,
        *,
        oa_id: int | str,
        phone: str,
        call_type: CallType | str,
        reason_code: ReasonCode | str,
        etelecom_conn_id: str = EtelecomHook.default_conn_name,
        listing_lag_grace: float | timedelta = LISTING_LAG_GRACE_S,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        resend_if_unconfirmed: bool = False,
        retry_permanent_errors: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.retry_permanent_errors = validate_retry_permanent_errors(retry_permanent_errors)
        self.oa_id = oa_id
        self.phone = phone
        self.call_type = call_type
        self.reason_code = reason_code
        self.etelecom_conn_id = etelecom_conn_id
        self.listing_lag_grace = validate_seconds("listing_lag_grace", listing_lag_grace)
        for name, flag in (("deferrable", deferrable), ("resend_if_unconfirmed", resend_if_unconfirmed)):
            if not isinstance(flag, bool):
                raise EtelecomValidationError(f"{name}={flag!r} must be True or False.", parameter=name)
        self.deferrable = deferrable
        self.resend_if_unconfirmed = resend_if_unconfirmed
        # Validated once each: the literal arguments now, the templated ones once rendered (execute).
        self._parsed_values: dict[str, object] = {
            name: getattr(self, name) for name in REQUEST_FIELDS if not is_unrendered(getattr(self, name))
        }
        self._parsed_request = validate_request_arguments(self._parsed_values)

    @cached_property
    def hook(self) -> EtelecomHook:
        """The hook for ``etelecom_conn_id``."""
        return EtelecomHook(self.etelecom_conn_id)

    @with_failure_policy
    def execute(self, context: Context) -> Consent:
        """Validate, reuse an earlier try's consent or send a new request, and return the consent."""
        return self._settle(self._rendered_request(), context, self._grace_deadline(context))

    @with_failure_policy
    def execute_complete(self, context: Context, event: object = None, deadline: str | None = None) -> Consent:
        """Resume after a deferred wait for an earlier try's consent: look again, then decide.

        :param event: the time trigger's event (its moment; unused).
        :param deadline: the end of the grace (ISO-8601), as :meth:`execute` computed it.
        """
        until = datetime.fromisoformat(deadline) if deadline else self._grace_deadline(context)
        return self._settle(self._rendered_request(), context, until)

    # -- steps -----------------------------------------------------------------------------

    def _rendered_request(self) -> ConsentRequest:
        """Return the request of the rendered arguments, validating only those rendering changed."""
        changed = {
            name: getattr(self, name)
            for name in REQUEST_FIELDS
            if name not in self._parsed_values or not is_unchanged(getattr(self, name), self._parsed_values[name])
        }
        try:
            return ConsentRequest(**{**self._parsed_request, **validate_request_arguments(changed)})
        except EtelecomValidationError as error:
            if retry_policy_decides(self):
                raise
            # A rendered value is wrong: an Airflow retry would render it the same way.
            raise AirflowFailException(f"{type(self).__name__} {self.task_id}: {error.message}") from error

    def _grace_deadline(self, context: Context) -> datetime:
        """Return when the grace ends: ``listing_lag_grace`` after this try started.

        The earlier try can have sent at any moment until it ended, which is before this try
        started, and a consent sent at ``t`` is listed by ``t + lag``. Counting from this try's
        start (not from when the earlier try began sending) covers a send just before the earlier
        try died. Without a start date (a direct call), from now.
        """
        ti: Any = context.get("ti")
        started = _aware(getattr(ti, "start_date", None)) or _now()
        return started + timedelta(seconds=self.listing_lag_grace)

    def _settle(self, request: ConsentRequest, context: Context, deadline: datetime) -> Consent:
        """Gather the facts, decide (:func:`~airflow_provider_etelecom.client.send_once.decide_send`) and act.

        While the decision is to wait for an earlier try's consent, defers until ``deadline``
        (resuming in :meth:`execute_complete`) when deferrable and the wait is longer than one look
        interval; otherwise looks again every ``listing_look_interval`` seconds in-process.
        """
        store, ti = task_state_store(context), context.get("ti")
        while True:
            stored = store.get(SEND_RECORD_KEY) if store is not None else None
            # A record for other arguments (an upstream was cleared and rendered another phone) is not this request's.
            record = stored if isinstance(stored, dict) and stored.get("request") == request.body() else None
            decision = decide_send(
                record,
                try_number=getattr(ti, "try_number", 1),
                listing=partial(self._listing_shows, request=request, context=context, record=record),
                grace_left=lambda: (deadline - _now()).total_seconds(),
                resend_if_unconfirmed=self.resend_if_unconfirmed,
            )
            if decision.outcome is not SendOutcome.WAIT:
                break
            self._wait(request, deadline, decision.grace_left)
        if decision.outcome is SendOutcome.FAIL_UNCONFIRMED:
            earlier = record or {}
            raise AirflowFailException(
                f"{type(self).__name__} {self.task_id}: try {earlier.get('try_number')} started sending the consent "
                f"request to {mask_phone(request.phone)} at {earlier.get('since')} and never got its answer, and "
                f"no consent for it is listed after listing_lag_grace={self.listing_lag_grace:.0f} s. It may have "
                f"reached the customer, so this try does not send again. Check the consents in eTelecom; to send "
                f"again anyway, set resend_if_unconfirmed=True (or a longer listing_lag_grace) and clear the task."
            )
        if decision.consent is not None:  # an earlier try's
            self._log_not_sending(decision, record, request, context)
            if decision.outcome is SendOutcome.RETURN_LISTED and store is not None and record is not None:
                store.set(SEND_RECORD_KEY, sent_record(record, decision.consent))  # a later try needs no wait
            return self._checked(decision.consent, request)
        if decision.outcome is SendOutcome.SEND_AFTER_GRACE:
            self.log.warning(
                "No consent for %s appeared within listing_lag_grace=%.0f s after this try started; sending again.",
                mask_phone(request.phone),
                self.listing_lag_grace,
            )
        return self._checked(self._send(request, context), request)

    def _wait(self, request: ConsentRequest, deadline: datetime, remaining: float) -> None:
        """Wait ``remaining`` seconds (up to ``deadline``) for the listing: defer, or sleep one look interval."""
        if self.deferrable and remaining > self.listing_look_interval:
            from airflow.providers.common.compat.standard.triggers import TimeDeltaTrigger

            self.log.info(
                "No earlier consent for %s listed yet; deferring %.1f s until %s (listing_lag_grace=%.0f s).",
                mask_phone(request.phone),
                remaining,
                deadline.isoformat(),
                self.listing_lag_grace,
            )
            self.defer(
                trigger=TimeDeltaTrigger(timedelta(seconds=remaining)),
                method_name="execute_complete",
                kwargs={"deadline": deadline.isoformat()},
            )
        self.log.info(
            "No earlier consent for %s listed yet; looking again (%.1f s left of listing_lag_grace=%.0f s).",
            mask_phone(request.phone),
            remaining,
            self.listing_lag_grace,
        )
        time.sleep(min(self.listing_look_interval, remaining))

    def _listing_shows(
        self, look: Look, request: ConsentRequest, context: Context, record: dict[str, Any] | None
    ) -> Consent | None:
        """Ask the listing what ``look`` wants to know (see :class:`~airflow_provider_etelecom.client.send_once.Look`).

        :raises EtelecomTransientError: when a consent answered as not sent cannot be looked up: not
            sending until it can be checked.
        """
        if look in (Look.RECORDED, Look.DELIVERED) and record is not None:
            recorded = record["consent"]
            try:
                return self.hook.find_consent(str(recorded.get("id")), oa_id=request.oa_id, phone=request.phone)
            except EtelecomTransientError as error:
                if look is Look.DELIVERED:
                    raise EtelecomTransientError(
                        f"Could not check whether consent {recorded.get('id')}, answered as not sent, was delivered "
                        f"after all ({error.message}); not sending again until it can be checked."
                    ) from error
                # The consent is known; its current state is a nicety that must not fail the task.
                self.log.warning("Could not look up consent %s (%s); returning it as sent.", recorded.get("id"), error)
                return None
        if look is Look.NEW and record is not None:
            return earliest_sent(self._listed(request), now=_now(), leave_out=set(record["listed_before"]))
        anchor = first_try_anchor(context)
        return None if anchor is None else earliest_sent(self._listed(request, since=anchor - LOOK_BACK), now=_now())

    def _log_not_sending(
        self, decision: SendDecision, record: dict[str, Any] | None, request: ConsentRequest, context: Context
    ) -> None:
        """Log why an earlier try's consent is returned instead of sending."""
        consent, earlier, phone = decision.consent or Consent(), record or {}, mask_phone(request.phone)
        recorded = earlier.get("consent") or {}
        if decision.outcome is SendOutcome.RETURN_RECORDED:
            why = f"try {earlier.get('try_number')} of this task instance sent consent {recorded.get('id')} to {phone} "
            why += "(task state store)"
        elif decision.outcome is SendOutcome.RETURN_DELIVERED:
            why = f"consent {consent.get('id')} for {phone} was answered as not sent (error_code="
            why += f"{recorded.get('error_code')}) but the listing shows it status={consent.get('status')}"
        else:
            anchor = first_try_anchor(context) if decision.look is Look.LOOK_BACK else None
            how = "was not listed before the earlier try sent"
            if anchor is not None:
                how = (
                    f"was created after {(anchor - LOOK_BACK).isoformat()}, within {LOOK_BACK} of this run becoming due"
                )
            why = f"consent {consent.get('id')} for {phone} {how} (created_at {consent.get('created_at')})"
        self.log.warning("Not sending again: %s; returning it.", why)

    def _send(self, request: ConsentRequest, context: Context) -> Consent:
        """Send ``RequestConsent``; on Airflow 3.3+ record "under way" before and the consent after.

        The "under way" record holds the ids already listed for this OA, phone, call type and reason,
        so that a later try recognises this send's consent as the one that was not there before.
        """
        store, ti = task_state_store(context), context.get("ti")
        record: dict[str, Any] = {}
        if store is not None:
            since = _now()
            # A missing or wrong connection fails here, with nothing under way; so does a listing the
            # platform refuses, before anything is sent.
            listed_before = [consent["id"] for consent in self._listed(request)]
            record = under_way_record(
                request.body(), try_number=getattr(ti, "try_number", 1), since=since, listed_before=listed_before
            )
            store.set(SEND_RECORD_KEY, record)
        try:
            consent = self.hook.client.send_consent_request(request)
        except EtelecomError as error:
            if store is not None and certainly_not_created(error):
                store.delete(SEND_RECORD_KEY)  # refused with an answer, or never sent: nothing was created
            if not (isinstance(error, EtelecomBadRequestError) and error.status == 409):
                raise
            consent = self._pending_after_conflict(request, error)
            if store is not None:
                store.set(SEND_RECORD_KEY, sent_record(record, consent, conflict=True))
            return consent
        if store is not None:
            store.set(SEND_RECORD_KEY, sent_record(record, consent))
        self.log.info("Sent consent request %s to %s.", consent.get("id"), mask_phone(request.phone))
        return consent

    @staticmethod
    def _checked(consent: Consent, request: ConsentRequest) -> Consent:
        if consent.get("status") == SendStatus.FAILED.value:
            raise EtelecomConsentOutcomeError(
                f"eTelecom could not deliver consent request {consent.get('id')} to {mask_phone(request.phone)} "
                f"via OA {request.oa_id}: error_code={consent.get('error_code')!r}, "
                f"error_message={consent.get('error_message')!r}.",
                consent=dict(consent),
            )
        return consent

    def _listed(
        self, request: ConsentRequest, since: datetime | None = None, *, any_kind: bool = False
    ) -> list[Consent]:
        """List every consent for this request's OA, phone, call type and reason (since ``since``).

        In the platform's default order, to its end: one OA and phone hold few consents of one call
        type and reason, and no order has to be trusted to find the oldest or the new ones. With
        ``any_kind``, every call type and reason.
        """
        listing = ConsentQuery(
            oa_id=request.oa_id,
            phone=request.phone,
            call_type=None if any_kind else request.call_type,
            reason_code=None if any_kind else request.reason_code,
            date_from=since,
        )
        return [consent for page in self.hook.iter_query_pages(listing) for consent in page["consents"]]

    def _pending_after_conflict(self, request: ConsentRequest, error: EtelecomBadRequestError) -> Consent:
        """Return the newest pending consent of the OA and phone after a 409: the one eTelecom refused to repeat.

        Looks every ``listing_look_interval`` seconds until ``listing_lag_grace`` has passed (the
        pending consent may not be listed yet), never sending again.

        :raises AirflowFailException: naming the 409 when no pending consent shows within the grace.
        """
        deadline = _now() + timedelta(seconds=self.listing_lag_grace)
        while (consent := newest_pending(self._listed(request, any_kind=True), now=_now())) is None:
            remaining = (deadline - _now()).total_seconds()
            if remaining <= 0:
                raise AirflowFailException(
                    f"{type(self).__name__} {self.task_id}: eTelecom refused the consent request to "
                    f"{mask_phone(request.phone)} via OA {request.oa_id} with HTTP 409 {error.code or ''} (a request "
                    f"is already pending for this phone), but no pending consent for it is listed after "
                    f"listing_lag_grace={self.listing_lag_grace:.0f} s. Nothing was sent. Check the consents in "
                    f"eTelecom; clear the task once the pending request is answered or expired."
                ) from error
            time.sleep(min(self.listing_look_interval, remaining))
        self.log.warning(
            "eTelecom refused a second consent request to %s via OA %s while one is pending (HTTP 409 %s); "
            "nothing was sent. Returning the pending consent %s (call_type=%s, reason_code=%s).",
            mask_phone(request.phone),
            request.oa_id,
            error.code,
            consent.get("id"),
            consent.get("call_type"),
            consent.get("reason_code"),
        )
        return consent
