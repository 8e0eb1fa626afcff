"""Start the Streamlit app and headless Chromium for the end-to-end tests.

conftest.py wraps these helpers in fixtures. They live here so the fixtures
stay short and each step can be read on its own.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

CHROMIUM_PATH = Path("/usr/bin/chromium")

# Headless Chromium flags. The background-networking, component-update and
# sync flags stop Chromium from opening connections of its own, which fail
# on machines without internet access.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Seconds to wait for a fresh server to pass its health check. The app
# imports torch on start, which takes several seconds on a slow CPU.
SERVER_START_TIMEOUT_S = 60

LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class StreamlitServer:
    """A running `streamlit run` process and where it writes its log."""

    process: subprocess.Popen
    base_url: str
    log_path: Path

    def log_tail(self) -> str:
        """Return the last few thousand characters of the server log."""
        text = self.log_path.read_text(errors="replace")
        return text[-LOG_TAIL_CHARS:]


def find_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that no process is listening on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_script_path() -> Path:
    """Return the app script to serve: $LAB_APP if set, else streamlit_app.py."""
    return Path(os.environ.get("LAB_APP", REPO_ROOT / "streamlit_app.py"))


def start_streamlit(app_path: Path, port: int, log_path: Path) -> StreamlitServer:
    """Start `streamlit run` on 127.0.0.1:port with its output in log_path.

    The server runs from the repository root, so it reads the settings in
    .streamlit/config.toml. It uses the Python interpreter that runs the
    tests, so both import the same installed packages.
    """
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]

    # Unbuffered output puts a traceback in the log as soon as it happens,
    # so a failure message can quote it.
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}

    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )

    return StreamlitServer(process, f"http://127.0.0.1:{port}", log_path)


def is_healthy(base_url: str) -> bool:
    """Return True when the server's health endpoint returns "ok"."""
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as reply:
            return reply.read().decode().strip() == "ok"
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until_healthy(server: StreamlitServer, timeout_s: float) -> None:
    """Poll the health endpoint until it returns "ok", or fail the test.

    The failure message contains the end of the server log, which shows an
    import error or a port conflict without rerunning anything.
    """
    deadline = time.monotonic() + timeout_s

    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"Streamlit exited with code {server.process.returncode} before "
                f"its health check passed. Server log:\n{server.log_tail()}"
            )
        if is_healthy(server.base_url):
            return
        time.sleep(0.25)

    pytest.fail(
        f"Streamlit at {server.base_url} did not pass its health check within "
        f"{timeout_s} s (timed out). Server log:\n{server.log_tail()}"
    )


def stop_process_tree(process: subprocess.Popen, timeout_s: float = 10) -> None:
    """Terminate a process and every child it started, then kill survivors."""
    try:
        parent = psutil.Process(process.pid)
    except psutil.NoSuchProcess:
        return

    tree = [*parent.children(recursive=True), parent]
    for member in tree:
        try:
            member.terminate()
        except psutil.NoSuchProcess:
            pass

    _, survivors = psutil.wait_procs(tree, timeout=timeout_s)
    for member in survivors:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass

    # Reap the direct child so it does not stay behind as a zombie.
    process.wait(timeout=timeout_s)


def require_chromium() -> None:
    """Skip the test when Chromium is missing, or fail under CI=true.

    CI installs Chromium through scripts/test.sh, so a missing browser there
    is a setup error that must not turn into a quietly skipped test.
    """
    if CHROMIUM_PATH.exists():
        return

    if os.environ.get("CI") == "true":
        pytest.fail(
            f"Chromium not found at {CHROMIUM_PATH}, and CI=true requires the "
            "browser tests to run. Install it with: apt-get install chromium"
        )

    pytest.skip(
        f"Chromium not found at {CHROMIUM_PATH}; install it with: "
        "apt-get install chromium"
    )
