"""Double descent: train and test MSE of students of growing width."""

import streamlit as st

from ddcore.budget import check_work, sweep_work
from ddcore.data import D_IN, D_OUT
from ddcore.models import interpolation_threshold_width
from ddcore.sweep import log_spaced_widths
from lab import cached, charts, ui
from lab.runner import run_with_progress

DEFAULTS = {"min_width": 2, "max_width": 60, "n_widths": 14, "seeds": 5, "epochs": 2000,
            "lr": 1e-3, "n_train": 100, "noise": 0.1}


def sweep_form():
    """Sidebar form; returns the settings dict when Run is pressed, else None."""
    with st.sidebar.form("sweep_form"):
        st.markdown("**Widths M** (log-spaced)")
        min_width = st.number_input("Smallest width", 1, 2_000, DEFAULTS["min_width"])
        max_width = st.number_input("Largest width", 1, 2_000, DEFAULTS["max_width"])
        n_widths = st.number_input("Number of widths", 1, 60, DEFAULTS["n_widths"])
        seeds = st.number_input("Seeds per width", 1, 20, DEFAULTS["seeds"])
        epochs = st.number_input("Epochs (full batch)", 1, 20_000, DEFAULTS["epochs"])
        lr = ui.lr_slider("Learning rate (Adam)", DEFAULTS["lr"], key="sweep_lr")
        n_train = st.number_input("Training points N", 1, 5_000, DEFAULTS["n_train"])
        noise = st.number_input("Label noise (standard deviation)", 0.0, 10.0,
                                DEFAULTS["noise"], step=0.05, format="%g")
        float64 = st.checkbox(
            "float64 arithmetic", value=False,
            help="About 1.5x slower. In float32 the batched engine and a one-model-at-a-time "
                 "loop differ by rounding; in float64 they agree to about 1e-8.",
        )
        if not st.form_submit_button("Run", type="primary"):
            return None
    return {"min_width": int(min_width), "max_width": int(max_width), "n_widths": int(n_widths),
            "seeds": int(seeds), "epochs": int(epochs), "lr": lr, "n_train": int(n_train),
            "noise": float(noise), "dtype": "float64" if float64 else "float32"}


def run_sweep(settings):
    widths = log_spaced_widths(settings["min_width"], settings["max_width"], settings["n_widths"])
    work = sweep_work(widths, settings["seeds"], settings["epochs"], settings["n_train"])
    check_work(work, "This sweep",
               "Use fewer seeds, fewer or smaller widths, fewer epochs or fewer training points.")
    return run_with_progress(
        cached.width_sweep, tuple(widths), tuple(range(settings["seeds"])), settings["epochs"],
        settings["lr"], settings["n_train"], settings["noise"], settings["dtype"],
        label=f"Training {len(widths) * settings['seeds']} students…",
    )


def show_sweep(runs, settings):
    n_train = settings["n_train"]
    threshold = interpolation_threshold_width(n_train, D_IN, D_OUT)
    st.altair_chart(charts.double_descent_chart(runs, n_train, D_OUT), width="stretch")
    st.caption(
        f"Lines: mean over {ui.plural(settings['seeds'], 'seed')}; band: min to max over seeds. Train MSE "
        f"is measured on all {n_train} training points after training, test MSE on 10,000 test "
        f"points. The dashed rule marks width {threshold:.1f}, where the parameter count "
        f"reaches N × O = {n_train * D_OUT}: the number of values the network must fit."
    )
    ui.diverged_warning(runs)
    ui.csv_download(runs, "double_descent.csv")
    with st.expander("All runs"):
        st.dataframe(runs, hide_index=True)


st.title("Double descent")
st.markdown(
    "Students of width M (10 → M → M → 5, ReLU) learn a noisy random teacher from N points, "
    "trained full-batch with Adam. As M grows, test error first falls, rises towards the "
    "width where the network can fit every training value, and falls again beyond it."
)

with ui.friendly_errors("running the width sweep"):
    submitted = sweep_form()
    if submitted is not None:
        st.session_state["sweep_settings"] = submitted

    settings = st.session_state.get("sweep_settings")
    if settings is None:
        st.info("The sidebar holds the exercise's settings with 5 seeds per width. "
                "Press **Run** to train them.")
    else:
        show_sweep(run_sweep(settings), settings)
