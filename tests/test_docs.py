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
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


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


#: How a page announces a feature that is not there yet. Every feature the docs name has shipped (a page
#: once said Parquet output "is being added" long after it was), so a page may not speak like this.
NOT_YET = re.compile(r"\b(?:is|are) being (?:added|written|built)\b|\bcoming soon\b|\bonce it is there\b", re.I)


def test_no_page_announces_a_feature_as_coming() -> None:
    found = [
        f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for page in PAGES
        for text in [page.read_text(encoding="utf-8")]
        for m in NOT_YET.finditer(text)
    ]
    assert not found, "say what the feature does now, or leave it out: " + "; ".join(found)

