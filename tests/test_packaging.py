"""The sdist and the wheel carry what a user of a release needs, and their metadata tells the truth.

Built once per run with ``uv build`` (the wheel from the sdist, as pip builds it from a source
release), offline from uv's cache when it can: a few seconds. uv is what makes the test
environments (``scripts/lib.sh``), so it is on PATH or bootstrapped in ``.venvs/_bootstrap``.
"""

from __future__ import annotations

import ast
import email
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from importlib.metadata import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "airflow_provider_etelecom" / "__init__.py"


def _version_in_init() -> str:
    """The version as written in ``__init__.py``, read without importing it (the one place it is written)."""
    for node in ast.parse(INIT.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
            assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            return node.value.value
    raise AssertionError(f"no __version__ = '...' in {INIT}")


VERSION = _version_in_init()
NAME = f"airflow_provider_etelecom-{VERSION}"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: The Project-URLs of a release, by label; Airflow's providers page reads "Documentation" (exactly).
PROJECT_URL_LABELS = ["Documentation", "Source", "Changelog", "Issues"]
#: The Python versions CI runs the suite on: the legs ``scripts/test`` runs (``TEST_LEGS`` in scripts/lib.sh).
TESTED_PYTHONS = {
    leg.split(":")[1]
    for leg in re.search(r'^TEST_LEGS="([^"]*)"', (ROOT / "scripts" / "lib.sh").read_text(), re.M)[1].split()
}


def _uv() -> str:
    found = shutil.which("uv") or ROOT / ".venvs" / "_bootstrap" / "bin" / "uv"
    assert Path(found).exists(), "no uv: scripts/lib.sh ensure_uv puts it on PATH or in .venvs/_bootstrap"
    return str(found)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    command = [_uv(), "build", "--quiet", "--out-dir", str(out), str(ROOT)]
    built = subprocess.run([*command, "--offline"], capture_output=True, text=True, check=False)
    if built.returncode != 0:  # an empty uv cache: fetch hatchling from the index once
        built = subprocess.run(command, capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    return {"sdist": out / f"{NAME}.tar.gz", "wheel": out / f"{NAME}-py3-none-any.whl"}


def _wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        return email.message_from_bytes(archive.read(f"{NAME}.dist-info/METADATA"))


def _sdist_metadata(sdist: Path) -> Message:
    with tarfile.open(sdist) as archive:
        pkg_info = archive.extractfile(f"{NAME}/PKG-INFO")
        assert pkg_info is not None
        return email.message_from_bytes(pkg_info.read())


def test_the_version_is_written_once() -> None:
    """``__init__.py`` holds the version; pyproject.toml reads it from there (hatchling), nothing else writes it."""
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"] == {"path": "airflow_provider_etelecom/__init__.py"}
    written = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "airflow_provider_etelecom").rglob("*.py")
        if re.search(r"^__version__\s*=", path.read_text(), re.M)
    ]
    assert written == ["airflow_provider_etelecom/__init__.py"]
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?", VERSION), VERSION  # a release version, PEP 440


def test_the_built_version_is_the_one_source(dist: dict[str, Path]) -> None:
    from airflow_provider_etelecom import __version__, get_provider_info

    assert __version__ == VERSION
    assert get_provider_info()["versions"] == [VERSION]
    assert dist["wheel"].exists() and dist["sdist"].exists(), sorted(p.name for p in dist["wheel"].parent.iterdir())
    assert _wheel_metadata(dist["wheel"])["Version"] == _sdist_metadata(dist["sdist"])["Version"] == VERSION


def test_the_metadata_carries_the_project_urls_keywords_and_maintainers(dist: dict[str, Path]) -> None:
    for meta in (_wheel_metadata(dist["wheel"]), _sdist_metadata(dist["sdist"])):
        urls = [entry.split(", ", 1) for entry in meta.get_all("Project-URL") or []]
        assert [label for label, _ in urls] == PROJECT_URL_LABELS
        assert all(url.startswith("https://") for _, url in urls), urls
        by_label = dict(urls)
        # The labels Airflow and PyPI recognise; the Changelog and Issues live in the Source repository.
        assert by_label["Changelog"].startswith(by_label["Source"] + "/") and by_label["Changelog"].endswith(
            "CHANGELOG.md"
        )
        assert by_label["Issues"] == by_label["Source"] + "/issues"
        assert {"airflow", "apache-airflow", "etelecom"} <= set((meta["Keywords"] or "").split(","))
        assert meta["Maintainer"] or meta["Maintainer-email"]


def test_the_wheel_ships_the_license_and_the_package(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as archive:
        names = set(archive.namelist())
        assert archive.read(f"{NAME}.dist-info/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert "airflow_provider_etelecom/py.typed" in names
    assert "airflow_provider_etelecom/hooks/etelecom.py" in names
    meta = _wheel_metadata(dist["wheel"])
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]


def test_the_sdist_ships_the_license_and_the_docs(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as archive:
        names = {name.removeprefix(f"{NAME}/") for name in archive.getnames()}
        license_file = archive.extractfile(f"{NAME}/LICENSE")
        assert license_file is not None and license_file.read() == (ROOT / "LICENSE").read_bytes()
    docs = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*") if p.is_file()}
    assert {"docs/getting-started.md", "docs/operator.md"} <= docs
    assert docs <= names, sorted(docs - names)
    assert {"README.md", "CHANGELOG.md", "CONTRIBUTING.md", "SECURITY.md", "pyproject.toml"} <= names
    assert "airflow_provider_etelecom/__init__.py" in names
    assert not any(name.startswith((".venvs", ".demo")) for name in names)


def test_python_versions_match_the_dependencies_and_the_tests(dist: dict[str, Path]) -> None:
    meta = _wheel_metadata(dist["wheel"])
    ours = SpecifierSet(meta["Requires-Python"])
    compat = SpecifierSet(metadata("apache-airflow-providers-common-compat")["Requires-Python"] or "")
    for minor in range(8, 16):
        version = f"3.{minor}.0"
        assert not (version in ours and version not in compat), f"installable on {version}, common-compat is not"
    classifiers = meta.get_all("Classifier") or []
    versions = {c.rsplit(" :: ", 1)[-1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")}
    assert versions == TESTED_PYTHONS
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in versions  # this run is one of them
    assert all(f"{v}.0" in ours for v in versions)
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    sdist_meta = _sdist_metadata(dist["sdist"])
    assert sdist_meta["Requires-Python"] == meta["Requires-Python"] == ">=3.11"
    assert sdist_meta.get_all("Classifier") == classifiers
