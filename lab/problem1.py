"""Problem 1 state shared by the Optimizer fit and Gradient norms pages.

The data set in use and the last fit settings live in st.session_state,
so each visitor has their own and an upload never reaches anyone else.
A rejected upload leaves the previous data set in place.
"""

import dataclasses
import hashlib

import streamlit as st

from ddcore import regression_data
from ddcore.budget import check_work
from ddcore.training import TrainConfig, regressor_macs_per_sample
from lab import cached

BUILTIN_KEY = "built-in"
OPTIMIZER_NAMES = {
    "sgd": "SGD",
    "momentum": "SGD with momentum 0.9",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamw": "AdamW",
}


@dataclasses.dataclass(frozen=True)
class DataChoice:
    """The Problem 1 data set a visitor works with, and the key that names it."""

    key: str  # "built-in", or the SHA-256 digest of an uploaded file
    label: str
    data: object  # ddcore.regression_data.RegressionData


def builtin_choice():
    data = cached.builtin_regression_data()
    label = f"built-in data set ({data.n_samples} samples, {data.d_in} inputs, {data.d_out} outputs)"
    return DataChoice(BUILTIN_KEY, label, data)


def current_data():
    """Return the visitor's data set: the last valid upload, else the built-in one."""
    return st.session_state.get("problem1_data") or builtin_choice()


def current_settings():
    """Return the visitor's last fit settings, else the exercise's."""
    return st.session_state.get("problem1_settings") or TrainConfig()


def accept_upload(uploaded):
    """Validate an uploaded .pth file and make it the visitor's data set.

    Returns the new DataChoice; raises DataFileError (a ValueError) with
    the reason when the file is rejected, and the previous choice stays.
    """
    content = uploaded.getvalue()
    digest = hashlib.sha256(content).hexdigest()
    data = regression_data.load_xy_file(content)
    label = f"file {uploaded.name} ({data.n_samples} samples, {data.d_in} inputs, {data.d_out} outputs)"
    choice = DataChoice(digest, label, data)
    st.session_state["problem1_data"] = choice
    return choice


def describe_settings(config):
    """Name the settings of a fit in one line, for captions under its results."""
    text = (f"{OPTIMIZER_NAMES[config.optimizer]}, learning rate {config.lr:g}, "
            f"batch size {config.batch_size}, seed {config.seed}")
    if config.weight_decay:
        text += f", weight decay {config.weight_decay:g}"
    return text


def astuple(config):
    """Return the settings as the tuple that the cached functions key on."""
    return dataclasses.astuple(config)


def check_fit_budget(choice, config):
    work = regressor_macs_per_sample(choice.data.d_in, choice.data.d_out)
    work *= choice.data.n_samples * config.max_epochs
    check_work(work, "This fit", "Lower the maximum number of epochs or use a smaller data set.")


def fit(choice, config, progress_runner):
    """Train (or fetch from the cache) the regressor for these data and settings."""
    check_fit_budget(choice, config)
    return progress_runner(
        cached.fit_regressor, choice.key, astuple(config), choice.data,
        label="Training the regressor…",
    )
