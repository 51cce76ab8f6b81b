"""The atomic JSON Lines writer on the local filesystem (S3 is covered by the operator tests)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from airflow_provider_etelecom.outputs.files import resolve_output_path
from airflow_provider_etelecom.outputs.jsonl import atomic_jsonl_writer, dumps_line

RECORDS = [{"id": "1", "msg": "Người dùng"}, {"id": "2", "msg": "ok", "n": 3}]


def test_writes_lines_exactly(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.jsonl"
    with atomic_jsonl_writer(f"file://{target}") as writer:
        assert writer.write_many(RECORDS) == 2
        assert writer.write_many([]) == 0
        assert not target.exists()  # nothing visible before the block ends
    assert writer.count == 2
    assert target.read_text(encoding="utf-8") == '{"id":"1","msg":"Người dùng"}\n{"id":"2","msg":"ok","n":3}\n'
    assert [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()] == RECORDS


def test_gzip_is_reproducible(tmp_path: Path) -> None:
    target = tmp_path / "b.jsonl.gz"
    contents = []
    for _ in range(2):
        with atomic_jsonl_writer(f"file://{target}") as writer:
            writer.write_many(RECORDS)
        contents.append(target.read_bytes())
    assert contents[0] == contents[1]
    assert gzip.decompress(contents[0]).decode() == "".join(dumps_line(r) + "\n" for r in RECORDS)


def test_failure_keeps_the_earlier_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "b.jsonl"
    target.write_text("earlier\n")
    with pytest.raises(RuntimeError), atomic_jsonl_writer(f"file://{target}") as writer:
        writer.write_many(RECORDS)
        raise RuntimeError("network gone")
    assert target.read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.jsonl"]


def test_empty_export_writes_an_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "empty.jsonl"
    with atomic_jsonl_writer(f"file://{target}"):
        pass
    assert target.read_bytes() == b""


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "non-empty"),
        ("/tmp/x.jsonl", "no scheme"),
        ("relative.jsonl", "no scheme"),
        ("nosuch://b/x.jsonl", "nosuch"),
        ("file:///tmp/dir/", "ends with '/'"),
    ],
)
def test_unusable_paths_name_output_path(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        resolve_output_path(path)
    assert str(raised.value).startswith("output_path=")


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_a_stop_before_the_move_discards_the_export(tmp_path: Path, suffix: str) -> None:
    import threading

    from airflow_provider_etelecom.exceptions import EtelecomStoppedError

    target = tmp_path / f"c{suffix}"
    target.write_bytes(b"earlier\n")
    stop = threading.Event()
    with (
        pytest.raises(EtelecomStoppedError, match="told to stop"),
        atomic_jsonl_writer(f"file://{target}", stop=stop) as writer,
    ):
        writer.write_many(RECORDS)
        stop.set()  # on_kill between the last page and the move
    assert target.read_bytes() == b"earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_an_unwritable_path_is_one_short_error_naming_output_path(tmp_path: Path) -> None:
    from airflow_provider_etelecom.exceptions import EtelecomOutputError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EtelecomOutputError) as raised, atomic_jsonl_writer(f"file://{blocker}/sub/c.jsonl") as writer:
        writer.write_many(RECORDS)
    assert raised.value.kind == "permanent" and raised.value.parameter == "output_path"
    assert f"output_path='file://{blocker}/sub/c.jsonl'" in raised.value.message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no fsspec traceback chained
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
