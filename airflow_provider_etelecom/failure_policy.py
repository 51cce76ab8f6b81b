"""Map the provider's failures onto Airflow retries: one helper for every operator and sensor.

The decision (can a retry fix this failure?) is :func:`classify_failure`, the one every operator,
sensor and the transfer use (writes to ``output_path`` are classified where they fail,
:func:`~airflow_provider_etelecom.outputs.files.classify_storage_failure`); the policy acts on it
around ``execute`` and ``execute_complete``:

* :attr:`~airflow_provider_etelecom.exceptions.FailureKind.PERMANENT` (validation,
  configuration, a refused key, a refused request, a wrong route, a missing bucket, a read-only path):
  ``AirflowFailException``, so the task fails without using its retries, with a message that
  names the parameter or connection field to fix;
* :attr:`~airflow_provider_etelecom.exceptions.FailureKind.CREDENTIALS` (object storage
  refused the credentials): re-raised on the first try, so a task with retries gets one more
  try while a role's token renews; ``AirflowFailException`` from the second try on;
* everything else is re-raised untouched: Airflow retries it as configured.

``retry_permanent_errors=True`` on the task re-raises the first two kinds untouched too, for
users who want Airflow's retries anyway (a key that an outside process fixes within the retry
delay, say).

On Airflow 3.3+, a task given a ``retry_policy`` (AIP-105) has every failure re-raised untouched,
so that its policy decides: Airflow never consults a policy about an ``AirflowFailException``.
:class:`EtelecomRetryPolicy` (Airflow 3.3+) is the decision above as such a policy, to use alone or
in a ``ChainRetryPolicy``. On Airflow 2.11 and 3.0 to 3.2 nothing changes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, NoReturn, TypeVar, cast

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from airflow_provider_etelecom.exceptions import (
    EtelecomAuthError,
    EtelecomBadRequestError,
    EtelecomConfigError,
    EtelecomContractError,
    EtelecomDatabaseError,
    EtelecomError,
    EtelecomNotFoundError,
    EtelecomOutputError,
    EtelecomRateLimitError,
    EtelecomValidationError,
    FailureKind,
)

__all__ = ["retry_policy_decides", "validate_retry_permanent_errors", "with_failure_policy"]
if AIRFLOW_V_3_3_PLUS:
    __all__ += ["EtelecomRetryPolicy"]

log = logging.getLogger(__name__)

_Method = TypeVar("_Method", bound=Callable[..., Any])

#: Failures that a retry repeats exactly: the same rendered arguments, the same connection.
_PERMANENT_ERRORS: tuple[type[EtelecomError], ...] = (
    EtelecomValidationError,
    EtelecomConfigError,
    EtelecomAuthError,
    EtelecomBadRequestError,
    EtelecomNotFoundError,
)


def classify_failure(error: BaseException) -> FailureKind:
    """Tell whether an Airflow retry can fix ``error``: the one decision every operator and sensor uses.

    Validation, configuration, authentication (after the hook has read the connection once
    more), a request the platform refuses, a wrong route and an answer that broke what the listing
    relies on (:class:`EtelecomContractError`, but for an export found incomplete) are
    :attr:`FailureKind.PERMANENT`;
    an :class:`EtelecomOutputError` or :class:`EtelecomDatabaseError` carries its own kind;
    everything else, including exceptions that are not the provider's, is
    :attr:`FailureKind.TRANSIENT` and left to Airflow as it is.
    A consent outcome (a refusal, a failed send) is not permanent: a failed send reached nobody
    and a retry sends again, by design.
    """
    if isinstance(error, (EtelecomOutputError, EtelecomDatabaseError)):
        return FailureKind(error.kind)
    if isinstance(error, EtelecomContractError):
        return FailureKind.TRANSIENT if error.retryable else FailureKind.PERMANENT
    if isinstance(error, _PERMANENT_ERRORS):
        return FailureKind.PERMANENT
    return FailureKind.TRANSIENT


def validate_retry_permanent_errors(value: object) -> bool:
    """Check the ``retry_permanent_errors`` argument of an operator or sensor.

    :raises EtelecomValidationError: unless it is a bool.
    """
    if not isinstance(value, bool):
        raise EtelecomValidationError(
            f"retry_permanent_errors={value!r} must be True (let Airflow retry failures a retry cannot fix) "
            f"or False (the default: fail them at once).",
            parameter="retry_permanent_errors",
        )
    return value


def _what_to_fix(task: Any, error: BaseException) -> str:
    """Say which connection field to fix when the message itself names none."""
    conn_id = getattr(task, "etelecom_conn_id", None)
    if conn_id is None:
        return ""
    if isinstance(error, EtelecomAuthError):
        return f" Fix the API key (the Password field) of connection {conn_id!r}."
    if isinstance(error, EtelecomNotFoundError):
        return f" Fix the Base URL (the Host field) of connection {conn_id!r}."
    return ""


def _try_number(context: Any) -> int:
    ti = context.get("ti") if hasattr(context, "get") else None
    number = getattr(ti, "try_number", None)
    return number if isinstance(number, int) else 1


def retry_policy_decides(task: Any) -> bool:
    """Tell whether the task's own ``retry_policy`` decides its retries (Airflow 3.3+, one set on the task).

    Then no failure may become an ``AirflowFailException``: Airflow fails the task on one without
    consulting the policy.
    """
    return AIRFLOW_V_3_3_PLUS and getattr(task, "retry_policy", None) is not None


@contextmanager
def failure_policy(task: Any, context: Any) -> Iterator[None]:
    """Apply the provider's retry policy to what the block raises (see the module docstring).

    A task with a ``retry_policy`` (Airflow 3.3+) gets every failure re-raised untouched, for its
    policy to decide.

    :param task: the operator or sensor (its ``task_id``, ``etelecom_conn_id``,
        ``retry_permanent_errors`` and, on Airflow 3.3+, ``retry_policy`` are read).
    :param context: the Airflow context (its ``ti.try_number`` is read).
    """
    try:
        yield
    except BaseException as error:
        kind = classify_failure(error)
        if kind is FailureKind.TRANSIENT or getattr(task, "retry_permanent_errors", False):
            raise
        message = error.message if isinstance(error, EtelecomError) else str(error)
        where = f"{type(task).__name__} {getattr(task, 'task_id', '?')}"
        if retry_policy_decides(task):
            # An AirflowFailException would fail the task before its retry_policy is consulted.
            log.warning(
                "%s: %s%s Without a retry_policy the provider would %s; the task's retry_policy decides "
                "(EtelecomRetryPolicy makes the provider's decision).",
                where,
                message,
                _what_to_fix(task, error),
                "give this one retry at most" if kind is FailureKind.CREDENTIALS else "not retry this",
            )
            raise
        if kind is FailureKind.CREDENTIALS:
            if _try_number(context) <= 1:
                log.warning(
                    "%s: %s Retrying once (if the task has retries) in case the credentials were being "
                    "refreshed; the next refusal fails the task.",
                    where,
                    message,
                )
                raise
            raise AirflowFailException(
                f"{where}: {message} Refused again on try {_try_number(context)}, so not retried further "
                f"(retry_permanent_errors=True lets Airflow retry it)."
            ) from error
        raise AirflowFailException(
            f"{where}: {message}{_what_to_fix(task, error)} Not retried: a retry would fail the same way "
            f"(retry_permanent_errors=True lets Airflow retry it)."
        ) from error


def with_failure_policy(method: _Method) -> _Method:
    """Decorate ``execute``/``execute_complete`` (``self, context, ...``) with :func:`failure_policy`."""

    @functools.wraps(method)
    def wrapper(self: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        with failure_policy(self, context):
            return method(self, context, *args, **kwargs)

    return cast(_Method, wrapper)


def _retry_after(error: BaseException, task: Any) -> timedelta | None:
    """Return a rate-limited failure's ``Retry-After``, at most the task's ``max_retry_delay``."""
    if not isinstance(error, EtelecomRateLimitError) or error.retry_after is None:
        return None
    delay = timedelta(seconds=error.retry_after)
    cap = getattr(task, "max_retry_delay", None)
    if isinstance(cap, (int, float)) and not isinstance(cap, bool):
        cap = timedelta(seconds=cap)
    return min(delay, cap) if isinstance(cap, timedelta) else delay


if AIRFLOW_V_3_3_PLUS:
    from airflow.providers.common.compat.sdk import Context, RetryAction, RetryDecision, RetryPolicy

    class EtelecomRetryPolicy(RetryPolicy):
        """The provider's failure classification as an Airflow 3.3+ task ``retry_policy`` (AIP-105).

        Decides the failures the provider raises (:class:`~airflow_provider_etelecom.exceptions.EtelecomError`)
        by :func:`classify_failure`, as :func:`failure_policy` does without a policy:

        * :attr:`~FailureKind.PERMANENT`: ``FAIL``, the reason naming what to fix;
        * :attr:`~FailureKind.CREDENTIALS`: ``RETRY`` on try 1 (a role's token may be renewing),
          ``FAIL`` from try 2 on;
        * :attr:`~FailureKind.TRANSIENT`: ``RETRY``; a rate-limited failure
          (:class:`~airflow_provider_etelecom.exceptions.EtelecomRateLimitError`) with a
          ``Retry-After`` is retried after it (at most the task's ``max_retry_delay``), any other
          after the task's ``retry_delay``.

        Any other exception, and the first two kinds on a task with ``retry_permanent_errors=True``,
        get ``DEFAULT``: Airflow's own retries apply, or the next policy of a ``ChainRetryPolicy``
        decides. Put this policy first in a chain to keep the provider's decisions, after yours to
        override them::

            from airflow.providers.common.compat.sdk import ChainRetryPolicy

            retry_policy = ChainRetryPolicy([EtelecomRetryPolicy(), my_policy])

        A ``RETRY`` never exceeds the task's ``retries``: Airflow retries only while tries are left
        (``try_number <= max_tries``), and on the last try this policy answers ``DEFAULT`` instead,
        so the task fails as it would without a policy. A policy can fail a task earlier, never
        retry it more.
        """

        def evaluate(
            self,
            exception: BaseException,
            try_number: int,
            max_tries: int,
            context: Context | None = None,
        ) -> RetryDecision:
            """Decide whether and when Airflow retries the task that raised ``exception``.

            :param exception: what the task raised.
            :param try_number: the try that failed (1-based).
            :param max_tries: the last try number that may be retried.
            :param context: the task's Airflow context (its ``task`` is read), or ``None``.
            :return: ``FAIL``, ``RETRY`` (with a delay for a ``Retry-After``) or ``DEFAULT``.
            """
            task = context.get("task") if context is not None else None
            decision = self._decide(exception, try_number, task)
            if decision.action is RetryAction.RETRY and try_number > max_tries:
                return RetryDecision(reason=f"no retries left (try {try_number}); {decision.reason}")
            return decision

        @staticmethod
        def _decide(error: BaseException, try_number: int, task: Any) -> RetryDecision:
            if not isinstance(error, EtelecomError):
                return RetryDecision(reason="not an eTelecom provider failure")
            kind = classify_failure(error)
            if kind is not FailureKind.TRANSIENT and getattr(task, "retry_permanent_errors", False):
                return RetryDecision(reason="retry_permanent_errors=True: Airflow's retries apply")
            if kind is FailureKind.PERMANENT:
                return RetryDecision.fail(
                    f"Not retried: a retry would fail the same way. {error.message}{_what_to_fix(task, error)}"
                )
            if kind is FailureKind.CREDENTIALS:
                if try_number <= 1:
                    return RetryDecision.retry(
                        reason=f"Retried once, in case the credentials were being refreshed. {error.message}"
                    )
                return RetryDecision.fail(f"Refused again on try {try_number}: not retried further. {error.message}")
            delay = _retry_after(error, task)
            if delay is not None:
                return RetryDecision.retry(
                    delay, reason=f"Rate limited: retried after {delay.total_seconds():g} s. {error.message}"
                )
            return RetryDecision.retry(reason=f"Transient: retried. {error.message}")

        def serialize(self) -> dict[str, Any]:
            """Return the policy as JSON (it holds no settings)."""
            return {"__type": f"{type(self).__module__}.{type(self).__qualname__}"}

        @classmethod
        def deserialize(cls, data: dict[str, Any]) -> EtelecomRetryPolicy:
            """Rebuild the policy from :meth:`serialize`'s output."""
            return cls()

else:

    def __getattr__(name: str) -> NoReturn:
        if name == "EtelecomRetryPolicy":
            raise ImportError(
                "EtelecomRetryPolicy needs Airflow 3.3 or later (task retry policies, AIP-105); on this "
                "Airflow the provider's failure policy applies by itself (see retry_permanent_errors)."
            )
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
