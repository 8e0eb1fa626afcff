"""Soak test: 200 reruns with changing settings must not make memory grow.

A lecture server runs for hours while students try setting after setting.
st.cache_data keeps at most max_entries (32) results per cached function,
so once a function has seen more distinct settings than that, memory must
level off. Two visitors, driven in-process through AppTest, alternate:
one fits the Problem 1 regressor with a new seed every time, the other runs
a tiny width sweep with a new epoch count every time. Each rerun therefore
trains and stores a new cache entry and, after the first 32 per function,
evicts one.
"""

import ctypes
import gc
import io
from pathlib import Path

import psutil
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import ddcore.sweep
import ddcore.training
from lab.cached import CACHE

pytestmark = pytest.mark.slow

APP_SCRIPT = Path(__file__).resolve().parent.parent / "streamlit_app.py"

RERUNS = 200
FIRST_MEASURED_RERUN = 50

# The uploaded data have 1,000 inputs, so each fitted regressor's weights
# (1000 -> 400 -> 200 -> 100 -> 1) take 1.9 MB, and 32 cached fits about
# 61 MB. After rerun 50, 25 fits are cached, and a cache that kept
# all 100 would grow by about 140 MB more by rerun 200.
WIDE_INPUTS = 1000
WIDE_SAMPLES = 256

# Measured on a busy 2-core x86 machine (torch 2.13, Streamlit 1.67): RSS grew
# by 7 to 17 MB between rerun 50 and rerun 200 with max_entries=32, and by
# 141 MB with the fit cache made unbounded. 60 MB lies well between the two.
MAX_RSS_GROWTH_BYTES = 60 * 2**20


@pytest.fixture(autouse=True)
def empty_caches():
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def training_calls(monkeypatch):
    """Counts of the fits and width sweeps that really train.

    lab.cached looks both engine functions up at call time, so counting
    wrappers in their place count every call that misses the cache.
    """
    counts = {"fit": 0, "sweep": 0}
    train_regressor = ddcore.training.train_regressor
    width_sweep = ddcore.sweep.width_sweep

    def counting_train_regressor(*args, **kwargs):
        counts["fit"] += 1
        return train_regressor(*args, **kwargs)

    def counting_width_sweep(*args, **kwargs):
        counts["sweep"] += 1
        return width_sweep(*args, **kwargs)

    monkeypatch.setattr(ddcore.training, "train_regressor", counting_train_regressor)
    monkeypatch.setattr(ddcore.sweep, "width_sweep", counting_width_sweep)
    return counts


def resident_bytes():
    """RSS of this process after returning freed heap memory to the OS.

    Without malloc_trim, glibc keeps freed blocks, and RSS moved by up to
    30 MB between samples of one steady run. On a C library without
    malloc_trim (not glibc) the measurement is noisier but still taken.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return psutil.Process().memory_info().rss


def wide_data_file():
    """Return the bytes of the wide upload: WIDE_SAMPLES rows of WIDE_INPUTS inputs."""
    generator = torch.Generator().manual_seed(0)
    buffer = io.BytesIO()
    torch.save(
        {
            "X_tensor": torch.randn(WIDE_SAMPLES, WIDE_INPUTS, generator=generator),
            "Y_tensor": torch.randn(WIDE_SAMPLES, 1, generator=generator),
        },
        buffer,
    )
    return buffer.getvalue()


def number_input(at, label):
    return next(widget for widget in at.number_input if widget.label == label)


def press_run(at):
    next(button for button in at.sidebar.button if button.label == "Run").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [error.value for error in at.error]


def open_fit_visitor():
    """A visitor on Optimizer fit with the wide upload: one epoch in one batch."""
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=60)
    at.run()
    at.switch_page("pages/optimizer_fit.py").run()
    upload = ("wide.pth", wide_data_file(), "application/octet-stream")
    at.file_uploader[0].set_value(upload)
    at.run()
    assert not at.error, [error.value for error in at.error]
    number_input(at, "Batch size").set_value(WIDE_SAMPLES)
    number_input(at, "Maximum epochs").set_value(1)
    return at


def open_sweep_visitor():
    """A visitor on Double descent with widths 2 and 3, one seed and N = 20."""
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=60)
    at.run()
    at.switch_page("pages/double_descent.py").run()
    for label, value in [("Largest width", 3), ("Number of widths", 2),
                         ("Seeds per width", 1), ("Training points N", 20)]:
        number_input(at, label).set_value(value)
    return at


def run_fit(at, seed):
    number_input(at, "Seed (initialisation and shuffling)").set_value(seed)
    press_run(at)


def run_sweep(at, epochs):
    number_input(at, "Epochs (full batch)").set_value(epochs)
    press_run(at)


def test_memory_levels_off_over_reruns(training_calls, record_property):
    fit_visitor = open_fit_visitor()
    sweep_visitor = open_sweep_visitor()
    n_fits = RERUNS // 2
    assert n_fits > CACHE["max_entries"]

    rss_at = {}
    for rerun in range(1, RERUNS + 1):
        # Every value is new, so every rerun trains and adds a cache entry.
        step = (rerun - 1) // 2
        if rerun % 2:
            run_fit(fit_visitor, seed=step)
        else:
            run_sweep(sweep_visitor, epochs=10 + step)
        if rerun in (1, FIRST_MEASURED_RERUN, RERUNS):
            rss_at[rerun] = resident_bytes()

    growth = rss_at[RERUNS] - rss_at[FIRST_MEASURED_RERUN]
    mib_at = {rerun: rss / 2**20 for rerun, rss in rss_at.items()}
    print(
        f"\nRSS after rerun 1: {mib_at[1]:.0f} MiB, "
        f"rerun {FIRST_MEASURED_RERUN}: {mib_at[FIRST_MEASURED_RERUN]:.0f} MiB, "
        f"rerun {RERUNS}: {mib_at[RERUNS]:.0f} MiB (growth {growth / 2**20:+.1f} MiB)"
    )
    record_property("rss_rerun_50_mib", round(rss_at[FIRST_MEASURED_RERUN] / 2**20, 1))
    record_property("rss_rerun_200_mib", round(rss_at[RERUNS] / 2**20, 1))
    record_property("rss_growth_mib", round(growth / 2**20, 1))

    # Each rerun trained: no settings repeated, so none came from the cache.
    assert training_calls["fit"] == n_fits
    assert training_calls["sweep"] == RERUNS - n_fits

    assert growth < MAX_RSS_GROWTH_BYTES

    # The first fit was evicted long ago, so it trains again. The last one is
    # still cached.
    run_fit(fit_visitor, seed=0)
    assert training_calls["fit"] == n_fits + 1
    run_fit(fit_visitor, seed=n_fits - 1)
    assert training_calls["fit"] == n_fits + 1
