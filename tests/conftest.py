"""Shared fixtures: a Streamlit server and a headless Chromium to drive it.

The end-to-end tests need both. Each is started once per test session,
because starting the app imports torch and takes several seconds.
"""

import pytest
import torch

import ddcore.training

from e2e_support import (
    CHROMIUM_ARGS,
    CHROMIUM_PATH,
    SERVER_START_TIMEOUT_S,
    StreamlitServer,
    app_script_path,
    find_free_port,
    require_chromium,
    start_streamlit,
    stop_process_tree,
    wait_until_healthy,
)

# As in the app and the command line: one thread trains these small models
# faster than two threads contending for a busy machine's cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def streamlit_process(tmp_path_factory) -> StreamlitServer:
    """Serve the app on a free port of 127.0.0.1 for the whole session.

    The app script is streamlit_app.py, or the file that $LAB_APP names,
    which lets the harness be tried against a stand-in app.
    """
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    server = start_streamlit(app_script_path(), find_free_port(), log_path)

    try:
        wait_until_healthy(server, SERVER_START_TIMEOUT_S)
        yield server
    finally:
        stop_process_tree(server.process)


@pytest.fixture(scope="session")
def streamlit_server(streamlit_process) -> str:
    """Base URL of the running app, such as http://127.0.0.1:40123."""
    return streamlit_process.base_url


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium as a Playwright BrowserContext with a fresh profile.

    Playwright rejects --user-data-dir in the launch arguments, so the fresh
    profile comes from launch_persistent_context, which returns a context
    rather than a Browser. Call browser.new_page() as with a Browser.
    """
    require_chromium()

    # Imported here so that the other tests still run where Playwright is
    # not installed.
    from playwright.sync_api import sync_playwright

    profile_dir = tmp_path_factory.mktemp("chromium-profile")

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile_dir,
            executable_path=CHROMIUM_PATH,
            args=CHROMIUM_ARGS,
            headless=True,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    """New browser tab for one test, closed when the test ends."""
    tab = browser.new_page()
    yield tab
    tab.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory):
    """Folder for the page screenshots the end-to-end tests save."""
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def train_calls(monkeypatch):
    """List of the TrainConfig of every Problem 1 training run during the test.

    lab.cached looks up ddcore.training.train_regressor at call time, so a
    counting wrapper in its place records every fit that misses the cache.
    """
    calls = []
    train_regressor = ddcore.training.train_regressor

    def counting_train_regressor(x, y, config, on_epoch=None, should_stop=None):
        calls.append(config)
        return train_regressor(x, y, config, on_epoch, should_stop)

    monkeypatch.setattr(ddcore.training, "train_regressor", counting_train_regressor)
    return calls
