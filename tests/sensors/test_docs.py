"""The Python snippets in docs/sensor.md run (each is a complete DAG file)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "sensor.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_doc_has_snippets() -> None:
    assert SNIPPETS


@pytest.mark.parametrize("source", SNIPPETS)
def test_snippet_runs(source: str, tmp_path: Path) -> None:
    path = tmp_path / "snippet.py"
    path.write_text(source, encoding="utf-8")
    namespace = runpy.run_path(str(path))
    dag = namespace.get("dag")
    if dag is not None:
        assert dag.task_ids
