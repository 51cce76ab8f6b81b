"""Every Python snippet in the README and docs/ runs, so the docs cannot rot.

Each fenced ``python`` block is executed on its own, in a fresh namespace, in a temporary working
folder, with a running simulator that the ``etelecom_default`` connection points at (the state a
reader is in after following the connection set-up). DAG files in the docs are executed too: that
builds the DAG objects, as Airflow's parser would.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_provider_etelecom.testing import EtelecomSimulator

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def snippets() -> list[pytest.param]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            found.append(pytest.param(path, line, match.group(1), id=f"{path.relative_to(ROOT)}:{line}"))
    return found


def test_the_docs_have_snippets() -> None:
    assert len(snippets()) >= 5


@pytest.mark.parametrize(("path", "line", "code"), snippets())
def test_snippet_runs(
    path: Path,
    line: int,
    code: str,
    etelecom_connection: EtelecomSimulator,
    airflow_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ETELECOM_EXPORT_BASE", f"file://{tmp_path}/exports")
    compiled = compile("\n" * (line - 1) + code, str(path), "exec")
    exec(compiled, {"__name__": "__docs__"})
