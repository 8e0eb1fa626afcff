#!/usr/bin/env bash
# Set up the app and start it on http://127.0.0.1:8501.
#
#   bash scripts/run.sh                       # default port 8501
#   bash scripts/run.sh --server.port 8600    # any `streamlit run` option
#
# The script creates .venv when it is missing and installs requirements.txt.
# Arguments pass through to `streamlit run`. The settings it starts with are
# in .streamlit/config.toml.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

python_bin="${PYTHON:-python3}"
venv_dir=".venv"

if [[ ! -x "$venv_dir/bin/python" ]]; then
    echo "Creating $venv_dir with $python_bin"
    "$python_bin" -m venv "$venv_dir"
fi

# pip skips pinned requirements that are already installed, so this step
# takes a few seconds once the environment exists.
"$venv_dir/bin/python" -m pip install --quiet -r requirements.txt

exec "$venv_dir/bin/streamlit" run streamlit_app.py "$@"
