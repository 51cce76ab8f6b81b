"""Wait for replies to consent requests: :class:`ConsentReplySensor` (one), :class:`ConsentRepliesSensor` (many)."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any, NoReturn

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    conf,
)

from airflow_provider_etelecom.client import Consent, ConsentState, classify_consent, mask_phone
from airflow_provider_etelecom.client.models import FINAL_REPLY_STATUSES, parse_api_time
from airflow_provider_etelecom.client.validation import normalize_phone, validate_int64_id, validate_time
from airflow_provider_etelecom.exceptions import (
    EtelecomConsentNotFoundError,
    EtelecomConsentOutcomeError,
    EtelecomError,
    EtelecomTransientError,
    EtelecomValidationError,
)
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook
from airflow_provider_etelecom.triggers.consents import (
    CREATED_FROM_MARGIN_S,
    ERROR_CLASSES,
    REPLIES_DECISIONS,
    ConsentRepliesTrigger,
    ConsentReplyEvent,
    ConsentReplyTrigger,
    RepliesDecision,
    decide_replies,
    find_consents,
    parse_replies_event,
    parse_reply_event,
    replies_query,
)
from airflow_provider_etelecom.utils.failure_policy import validate_retry_permanent_errors, with_failure_policy

__all__ = ["ConsentRepliesSensor", "ConsentReplySensor"]

_REPLY_WORDS = {"P": "agreed (P)", "N": "refused (N)", "NS": "did not reply in time (NS)"}

#: Seconds a consent that ``RequestConsent`` just created may take to show in the listing: the
#: sensors' ``not_found_grace_period`` and ``RequestConsentOperator``'s ``listing_lag_grace``.
LISTING_LAG_GRACE_S = 60.0


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


def _failure_statuses(value: Iterable[str] | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    try:
        statuses = frozenset([value] if isinstance(value, str) else value)
    except TypeError:
        statuses = frozenset({repr(value)})
    if not statuses <= FINAL_REPLY_STATUSES:
        raise EtelecomValidationError(
            f"failure_statuses={sorted(statuses)!r} may only hold final replies: 'P' (agreed), "
            f"'N' (refused), 'NS' (no reply).",
            parameter="failure_statuses",
        )
    return statuses


def _consent_problem(
    consent: Consent, state: ConsentState, failure_statuses: frozenset[str], what: str
) -> tuple[EtelecomConsentOutcomeError, bool] | None:
    """Return the error a consent that left ``S`` ends the task with (and whether soft_fail may skip it).

    ``None`` means success: a final reply not in ``failure_statuses``. Shared by both sensors so
    a consent ends the same way whether it is waited for alone or in a batch.
    """
    reply = consent.get("reply_status")
    if state is ConsentState.ANSWERED:
        if reply not in failure_statuses:
            return None
        return (
            EtelecomConsentOutcomeError(
                f"The customer {_REPLY_WORDS.get(str(reply), reply)} for {what}; failure_statuses="
                f"{sorted(failure_statuses)} makes that a failure.",
                consent=dict(consent),
            ),
            True,
        )
    if state is ConsentState.NOT_SENT:
        return (
            EtelecomConsentOutcomeError(
                f"The request for {what} was not delivered (status N), so no answer will come: eTelecom "
                f"error_code={consent.get('error_code')!r}, error_message={consent.get('error_message')!r}.",
                consent=dict(consent),
            ),
            True,
        )
    if state is ConsentState.EXPIRED:
        return (
            EtelecomConsentOutcomeError(
                f"{what} is still waiting (S) but expired at {consent.get('expires_at')}, so no answer will come.",
                consent=dict(consent),
            ),
            True,
        )
    return (
        EtelecomConsentOutcomeError(
            f"{what} has reply_status={reply!r}, which this provider does not know; failing closed rather "
            f"than guessing. Upgrade the provider or report it.",
            consent=dict(consent),
        ),
        False,
    )


class _ConsentWaitSensor(BaseSensorOperator):
    """What both consent sensors share: the hook, when the wait began, soft_fail and the retry policy.

    ``execute`` and ``execute_complete`` run under
    :func:`~airflow_provider_etelecom.utils.failure_policy.failure_policy`: a refused key (after
    one re-read of the connection), a refused request or invalid rendered arguments fail the task
    without Airflow retries, in every mode, unless ``retry_permanent_errors=True``.

    :param retry_permanent_errors: let Airflow retry failures a retry cannot fix (off by default).
    """

    etelecom_conn_id: str
    not_found_grace_period: float

    def __init__(self, *, retry_permanent_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_permanent_errors = validate_retry_permanent_errors(retry_permanent_errors)

    @cached_property
    def hook(self) -> EtelecomHook:
        """The hook for ``etelecom_conn_id``."""
        return EtelecomHook(self.etelecom_conn_id)

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

    def _deferral_times(self, context: Context) -> tuple[datetime, datetime, timedelta]:
        """Return the trigger's absolute deadline, its not-found deadline, and the defer timeout.

        The trigger keeps the sensor's ``timeout`` as its own deadline (``defer(timeout=)`` is not
        enforced everywhere, e.g. in ``dag.test()``), counted from when the wait began.
        """
        started = self._wait_started_at(context)
        deadline = started + timedelta(seconds=float(self.timeout))
        remaining = max(1.0, (deadline - datetime.now(timezone.utc)).total_seconds())
        not_found_deadline = started + timedelta(seconds=self.not_found_grace_period)
        return deadline, not_found_deadline, timedelta(seconds=remaining)

    def _fail(self, error: EtelecomError, *, skippable: bool = True) -> NoReturn:
        if skippable and self.soft_fail:
            raise AirflowSkipException(f"{error.message} (soft_fail=True: skipping)") from error
        raise error


class ConsentReplySensor(_ConsentWaitSensor):
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
        not_found_grace_period: float | timedelta = LISTING_LAG_GRACE_S,
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
        self.failure_statuses = _failure_statuses(failure_statuses)
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

    # -- the wait ----------------------------------------------------------------------------

    def _describe(self) -> str:
        return f"consent {self.consent_id} (OA {self.oa_id}, phone {mask_phone(str(self.phone))})"

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
        problem = _consent_problem(consent, state, self.failure_statuses, self._describe())
        if problem is not None:
            error, skippable = problem
            self._fail(error, skippable=skippable)
        reply = consent.get("reply_status")
        self.log.info("%s: the customer %s.", self._describe(), _REPLY_WORDS.get(str(reply), reply))
        return consent

    # -- modes ---------------------------------------------------------------------------------

    @with_failure_policy
    def execute(self, context: Context) -> Any:
        """Wait in poke or reschedule mode, or check once and defer to :class:`ConsentReplyTrigger`."""
        if not self.deferrable:
            return super().execute(context)
        result = self.poke(context)
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        deadline, not_found_deadline, defer_timeout = self._deferral_times(context)
        self.defer(
            trigger=ConsentReplyTrigger(
                consent_id=str(self.consent_id),
                phone=str(self.phone),
                oa_id=str(self.oa_id),
                etelecom_conn_id=self.etelecom_conn_id,
                poke_interval=float(self.poke_interval),
                deadline=deadline,
                not_found_deadline=not_found_deadline,
                lookup_pages=self.lookup_pages,
            ),
            method_name="execute_complete",
            timeout=defer_timeout,
        )

    @with_failure_policy
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


#: How many ids an error message lists before it says "and N more".
_SHOWN_IDS = 20


def _show_ids(ids: Iterable[str]) -> str:
    listed = list(ids)
    shown = ", ".join(listed[:_SHOWN_IDS])
    return shown + (f" and {len(listed) - _SHOWN_IDS} more" if len(listed) > _SHOWN_IDS else "")


def _rendered_items(value: object) -> list[object]:
    """Turn what ``consent_ids`` rendered to into a list of ids or consent dicts.

    A list (or any iterable, e.g. the lazy sequence a mapped task's XCom resolves to), one
    consent dict, one id, or a string: JSON or a Python literal (what ``{{ ti.xcom_pull(...) }}``
    renders to without native rendering), else comma-separated ids.
    """
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "(", "{"):
            for parse in (json.loads, ast.literal_eval):
                try:
                    return _rendered_items(parse(text))
                except (ValueError, SyntaxError):
                    continue
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, (int, Mapping)):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    raise EtelecomValidationError(
        f"consent_ids rendered to {type(value).__name__}; pass a list of consent ids or of consent dicts "
        f"(e.g. a mapped RequestConsentOperator's output).",
        parameter="consent_ids",
    )


def _wanted_consents(value: object) -> tuple[list[str], datetime | None]:
    """Return the wanted ids (input order, no repeats) and the earliest ``created_at`` among the dicts.

    :raises EtelecomValidationError: for an empty list, an invalid id or a dict without ``id``.
    """
    ids: list[str] = []
    earliest: datetime | None = None
    for item in _rendered_items(value):
        if isinstance(item, Mapping):
            if "id" not in item:
                raise EtelecomValidationError(
                    f"consent_ids holds a dict without 'id' ({sorted(item)[:8]}); pass consents as "
                    f"RequestConsentOperator returns them, or their ids.",
                    parameter="consent_ids",
                )
            created_at = item.get("created_at")
            if isinstance(created_at, str):
                try:
                    moment = parse_api_time(created_at)
                except ValueError:
                    moment = None
                if moment is not None and (earliest is None or moment < earliest):
                    earliest = moment
            item = item["id"]
        ids.append(validate_int64_id("consent_ids", item))
    if not ids:
        raise EtelecomValidationError("consent_ids is empty: there is nothing to wait for.", parameter="consent_ids")
    return list(dict.fromkeys(ids)), earliest


class ConsentRepliesSensor(_ConsentWaitSensor):
    """Wait for the replies to many consent requests with one listing per check.

    Each check is one paged ``ListRequestConsent`` listing (100 per page) narrowed by ``oa_id``,
    ``phone`` and ``created_from``, scanned for the wanted ids; the paging stops as soon as every
    wanted id has been seen. It costs about *consents in that window / 100* requests per check,
    however many consents are waited for (one :class:`ConsentReplySensor` per consent costs one
    request per consent per check). With ``created_from`` the listing runs oldest first from it, so
    consents created after the batch are not read; without it, newest first over the whole
    account (or OA/phone): give ``created_from`` or pass consent dicts, from which it is derived.

    The decision is :func:`~airflow_provider_etelecom.triggers.consents.decide_replies`, shared by
    ``poke``, the trigger and ``execute_complete``, applied in this order:

    * any consent with an unknown ``reply_status``: :class:`EtelecomConsentOutcomeError`, even with
      ``soft_fail`` (fail closed);
    * any consent whose outcome fails :class:`ConsentReplySensor` (a reply in
      ``failure_statuses``, a failed send, an expired request): :class:`EtelecomConsentOutcomeError`
      listing every such consent, at the first check that sees one;
    * ids not listed: waited for during ``not_found_grace_period``, then
      :class:`EtelecomConsentNotFoundError` listing them;
    * success once at least ``min_share`` of the consents have left ``S``.

    ``soft_fail=True`` skips instead of failing for failing outcomes, not-found and the timeout.

    :param consent_ids: (templated) the consents to wait for: a list of ids, or of consent dicts as
        ``RequestConsentOperator`` returns them (e.g. a mapped task's ``.output``; their ``id`` is
        used), or a template rendering to such a list.
    :param oa_id: (templated) narrow the listing to this Official Account.
    :param phone: (templated) narrow the listing to this phone.
    :param created_from: (templated) list only consents created at or after this time (aware
        datetime or ISO-8601). Default: the earliest ``created_at`` of the consent dicts passed,
        minus five minutes; none when only ids are passed.
    :param etelecom_conn_id: the eTelecom connection.
    :param min_share: succeed once this share (0 < share <= 1) of the consents have left ``S``;
        1.0 waits for all of them.
    :param failure_statuses: final replies that fail the task, a subset of ``{"P", "N", "NS"}``.
    :param not_found_grace_period: how long ids that are not listed are waited for (seconds or
        timedelta), counted from the start of the wait.
    :param deferrable: wait on the triggerer (:class:`ConsentRepliesTrigger`) without a worker slot.
    :param poke_interval: seconds between checks.
    :param max_pages_per_check: bound on the pages one check reads (default: until every id is seen).
    :return: (XCom) ``{consent_id: consent}`` for every wanted consent, in input order, each as
        last listed (consents still waiting when ``min_share`` < 1 was reached read ``S``).
    """

    template_fields = ("consent_ids", "oa_id", "phone", "created_from")
    ui_color = "#d7ecfb"

    def __init__(
        self,
        *,
        consent_ids: Any,
        oa_id: str | int | None = None,
        phone: str | None = None,
        created_from: datetime | str | None = None,
        etelecom_conn_id: str = EtelecomHook.default_conn_name,
        min_share: float = 1.0,
        failure_statuses: Iterable[str] = (),
        not_found_grace_period: float | timedelta = LISTING_LAG_GRACE_S,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 60,
        max_pages_per_check: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.consent_ids = consent_ids
        self.oa_id = oa_id
        self.phone = phone
        self.created_from = created_from
        self.etelecom_conn_id = etelecom_conn_id
        if isinstance(min_share, bool) or not isinstance(min_share, (int, float)) or not 0 < min_share <= 1:
            raise EtelecomValidationError(
                f"min_share={min_share!r} must be a number above 0 and at most 1 (1.0 waits for every consent).",
                parameter="min_share",
            )
        self.min_share = float(min_share)
        self.failure_statuses = _failure_statuses(failure_statuses)
        self.not_found_grace_period = _seconds("not_found_grace_period", not_found_grace_period)
        if max_pages_per_check is not None and (
            isinstance(max_pages_per_check, bool) or not isinstance(max_pages_per_check, int) or max_pages_per_check < 1
        ):
            raise EtelecomValidationError(
                f"max_pages_per_check={max_pages_per_check!r} must be a positive int or None.",
                parameter="max_pages_per_check",
            )
        self.max_pages_per_check = max_pages_per_check
        self.deferrable = deferrable
        if isinstance(consent_ids, (list, tuple)) and all(
            isinstance(item, (int, Mapping)) or (isinstance(item, str) and "{{" not in item) for item in consent_ids
        ):
            _wanted_consents(consent_ids)
        if oa_id is not None and not _is_unrendered(oa_id):
            validate_int64_id("oa_id", oa_id)
        if phone is not None and not _is_unrendered(phone):
            normalize_phone(phone)
        if isinstance(created_from, datetime) or (isinstance(created_from, str) and "{{" not in created_from):
            validate_time("created_from", created_from)

    # -- what to wait for ----------------------------------------------------------------------

    def _wanted(self) -> tuple[list[str], datetime | None]:
        """Return the rendered ids and the listing's lower bound on ``created_at``."""
        ids, earliest = _wanted_consents(self.consent_ids)
        if self.created_from not in (None, ""):
            return ids, validate_time("created_from", self.created_from, timezone_name=self.hook.timezone)
        return ids, None if earliest is None else earliest - timedelta(seconds=CREATED_FROM_MARGIN_S)

    def _check(self, ids: list[str], created_from: datetime | None) -> dict[str, Consent]:
        client = self.hook.client
        query = replies_query(
            client,
            oa_id=None if self.oa_id in (None, "") else str(self.oa_id),
            phone=None if self.phone in (None, "") else str(self.phone),
            created_from=created_from,
            max_pages=self.max_pages_per_check,
        )
        if query.date_from is None and self.max_pages_per_check is None:
            self.log.warning(
                "No created_from (pass consent dicts, or created_from) and no max_pages_per_check: a check "
                "pages newest first through every consent of %s until all %d ids are seen.",
                query.describe(),
                len(ids),
            )
        found, pages = find_consents(client, query, ids)
        self.log.info(
            "Listed %d page(s) (%s) and found %d of %d consents.", pages, query.describe(), len(found), len(ids)
        )
        return found

    def _decide(
        self, ids: list[str], found: dict[str, Consent], now: datetime, not_found_expired: bool
    ) -> RepliesDecision:
        return decide_replies(
            ids,
            found,
            min_share=self.min_share,
            failure_statuses=self.failure_statuses,
            now=now,
            not_found_expired=not_found_expired,
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check every consent with one listing.

        :return: not done while too few consents are final (or the check failed transiently);
            done with ``{consent_id: consent}`` once decided.
        :raises EtelecomConsentOutcomeError: listing the consents whose outcome fails the task.
        :raises EtelecomConsentNotFoundError: listing the ids still unknown after the grace period.
        """
        ids, created_from = self._wanted()
        started = self._wait_started_at(context)
        try:
            found = self._check(ids, created_from)
        except EtelecomTransientError as error:
            self.log.warning("Checking %d consents failed (%s); checking again later.", len(ids), error.message)
            return False
        now = datetime.now(timezone.utc)
        decision = self._decide(ids, found, now, (now - started).total_seconds() >= self.not_found_grace_period)
        if decision.status == "waiting":
            self.log.info(
                "%d of %d consents have left S (min_share=%s); %d not listed yet. Waiting.",
                decision.final,
                decision.wanted,
                self.min_share,
                len(decision.missing),
            )
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._outcome(ids, found, decision, now))

    # -- outcomes: the same for poke, reschedule and execute_complete ------------------------

    def _outcome(
        self, ids: list[str], found: Mapping[str, Consent], decision: RepliesDecision, now: datetime
    ) -> dict[str, Consent]:
        """Turn a decision into the task's result (``{consent_id: consent}``) or error."""
        if decision.status in ("unknown", "failed"):
            culprits = decision.unknown or decision.failed
            problems = [
                _consent_problem(found[i], classify_consent(found[i], now=now), self.failure_statuses, f"consent {i}")
                for i in culprits
            ]
            details = "; ".join(problem[0].message for problem in problems[:5] if problem is not None)
            more = f" ({len(culprits) - 5} more not shown)" if len(culprits) > 5 else ""
            self._fail(
                EtelecomConsentOutcomeError(
                    f"{len(culprits)} of {decision.wanted} consents ended in a state that fails the task: "
                    f"{_show_ids(culprits)}. {details}{more}",
                    consent=dict(found[culprits[0]]),
                ),
                skippable=decision.status == "failed",
            )
        if decision.status == "not_found":
            self._fail(
                EtelecomConsentNotFoundError(
                    f"{len(decision.missing)} of {decision.wanted} consents were not found after the "
                    f"{self.not_found_grace_period:.0f} s grace period: {_show_ids(decision.missing)}. The listing "
                    f"was narrowed by oa_id={self.oa_id!r}, phone={mask_phone(str(self.phone)) if self.phone else None}"
                    f", created_from={self.created_from!r} (or derived from the consents' created_at); check "
                    f"that the ids belong to them, or widen the narrowing and max_pages_per_check.",
                    endpoint="Zalo/ListRequestConsent",
                )
            )
        self.log.info(
            "%d of %d consents have left S (min_share=%s): done.", decision.final, decision.wanted, self.min_share
        )
        return {consent_id: found[consent_id] for consent_id in ids}

    # -- modes ---------------------------------------------------------------------------------

    @with_failure_policy
    def execute(self, context: Context) -> Any:
        """Wait in poke or reschedule mode, or check once and defer to :class:`ConsentRepliesTrigger`."""
        if not self.deferrable:
            return super().execute(context)
        result = self.poke(context)
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        ids, created_from = self._wanted()
        deadline, not_found_deadline, defer_timeout = self._deferral_times(context)
        self.defer(
            trigger=ConsentRepliesTrigger(
                consent_ids=ids,
                oa_id=None if self.oa_id in (None, "") else str(self.oa_id),
                phone=None if self.phone in (None, "") else str(self.phone),
                created_from=created_from,
                etelecom_conn_id=self.etelecom_conn_id,
                min_share=self.min_share,
                failure_statuses=sorted(self.failure_statuses),
                poke_interval=float(self.poke_interval),
                deadline=deadline,
                not_found_deadline=not_found_deadline,
                max_pages_per_check=self.max_pages_per_check,
            ),
            method_name="execute_complete",
            timeout=defer_timeout,
        )

    @with_failure_policy
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Consent]:
        """Resume after the trigger: validate its event and decide again with the same function as ``poke``.

        :raises EtelecomError: for a malformed event, or one whose consents do not support its status.
        """
        parsed = parse_replies_event(event)
        if parsed.status in REPLIES_DECISIONS:
            ids, _ = self._wanted()
            strangers = set(parsed.consents) - set(ids)
            decision = self._decide(ids, parsed.consents, parsed.checked_at, parsed.status == "not_found")
            if strangers or decision.status != parsed.status:
                raise EtelecomError(
                    f"The ConsentRepliesTrigger event says {parsed.status!r} but its consents read "
                    f"{decision.status!r}{' and include ids not waited for' if strangers else ''}; failing closed. "
                    f"Clear the task to wait again."
                )
            return self._outcome(ids, parsed.consents, decision, parsed.checked_at)
        if parsed.status == "timeout":
            message = parsed.message or "Not enough consents answered before the sensor's timeout."
            if self.soft_fail:
                raise AirflowSkipException(f"{message} (soft_fail=True: skipping)")
            raise AirflowSensorTimeout(message)
        error_class = ERROR_CLASSES.get(parsed.error_class or "", EtelecomError)
        raise error_class(parsed.message or "The ConsentRepliesTrigger ended with an error.")
