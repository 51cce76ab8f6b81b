"""Storage failures classified where they happen: what an Airflow retry can do about a failed write."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from airflow_provider_etelecom.exceptions import EtelecomOutputError, FailureKind
from airflow_provider_etelecom.outputs.files import atomic_output, classify_storage_failure

PERMANENT, CREDENTIALS, TRANSIENT = FailureKind.PERMANENT, FailureKind.CREDENTIALS, FailureKind.TRANSIENT


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
        (OSError(errno.EROFS, "Read-only file system"), True, PERMANENT),
        (OSError(errno.EROFS, "Read-only file system"), False, PERMANENT),
        (OSError(28, "No space left on device"), True, TRANSIENT),
        (ConnectionResetError(104, "Connection reset by peer"), False, TRANSIENT),
    ],
)
def test_classify_storage_failure(error: BaseException, local: bool, kind: FailureKind) -> None:
    assert classify_storage_failure(error, local=local) is kind


def test_a_read_only_file_system_fails_at_once_naming_output_path(read_only_folder: Path) -> None:
    target = f"file://{read_only_folder}/consents.jsonl"
    with pytest.raises(EtelecomOutputError) as raised, atomic_output(target) as output:
        output.raw.write(b"never written")
    assert raised.value.kind == FailureKind.PERMANENT.value  # not retried, like permission denied
    assert f"output_path={target!r}" in str(raised.value)
    assert "Read-only file system" in str(raised.value) and "a retry cannot fix this" in str(raised.value)


def test_a_missing_local_folder_is_created(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "consents.jsonl"
    with atomic_output(f"file://{target}") as output:
        output.raw.write(b"{}\n")
    assert target.read_bytes() == b"{}\n"
