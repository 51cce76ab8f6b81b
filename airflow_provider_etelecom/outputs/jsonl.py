"""Write JSON Lines to any object storage Airflow knows, atomically and with one page in memory.

:func:`atomic_jsonl_writer` writes through :func:`~airflow_provider_etelecom.outputs.files.atomic_output`
(a temporary sibling moved into place only when everything was written); a path ending in ``.gz``
is gzip-compressed.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO, Any

from airflow_provider_etelecom.outputs.files import AtomicOutput, atomic_output, close_quietly

__all__ = ["atomic_jsonl_writer", "dumps_line"]


def dumps_line(record: Mapping[str, Any]) -> str:
    """Serialise one record as a JSON Lines line, exactly as given (UTF-8 kept, compact)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class JsonlWriter:
    """Write records as JSON Lines to an open binary stream; counts what it wrote.

    :param stream: the binary stream to write to.
    :param guard: wraps each write (the atomic writer turns storage failures into
        :class:`EtelecomOutputError` with it).
    """

    def __init__(self, stream: IO[bytes], *, guard: Callable[[], AbstractContextManager[None]] = nullcontext) -> None:
        self._stream = stream
        self._guard = guard
        self.count = 0
        self.output: AtomicOutput | None = None
        """The atomic output written to (set by :func:`atomic_jsonl_writer`): existed before, size after."""

    def write_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Write ``records``, one per line; return how many."""
        lines = [dumps_line(record) for record in records]
        if lines:
            with self._guard():
                self._stream.write(("\n".join(lines) + "\n").encode("utf-8"))
        self.count += len(lines)
        return len(lines)


@contextmanager
def atomic_jsonl_writer(
    path: str, *, conn_id: str | None = None, compresslevel: int = 6, stop: threading.Event | None = None
) -> Iterator[JsonlWriter]:
    """Open a :class:`JsonlWriter` whose output appears at ``path`` only if the block succeeds.

    A path ending in ``.gz`` is gzip-compressed (with a fixed header time, so a re-run of the same
    data gives the same bytes). The atomic write itself is :func:`atomic_output`'s.

    :param path: the final URL (see :func:`resolve_output_path`).
    :param conn_id: the Airflow connection with the storage credentials.
    :param compresslevel: gzip level for ``.gz`` paths.
    :param stop: when set (``on_kill``), the block's output is discarded instead of moved into place.
    :raises ValueError: for an unusable ``path`` (before anything is written).
    :raises EtelecomOutputError: when the storage refuses or fails a step, naming ``output_path``.
    :raises EtelecomStoppedError: when ``stop`` was set before the move.
    """
    with atomic_output(path, conn_id=conn_id, stop=stop) as output:
        packed: Any = None
        if output.name.endswith(".gz"):
            packed = gzip.GzipFile(
                filename=output.name[:-3], mode="wb", fileobj=output.raw, mtime=0, compresslevel=compresslevel
            )
        writer = JsonlWriter(packed or output.raw, guard=lambda: output.step("write"))
        writer.output = output
        try:
            yield writer
        except BaseException:
            close_quietly(packed)
            raise
        if packed is not None:
            with output.step("finish writing"):
                packed.close()
