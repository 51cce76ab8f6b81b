"""Every Python snippet in the README and docs/ runs, so the docs cannot rot.

The snippets of one page run in order in one namespace, like a reader pasting them into one Python
session: a later snippet may use what an earlier one defined. Each page starts fresh, in a temporary
working folder, with a running simulator that the ``etelecom_default`` connection points at (the
state a reader is in after following the connection set-up). DAG files in the docs are executed
too: that builds the DAG objects, as Airflow's parser would.
"""

from __future__ import annotations

import json
import os
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
    environ = dict(os.environ)  # a snippet may set a connection in os.environ, as a reader would
    try:
        for line, code in snippets(page):
            compiled = compile("\n" * (line - 1) + code, str(page), "exec")
            exec(compiled, namespace)
    finally:
        os.environ.clear()
        os.environ.update(environ)


#: How a page announces a feature that is not there yet. Every feature the docs name has shipped (a page
#: once said Parquet output "is being added" long after it was), so a page may not speak like this.
NOT_YET = re.compile(r"\b(?:is|are) being added\b|\bcoming soon\b|\bonce it is there\b", re.I)


def test_no_page_announces_a_feature_as_coming() -> None:
    found = [
        f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for page in PAGES
        for text in [page.read_text(encoding="utf-8")]
        for m in NOT_YET.finditer(text)
    ]
    assert not found, "say what the feature does now, or leave it out: " + "; ".join(found)


NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}


def _example_dag_ids() -> set[str]:
    found = re.findall(r'dag_id="(\w+)"', "".join(p.read_text() for p in (ROOT / "example_dags").glob("*.py")))
    return set(found)


def _demo_dag_ids() -> set[str]:
    """The DAGs ``scripts/demo`` runs: each ``_dags_test(env, logs, NAME, ...)`` call, NAME resolved."""
    source = (ROOT / "scripts" / "_demo.py").read_text()
    constants = dict(re.findall(r'^(\w+) = "(\w+)"$', source, re.MULTILINE))
    return {constants.get(name, name) for name in re.findall(r"_dags_test\(env, logs, (\w+)", source)}


def _listed_dags(block: str) -> set[str]:
    """The DAG ids of a ``DAGs:`` entry of the UI's banner (up to the next ``Name:`` line)."""
    entry = re.search(r"^  DAGs:(.*?)^  \w+:", block, re.DOTALL | re.MULTILINE)
    assert entry, "the UI banner has no DAGs: entry"
    return set(re.findall(r"\betelecom_\w+", re.sub(r"\(.*?\)", "", entry.group(1), flags=re.DOTALL)))


def test_getting_started_counts_the_examples_it_shows() -> None:
    page = (ROOT / "docs" / "getting-started.md").read_text()
    examples, demo = _example_dag_ids(), _demo_dag_ids()
    assert len(examples) == len(list((ROOT / "example_dags").glob("*.py"))) and demo <= examples
    counts = [
        NUMBER_WORDS[w.lower()]
        for w in re.findall(r"\b(\w+) (?:example DAGs|examples)\b", page)
        if w.lower() in NUMBER_WORDS
    ]
    assert counts and set(counts) == {len(examples)}, (
        f"the page counts {counts} examples; example_dags/ holds {len(examples)}"
    )
    ran = re.search(r"runs (\w+) of the \w+ example DAGs:\n\n((?:- .*\n(?:  .*\n)*)+)", page)
    assert ran and NUMBER_WORDS[ran.group(1)] == len(demo), f"scripts/demo runs {len(demo)} DAGs: {sorted(demo)}"
    assert set(re.findall(r"`airflow dags test (\w+)", ran.group(2))) == demo
    # The banner shown on the page is the one scripts/_airflow_ui.py prints, and it lists every example.
    banner = page[page.index("is running, wired to the local eTelecom simulator.") :]
    assert _listed_dags(banner) == _listed_dags((ROOT / "scripts" / "_airflow_ui.py").read_text()) == examples


def test_running_your_own_dag_against_the_simulator_as_docs_simulator_md_says(tmp_path: Path) -> None:
    """The steps of "Your own DAG against the simulator", run as written: a shell with no Airflow settings
    of ours, a fresh ``$HOME``, ``airflow db migrate``, the connection variable, ``airflow dags test``."""
    import shlex
    import subprocess
    import sys

    from airflow_provider_etelecom.testing import SimulatorProcess

    page = (ROOT / "docs" / "simulator.md").read_text(encoding="utf-8")
    section = page[page.index("### Your own DAG against the simulator") :]
    section = section[: section.index("\n### ", 1)]
    simulator_block, airflow_block = re.findall(r"^```bash\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    (dag_code,) = [m.group(1) for m in FENCE.finditer(section)]
    command = shlex.split(simulator_block.split("#")[0])
    assert command[:3] == ["python", "-m", "airflow_provider_etelecom.testing"]
    documented_port = command[command.index("--port") + 1]
    flags = [("0" if flag == documented_port else flag) for flag in command[3:]]  # a free port, not 8765
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW", "ETELECOM_"))}
    env.update({"HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"})
    with SimulatorProcess(*flags, api_key="demo-key", env=env, stderr=subprocess.DEVNULL) as sim:  # the CLI default
        home = tmp_path / "etelecom-airflow"
        (home / "dags").mkdir(parents=True)
        (home / "dags" / "my_etelecom_export.py").write_text(dag_code)
        script = "set -euo pipefail\n" + airflow_block.replace(f":{documented_port}/", f":{sim.port}/")
        run = subprocess.run(
            ["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        agreed = [c["id"] for c in sim.control("consents")["consents"] if c["reply_status"] == "P"]
    exported = [json.loads(line)["id"] for line in (home / "exports" / "agreed.jsonl").read_text().splitlines()]
    assert sorted(exported) == sorted(agreed) and agreed
