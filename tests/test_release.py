"""The release path: the documented build command, and the workflow that publishes on a tag.

Publishing cannot run here; ``scripts/lint-workflows`` (actionlint) checks the workflow's syntax and
expressions, ``scripts/release-check`` runs its build-and-test step, and these tests hold the shape
that neither can see: which step builds, which job may mint an OIDC token, which commits are used.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_etelecom import get_provider_info

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def _workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_documented_build_command_is_the_one_release_check_builds_with() -> None:
    readme = (ROOT / "README.md").read_text()
    install = readme.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    assert "./scripts/build" in install
    # Neither tool is on a fresh machine: documented as the build command, it fails there.
    for doc in (install, (ROOT / "CHANGELOG.md").read_text(), (ROOT / "CONTRIBUTING.md").read_text()):
        assert not re.search(r"`uv build`|python -m build\b", doc)
    release_check = (ROOT / "scripts" / "release-check").read_text()
    assert re.search(r'^"\$ROOT/scripts/build" "\$work/dist"$', release_check, re.M)
    assert "uv build" not in release_check.split("\nlog ", 1)[1]  # built once, by scripts/build


def test_the_workflow_builds_and_tests_once_with_release_check_and_publishes_those_files() -> None:
    workflow = _workflow()
    on = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert on["push"] == {"tags": ["v*"]}
    assert workflow["permissions"] == {}
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    runs = [step["run"] for step in build["steps"] if "run" in step]
    assert len(runs) == 1 and "./scripts/release-check" in runs[0] and '--tag "$GITHUB_REF_NAME"' in runs[0]
    assert build["permissions"] == {"contents": "read"}
    assert publish["needs"] == "build"
    assert "github.ref_type == 'tag'" in publish["if"]
    assert publish["environment"]["name"] == "pypi"
    # Only the publishing job can mint the OIDC token (trusted publishing, attestations), and it
    # runs no script of the repository: it downloads the files the build job tested and uploads them.
    assert publish["permissions"]["id-token"] == "write"
    assert "id-token" not in build["permissions"]
    assert not any("run" in step for step in publish["steps"])
    uses = [step["uses"].split("@")[0] for step in publish["steps"]]
    assert uses == ["actions/download-artifact", "actions/attest-build-provenance", "pypa/gh-action-pypi-publish"]
    pypi = publish["steps"][-1]
    assert pypi.get("with", {}).get("attestations") is True
    assert "password" not in pypi.get("with", {})  # no API token: trusted publishing


def test_every_action_is_pinned_to_a_commit() -> None:
    for job in _workflow()["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def _release_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "release-check"), *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_release_check_refuses_a_tag_that_is_not_the_version() -> None:
    version = get_provider_info()["versions"][0]
    checked = _release_check("--tag", f"v{version}.post9")
    assert checked.returncode == 1, checked.stderr[-2000:]
    assert f"The tag v{version}.post9 does not match the version being released, {version}" in checked.stderr
    assert "Installing the wheel" not in checked.stderr  # refused before any test: nothing to publish


def test_release_check_refuses_to_release_with_the_placeholder_links() -> None:
    if "github.com/placeholder-org/" not in (ROOT / "pyproject.toml").read_text():
        pytest.skip("the real links are in: a tag now runs the whole release check")
    checked = _release_check("--tag", f"v{get_provider_info()['versions'][0]}")
    assert checked.returncode == 1, checked.stderr[-2000:]
    assert "still point at the placeholder github.com/placeholder-org/" in checked.stderr
    assert "Installing the wheel" not in checked.stderr
