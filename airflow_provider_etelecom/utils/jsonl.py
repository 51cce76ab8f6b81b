"""Write JSON Lines to any object storage Airflow knows, atomically and with one page in memory.

:func:`atomic_jsonl_writer` streams to a temporary sibling (``<path>.tmp-<uuid>``) and moves it
into place only when everything was written. If anything fails, the temporary object is deleted
and whatever was at the path before (an earlier successful export) is left untouched. On a local
filesystem the move is a ``rename`` (atomic); on S3/GCS it is copy + delete, so readers may see
the old or the new object but never a half-written one.

A ``file://`` path without a storage connection is written with the standard library rather than
through ``ObjectStoragePath``: resolving any ``ObjectStoragePath`` filesystem first imports every
installed provider's filesystem module (``boto3`` among them when the Amazon provider is there) and
the first write loads the hook-lineage collector, about 0.4 s of set-up a small local export paid
on every task, for a lineage record that named the temporary file, not the export. The task's
``outlets`` still carry the asset event with the final path.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import posixpath
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import IO, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import ObjectStoragePath

__all__ = ["JsonlWriter", "atomic_jsonl_writer", "dumps_line", "resolve_output_path"]

log = logging.getLogger(__name__)

_LOCAL_PROTOCOLS = frozenset({"file", "local"})


def dumps_line(record: Mapping[str, Any]) -> str:
    """Serialise one record as a JSON Lines line, exactly as given (UTF-8 kept, compact)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


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


class JsonlWriter:
    """Write records as JSON Lines to an open binary stream; counts what it wrote."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.count = 0

    def write_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Write ``records``, one per line; return how many."""
        lines = [dumps_line(record) for record in records]
        if lines:
            self._stream.write(("\n".join(lines) + "\n").encode("utf-8"))
        self.count += len(lines)
        return len(lines)


@contextmanager
def atomic_jsonl_writer(path: str, *, conn_id: str | None = None, compresslevel: int = 6) -> Iterator[JsonlWriter]:
    """Open a :class:`JsonlWriter` whose output appears at ``path`` only if the block succeeds.

    A path ending in ``.gz`` is gzip-compressed (with a fixed header time, so a re-run of the same
    data gives the same bytes). Missing parent folders of a local path are created.

    :param path: the final URL (see :func:`resolve_output_path`).
    :param conn_id: the Airflow connection with the storage credentials.
    :param compresslevel: gzip level for ``.gz`` paths.
    :raises ValueError: for an unusable ``path`` (before anything is written).
    """
    final = resolve_output_path(path, conn_id=conn_id)
    local = _local_file(path.strip(), conn_id)
    if local is not None:
        with _atomic_local_writer(local, final.name.endswith(".gz"), compresslevel) as writer:
            yield writer
        return
    temp_url = f"{path.strip()}.tmp-{uuid.uuid4().hex}"
    temp = ObjectStoragePath(temp_url, conn_id=conn_id)
    if final.protocol in _LOCAL_PROTOCOLS or not final.protocol:
        final.fs.makedirs(posixpath.dirname(final.path), exist_ok=True)
    committed = False
    try:
        open_temp: Any = temp.open  # typed on one Airflow version, untyped on the other
        with open_temp("wb") as raw:
            if final.name.endswith(".gz"):
                with gzip.GzipFile(
                    filename=final.name[:-3], mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel
                ) as packed:
                    yield JsonlWriter(packed)  # type: ignore[arg-type]
            else:
                yield JsonlWriter(raw)
        final.fs.mv(temp.path, final.path)
        committed = True
    finally:
        if not committed:
            _remove_quietly(temp)


def _local_file(text: str, conn_id: str | None) -> str | None:
    """Return the local path of a ``file:///...`` URL without a storage connection, else ``None``."""
    parts = urlsplit(text)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or conn_id is not None:
        return None
    return parts.path


@contextmanager
def _atomic_local_writer(path: str, compress: bool, compresslevel: int) -> Iterator[JsonlWriter]:
    """Write to ``<path>.tmp-<uuid>`` and ``os.replace`` it onto ``path`` (atomic) once complete."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temp = f"{path}.tmp-{uuid.uuid4().hex}"
    committed = False
    try:
        with open(temp, "wb") as raw:
            if compress:
                name = os.path.basename(path)[:-3]
                with gzip.GzipFile(
                    filename=name, mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel
                ) as packed:
                    yield JsonlWriter(packed)  # type: ignore[arg-type]
            else:
                yield JsonlWriter(raw)
        os.replace(temp, path)
        committed = True
    finally:
        if not committed:
            with suppress(FileNotFoundError):
                os.remove(temp)


def _remove_quietly(temp: ObjectStoragePath) -> None:
    try:
        if temp.fs.exists(temp.path):
            temp.fs.rm(temp.path)
    except Exception as error:  # the original failure matters more than a leftover temp object
        log.warning("Could not delete the temporary export %s: %s", temp.path, error)
