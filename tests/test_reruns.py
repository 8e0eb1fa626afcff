"""Interrupted runs, reruns and the app's error policy.

A student may press Run again, change a setting or leave the page while a
training run is still going. The cached functions must then never store the
interrupted run as if it were complete, and the page must end up showing the
latest settings' results only. Errors a student triggers must read as plain
sentences, never as a traceback.
"""

import logging
import math
import time
import tomllib

import psutil
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import ddcore.sweep
from ddcore.regression_data import make_builtin_data
from ddcore.sweep import log_spaced_widths
from ddcore.training import TrainConfig, TrainingCancelled
from e2e_support import REPO_ROOT
from lab import cached, problem1
from lab.runner import Progress

# ---------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def empty_caches():
    """Start and end every test with empty st.cache_data caches."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def sweep_calls(monkeypatch):
    """Names of the ddcore.sweep entry points that really run during the test.

    lab.cached looks sweep.width_sweep and sweep.more_data up at call time,
    so counting wrappers in their place record every call that misses the
    cache and trains.
    """
    calls = []

    def counting(name):
        engine_function = getattr(ddcore.sweep, name)

        def counting_engine_function(*args, **kwargs):
            calls.append(name)
            return engine_function(*args, **kwargs)

        return counting_engine_function

    for name in ("width_sweep", "more_data"):
        monkeypatch.setattr(ddcore.sweep, name, counting(name))
    return calls


class StopAfterFirstReport(Progress):
    """Progress whose stop flag is set by the first progress report.

    The sweeps report after every chunk of epochs and the fit after every
    epoch, so the computation is cancelled at its first check, as when the
    script that waits for it is stopped.
    """

    def update(self, fraction):
        super().update(fraction)
        self.stop_requested.set()


# ---------------------------------------------------------------------------
# (a) A cancelled computation is never cached as complete
# ---------------------------------------------------------------------------

# Three chunks of ddcore.sweep.EPOCHS_PER_CHUNK (100) epochs, so a stop
# after the first chunk leaves two thirds of the training undone.
SWEEP_EPOCHS = 300
SWEEP_WIDTHS = (2, 4)
SWEEP_SEEDS = (0, 1)


def test_cancelled_width_sweep_is_not_cached(sweep_calls):
    arguments = (SWEEP_WIDTHS, SWEEP_SEEDS, SWEEP_EPOCHS, 1e-3, 30, 0.1)

    stopping = StopAfterFirstReport()
    with pytest.raises(TrainingCancelled):
        cached.width_sweep(*arguments, _progress=stopping)
    assert stopping.fraction < 1
    assert sweep_calls == ["width_sweep"]

    # The same arguments again: the sweep must train from scratch.
    progress = Progress()
    runs = cached.width_sweep(*arguments, _progress=progress)

    assert sweep_calls == ["width_sweep", "width_sweep"]
    assert progress.fraction == 1.0
    assert len(runs) == len(SWEEP_WIDTHS) * len(SWEEP_SEEDS)
    assert sorted(runs["width"].unique()) == list(SWEEP_WIDTHS)
    assert sorted(runs["seed"].unique()) == list(SWEEP_SEEDS)
    assert (runs["n_train"] == 30).all()
    assert all(math.isfinite(value) for value in runs["test_mse"])

    # Now the complete result is cached, and a third call trains nothing.
    again = cached.width_sweep(*arguments, _progress=Progress())

    assert len(sweep_calls) == 2
    assert again.equals(runs)


def test_cancelled_more_data_is_not_cached(sweep_calls):
    n_values = (20, 40)
    arguments = (SWEEP_WIDTHS, n_values, SWEEP_SEEDS, SWEEP_EPOCHS, 1e-3, 0.1)

    stopping = StopAfterFirstReport()
    with pytest.raises(TrainingCancelled):
        cached.more_data(*arguments, _progress=stopping)
    assert stopping.fraction < 1
    assert sweep_calls == ["more_data"]

    progress = Progress()
    runs = cached.more_data(*arguments, _progress=progress)

    assert sweep_calls == ["more_data", "more_data"]
    assert progress.fraction == 1.0
    assert len(runs) == len(SWEEP_WIDTHS) * len(n_values) * len(SWEEP_SEEDS)
    assert sorted(runs["n_train"].unique()) == list(n_values)

    cached.more_data(*arguments, _progress=Progress())
    assert len(sweep_calls) == 2


def test_cancelled_fit_is_not_cached(train_calls):
    data = make_builtin_data(n_samples=32, d_in=3, d_out=1)
    # The untrained regressor starts near MSE 1, far above the target, so a
    # complete fit runs all max_epochs.
    config = TrainConfig(max_epochs=4, batch_size=16, target_loss=1e-9)
    arguments = ("test-data", problem1.astuple(config), data)

    with pytest.raises(TrainingCancelled):
        cached.fit_regressor(*arguments, _progress=StopAfterFirstReport())
    assert len(train_calls) == 1

    result = cached.fit_regressor(*arguments, _progress=Progress())

    assert len(train_calls) == 2
    assert list(result["history"]["epoch"]) == [1, 2, 3, 4]

    cached.fit_regressor(*arguments, _progress=Progress())
    assert len(train_calls) == 2


# ---------------------------------------------------------------------------
# Each press of Run uses the values in the form at that moment
# ---------------------------------------------------------------------------

APP_SCRIPT = REPO_ROOT / "streamlit_app.py"


def test_fit_form_uses_every_change():
    """Four Runs in a row, each with another maximum, each train to that maximum.

    The form's defaults are the last settings run. A widget without a key
    gets a new identity when its default changes, and Streamlit then drops
    the value typed into it, so every second change would be lost.
    """
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=60)
    at.run()
    at.switch_page("pages/optimizer_fit.py").run()
    form_number(at, "Batch size").set_value(256)

    epochs_run = []
    for max_epochs in [2, 3, 4, 5]:
        form_number(at, "Maximum epochs").set_value(max_epochs)
        next(button for button in at.sidebar.button if button.label == "Run").click()
        at.run()
        assert not at.exception
        metrics = {metric.label: metric.value for metric in at.metric}
        epochs_run.append(int(metrics["Epochs run"]))

    # The built-in data start near MSE 1, far above the 1e-6 target, so each
    # fit runs to its maximum.
    assert epochs_run == [2, 3, 4, 5]


def form_number(at, label):
    return next(widget for widget in at.number_input if widget.label == label)


# ---------------------------------------------------------------------------
# (b) In the browser: a new run replaces one that is still going
# ---------------------------------------------------------------------------

IDLE_APP_SELECTOR = (
    '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
    '[data-test-script-state="notRunning"]'
)
SIDEBAR_SELECTOR = '[data-testid="stSidebar"]'
CAPTION_SELECTOR = '[data-testid="stCaptionContainer"]'
PROGRESS_SELECTOR = '[data-testid="stProgress"]'
EXCEPTION_SELECTOR = '[data-testid="stException"]'
ERROR_SELECTOR = '[data-testid="stAlertContentError"]'
RESULT_CAPTION_START = "Lines: mean over"

# Milliseconds, Playwright's unit. The runs are small, but the CPU may be
# shared with other jobs.
STEP_TIMEOUT_MS = 120_000

# A long sweep: 14 widths from 2 to 60, 10 seeds, 12,000 epochs (4.7e11
# multiply-adds, just within the default work budget of 5e11). The default
# sweep, 12 times smaller, took 3.4 to 3.8 s on one thread of a 2-core x86
# machine, so this one needs about 40 s. It is always interrupted long
# before it ends.
LONG_SWEEP = {
    "Smallest width": 2,
    "Largest width": 60,
    "Number of widths": 14,
    "Seeds per width": 10,
    "Epochs (full batch)": 12_000,
    "Training points N": 100,
}

# The sweep that replaces it: 3 widths, 2 seeds, 50 epochs on 70 points.
SHORT_SWEEP = {
    "Smallest width": 2,
    "Largest width": 8,
    "Number of widths": 3,
    "Seeds per width": 2,
    "Epochs (full batch)": 50,
    "Training points N": 70,
}

# A sweep of a few seconds, interrupted by a page switch and then rerun.
MEDIUM_SWEEP = {
    "Smallest width": 2,
    "Largest width": 60,
    "Number of widths": 14,
    "Seeds per width": 3,
    "Epochs (full batch)": 1500,
    "Training points N": 90,
}

# CPU seconds per second of wall time below which the server counts as idle.
# A training thread that was not stopped keeps one core busy.
IDLE_CPU_FRACTION = 0.2

# A stopped sweep ends at its next chunk of 100 epochs, well under a second
# on an idle CPU. The long sweep left running would need far longer than
# this to finish, so it cannot pass the check by ending on its own.
IDLE_WAIT_S = 15


def open_double_descent(page, base_url):
    """Open the overview, then the Double descent page, and wait for both runs.

    The overview comes first because the first script run of a fresh server
    shows a "Page not found" dialog for a page address (see
    test_sessions.py), and this test may be the server's first visitor.
    """
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(f"{base_url}/")
    page.wait_for_selector(IDLE_APP_SELECTOR)
    page.goto(f"{base_url}/double-descent")
    page.wait_for_selector(IDLE_APP_SELECTOR)


def fill_sidebar(page, values):
    """Type each value into its sidebar input; Tab commits it without submitting."""
    sidebar = page.locator(SIDEBAR_SELECTOR)
    for label, value in values.items():
        field = sidebar.get_by_label(label, exact=True)
        field.fill(str(value))
        field.press("Tab")


def click_run(page):
    page.locator(SIDEBAR_SELECTOR).get_by_role("button", name="Run", exact=True).click()


def click_nav_link(page, title):
    page.get_by_test_id("stSidebarNavLink").filter(has_text=title).click()


def wait_for_sweep_result(page):
    """Wait until the page shows a sweep result, an error or an exception."""
    result = page.locator(CAPTION_SELECTOR, has_text=RESULT_CAPTION_START)
    failed = page.locator(EXCEPTION_SELECTOR).or_(page.locator(ERROR_SELECTOR))
    result.or_(failed).first.wait_for()
    page.wait_for_selector(IDLE_APP_SELECTOR)


def result_captions(page):
    captions = page.locator(CAPTION_SELECTOR).all_inner_texts()
    captions = [text.strip() for text in captions]
    return [text for text in captions if text.startswith(RESULT_CAPTION_START)]


def expected_caption_parts(settings):
    seeds = settings["Seeds per width"]
    n_train = settings["Training points N"]
    start = f"{RESULT_CAPTION_START} {seeds} {'seed' if seeds == 1 else 'seeds'};"
    return start, f"on all {n_train} training points"


def check_page_shows_only(page, settings, server):
    """The page shows one sweep result, that of settings, and no error."""
    exception_count = page.locator(EXCEPTION_SELECTOR).count()
    assert exception_count == 0, f"Server log:\n{server.log_tail()}"
    assert page.locator(ERROR_SELECTOR).all_inner_texts() == []
    assert page.locator(PROGRESS_SELECTOR).count() == 0

    captions = result_captions(page)
    assert len(captions) == 1, captions
    start, points = expected_caption_parts(settings)
    assert captions[0].startswith(start), captions[0]
    assert points in captions[0], captions[0]


def downloaded_widths(page):
    """Widths in the CSV that the page's download button sends."""
    with page.expect_download() as download_info:
        page.get_by_test_id("stDownloadButton").locator("button").click()
    lines = download_info.value.path().read_text().splitlines()
    header = lines[0].split(",")
    width_column = header.index("width")
    return sorted({int(line.split(",")[width_column]) for line in lines[1:]})


def wait_until_server_idle(process):
    """Return True once the server uses little CPU for a whole second.

    A cancelled training run stops at its next chunk of epochs, which can
    take a few seconds on a busy CPU, so the check waits up to IDLE_WAIT_S.
    """
    server = psutil.Process(process.pid)
    deadline = time.monotonic() + IDLE_WAIT_S
    while time.monotonic() < deadline:
        before = sum(server.cpu_times()[:2])
        time.sleep(1.0)
        if sum(server.cpu_times()[:2]) - before < IDLE_CPU_FRACTION:
            return True
    return False


@pytest.mark.e2e
def test_run_again_shows_new_settings_only(page, streamlit_server, streamlit_process):
    open_double_descent(page, streamlit_server)

    fill_sidebar(page, LONG_SWEEP)
    click_run(page)
    page.locator(PROGRESS_SELECTOR).wait_for()
    assert result_captions(page) == []

    # Change the settings while the long sweep is still training.
    fill_sidebar(page, SHORT_SWEEP)
    click_run(page)
    wait_for_sweep_result(page)

    check_page_shows_only(page, SHORT_SWEEP, streamlit_process)
    assert downloaded_widths(page) == log_spaced_widths(2, 8, 3)

    # The long sweep's worker thread received the stop request, so the server
    # goes idle instead of training that sweep to the end in the background.
    assert wait_until_server_idle(streamlit_process.process)


@pytest.mark.e2e
def test_page_switch_mid_run_then_back(page, streamlit_server, streamlit_process):
    open_double_descent(page, streamlit_server)

    fill_sidebar(page, MEDIUM_SWEEP)
    click_run(page)
    page.locator(PROGRESS_SELECTOR).wait_for()

    click_nav_link(page, "Overview")
    page.get_by_role("heading", name="Optimisation and generalisation lab").wait_for()
    page.wait_for_selector(IDLE_APP_SELECTOR)

    # Back on the page, the stored settings run again, from scratch because
    # the interrupted run left nothing in the cache.
    click_nav_link(page, "Double descent")
    wait_for_sweep_result(page)

    check_page_shows_only(page, MEDIUM_SWEEP, streamlit_process)
    assert downloaded_widths(page) == log_spaced_widths(2, 60, 14)


# ---------------------------------------------------------------------------
# (c) Error policy: plain sentences, no tracebacks
# ---------------------------------------------------------------------------


def page_with_unexpected_error():
    from lab.ui import friendly_errors

    with friendly_errors("testing the error policy"):
        raise RuntimeError("internal detail for the server log")


def page_with_invalid_setting():
    from lab.ui import friendly_errors

    with friendly_errors("testing the error policy"):
        raise ValueError("Seeds per width must be at least 1, got 0.")


def test_unexpected_error_shows_plain_sentence(caplog):
    at = AppTest.from_function(page_with_unexpected_error, default_timeout=30)
    with caplog.at_level(logging.ERROR, logger="lab"):
        at.run()

    assert not at.exception
    errors = [error.value for error in at.error]
    assert errors == [
        "Something went wrong while testing the error policy. The details are in the "
        "server log; try other settings or reload the page."
    ]
    # The detail goes to the server log with its traceback, not to the page.
    logged = [record for record in caplog.records if record.name == "lab"]
    assert len(logged) == 1
    assert logged[0].exc_info[0] is RuntimeError
    assert "internal detail" not in errors[0]


def test_invalid_setting_shows_its_message():
    at = AppTest.from_function(page_with_invalid_setting, default_timeout=30)
    at.run()

    assert not at.exception
    errors = [error.value for error in at.error]
    assert errors == ["Seeds per width must be at least 1, got 0."]


def test_config_hides_error_details():
    with (REPO_ROOT / ".streamlit" / "config.toml").open("rb") as config_file:
        config = tomllib.load(config_file)

    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorDetails"] == "none"
