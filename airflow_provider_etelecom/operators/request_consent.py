"""Ask a customer for permission to call: :class:`RequestConsentOperator`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, Context

from airflow_provider_etelecom.client import Consent, ConsentQuery, mask_phone
from airflow_provider_etelecom.client.models import SendStatus
from airflow_provider_etelecom.exceptions import EtelecomConsentOutcomeError, EtelecomValidationError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.utils.failure_policy import validate_retry_permanent_errors, with_failure_policy

__all__ = ["RequestConsentOperator"]

#: Margin for the difference between the worker's clock and eTelecom's ``created_at`` clock.
CLOCK_SKEW = timedelta(minutes=2)


def _is_unrendered(value: object) -> bool:
    return not isinstance(value, (str, int)) or (isinstance(value, str) and "{{" in value)


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
    * on a later try of the same task instance (an Airflow retry, or a clear and re-run of the
      same run: ``try_number > 1``), it first lists consents for the same OA, phone, call type
      and reason created since the run became due (see :func:`first_try_anchor`) and returns the
      oldest one whose send did not fail, instead of sending. One ``ListRequestConsent`` request.

    Not guaranteed: a consent sent in that window by something else (another DAG, a person in
    the eTelecom app) for the same OA, phone, call type and reason is indistinguishable and is
    returned instead of a new send; and a first try that fails before eTelecom answers may have
    sent a consent that the second try finds only if the listing already shows it. A send that
    failed (``status`` ``N``) reached nobody and is not reused: a later try sends again.

    :param oa_id: the Official Account id (templated).
    :param phone: the customer's phone (templated).
    :param call_type: ``audio``, ``video`` or ``audio_and_video`` (templated).
    :param reason_code: one of eTelecom's five reason codes (templated).
    :param etelecom_conn_id: the eTelecom connection.
    :param retry_permanent_errors: let Airflow retry failures a retry cannot fix (invalid rendered
        arguments, a wrong connection, a refused key); off by default (see
        :mod:`airflow_provider_etelecom.utils.failure_policy`).
    :return: the consent dict (XCom ``return_value``).
    :raises EtelecomConsentOutcomeError: when eTelecom could not deliver the request (``status`` ``N``),
        with its ``error_code`` and ``error_message``.
    """

    template_fields = ("oa_id", "phone", "call_type", "reason_code")
    ui_color = "#d7ecfb"

    def __init__(
        self,
        *,
        oa_id: str | int,
        phone: str,
        call_type: str,
        reason_code: str,
        etelecom_conn_id: str = EtelecomHook.default_conn_name,
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
        known: dict[str, Any] = {
            name: value
            for name, value in (
                ("oa_id", oa_id),
                ("phone", phone),
                ("call_type", call_type),
                ("reason_code", reason_code),
            )
            if not _is_unrendered(value)
        }
        ConsentQuery.build(**known)

    @cached_property
    def hook(self) -> EtelecomHook:
        """The hook for ``etelecom_conn_id``."""
        return EtelecomHook(self.etelecom_conn_id)

    @with_failure_policy
    def execute(self, context: Context) -> Consent:
        """Validate, reuse an earlier try's consent or send a new request, and return the consent."""
        try:
            query = self.hook.build_query(
                oa_id=self.oa_id, phone=self.phone, call_type=self.call_type, reason_code=self.reason_code
            )
        except EtelecomValidationError as error:
            # A rendered value is wrong: an Airflow retry would render it the same way.
            raise AirflowFailException(f"{type(self).__name__} {self.task_id}: {error.message}") from error
        ti: Any = context.get("ti")
        consent = self._earlier_send(query, context) if getattr(ti, "try_number", 1) > 1 else None
        if consent is None:
            consent = self.hook.request_consent(
                oa_id=str(query.oa_id), phone=str(query.phone), call_type=query.call_type, reason_code=query.reason_code
            )
            self.log.info("Sent consent request %s to %s.", consent.get("id"), mask_phone(query.phone))
        if consent.get("status") == SendStatus.FAILED.value:
            raise EtelecomConsentOutcomeError(
                f"eTelecom could not deliver consent request {consent.get('id')} to {mask_phone(query.phone)} "
                f"via OA {query.oa_id}: error_code={consent.get('error_code')!r}, "
                f"error_message={consent.get('error_message')!r}.",
                consent=dict(consent),
            )
        return consent

    def _earlier_send(self, query: ConsentQuery, context: Context) -> Consent | None:
        anchor = first_try_anchor(context)
        if anchor is None:
            return None
        since = anchor - CLOCK_SKEW
        earlier = self.hook.list_consents(
            oa_id=query.oa_id,
            phone=query.phone,
            call_type=query.call_type,
            reason_code=query.reason_code,
            date_from=since,
            sort="created_at",
            max_pages=1,
        )
        for consent in earlier:
            if consent.get("status") != SendStatus.FAILED.value:
                self.log.warning(
                    "Not sending again: consent %s for %s was created at %s, after this run became due (%s); "
                    "returning it.",
                    consent.get("id"),
                    mask_phone(query.phone),
                    consent.get("created_at"),
                    anchor.isoformat(),
                )
                return consent
        return None
