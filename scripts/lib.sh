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

# ensure_venv VERSION [EXTRAS] -> prints the environment's folder on stdout
ensure_venv() {
    local version="$1" extras="${2:-test}"
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
