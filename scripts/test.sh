#!/usr/bin/env bash
# Set up a fresh machine for the tests, then run pytest.
#
#   bash scripts/test.sh                 # every test
#   bash scripts/test.sh -m "not e2e"    # skip the browser tests
#
# Arguments pass through to pytest. The script creates .venv when it is
# missing, installs requirements-dev.txt, and, when run as root, installs
# Debian's chromium for the browser tests. Each step is skipped when its
# result is already present, so a second run goes straight to pytest.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

python_bin="${PYTHON:-python3}"
venv_dir=".venv"
requirements_stamp="$venv_dir/.requirements-dev.sha256"


create_venv() {
    if [[ -x "$venv_dir/bin/python" ]]; then
        return
    fi
    echo "Creating $venv_dir with $python_bin"
    "$python_bin" -m venv "$venv_dir"
}


requirements_hash() {
    cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1
}


install_requirements() {
    # The stamp stores the hash of the requirement files that were last
    # installed, so pip runs again only after one of them changes.
    local current_hash
    current_hash="$(requirements_hash)"
    if [[ -f "$requirements_stamp" && "$(cat "$requirements_stamp")" == "$current_hash" ]]; then
        return
    fi

    echo "Installing requirements-dev.txt into $venv_dir"
    "$venv_dir/bin/python" -m pip install --quiet -r requirements-dev.txt
    echo "$current_hash" > "$requirements_stamp"
}


install_chromium() {
    # The browser tests drive Debian's chromium through Playwright, because
    # `playwright install` downloads a browser and cannot run offline.
    if [[ -x /usr/bin/chromium ]]; then
        return
    fi
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get > /dev/null; then
        echo "NOTE: /usr/bin/chromium is missing and apt-get cannot run as this user;" \
             "the browser tests will be skipped (install it with: apt-get install chromium)."
        return
    fi
    echo "Installing chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium > /dev/null
}


create_venv
install_requirements
install_chromium

exec "$venv_dir/bin/python" -m pytest "$@"
