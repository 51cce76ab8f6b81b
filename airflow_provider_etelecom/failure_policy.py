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
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_etelecom.exceptions import (
    EtelecomAuthError,
    EtelecomBadRequestError,
    EtelecomConfigError,
    EtelecomContractError,
    EtelecomDatabaseError,
    EtelecomError,
    EtelecomNotFoundError,
    EtelecomOutputError,
    EtelecomValidationError,
    FailureKind,
)

__all__ = ["classify_failure", "failure_policy", "validate_retry_permanent_errors", "with_failure_policy"]

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
    if isinstance(error, EtelecomAuthError):
        return f" Fix the API key (the Password field) of connection {conn_id!r}."
    if isinstance(error, EtelecomNotFoundError):
        return f" Fix the Base URL (the Host field) of connection {conn_id!r}."
    return ""


def _try_number(context: Any) -> int:
    ti = context.get("ti") if hasattr(context, "get") else None
    number = getattr(ti, "try_number", None)
    return number if isinstance(number, int) else 1


@contextmanager
def failure_policy(task: Any, context: Any) -> Iterator[None]:
    """Apply the provider's retry policy to what the block raises (see the module docstring).

    :param task: the operator or sensor (its ``task_id``, ``etelecom_conn_id`` and
        ``retry_permanent_errors`` are read).
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
