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
SUPPORTED_AIRFLOW_VERSIONS="3.3.2 2.11.2"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_uv() {
    if ! command -v uv >/dev/null 2>&1; then
        log "Installing uv (fast Python package installer)"
        "$PYTHON" -m pip install --quiet --disable-pip-version-check uv >&2
        hash -r
    fi
    command -v uv >/dev/null 2>&1 || export PATH="$("$PYTHON" -m site --user-base)/bin:$PATH"
}

# ensure_venv VERSION [EXTRAS] -> prints the environment's folder on stdout
ensure_venv() {
    local version="$1" extras="${2:-test,parquet}"
    local constraints="$ROOT/constraints/airflow-$version.txt"
    local dir="$ROOT/.venvs/airflow-$version"
    if [ ! -f "$constraints" ]; then
        echo "No constraints for Airflow $version (have: $SUPPORTED_AIRFLOW_VERSIONS)." >&2
        return 1
    fi
    local stamp
    stamp="$(cat "$ROOT/pyproject.toml" "$constraints" | sha256sum | cut -c1-16)-$extras"
    if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$stamp" ]; then
        ensure_uv
        log "Preparing $dir (Airflow $version, extras: $extras)"
        rm -rf "$dir"
        uv venv --quiet --python "$PYTHON" "$dir" >&2 || return 1
        VIRTUAL_ENV="$dir" uv pip install --quiet -c "$constraints" -e "$ROOT[$extras]" >&2 || return 1
        echo "$stamp" >"$dir/.stamp"
    fi
    echo "$dir"
}
