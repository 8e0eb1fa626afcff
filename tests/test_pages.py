"""Tests of the app's pages, driven through Streamlit's AppTest.

AppTest runs the app in this process, with no server or browser, and exposes
the elements each script run drew. Every test opens streamlit_app.py and
switches to a page as a visitor would, so st.navigation and session state
behave as in the browser. Training settings are tiny, so each run takes a few
seconds on a 2-core CPU.
"""

import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from ddcore.budget import MAX_WORK_ENV
from ddcore.models import student_n_params
from ddcore.regression_data import make_builtin_data
from ddcore.sweep import log_spaced_widths
from ddcore.training import TrainConfig

# AppTest.from_file resolves a relative path against the calling file, not
# the working directory, so the app script is given by absolute path.
APP_SCRIPT = Path(__file__).resolve().parent.parent / "streamlit_app.py"

# Seconds one script run may take. A run trains a few small models, and this
# leaves room for a CPU that other jobs are also using.
RUN_TIMEOUT_S = 120

# Streamlit 1.67's AppTest has no class for st.altair_chart: the chart is an
# UnknownElement whose type is the name of its proto field.
CHART_TYPE = "vega_lite_chart"

OPTIMIZER_FIT = "pages/optimizer_fit.py"
GRADIENT_NORMS = "pages/gradient_norms.py"
DOUBLE_DESCENT = "pages/double_descent.py"
MORE_DATA = "pages/more_data.py"
ALL_PAGES = [OPTIMIZER_FIT, GRADIENT_NORMS, DOUBLE_DESCENT, MORE_DATA]

# Problem 1 settings small enough for a test: a few epochs, and a target
# that the untrained regressor (MSE near 1) cannot reach in them.
SMALL_FIT = TrainConfig(max_epochs=3, batch_size=128, target_loss=1e-6)


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def empty_caches():
    """Start and end every test with empty st.cache_data caches.

    The caches live in this process across AppTest instances, so without
    this a test could pass on a result that an earlier test computed.
    """
    st.cache_data.clear()
    yield
    st.cache_data.clear()


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def open_page(page, session_state=None):
    """Run the app once, then switch to page, run it and return the AppTest.

    session_state entries are set before the page's first run, as an
    earlier visit to another page would have left them.
    """
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=RUN_TIMEOUT_S)
    at.run()
    for key, value in (session_state or {}).items():
        at.session_state[key] = value
    at.switch_page(page).run()
    return at


def widget(widgets, label):
    """Return the widget with this label, or fail the test listing the labels found."""
    for candidate in widgets:
        if candidate.label == label:
            return candidate
    labels = [candidate.label for candidate in widgets]
    raise AssertionError(f"No widget labelled {label!r} found. The page has {labels}.")


def press_run(at):
    """Click the sidebar form's Run button and rerun the script."""
    widget(at.sidebar.button, "Run").click()
    at.run()


def metric_values(at):
    return {metric.label: metric.value for metric in at.metric}


def chart_specs(at):
    """Vega-Lite specs of the Altair charts on the page, as dicts."""
    return [json.loads(chart.proto.spec) for chart in at.get(CHART_TYPE)]


def texts(elements):
    return [element.value for element in elements]


def small_data_file():
    """Bytes of a valid .pth upload with 20 samples, 3 inputs and 1 output."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=generator)
    y = torch.randn(20, 1, generator=generator)
    buffer = io.BytesIO()
    torch.save({"X_tensor": x, "Y_tensor": y}, buffer)
    return buffer.getvalue()


def upload(at, file_name, content):
    widget(at.file_uploader, "Data file (.pth)").set_value(
        (file_name, content, "application/octet-stream")
    )
    at.run()


# ---------------------------------------------------------------------------
# Overview and first render
# ---------------------------------------------------------------------------


def test_overview_links_every_page():
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=RUN_TIMEOUT_S)
    at.run()

    assert not at.exception
    assert texts(at.title) == ["Optimisation and generalisation lab"]
    linked = [link.proto.page for link in at.page_link]
    assert linked == ["optimizer-fit", "gradient-norms", "double-descent", "more-data"]


@pytest.mark.parametrize("page", ALL_PAGES)
def test_first_render_asks_for_run(page, train_calls):
    at = open_page(page)

    assert not at.exception
    assert not at.error
    prompts = [text for text in texts(at.info) if "press **run**" in text.lower()]
    assert len(prompts) == 1
    # Nothing is trained before the visitor presses Run.
    assert chart_specs(at) == []
    assert train_calls == []


# ---------------------------------------------------------------------------
# Optimizer fit
# ---------------------------------------------------------------------------


def test_optimizer_fit_stops_at_max_epochs(train_calls):
    at = open_page(OPTIMIZER_FIT)
    widget(at.number_input, "Maximum epochs").set_value(5)
    widget(at.number_input, "Batch size").set_value(128)
    press_run(at)

    assert not at.exception
    assert not at.error
    assert not at.warning
    assert len(chart_specs(at)) == 1

    # The form's settings reached the training run.
    assert len(train_calls) == 1
    assert train_calls[0].max_epochs == 5
    assert train_calls[0].batch_size == 128

    # Five epochs of Adam at lr 1e-4 leave the MSE far above the 1e-6 target,
    # so training runs to the maximum.
    metrics = metric_values(at)
    assert metrics["Epochs to target"] == "not reached"
    assert metrics["Epochs run"] == "5"
    final_mse = float(metrics["Final epoch MSE"])
    assert math.isfinite(final_mse)
    assert final_mse > 0


def test_optimizer_fit_divergence_names_epoch():
    at = open_page(OPTIMIZER_FIT)
    widget(at.selectbox, "Optimizer").set_value("momentum")
    widget(at.select_slider, "Learning rate").set_value(1.0)
    widget(at.number_input, "Maximum epochs").set_value(5)
    press_run(at)

    assert not at.exception
    assert not at.error

    # SGD with momentum 0.9 at lr 1 overflows within the first epochs on the
    # built-in data, and training stops at the epoch whose loss is NaN or
    # infinite, so that epoch is the number of epochs run.
    epochs_run = int(metric_values(at)["Epochs run"])
    assert epochs_run <= 5
    warnings = texts(at.warning)
    assert len(warnings) == 1
    assert f"at epoch {epochs_run};" in warnings[0]


# ---------------------------------------------------------------------------
# Gradient norms
# ---------------------------------------------------------------------------


def test_gradient_norms_reuse_the_fit(train_calls):
    at = open_page(OPTIMIZER_FIT)
    widget(at.number_input, "Maximum epochs").set_value(SMALL_FIT.max_epochs)
    widget(at.number_input, "Batch size").set_value(SMALL_FIT.batch_size)
    press_run(at)
    assert not at.exception
    assert len(train_calls) == 1

    at.switch_page(GRADIENT_NORMS).run()
    press_run(at)

    assert not at.exception
    assert not at.error
    assert len(chart_specs(at)) == 1
    # The gradient pass took the fitted model from the cache.
    assert len(train_calls) == 1


def test_gradient_norms_metrics(train_calls):
    at = open_page(GRADIENT_NORMS, {"problem1_settings": SMALL_FIT})
    press_run(at)

    assert not at.exception
    assert not at.error
    assert len(chart_specs(at)) == 1

    # No fit with these settings was cached, so the page trained one.
    assert train_calls == [SMALL_FIT]

    # The pass defaults to the fit's batch size and covers every sample once.
    n_samples = make_builtin_data().n_samples
    n_batches = math.ceil(n_samples / SMALL_FIT.batch_size)
    caption = next(text for text in texts(at.caption) if "minibatches" in text)
    expected = f"{n_batches} minibatches of up to {SMALL_FIT.batch_size} samples"
    assert caption.startswith(expected)

    # The summary table contains the unrounded statistics.
    summary = at.dataframe[0].value.iloc[0]
    assert summary["mean"] > 0
    assert summary["std"] >= 0
    assert summary["variance"] == pytest.approx(summary["std"] ** 2, rel=1e-9)

    # The metrics show them to 4 significant digits.
    metrics = metric_values(at)
    mean = float(metrics["Mean gradient norm"])
    std = float(metrics["Standard deviation"])
    variance = float(metrics["Variance"])
    assert mean == pytest.approx(summary["mean"], rel=1e-3)
    assert std == pytest.approx(summary["std"], rel=1e-3)
    assert variance == pytest.approx(std**2, rel=2e-3)


# ---------------------------------------------------------------------------
# Double descent
# ---------------------------------------------------------------------------


def test_double_descent_small_sweep():
    at = open_page(DOUBLE_DESCENT)
    widget(at.number_input, "Smallest width").set_value(2)
    widget(at.number_input, "Largest width").set_value(8)
    widget(at.number_input, "Number of widths").set_value(3)
    widget(at.number_input, "Seeds per width").set_value(2)
    widget(at.number_input, "Epochs (full batch)").set_value(50)
    press_run(at)

    assert not at.exception
    assert not at.error
    assert len(chart_specs(at)) == 1

    # One row per (width, seed), on the default N = 100 training points.
    runs = at.dataframe[0].value
    widths = log_spaced_widths(2, 8, 3)
    assert len(runs) == len(widths) * 2
    assert sorted(runs["width"].unique()) == sorted(widths)
    assert sorted(runs["seed"].unique()) == [0, 1]
    assert (runs["n_train"] == 100).all()
    for row in runs.itertuples():
        assert row.n_params == student_n_params(row.width)
        assert 0 < row.train_mse < math.inf
        assert 0 < row.test_mse < math.inf
    assert runs["diverged_epoch"].isna().all()

    assert any("N × O = 500" in text for text in texts(at.caption))


def test_double_descent_rejects_min_above_max():
    at = open_page(DOUBLE_DESCENT)
    widget(at.number_input, "Smallest width").set_value(10)
    widget(at.number_input, "Largest width").set_value(5)
    press_run(at)

    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1
    assert "(10)" in errors[0]
    assert "(5)" in errors[0]
    assert chart_specs(at) == []


# ---------------------------------------------------------------------------
# More data can hurt
# ---------------------------------------------------------------------------


def test_more_data_small_comparison():
    at = open_page(MORE_DATA)
    widget(at.text_input, "Widths M to compare").set_value("4, 8")
    widget(at.text_input, "Training-set sizes N").set_value("50, 100")
    widget(at.number_input, "Seeds per run").set_value(2)
    widget(at.number_input, "Epochs (full batch)").set_value(50)
    press_run(at)

    assert not at.exception
    assert not at.error
    assert len(chart_specs(at)) == 1

    table = at.dataframe[0].value
    assert list(table["width"]) == [4, 8]
    assert list(table["n_params"]) == [student_n_params(4), student_n_params(8)]
    before = table["test MSE, N=50"]
    after = table["test MSE, N=100"]
    assert (before > 0).all()
    assert (after > 0).all()
    change = table["change N=50 → 100"]
    pd.testing.assert_series_equal((after - before) / before, change, check_names=False)

    # One sentence per width, whose verdict follows the sign of the change.
    for width, mse_before, mse_after in zip(table["width"], before, after, strict=True):
        verdict = "helped" if mse_after < mse_before else "hurt"
        heading = f"**Width {width}**"
        sentences = [text for text in texts(at.markdown) if heading in text]
        assert len(sentences) == 1
        assert f"more data **{verdict}**" in sentences[0]


def test_more_data_rejects_non_integer_width():
    at = open_page(MORE_DATA)
    widget(at.text_input, "Widths M to compare").set_value("a, 47")
    press_run(at)

    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1
    assert "'a'" in errors[0]
    assert chart_specs(at) == []


# ---------------------------------------------------------------------------
# Work budget
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", ALL_PAGES)
def test_work_budget_rejects_run(page, monkeypatch, train_calls):
    # One multiply-add is below the work of any setting the forms accept.
    monkeypatch.setenv(MAX_WORK_ENV, "1")
    at = open_page(page)
    press_run(at)

    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1
    assert "multiply-adds" in errors[0]
    assert MAX_WORK_ENV in errors[0]
    assert chart_specs(at) == []
    assert train_calls == []


# ---------------------------------------------------------------------------
# Upload of Problem 1 data
# ---------------------------------------------------------------------------


def test_bad_upload_keeps_builtin_data():
    at = open_page(OPTIMIZER_FIT)
    upload(at, "notes.pth", b"not a torch file")

    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1
    assert errors[0].startswith("notes.pth was rejected:")
    assert "Still using the built-in data set" in errors[0]
    assert "problem1_data" not in at.session_state


def test_bad_upload_keeps_previous_upload():
    at = open_page(OPTIMIZER_FIT)
    upload(at, "small.pth", small_data_file())
    assert not at.exception
    assert not at.error
    accepted = at.session_state["problem1_data"]
    assert accepted.label == "file small.pth (20 samples, 3 inputs, 1 outputs)"

    upload(at, "notes.pth", b"not a torch file")

    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1
    assert "Still using the file small.pth (20 samples" in errors[0]
    assert at.session_state["problem1_data"] == accepted


def test_upload_reaches_both_problem1_pages(train_calls):
    at = open_page(OPTIMIZER_FIT)
    upload(at, "small.pth", small_data_file())
    widget(at.number_input, "Maximum epochs").set_value(5)
    widget(at.number_input, "Batch size").set_value(8)
    press_run(at)

    assert not at.exception
    assert not at.error
    assert len(train_calls) == 1

    at.switch_page(GRADIENT_NORMS).run()
    press_run(at)

    assert not at.exception
    assert not at.error
    assert len(train_calls) == 1
    captions = texts(at.caption)
    assert any("trained on the file small.pth (20 samples" in text for text in captions)
    # 20 samples in batches of up to 8 make 3 batches.
    assert any(text.startswith("3 minibatches of up to 8 samples") for text in captions)


def test_upload_names_data_at_once():
    at = open_page(OPTIMIZER_FIT)
    upload(at, "small.pth", small_data_file())

    assert not at.exception
    assert "Data: file small.pth (20 samples, 3 inputs, 1 outputs)" in texts(at.caption)


def test_batch_larger_than_data_is_explained():
    # The uploaded file has 20 samples; a batch size of 64 makes every epoch
    # one full batch, and the page explains that instead of failing.
    at = open_page(OPTIMIZER_FIT)
    upload(at, "small.pth", small_data_file())
    widget(at.number_input, "Maximum epochs").set_value(3)
    widget(at.number_input, "Batch size").set_value(64)
    press_run(at)

    assert not at.exception
    assert not at.error
    assert any("larger than the 20 samples" in text for text in texts(at.info))
    assert metric_values(at)["Epochs run"] == "3"


def test_diverged_sweep_runs_are_named():
    # Adam's step is bounded, so the page's learning rates cannot make a
    # sweep diverge. The warning is checked on a result frame with one
    # diverged run, as the engine reports it.
    def page():
        import pandas as pd

        from lab import ui

        frame = pd.DataFrame({"width": [8, 16], "seed": [0, 1],
                              "diverged_epoch": pd.array([None, 42], dtype="Int64")})
        ui.diverged_warning(frame)

    at = AppTest.from_function(page).run()

    assert not at.exception
    assert len(at.warning) == 1
    warning = at.warning[0].value
    assert "width 16 seed 1 (epoch 42)" in warning
    assert "smaller learning rate" in warning
