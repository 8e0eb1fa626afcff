"""More data can hurt: the same widths trained on more points."""

import streamlit as st

from ddcore.budget import check_work, sweep_work
from ddcore.data import D_OUT
from lab import cached, charts, ui
from lab.comparison import change_table, verdict_sentences
from lab.runner import run_with_progress

DEFAULTS = {"widths": "28, 47", "n_values": "100, 500", "seeds": 5, "epochs": 2000,
            "lr": 1e-3, "noise": 0.1}


def comparison_form():
    """Sidebar form; returns the settings dict when Run is pressed, else None."""
    with st.sidebar.form("more_data_form"):
        widths = st.text_input("Widths M to compare", DEFAULTS["widths"])
        n_values = st.text_input("Training-set sizes N", DEFAULTS["n_values"])
        seeds = st.number_input("Seeds per run", 1, 20, DEFAULTS["seeds"])
        epochs = st.number_input("Epochs (full batch)", 1, 20_000, DEFAULTS["epochs"])
        lr = ui.lr_slider("Learning rate (Adam)", DEFAULTS["lr"], key="more_lr")
        noise = st.number_input("Label noise (standard deviation)", 0.0, 10.0,
                                DEFAULTS["noise"], step=0.05, format="%g")
        if not st.form_submit_button("Run", type="primary"):
            return None
    return {"widths": ui.parse_int_list(widths, "Widths", minimum=1),
            "n_values": ui.parse_int_list(n_values, "Training-set sizes", minimum=1),
            "seeds": int(seeds), "epochs": int(epochs), "lr": lr, "noise": float(noise)}


def run_comparison(settings):
    widths, n_values = settings["widths"], settings["n_values"]
    work = sum(sweep_work(widths, settings["seeds"], settings["epochs"], n) for n in n_values)
    check_work(work, "This comparison",
               "Use fewer seeds, widths or sizes, smaller N or fewer epochs.")
    return run_with_progress(
        cached.more_data, tuple(widths), tuple(n_values), tuple(range(settings["seeds"])),
        settings["epochs"], settings["lr"], settings["noise"],
        label=f"Training {len(widths) * len(n_values) * settings['seeds']} students…",
    )


def show_comparison(runs, settings):
    table = change_table(runs)
    for sentence in verdict_sentences(table, D_OUT):
        st.markdown(sentence)
    st.altair_chart(charts.more_data_chart(runs), width="stretch")
    change_columns = [c for c in table.columns if c.startswith("change")]
    st.dataframe(table, hide_index=True, column_config={
        c: st.column_config.NumberColumn(c, format="percent") for c in change_columns
    })
    st.caption(f"Test MSE: mean over {ui.plural(settings['seeds'], 'seed')} on the same 10,000 test "
               "points. Every N shares the first 100 training points, so N changes only the "
               "amount of data.")
    ui.diverged_warning(runs)
    ui.csv_download(runs, "more_data.csv")


st.title("More data can hurt")
st.markdown(
    "Near the interpolation threshold (parameter count ≈ N × outputs) test error peaks. "
    "Adding training points moves that threshold to larger widths, so a model that was "
    "past it can land near it and get worse with more data. Whether it does depends on "
    "the noise: with 5 seeds, width 47 improved by about 8% from N=100 to N=500 at the "
    "exercise's label noise of 0.1, and got about 40% worse at a noise of 0.3."
)

with ui.friendly_errors("running the more-data comparison"):
    submitted = comparison_form()
    if submitted is not None:
        st.session_state["more_data_settings"] = submitted

    settings = st.session_state.get("more_data_settings")
    if settings is None:
        st.info("The sidebar holds the exercise's comparison (widths 28 and 47, N = 100 and "
                "500) with 5 seeds. Press **Run** to train it.")
    else:
        show_comparison(run_comparison(settings), settings)
