"""Every Python snippet in the README and docs/ runs, so the docs cannot rot.

The snippets of one page run in order in one namespace, like a reader pasting them into one Python
session: a later snippet may use what an earlier one defined. Each page starts fresh, in a temporary
working folder, with a running simulator that the ``etelecom_default`` connection points at (the
state a reader is in after following the connection set-up). DAG files in the docs are executed
too: that builds the DAG objects, as Airflow's parser would.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_provider_etelecom.testing import EtelecomSimulator

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def snippets(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in FENCE.finditer(text)]


def test_the_docs_have_snippets() -> None:
    assert sum(len(snippets(page)) for page in PAGES) >= 10


@pytest.mark.parametrize("page", [p for p in PAGES if snippets(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_snippets_run(
    page: Path,
    etelecom_connection: EtelecomSimulator,
    airflow_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ETELECOM_EXPORT_BASE", f"file://{tmp_path}/exports")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, code in snippets(page):
        compiled = compile("\n" * (line - 1) + code, str(page), "exec")
        exec(compiled, namespace)
