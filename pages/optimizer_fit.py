"""Optimizer fit: train the Problem 1 regressor and watch its loss fall."""

import streamlit as st

from ddcore.training import OPTIMIZERS, TrainConfig
from lab import charts, problem1, ui
from lab.runner import run_with_progress

TARGETS = [10.0**e for e in range(-9, 0)]


def data_controls():
    """Sidebar upload box; returns the data set in use after reading any new upload."""
    uploaded = st.sidebar.file_uploader(
        "Data file (.pth)", type=["pth", "pt"], key="fit_upload",
        help="A dict with X_tensor of shape (n, d) and Y_tensor of shape (n, k); the "
             "network adapts to d inputs and k outputs. `python -m ddcore example-data "
             "--out example.pth` writes an example.",
    )
    if uploaded is not None and uploaded.file_id != st.session_state.get("seen_upload"):
        st.session_state["seen_upload"] = uploaded.file_id
        previous = problem1.current_data()
        try:
            for note in problem1.accept_upload(uploaded).data.notes:
                st.info(note)
            # New data waits for Run like any other setting, so the chart
            # never mixes these data with settings not yet submitted.
            st.session_state.pop("fit_requested", None)
        except ValueError as error:
            st.error(f"{uploaded.name} was rejected: {error} Still using the {previous.label}.")

    choice = problem1.current_data()
    if choice.key != problem1.BUILTIN_KEY and st.sidebar.button("Use the built-in data set"):
        st.session_state.pop("problem1_data")
        st.session_state.pop("fit_requested", None)
        choice = problem1.current_data()
    st.caption(f"Data: {choice.label}")
    return choice


def settings_form(current):
    """Sidebar form; returns a TrainConfig when Run is pressed, else None.

    The defaults are the last settings run, so they change with every Run.
    Each widget has a key because Streamlit gives a widget without one a new
    identity when its default changes and drops the value typed into it.
    """
    with st.sidebar.form("fit_form"):
        optimizer = st.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(current.optimizer),
                                 format_func=problem1.OPTIMIZER_NAMES.get, key="fit_optimizer")
        lr = ui.lr_slider("Learning rate", current.lr, key="fit_lr")
        batch_size = st.number_input("Batch size", 1, 65_536, current.batch_size,
                                     key="fit_batch_size")
        max_epochs = st.number_input("Maximum epochs", 1, 5_000, current.max_epochs,
                                     key="fit_max_epochs")
        target_loss = st.select_slider("Target MSE (stop below it)", TARGETS,
                                       value=current.target_loss, format_func=ui.format_lr,
                                       key="fit_target_loss")
        weight_decay = st.number_input("Weight decay", 0.0, 1.0, current.weight_decay, format="%g",
                                       key="fit_weight_decay")
        seed = st.number_input("Seed (initialisation and shuffling)", 0, 2**31 - 1, current.seed,
                               key="fit_seed")
        if not st.form_submit_button("Run", type="primary"):
            return None
    return TrainConfig(optimizer=optimizer, lr=lr, batch_size=int(batch_size),
                       max_epochs=int(max_epochs), target_loss=target_loss,
                       weight_decay=weight_decay, seed=int(seed))


def show_result(result, config, n_samples):
    history = result["history"]
    epochs_run = len(history)
    reached = result["epochs_to_target"]
    left, middle, right = st.columns(3)
    left.metric("Epochs run", epochs_run)
    middle.metric("Epochs to target", reached if reached else "not reached")
    right.metric("Final epoch MSE", f"{history['train_loss'].iloc[-1]:.3g}")

    if config.batch_size > n_samples:
        st.info(f"The batch size {config.batch_size} is larger than the {n_samples} samples, "
                "so every epoch is one full batch.")
    if result["diverged_epoch"]:
        st.warning(
            f"The loss became NaN or infinite at epoch {result['diverged_epoch']}; training "
            f"stopped there. Try a learning rate below {config.lr:g}."
        )
    st.altair_chart(charts.loss_curve_chart(history, config.target_loss), width="stretch")
    st.caption(f"Settings of this run: {problem1.describe_settings(config)}, at most "
               f"{config.max_epochs} epochs, target MSE {config.target_loss:g}.")
    st.caption("The loss of an epoch is the mean of its minibatch losses, as the exercise "
               "reports it; it drifts while the weights change within the epoch.")
    ui.csv_download(history, "fit_history.csv")


st.title("Optimizer fit")
st.markdown(
    "Train the Problem 1 regressor (d → 400 → 200 → 100 → k, ReLU) until the epoch's mean "
    "minibatch MSE falls below the target. Compare optimizers, learning rates and batch "
    "sizes; the same settings always give the same curve."
)

with ui.friendly_errors("training the regressor"):
    choice = data_controls()
    submitted = settings_form(problem1.current_settings())
    if submitted is not None:
        st.session_state["problem1_settings"] = submitted
        st.session_state["fit_requested"] = True

    if st.session_state.get("fit_requested"):
        config = problem1.current_settings()
        show_result(problem1.fit(choice, config, run_with_progress), config, choice.data.n_samples)
    else:
        st.info("Choose the settings in the sidebar and press **Run**.")
