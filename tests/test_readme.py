"""The README stays a ten-minute read, and the traps a newcomer would copy out of it stay fixed.

The README's and the docs' snippets themselves run in ``tests/test_docs.py``; this file holds what
running them cannot show: the length, the two set-up commands, a file named by the Vietnamese date
rather than the UTC one, and no page telling anyone to install a package that is not on PyPI yet.
"""

from __future__ import annotations

import re
from pathlib import Path

import pendulum
import pytest

from airflow_provider_etelecom.outputs.parquet import pyarrow_missing_message

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: Installing the package by its name, which only works once it is on PyPI.
BY_NAME = re.compile(r"pip install\s+['\"]?airflow-provider-etelecom\b")
#: What a mention by name must say nearby: that it is for after the first release.
AFTER_RELEASE = re.compile(r"first release|not on PyPI", re.IGNORECASE)
TWO_COMMANDS = (
    "./scripts/demo    # set everything up, run the example DAGs against the local simulator, print a summary",
    "./scripts/test    # the test suite: ruff and mypy, then pytest on each Airflow version of the support table",
)


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_is_a_ten_minute_read() -> None:
    assert len(readme_text().splitlines()) <= 250


def test_readme_keeps_the_two_commands_verbatim() -> None:
    text = readme_text()
    for command in TWO_COMMANDS:
        assert command in text


def test_readme_has_a_supported_versions_section() -> None:
    assert re.search(r"^## Supported versions$", readme_text(), re.MULTILINE)


def test_readme_daily_export_names_files_by_the_vietnamese_date() -> None:
    """A run whose interval starts at 00:00 in Vietnam (17:00 UTC the day before) writes that local day."""
    (snippet,) = [code for code in FENCE.findall(readme_text()) if "my_consents_export" in code]
    namespace: dict[str, object] = {"__name__": "__readme__"}
    exec(compile(snippet, str(README), "exec"), namespace)
    dag = namespace["export_dag"]
    start = pendulum.datetime(2026, 1, 1, 17, tz="UTC")  # 2026-01-02 00:00 in Asia/Ho_Chi_Minh
    context = {"data_interval_start": start, "data_interval_end": start.add(days=1)}
    rendered = {}
    for task in dag.tasks:  # type: ignore[attr-defined]
        if task.output_path is not None:
            env = dag.get_template_env()  # type: ignore[attr-defined]
            rendered[task.task_id] = task.render_template(task.output_path, context, jinja_env=env)
    assert set(rendered) == {"to_file", "to_parquet", "to_s3"}
    for task_id, path in rendered.items():
        assert "/2026-01-02." in path, f"{task_id} writes {path!r}: the UTC date, not the Vietnamese one"


def paragraphs(path: Path) -> list[tuple[int, str]]:
    """The page's blocks between blank lines, each with its first line's number."""
    text = path.read_text(encoding="utf-8")
    blocks, line = [], 1
    for block in re.split(r"\n[ \t]*\n", text):
        blocks.append((line, block))
        line += block.count("\n") + 2
    return blocks


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_installs_the_unreleased_package_by_name(page: Path) -> None:
    """``pip install airflow-provider-etelecom`` fails until 0.1.0 is on PyPI: say so wherever it is written."""
    unqualified = [
        f"{page.relative_to(ROOT)}:{line}"
        for line, block in paragraphs(page)
        if BY_NAME.search(block) and not AFTER_RELEASE.search(block)
    ]
    assert not unqualified, f"install by name with no word that it is for after the first release: {unqualified}"


def test_install_hints_in_error_messages_work_before_the_first_release() -> None:
    message = pyarrow_missing_message(path="file:///tmp/x.parquet")
    assert "pip install '.[parquet]'" in message
    assert "after its first release" in message
    for source in sorted((ROOT / "airflow_provider_etelecom").rglob("*.py")):
        lines = source.read_text(encoding="utf-8").splitlines()
        for number, text in enumerate(lines):
            if BY_NAME.search(text):
                nearby = "\n".join(lines[max(0, number - 2) : number + 1])
                assert AFTER_RELEASE.search(nearby), f"{source.relative_to(ROOT)}:{number + 1}: {text.strip()}"
