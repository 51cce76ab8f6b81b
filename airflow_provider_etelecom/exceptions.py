"""Exceptions raised by the eTelecom provider.

One base class, :class:`EtelecomError`, and one subclass per failure a user can act on. The
HTTP answer is mapped to them in one place (:func:`airflow_provider_etelecom.client.errors.error_from_response`).
Messages name the endpoint, the HTTP status and eTelecom's ``code``; they never carry the API key.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "EtelecomAuthError",
    "EtelecomBadRequestError",
    "EtelecomConfigError",
    "EtelecomConsentNotFoundError",
    "EtelecomConsentOutcomeError",
    "EtelecomContractError",
    "EtelecomDatabaseError",
    "EtelecomError",
    "EtelecomMalformedResponseError",
    "EtelecomNotFoundError",
    "EtelecomOutputError",
    "EtelecomPagingError",
    "EtelecomRateLimitError",
    "EtelecomStoppedError",
    "EtelecomTransientError",
    "EtelecomValidationError",
]


class EtelecomError(Exception):
    """Base class of every error the provider raises on purpose.

    :param message: what happened and what to do about it.
    :param endpoint: the API method, e.g. ``Zalo/ListRequestConsent`` (never a URL with secrets).
    :param status: the HTTP status, when there was an answer.
    :param code: eTelecom's error ``code`` (``invalid_argument``, ``unauthenticated``, ...), when given.
    :param msg: eTelecom's error ``msg`` (often Vietnamese), when given.
    :param meta: eTelecom's error ``meta``, when given.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        code: str | None = None,
        msg: str | None = None,
        meta: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.msg = msg
        self.meta = dict(meta or {})

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the keyword-only details when pickled (Airflow ships exceptions across processes).
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[EtelecomError], message: str, state: dict[str, object]) -> EtelecomError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class EtelecomConfigError(EtelecomError, ValueError):
    """The connection or the hook is configured wrongly (base URL, key, account type, timeouts)."""


class EtelecomValidationError(EtelecomError, ValueError):
    """A parameter is invalid; raised before any request is sent.

    :param parameter: the name of the offending parameter, as the user spelled it.
    """

    def __init__(self, message: str, *, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class EtelecomAuthError(EtelecomError):
    """The API key was refused (401 ``unauthenticated``, 403 ``permission_denied``); never retried."""


class EtelecomBadRequestError(EtelecomError):
    """The platform refused the request as invalid (400, 409, 412, 501); never retried."""


class EtelecomNotFoundError(EtelecomError):
    """Wrong route or unknown object (404 ``bad_route``/``not_found``): usually a wrong base URL."""


class EtelecomTransientError(EtelecomError):
    """A failure that may pass: 5xx, 408, network errors, timeouts, dropped connections.

    Retried by the client; raised once the retry budget (attempts and total time) is spent.
    ``reached_server`` is ``False`` only when the request certainly never left this machine
    (connection refused, connect timeout): the one case where a charged ``RequestConsent`` may be
    sent again.
    """

    reached_server: bool = True


class EtelecomRateLimitError(EtelecomTransientError):
    """Rate limited (429, or 403 ``resource_exhausted``); retried honouring ``retry_after``.

    :param retry_after: seconds the server asked to wait, when it said so.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **details: object) -> None:
        super().__init__(message, **details)  # type: ignore[arg-type]
        self.retry_after = retry_after


class EtelecomMalformedResponseError(EtelecomTransientError):
    """A 200 answer that is not the JSON the API documents (truncated, HTML, wrong shape).

    A truncated body is usually a network fault, so it is retried like one.
    """


class EtelecomPagingError(EtelecomError):
    """The platform broke the paging contract (a cursor came back twice); never loops."""


class EtelecomContractError(EtelecomError):
    """An answer broke what the provider relies on to be exact; nothing is published, and a retry would repeat it.

    Raised instead of publishing a partial or doubled set: a consent outside the date filters sent
    (the platform filters in another time zone, or on another field), a second holding more
    consents than its cursor can page through, a page without a ``next`` cursor when no date bound
    can continue it. The message names the behaviour and what to set (usually a connection
    setting) to work with it.

    :param behaviour: a short name of what the platform did (``window_mismatch``, ``crowded_second``,
        ``listing_cannot_continue``, ``incomplete_export``, ...).
    :param retryable: whether another try may pass (an export found incomplete while consents were
        deleted may, once they are not); the others repeat exactly, so no Airflow retry is spent on them.
    """

    def __init__(self, message: str, *, behaviour: str, retryable: bool = False, **details: object) -> None:
        super().__init__(message, **details)  # type: ignore[arg-type]
        self.behaviour = behaviour
        self.retryable = retryable


class EtelecomConsentNotFoundError(EtelecomError):
    """A consent id could not be found among the consents for the given OA and phone."""


class EtelecomConsentOutcomeError(EtelecomError):
    """A consent ended in a state the task was told to treat as failure (refused, expired, not sent).

    :param consent: the consent as the API returned it.
    """

    def __init__(self, message: str, *, consent: dict[str, object]) -> None:
        super().__init__(message)
        self.consent = consent


class FailureKind(str, Enum):
    """What an Airflow retry can do about a failure (see :mod:`airflow_provider_etelecom.failure_policy`)."""

    #: A retry renders, reads and sends the same thing again: fail without Airflow retries.
    PERMANENT = "permanent"
    #: Object storage refused the credentials; they may be refreshing (a role's token renewing),
    #: so the first try that meets it gets one Airflow retry, later tries fail at once.
    CREDENTIALS = "credentials"
    #: May pass (network, 5xx, rate limits, a stopped export): Airflow retries as configured.
    TRANSIENT = "transient"


class EtelecomOutputError(EtelecomError):
    """The export could not be written to ``output_path`` (denied, read-only, missing bucket, storage down).

    :param kind: what an Airflow retry can do about it, a :class:`FailureKind` value decided by
        :func:`~airflow_provider_etelecom.outputs.files.classify_storage_failure`.
    :param parameter: the parameter to fix (``output_path``).
    """

    def __init__(self, message: str, *, kind: str, parameter: str = "output_path") -> None:
        super().__init__(message)
        self.kind = kind
        self.parameter = parameter


class EtelecomDatabaseError(EtelecomError):
    """The database of ``sql_conn_id`` could not be opened or used (a wrong path or URI form, a server down).

    :param kind: what an Airflow retry can do about it, a :class:`FailureKind` value: permanent for
        a SQLite file that cannot be opened (the path will not change by itself), transient for a
        PostgreSQL server that cannot be reached (it may come back).
    :param parameter: the parameter to fix (``sql_conn_id``).
    """

    def __init__(self, message: str, *, kind: str, parameter: str = "sql_conn_id") -> None:
        super().__init__(message)
        self.kind = kind
        self.parameter = parameter


class EtelecomStoppedError(EtelecomError):
    """The task was told to stop (``on_kill``: a SIGTERM, a task marked failed) and published nothing."""
