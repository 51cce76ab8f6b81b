"""Wait for a customer's reply to a consent request: :class:`ConsentReplySensor`."""

from __future__ import annotations

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

from airflow_provider_etelecom.client import Consent, ConsentState, classify_consent, mask_phone
from airflow_provider_etelecom.client.models import FINAL_REPLY_STATUSES
from airflow_provider_etelecom.client.validation import normalize_phone, validate_int64_id
from airflow_provider_etelecom.exceptions import (
    EtelecomConsentNotFoundError,
    EtelecomConsentOutcomeError,
    EtelecomError,
    EtelecomTransientError,
    EtelecomValidationError,
)
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.triggers.consents import (
    ERROR_CLASSES,
    ConsentReplyEvent,
    ConsentReplyTrigger,
    parse_reply_event,
)

__all__ = ["ConsentReplySensor"]

_REPLY_WORDS = {"P": "agreed (P)", "N": "refused (N)", "NS": "did not reply in time (NS)"}


def _is_unrendered(value: object) -> bool:
    """Tell whether a templated argument can only be checked once rendered (Jinja, XComArg)."""
    return not isinstance(value, (str, int)) or (isinstance(value, str) and "{{" in value)


def _seconds(parameter: str, value: object) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise EtelecomValidationError(
            f"{parameter}={value!r} must be a non-negative number of seconds or a timedelta.", parameter=parameter
        )
    return float(seconds)


class ConsentReplySensor(BaseSensorOperator):
    """Wait until a consent's ``reply_status`` leaves ``S`` (waiting) and push the consent to XCom.

    The API has no filter by id, so each check lists the consents of ``oa_id`` + ``phone``, newest
    first, and looks for ``consent_id``: one ``ListRequestConsent`` request when the consent is
    among the 100 newest for that pair (a fresh request always is), at most ``lookup_pages``
    requests otherwise. It never pages through the whole account.

    Outcomes, decided by the one status table
    (:func:`~airflow_provider_etelecom.client.models.classify_consent`):

    * a final reply (``P``, ``N``, ``NS``) succeeds and returns the consent, unless its
      ``reply_status`` is in ``failure_statuses``: then :class:`EtelecomConsentOutcomeError`;
    * a request that failed to send (``status`` ``N``) or whose ``expires_at`` has passed raises
      :class:`EtelecomConsentOutcomeError` with eTelecom's ``error_code``/``error_message`` or the
      expiry time: no answer can come;
    * an unknown ``reply_status`` raises :class:`EtelecomConsentOutcomeError` (fail closed);
    * an id not found after ``not_found_grace_period`` raises :class:`EtelecomConsentNotFoundError`;
    * transient errors (network, 5xx, rate limits) are logged and the next check tries again;
      authentication and bad-request errors fail at once.

    With ``soft_fail=True`` the consent outcomes above, not-found and the timeout skip the task
    instead of failing it; errors about the set-up (key, arguments, an unknown status) still fail.
    ``poke``, ``reschedule`` and ``deferrable`` return the same XCom value and raise the same errors.

    :param consent_id: the consent's id (templated), usually the upstream
        ``RequestConsentOperator``'s ``return_value["id"]``.
    :param phone: the customer's phone (templated).
    :param oa_id: the Official Account id (templated).
    :param etelecom_conn_id: the eTelecom connection.
    :param failure_statuses: final replies that fail the task, a subset of ``{"P", "N", "NS"}``.
    :param not_found_grace_period: how long an unknown id is waited for (seconds or timedelta),
        counted from the wait's first check; the listing may lag a fresh request.
    :param lookup_pages: pages of 100 of the ``oa_id`` + ``phone`` listing scanned per check.
    :param deferrable: wait on the triggerer (:class:`ConsentReplyTrigger`) without a worker slot.
    :param poke_interval: seconds between checks.
    """

    template_fields = ("consent_id", "phone", "oa_id")
    ui_color = "#d7ecfb"

    def __init__(
        self,
        *,
        consent_id: str | int,
        phone: str,
        oa_id: str | int,
        etelecom_conn_id: str = EtelecomHook.default_conn_name,
        failure_statuses: Iterable[str] = (),
        not_found_grace_period: float | timedelta = 60,
        lookup_pages: int = 1,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.consent_id = consent_id
        self.phone = phone
        self.oa_id = oa_id
        self.etelecom_conn_id = etelecom_conn_id
        if isinstance(failure_statuses, str):
            failure_statuses = [failure_statuses]
        statuses = frozenset(failure_statuses)
        if not statuses <= FINAL_REPLY_STATUSES:
            raise EtelecomValidationError(
                f"failure_statuses={sorted(statuses)!r} may only hold final replies: 'P' (agreed), "
                f"'N' (refused), 'NS' (no reply).",
                parameter="failure_statuses",
            )
        self.failure_statuses = statuses
        self.not_found_grace_period = _seconds("not_found_grace_period", not_found_grace_period)
        if isinstance(lookup_pages, bool) or not isinstance(lookup_pages, int) or not 1 <= lookup_pages <= 100:
            raise EtelecomValidationError(
                f"lookup_pages={lookup_pages!r} must be an int from 1 to 100 (pages of 100 consents per check).",
                parameter="lookup_pages",
            )
        self.lookup_pages = lookup_pages
        self.deferrable = deferrable
        if not _is_unrendered(consent_id):
            validate_int64_id("consent_id", consent_id)
        if not _is_unrendered(oa_id):
            validate_int64_id("oa_id", oa_id)
        if not _is_unrendered(phone):
            normalize_phone(phone)

    @cached_property
    def hook(self) -> EtelecomHook:
        """The hook for ``etelecom_conn_id``."""
        return EtelecomHook(self.etelecom_conn_id)

    # -- the wait ----------------------------------------------------------------------------

    def _describe(self) -> str:
        return f"consent {self.consent_id} (OA {self.oa_id}, phone {mask_phone(str(self.phone))})"

    def _wait_started_at(self, context: Context) -> datetime:
        """Return when this wait began, in a way that survives reschedule mode and deferral.

        Reschedule mode: the first reschedule's start (Airflow 3 asks for it; Airflow 2 already
        gives it as the task instance's ``start_date``). Poke and deferrable modes: the try's
        ``start_date``, which Airflow keeps when a task resumes from deferral. Without a task
        instance (a direct ``poke`` call) the first check of this object.
        """
        ti: Any = context.get("ti")
        first_reschedule = getattr(ti, "get_first_reschedule_date", None)
        if self.reschedule and callable(first_reschedule):
            rescheduled = first_reschedule(context)
            if isinstance(rescheduled, datetime):
                return rescheduled.astimezone(timezone.utc)
        started = getattr(ti, "start_date", None)
        if isinstance(started, datetime):
            return started.astimezone(timezone.utc)
        if not hasattr(self, "_first_check_at"):
            self._first_check_at = datetime.now(timezone.utc)
        return self._first_check_at

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check the consent once.

        :return: not done while the customer has not answered (or the check failed transiently);
            done with the consent as XCom value once there is an outcome.
        :raises EtelecomConsentOutcomeError: for an outcome the task treats as failure.
        :raises EtelecomConsentNotFoundError: when the id is still unknown after the grace period.
        """
        started = self._wait_started_at(context)
        try:
            consent = self.hook.find_consent(
                self.consent_id, oa_id=self.oa_id, phone=self.phone, max_pages=self.lookup_pages
            )
        except EtelecomTransientError as error:
            self.log.warning("Checking %s failed (%s); checking again later.", self._describe(), error.message)
            return False
        now = datetime.now(timezone.utc)
        if consent is None:
            if (now - started).total_seconds() >= self.not_found_grace_period:
                self._fail(self._not_found_error())
            self.log.info(
                "%s is not listed yet; waiting (grace period %.0f s).", self._describe(), self.not_found_grace_period
            )
            return False
        state = classify_consent(consent, now=now)
        if state is ConsentState.WAITING:
            self.log.info("%s: the customer has not answered yet.", self._describe())
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._outcome(consent, state))

    # -- outcomes: the same for poke, reschedule and execute_complete ------------------------

    def _fail(self, error: EtelecomError, *, skippable: bool = True) -> None:
        if skippable and self.soft_fail:
            raise AirflowSkipException(f"{error.message} (soft_fail=True: skipping)") from error
        raise error

    def _not_found_error(self) -> EtelecomConsentNotFoundError:
        return EtelecomConsentNotFoundError(
            f"{self._describe()} was not found among the newest {self.lookup_pages * 100} consents for that OA "
            f"and phone after the {self.not_found_grace_period:.0f} s grace period. Check that consent_id, oa_id "
            f"and phone belong together (consent_id usually comes from RequestConsentOperator's XCom); for an "
            f"older consent raise lookup_pages.",
            endpoint="Zalo/ListRequestConsent",
        )

    def _outcome(self, consent: Consent, state: ConsentState) -> Consent:
        """Turn a consent that is no longer waiting into the task's result or error."""
        reply = consent.get("reply_status")
        what = self._describe()
        if state is ConsentState.ANSWERED:
            if reply in self.failure_statuses:
                self._fail(
                    EtelecomConsentOutcomeError(
                        f"The customer {_REPLY_WORDS.get(str(reply), reply)} for {what}; failure_statuses="
                        f"{sorted(self.failure_statuses)} makes that a failure.",
                        consent=dict(consent),
                    )
                )
            self.log.info("%s: the customer %s.", what, _REPLY_WORDS.get(str(reply), reply))
            return consent
        if state is ConsentState.NOT_SENT:
            self._fail(
                EtelecomConsentOutcomeError(
                    f"The request for {what} was not delivered (status N), so no answer will come: eTelecom "
                    f"error_code={consent.get('error_code')!r}, error_message={consent.get('error_message')!r}.",
                    consent=dict(consent),
                )
            )
        if state is ConsentState.EXPIRED:
            self._fail(
                EtelecomConsentOutcomeError(
                    f"{what} is still waiting (S) but expired at {consent.get('expires_at')}, so no answer will come.",
                    consent=dict(consent),
                )
            )
        self._fail(
            EtelecomConsentOutcomeError(
                f"{what} has reply_status={reply!r}, which this provider does not know; failing closed rather "
                f"than guessing. Upgrade the provider or report it.",
                consent=dict(consent),
            ),
            skippable=False,
        )
        raise AssertionError("unreachable")  # pragma: no cover

    # -- modes ---------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Wait in poke or reschedule mode, or check once and defer to :class:`ConsentReplyTrigger`."""
        if not self.deferrable:
            return super().execute(context)
        result = self.poke(context)
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        started = self._wait_started_at(context)
        deadline = started + timedelta(seconds=float(self.timeout))
        remaining = max(1.0, (deadline - datetime.now(timezone.utc)).total_seconds())
        self.defer(
            trigger=ConsentReplyTrigger(
                consent_id=str(self.consent_id),
                phone=str(self.phone),
                oa_id=str(self.oa_id),
                etelecom_conn_id=self.etelecom_conn_id,
                poke_interval=float(self.poke_interval),
                deadline=deadline,
                not_found_deadline=started + timedelta(seconds=self.not_found_grace_period),
                lookup_pages=self.lookup_pages,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Consent:
        """Resume after the trigger: validate its event and apply the same outcome rules as ``poke``.

        :raises EtelecomError: for a malformed or unknown event (fail closed).
        """
        parsed: ConsentReplyEvent = parse_reply_event(event)
        if parsed.consent is not None:
            state = classify_consent(parsed.consent, now=parsed.checked_at)
            if state.value != parsed.status or state is ConsentState.WAITING:
                raise EtelecomError(
                    f"The ConsentReplyTrigger event says {parsed.status!r} but its consent reads {state.value!r}; "
                    f"failing closed. Clear the task to wait again."
                )
            return self._outcome(parsed.consent, state)
        if parsed.status == "not_found":
            self._fail(self._not_found_error())
        if parsed.status == "timeout":
            message = parsed.message or f"No final reply for {self._describe()} before the sensor's timeout."
            if self.soft_fail:
                raise AirflowSkipException(f"{message} (soft_fail=True: skipping)")
            raise AirflowSensorTimeout(message)
        error_class = ERROR_CLASSES.get(parsed.error_class or "", EtelecomError)
        raise error_class(parsed.message or "The ConsentReplyTrigger ended with an error.")
