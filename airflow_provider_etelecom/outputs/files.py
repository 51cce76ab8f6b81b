"""Write an export's file to any object storage Airflow knows, atomically: one writer for every format.

:func:`atomic_output` streams to a temporary sibling (``<path>.tmp-<uuid>``) and moves it into
place only when everything was written (JSON Lines and Parquet both write through it). If
anything fails, the temporary object is deleted and whatever was at the path before (an earlier
successful export) is left untouched. On a local
filesystem the move is a ``rename`` (atomic); on S3/GCS it is copy + delete, so readers may see
the old or the new object but never a half-written one.

A failure of the storage itself (permission denied, a read-only file system, a missing bucket, a
storage outage) is raised as one short :class:`~airflow_provider_etelecom.exceptions.EtelecomOutputError` naming
``output_path`` and ``output_conn_id``, classified by
:func:`classify_storage_failure`, instead of the
filesystem's deep traceback (which is logged at DEBUG).

A ``stop`` event (set by the operator's ``on_kill``) is checked right before the move: a writer
told to stop deletes its temporary object and never publishes. Only a SIGKILL, which runs no
code, can leave ``<path>.tmp-<uuid>`` behind.

A ``file://`` path without a storage connection is written with the standard library rather than
through ``ObjectStoragePath``: resolving any ``ObjectStoragePath`` filesystem first imports every
installed provider's filesystem module (``boto3`` among them when the Amazon provider is there) and
the first write loads the hook-lineage collector, about 0.4 s of set-up a small local export paid
on every task, for a lineage record that named the temporary file, not the export. The task's
``outlets`` still carry the asset event with the final path. Both kinds of path go through the
same steps (folder, temporary file, write, stop check, move, clean-up) with the same errors.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import IO, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_etelecom.exceptions import EtelecomOutputError, EtelecomStoppedError, FailureKind

__all__ = ["AtomicOutput", "resolve_output_path"]

log = logging.getLogger(__name__)

_LOCAL_PROTOCOLS = frozenset({"file", "local"})

#: S3 error codes (botocore ``ClientError``) for credentials that were refused or have expired.
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
#: S3 error codes for a bucket or key that does not exist or cannot exist.
_MISSING_CODES = frozenset({"NoSuchBucket", "InvalidBucketName"})


def _storage_error_code(error: BaseException) -> str | None:
    """Return the botocore-style ``Error.Code`` found on ``error`` or its causes, without importing botocore."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            details = response.get("Error")
            if isinstance(details, dict) and isinstance(details.get("Code"), str):
                return str(details["Code"])
        current = current.__cause__ or current.__context__
    return None


def classify_storage_failure(error: BaseException, *, local: bool) -> FailureKind:
    """Decide what a retry can do about a failed write to object storage or a local file.

    fsspec filesystems raise ``PermissionError`` and ``FileNotFoundError`` (s3fs translates
    ``AccessDenied`` and ``NoSuchBucket`` into them, keeping the botocore error as the cause).

    * a missing bucket or folder, a path under a regular file: :attr:`FailureKind.PERMANENT` (a
      missing local folder never gets here: :func:`atomic_output` creates it);
    * permission denied on a local path: :attr:`FailureKind.PERMANENT` (file modes do not refresh);
    * a read-only file system (``EROFS``), local or a mount fsspec writes through:
      :attr:`FailureKind.PERMANENT`, like permission denied (a mount does not turn writable by itself);
    * permission denied on remote storage, or expired/invalid credentials:
      :attr:`FailureKind.CREDENTIALS`, since a role's token may be renewing;
    * anything else (a storage 5xx, a dropped connection, a full disk): :attr:`FailureKind.TRANSIENT`.

    :param error: the exception the filesystem raised.
    :param local: whether the path is on the worker's own filesystem.
    """
    code = _storage_error_code(error)
    if code in _MISSING_CODES or (isinstance(error, OSError) and error.errno == errno.EROFS):
        return FailureKind.PERMANENT
    if code in _DENIED_CODES or isinstance(error, PermissionError):
        return FailureKind.PERMANENT if local else FailureKind.CREDENTIALS
    if isinstance(error, (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError)):
        return FailureKind.PERMANENT
    return FailureKind.TRANSIENT


def resolve_output_path(path: str, *, conn_id: str | None = None, parameter: str = "output_path") -> ObjectStoragePath:
    """Check that ``path`` is a storage URL Airflow can write to and return it as a path object.

    No request is sent: only the scheme and the filesystem class are checked, so a typo in the
    scheme fails before a long export rather than after it.

    :param path: e.g. ``file:///data/consents/2026-01-01.jsonl`` or ``s3://bucket/key.jsonl.gz``.
    :param conn_id: the Airflow connection with the storage credentials (``output_conn_id``).
    :param parameter: the name to use in error messages.
    :raises ValueError: naming ``parameter``, for a missing or unknown scheme, a directory path,
        or a filesystem whose package is not installed.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{parameter}={path!r} must be a non-empty URL such as 'file:///data/consents.jsonl'.")
    text = path.strip()
    scheme = urlsplit(text).scheme
    if "://" not in text or not scheme:
        raise ValueError(
            f"{parameter}={text!r} has no scheme; write 'file:///absolute/path.jsonl' for a local file, or "
            f"'s3://bucket/key.jsonl' (any scheme Airflow's ObjectStoragePath knows)."
        )
    if text.endswith("/"):
        raise ValueError(f"{parameter}={text!r} ends with '/': give a file name, e.g. '.../consents.jsonl'.")
    if _local_file(text, conn_id) is not None:
        return ObjectStoragePath(text)  # nothing to resolve: the standard library writes it
    try:
        target = ObjectStoragePath(text, conn_id=conn_id)
        target.fs  # noqa: B018 - resolving the filesystem is the check (unknown scheme, missing package)
    except (ValueError, ImportError, KeyError) as error:
        raise ValueError(
            f"{parameter}={text!r}: scheme {scheme!r} is not a filesystem Airflow's ObjectStoragePath can "
            f"write to ({type(error).__name__}: {error}). Use file://, s3://, gs://, abfs://, ... and install "
            f"the matching provider/fsspec package."
        ) from None
    return target


_ADVICE = {
    FailureKind.PERMANENT: (
        "a retry cannot fix this: fix output_path (the bucket must exist, and the path must be writable: "
        "not read-only, not under a regular file)"
    ),
    FailureKind.CREDENTIALS: (
        "the storage refused the credentials: give the credentials of output_conn_id={conn_id!r} (None: the "
        "worker's default credentials) write access to this path, or fix output_path"
    ),
    FailureKind.TRANSIENT: "the storage failed; Airflow retries the task as configured",
}


@contextmanager
def _storage_step(action: str, path: str, conn_id: str | None, *, local: bool) -> Iterator[None]:
    """Turn a filesystem failure during ``action`` into one short :class:`EtelecomOutputError`."""
    try:
        yield
    except Exception as error:
        if not isinstance(error, OSError) and not isinstance(getattr(error, "response", None), dict):
            raise  # not the storage's (a bug, or the caller's own exception): leave it alone
        kind = classify_storage_failure(error, local=local)
        log.debug("Storage failure while trying to %s %s:", action, path, exc_info=True)
        cause = str(error).strip() or type(error).__name__
        raise EtelecomOutputError(
            f"output_path={path!r}: could not {action} it ({type(error).__name__}: {cause[:300]}); "
            f"{_ADVICE[kind].format(conn_id=conn_id)}.",
            kind=kind.value,
        ) from None


class AtomicOutput:
    """The temporary sibling an export writes to, and what is known of the final file.

    ``raw`` is the open binary stream; :meth:`step` turns a storage failure during one action
    into an :class:`EtelecomOutputError`; ``existed`` tells whether a file was already at the
    path (it is replaced), and ``size`` is the published file's size in bytes (``None`` until
    published, or when the storage cannot say).
    """

    def __init__(self, path: str, name: str, conn_id: str | None, *, local: bool) -> None:
        self.path, self.name, self._conn_id, self._local = path, name, conn_id, local
        self.raw: Any = None
        self.existed = False
        self.size: int | None = None

    def step(self, action: str) -> AbstractContextManager[None]:
        """Report a storage failure during ``action`` as one short error naming ``output_path``."""
        return _storage_step(action, self.path, self._conn_id, local=self._local)


@contextmanager
def atomic_output(
    path: str, *, conn_id: str | None = None, stop: threading.Event | None = None
) -> Iterator[AtomicOutput]:
    """Open a temporary sibling of ``path`` and move it into place only if the block succeeds.

    The one implementation of the atomic write for every format (JSON Lines, Parquet): missing
    parent folders of a local path are created; the temporary sibling is deleted whatever ends
    the block, an exception of any kind included (Airflow 2's SIGTERM handler raises
    ``AirflowTaskTerminated``); a ``stop`` set before the move discards the output.

    :param path: the final URL (see :func:`resolve_output_path`).
    :param conn_id: the Airflow connection with the storage credentials.
    :param stop: when set (``on_kill``), the block's output is discarded instead of moved into place.
    :raises ValueError: for an unusable ``path`` (before anything is written).
    :raises EtelecomOutputError: when the storage refuses or fails a step, naming ``output_path``.
    :raises EtelecomStoppedError: when ``stop`` was set before the move.
    """
    final = resolve_output_path(path, conn_id=conn_id)
    text = path.strip()
    suffix = f".tmp-{uuid.uuid4().hex}"
    local_file = _local_file(text, conn_id)
    files: _LocalFiles | _StorageFiles
    if local_file is not None:
        files = _LocalFiles(local_file, local_file + suffix)
    else:
        files = _StorageFiles(final, ObjectStoragePath(text + suffix, conn_id=conn_id))
    local = local_file is not None or final.protocol in _LOCAL_PROTOCOLS or not final.protocol
    output = AtomicOutput(text, final.name, conn_id, local=local)
    committed = False
    try:
        if local:
            with output.step("create the folder of"):
                files.make_parent()
        with output.step("open a temporary file next to"):
            output.raw = files.open_temp()
        try:
            yield output
            with output.step("finish writing"):
                output.raw.close()
        except BaseException:
            close_quietly(output.raw)
            raise
        if stop is not None and stop.is_set():
            raise EtelecomStoppedError(
                f"The export to output_path={text!r} was told to stop (on_kill) before it was published; "
                f"nothing was written there."
            )
        with output.step("move the finished export to"):
            output.existed = files.exists()
            files.publish()
        committed = True
        output.size = files.size()
    finally:
        if not committed:
            files.discard()


def _local_file(text: str, conn_id: str | None) -> str | None:
    """Return the local path of a ``file:///...`` URL without a storage connection, else ``None``."""
    parts = urlsplit(text)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or conn_id is not None:
        return None
    return parts.path


class _LocalFiles:
    """A local export written with the standard library: ``os.replace`` is the atomic move."""

    def __init__(self, final: str, temp: str) -> None:
        self.final, self.temp = final, temp

    def make_parent(self) -> None:
        os.makedirs(os.path.dirname(self.final) or ".", exist_ok=True)

    def open_temp(self) -> IO[bytes]:
        return open(self.temp, "wb")

    def exists(self) -> bool:
        return os.path.exists(self.final)

    def size(self) -> int | None:
        try:
            return os.path.getsize(self.final)
        except OSError:
            return None

    def publish(self) -> None:
        os.replace(self.temp, self.final)

    def discard(self) -> None:
        try:
            with suppress(FileNotFoundError):
                os.remove(self.temp)
        except OSError as error:  # the original failure matters more than a leftover temp file
            log.warning("Could not delete the temporary export %s: %s", self.temp, error)


class _StorageFiles:
    """An export through ``ObjectStoragePath`` (S3, GCS, ...): on object stores the move is copy + delete."""

    def __init__(self, final: ObjectStoragePath, temp: ObjectStoragePath) -> None:
        self.final, self.temp = final, temp

    def make_parent(self) -> None:
        self.final.fs.makedirs(posixpath.dirname(self.final.path), exist_ok=True)

    def open_temp(self) -> Any:
        open_temp: Any = self.temp.open  # typed on one Airflow version, untyped on the other
        return open_temp("wb")

    def exists(self) -> bool:
        return bool(self.final.fs.exists(self.final.path))

    def size(self) -> int | None:
        try:
            return int(self.final.fs.size(self.final.path))
        except Exception as error:  # a report only: a failed size lookup must not fail the export
            log.warning("Could not read the size of %s: %s", self.final, error)
            return None

    def publish(self) -> None:
        self.final.fs.mv(self.temp.path, self.final.path)

    def discard(self) -> None:
        _remove_quietly(self.temp)


def close_quietly(*streams: Any) -> None:
    for stream in streams:
        if stream is None:
            continue
        try:
            stream.close()
        except Exception as error:  # the failure that got us here matters more
            log.debug("Could not close %r: %s", stream, error)


def _remove_quietly(temp: ObjectStoragePath) -> None:
    try:
        if temp.fs.exists(temp.path):
            temp.fs.rm(temp.path)
    except Exception as error:  # the original failure matters more than a leftover temp object
        log.warning("Could not delete the temporary export %s: %s", temp.path, error)
