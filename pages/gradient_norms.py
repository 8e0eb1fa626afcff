"""Gradient norms: how noisy is each minibatch's gradient at the end of training?"""

import pandas as pd
import streamlit as st

from lab import cached, charts, problem1, ui
from lab.runner import run_with_progress


def batch_size_form(default):
    """Sidebar form; returns the batch size for the gradient pass when Run is pressed."""
    with st.sidebar.form("grad_form"):
        batch_size = st.number_input("Batch size of the gradient pass", 1, 65_536, default)
        if not st.form_submit_button("Run", type="primary"):
            return None
    return int(batch_size)


def show_norms(norms, stats, batch_size):
    left, middle, right = st.columns(3)
    left.metric("Mean gradient norm", f"{stats['mean']:.4g}")
    middle.metric("Standard deviation", f"{stats['std']:.4g}")
    right.metric("Variance", f"{stats['variance']:.4g}")
    st.altair_chart(charts.grad_norm_chart(norms, stats["mean"]), width="stretch")
    st.caption(
        f"{len(norms)} minibatches of up to {batch_size} samples. Each norm is the L2 norm "
        "of the full gradient of that batch's MSE, with gradients zeroed before every batch; "
        "standard deviation and variance are taken over the batches (population formulas)."
    )
    summary = pd.DataFrame([stats]).assign(batch_size=batch_size)
    ui.csv_download(norms.assign(batch_size=batch_size), "gradient_norms.csv")
    st.dataframe(summary, hide_index=True)


st.title("Gradient norms")
st.markdown(
    "After training, how much does the gradient change from one minibatch to the next? "
    "This pass uses the model trained with the settings of the **Optimizer fit** page, "
    "taken from the cache: it is trained only if those settings have not been run yet."
)

with ui.friendly_errors("computing gradient norms"):
    choice = problem1.current_data()
    config = problem1.current_settings()
    st.caption(f"Model: {problem1.describe_settings(config)}, trained on the {choice.label}.")

    submitted = batch_size_form(config.batch_size)
    if submitted is not None:
        st.session_state["grad_batch_size"] = submitted

    batch_size = st.session_state.get("grad_batch_size")
    if batch_size is None:
        st.info("Choose the batch size in the sidebar and press **Run**.")
    else:
        problem1.check_fit_budget(choice, config)
        norms, stats, diverged_epoch = run_with_progress(
            cached.grad_norms, choice.key, problem1.astuple(config), batch_size, choice.data,
            label="Training the model for the gradient pass…",
        )
        if diverged_epoch:
            st.warning(
                f"The model's training diverged at epoch {diverged_epoch} (its loss became NaN "
                "or infinite), so its gradient norms are not finite. On the Optimizer fit "
                f"page, try a learning rate below {config.lr:g}."
            )
        show_norms(norms, stats, batch_size)
