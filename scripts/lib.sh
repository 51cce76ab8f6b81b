#!/usr/bin/env bash
# Shared set-up for the project's commands (sourced, not run).
#
# One virtual environment per supported Airflow version under .venvs/, built with uv from the
# pinned constraints in constraints/ so a fresh machine installs exactly what was tested.
# An environment is rebuilt when pyproject.toml or its constraints file changes.

set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
DEFAULT_AIRFLOW_VERSION="3.3.2"
SUPPORTED_AIRFLOW_VERSIONS="3.3.2 3.2.2 3.1.8 3.0.6 2.11.2"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# ensure_uv: make `uv` callable. The one on PATH if there is one; else one bootstrapped into
# .venvs/_bootstrap, a private venv made with the standard library's venv module. Never installed
# into the machine's own Python (no `pip install` as root into the system's site-packages).
ensure_uv() {
    command -v uv >/dev/null 2>&1 && return 0
    local boot="$ROOT/.venvs/_bootstrap"
    if [ ! -x "$boot/bin/uv" ]; then
        log "uv is not on PATH: installing it into $boot (a private virtual environment)"
        rm -rf "$boot"
        if ! "$PYTHON" -m venv "$boot" >&2; then
            echo "Could not create $boot with '$PYTHON -m venv': install your system's venv package" \
                "(Debian/Ubuntu: apt-get install python3-venv) or uv itself (https://docs.astral.sh/uv/)." >&2
            rm -rf "$boot"
            return 1
        fi
        "$boot/bin/python" -m pip install --quiet --disable-pip-version-check uv >&2 || { rm -rf "$boot"; return 1; }
    fi
    export PATH="$boot/bin:$PATH"
}

# The Python of the default environments (.venvs/airflow-VERSION); other Pythons get
# .venvs/airflow-VERSION-pyX.Y. A constraints file constraints/airflow-VERSION-pyX.Y.txt, if there
# is one, replaces constraints/airflow-VERSION.txt for that Python (none is needed today: the pins
# resolved on 3.11 install on 3.13 too).
DEFAULT_PYTHON_VERSION="3.11"
# What CI tests: AIRFLOW_VERSION:PYTHON_VERSION pairs, each running the whole suite, or
# AIRFLOW_VERSION:PYTHON_VERSION:airflow, running only AIRFLOW_FACING_TESTS (the middle Airflow
# versions: the client, the simulator and the other Airflow-free tests need not run on each).
TEST_LEGS="3.3.2:3.11 3.3.2:3.13 3.2.2:3.12:airflow 3.1.8:3.13:airflow 3.0.6:3.12:airflow 2.11.2:3.11"
# The part of the suite that meets Airflow: the hooks, operators, sensors, triggers and transfers,
# the example DAGs (sensor mode parity and the operator's real retries are in there), real task
# runs with retries (failure policy, the platform findings), the provider info and the support table.
AIRFLOW_FACING_TESTS="tests/hooks tests/operators tests/sensors tests/triggers tests/transfers tests/example_dags
    tests/reliability/test_platform_task_runs.py tests/test_failure_policy.py tests/test_provider_info.py
    tests/test_support_table.py"

# python_for X.Y -> prints an interpreter of Python X.Y: $PYTHON if it is one, else pyenv's
# newest X.Y.*, else pythonX.Y on PATH (the package index cannot serve interpreters).
python_for() {
    local want="$1" candidate found=""
    for candidate in "$PYTHON" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python"$want" "python$want"; do
        candidate="$(command -v "$candidate" 2>/dev/null)" || continue
        if [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]; then
            found="$candidate"
            [ "$candidate" = "$(command -v "$PYTHON" 2>/dev/null)" ] && break  # $PYTHON wins
        fi
    done
    if [ -z "$found" ]; then
        echo "No Python $want here (looked at \$PYTHON, pyenv's versions and python$want on PATH): install it, e.g. 'pyenv install $want'." >&2
        return 1
    fi
    echo "$found"
}

# ensure_venv VERSION [EXTRAS] [PYTHON_VERSION] -> prints the environment's folder on stdout
#
# PYTHON_VERSION defaults to DEFAULT_PYTHON_VERSION, whose environment keeps the plain name
# .venvs/airflow-VERSION that the other scripts use.
ensure_venv() {
    local version="$1" extras="${2:-test,parquet}" pyver="${3:-$DEFAULT_PYTHON_VERSION}" asked="${3:-}"
    local dir="$ROOT/.venvs/airflow-$version" python
    [ "$pyver" = "$DEFAULT_PYTHON_VERSION" ] || dir="$dir-py$pyver"
    local constraints="$ROOT/constraints/airflow-$version.txt"
    [ -f "$ROOT/constraints/airflow-$version-py$pyver.txt" ] && constraints="$ROOT/constraints/airflow-$version-py$pyver.txt"
    if [ ! -f "$constraints" ]; then
        echo "No constraints for Airflow $version (have: $SUPPORTED_AIRFLOW_VERSIONS)." >&2
        return 1
    fi
    if ! python="$(python_for "$pyver" 2>/dev/null)"; then
        # No Python was asked for (demo, e2e, airflow-ui): the machine's $PYTHON will do.
        [ -z "$asked" ] || { python_for "$pyver" >/dev/null; return 1; }
        python="$PYTHON"
        pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || return 1
        log "No Python $DEFAULT_PYTHON_VERSION here: $dir uses $PYTHON (Python $pyver)"
    fi
    local stamp
    stamp="$(cat "$ROOT/pyproject.toml" "$constraints" | sha256sum | cut -c1-16)-$extras-py$pyver"
    if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$stamp" ]; then
        ensure_uv
        log "Preparing $dir (Airflow $version, Python $pyver, extras: $extras)"
        rm -rf "$dir"
        uv venv --quiet --python "$python" "$dir" >&2 || return 1
        # --compile-bytecode: uv leaves modules uncompiled, and a machine with PYTHONDONTWRITEBYTECODE
        # set (this machine has it) never writes the caches either, so every interpreter (each pytest worker,
        # each fresh-interpreter test, each Airflow process of the e2e runs) would compile Airflow
        # from source again: about 3 s of CPU per start. Compiling once at install is pip's default.
        VIRTUAL_ENV="$dir" uv pip install --quiet --compile-bytecode -c "$constraints" -e "$ROOT[$extras]" >&2 || return 1
        echo "$stamp" >"$dir/.stamp"
    fi
    echo "$dir"
}
