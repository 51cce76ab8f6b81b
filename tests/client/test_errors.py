"""The one decision about Airflow retries: :func:`classify_failure` and :func:`classify_storage_failure`."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from airflow_provider_etelecom.client.errors import (
    FailureKind,
    classify_failure,
    classify_storage_failure,
    error_from_response,
)
from airflow_provider_etelecom.exceptions import (
    EtelecomConfigError,
    EtelecomConsentNotFoundError,
    EtelecomConsentOutcomeError,
    EtelecomOutputError,
    EtelecomPagingError,
    EtelecomStoppedError,
    EtelecomTransientError,
    EtelecomValidationError,
)

PERMANENT, CREDENTIALS, TRANSIENT = FailureKind.PERMANENT, FailureKind.CREDENTIALS, FailureKind.TRANSIENT


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (EtelecomValidationError("phone='12' is not a phone number", parameter="phone"), PERMANENT),
        (EtelecomConfigError("The connection's 'timeout' is 'soon'"), PERMANENT),
        (error_from_response("Zalo/ListRequestConsent", 401, b'{"code":"unauthenticated"}'), PERMANENT),
        (error_from_response("Zalo/ListRequestConsent", 403, b'{"code":"permission_denied"}'), PERMANENT),
        (error_from_response("Zalo/ListRequestConsent", 400, b'{"code":"invalid_argument"}'), PERMANENT),
        (error_from_response("Zalo/ListRequestConsent", 404, b'{"code":"bad_route"}'), PERMANENT),
        (error_from_response("Zalo/ListRequestConsent", 403, b'{"code":"resource_exhausted"}'), TRANSIENT),
        (error_from_response("Zalo/ListRequestConsent", 429, b"{}"), TRANSIENT),
        (error_from_response("Zalo/ListRequestConsent", 503, b"{}"), TRANSIENT),
        (EtelecomTransientError("dropped"), TRANSIENT),
        (EtelecomPagingError("cursor twice"), TRANSIENT),
        (EtelecomStoppedError("told to stop"), TRANSIENT),
        # A failed send reached nobody: RequestConsentOperator's retry sends again, by design.
        (EtelecomConsentOutcomeError("not delivered", consent={}), TRANSIENT),
        (EtelecomConsentNotFoundError("not listed yet"), TRANSIENT),
        (EtelecomOutputError("denied", kind="credentials"), CREDENTIALS),
        (EtelecomOutputError("no bucket", kind="permanent"), PERMANENT),
        (KeyError("a bug"), TRANSIENT),
    ],
)
def test_classify_failure(error: BaseException, kind: FailureKind) -> None:
    assert classify_failure(error) is kind


def _translated(code: str, as_type: type[OSError]) -> OSError:
    """What s3fs raises: an OSError translated from botocore's ClientError, kept as the cause."""
    cause = ClientError({"Error": {"Code": code, "Message": code}}, "PutObject")
    try:
        raise as_type(code) from cause
    except OSError as error:
        return error


@pytest.mark.parametrize(
    ("error", "local", "kind"),
    [
        (_translated("NoSuchBucket", FileNotFoundError), False, PERMANENT),
        (_translated("AccessDenied", PermissionError), False, CREDENTIALS),
        (_translated("InvalidAccessKeyId", PermissionError), False, CREDENTIALS),
        (_translated("ExpiredToken", PermissionError), False, CREDENTIALS),
        (ClientError({"Error": {"Code": "AccessDenied"}}, "CopyObject"), False, CREDENTIALS),
        (ClientError({"Error": {"Code": "NoSuchBucket"}}, "CopyObject"), False, PERMANENT),
        (ClientError({"Error": {"Code": "InternalError"}}, "CopyObject"), False, TRANSIENT),
        (PermissionError(13, "Permission denied"), True, PERMANENT),
        (PermissionError(13, "Permission denied"), False, CREDENTIALS),
        (NotADirectoryError(20, "Not a directory"), True, PERMANENT),
        (FileExistsError(17, "File exists"), True, PERMANENT),
        (FileNotFoundError(2, "No such file or directory"), False, PERMANENT),
        (OSError(28, "No space left on device"), True, TRANSIENT),
        (ConnectionResetError(104, "Connection reset by peer"), False, TRANSIENT),
    ],
)
def test_classify_storage_failure(error: BaseException, local: bool, kind: FailureKind) -> None:
    assert classify_storage_failure(error, local=local) is kind
