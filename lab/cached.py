"""Cached entry points into ddcore, shared by every visitor of the app.

st.cache_data keys each result on all of a function's arguments except
those whose names start with an underscore, so every setting that changes a
result is a plain argument here, and an uploaded data set enters through
its SHA-256 digest. A run that raises (divergence is not an error, but a
cancelled run is) is never stored. max_entries and ttl bound the memory a
busy lecture server spends on old settings.
"""

import pandas as pd
import streamlit as st
import torch

from ddcore import gradnorms, regression_data, sweep, training
from ddcore.data import make_teacher_data
from ddcore.models import RegressionMLP

CACHE = {"max_entries": 32, "ttl": 3600, "show_spinner": False}


@st.cache_data(**CACHE)
def builtin_regression_data():
    """Generate the stand-in for the course's Problem 1 data file."""
    return regression_data.make_builtin_data()


@st.cache_data(**CACHE)
def fit_regressor(data_key, settings, _data, _progress=None):
    """Train the Problem 1 regressor; return its history, weights and summary.

    data_key identifies _data (the built-in set or an upload's digest), and
    settings is a tuple of TrainConfig's fields. The weights come back as a
    state dict of tensors, never as a module, so the cache can copy them.
    """
    config = training.TrainConfig(*settings)
    on_epoch = None
    should_stop = None
    if _progress is not None:
        on_epoch = lambda epoch, loss: _progress.update(epoch / config.max_epochs)  # noqa: E731
        should_stop = _progress.should_stop

    model, result = training.train_regressor(_data.x, _data.y, config, on_epoch, should_stop)
    history = pd.DataFrame({"epoch": range(1, len(result.losses) + 1), "train_loss": result.losses})
    return {
        "history": history,
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
        "epochs_to_target": result.epochs_to_target,
        "diverged_epoch": result.diverged_epoch,
    }


@st.cache_data(**CACHE)
def grad_norms(data_key, settings, grad_batch_size, _data, _progress=None):
    """Per-minibatch gradient norms of the model that fit_regressor trains.

    The model comes from fit_regressor's cache, so it is retrained only when
    the fit settings or the data changed.
    """
    fitted = fit_regressor(data_key, settings, _data, _progress)
    with torch.device("meta"):  # no memory or random draws for weights replaced below
        model = RegressionMLP(_data.d_in, _data.d_out)
    model.load_state_dict(fitted["state_dict"], assign=True)

    seed = training.TrainConfig(*settings).seed
    stats = gradnorms.minibatch_grad_norms(model, _data.x, _data.y, grad_batch_size, seed)
    norms = pd.DataFrame({"batch": range(1, len(stats.norms) + 1), "grad_norm": stats.norms})
    summary = {"mean": stats.mean, "std": stats.std, "variance": stats.variance}
    return norms, summary, fitted["diverged_epoch"]


def progress_callbacks(progress):
    """on_progress and should_stop for ddcore.sweep, or None for both."""
    if progress is None:
        return None, None
    return progress.update, progress.should_stop


@st.cache_data(**CACHE)
def width_sweep(widths, seeds, epochs, lr, n_train, noise, dtype="float32", _progress=None):
    """Train and score every (width, seed) on the teacher data; one row per run."""
    data = make_teacher_data(n_train=n_train, noise=noise)
    config = sweep.SweepConfig(epochs=epochs, lr=lr, dtype=dtype)
    on_progress, should_stop = progress_callbacks(_progress)
    return sweep.width_sweep(data, widths, seeds, config, on_progress, should_stop)


@st.cache_data(**CACHE)
def more_data(widths, n_values, seeds, epochs, lr, noise, _progress=None):
    """Train each width on each training-set size; one row per (width, N, seed)."""
    config = sweep.SweepConfig(epochs=epochs, lr=lr)
    on_progress, should_stop = progress_callbacks(_progress)
    return sweep.more_data(
        widths, n_values, seeds, config, noise=noise,
        on_progress=on_progress, should_stop=should_stop,
    )
