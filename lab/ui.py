"""Small pieces shared by the pages: error display, inputs, downloads."""

import contextlib
import logging

import streamlit as st

logger = logging.getLogger("lab")

# Learning rates offered on the log sliders: 1, 2 and 5 per decade.
LEARNING_RATES = [m * 10.0**e for e in range(-6, 1) for m in (1, 2, 5) if m * 10.0**e <= 1]


@contextlib.contextmanager
def friendly_errors(what):
    """Show expected errors as messages and unexpected ones without a traceback.

    ValueError and its subclasses carry a message written for the visitor
    (an invalid setting, a rejected file, a budget overrun). Anything else
    is a bug: its traceback goes to the server log, and the visitor gets a
    plain sentence. Streamlit's own rerun and stop signals are
    BaseExceptions and pass through untouched.
    """
    try:
        yield
    except ValueError as error:
        st.error(str(error))
    except Exception:
        logger.exception("Failed while %s", what)
        st.error(
            f"Something went wrong while {what}. The details are in the server log; "
            "try other settings or reload the page."
        )


def plural(count, noun):
    """'1 seed', '5 seeds'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_lr(lr):
    return f"{lr:g}"


def lr_slider(label, default, key):
    """Draw a learning-rate slider on a log grid of 1, 2 and 5 per decade."""
    return st.select_slider(label, options=LEARNING_RATES, value=default,
                            format_func=format_lr, key=key)


def parse_int_list(text, name, minimum=1):
    """Parse '28, 47' into [28, 47]; raise ValueError naming the bad entry."""
    values = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"{name}: {part!r} is not a whole number; write e.g. 28, 47.") from None
        if value < minimum:
            raise ValueError(f"{name}: {value} is below the minimum of {minimum}.")
        values.append(value)
    if not values:
        raise ValueError(f"{name} is empty; enter at least one whole number, e.g. 28, 47.")
    return sorted(set(values))


def csv_download(frame, file_name, label="Download the numbers as CSV"):
    # on_click="ignore" downloads without a rerun. In Streamlit 1.67 a rerun
    # drops this session's reference to the file, so on a busy server the
    # runs of other sessions can delete the file before the browser fetches
    # it. With a dozen concurrent sessions, some downloads failed that way.
    st.download_button(label, frame.to_csv(index=False), file_name=file_name, mime="text/csv",
                       on_click="ignore")


def diverged_warning(frame):
    """Warn about runs whose loss became NaN or infinite, naming width, seed and epoch."""
    diverged = frame[frame["diverged_epoch"].notna()]
    if diverged.empty:
        return
    runs = ", ".join(
        f"width {row.width} seed {row.seed} (epoch {row.diverged_epoch})"
        for row in diverged.itertuples()
    )
    st.warning(
        f"{len(diverged)} run(s) diverged: the loss became NaN or infinite in {runs}. "
        "Their points are left out of the chart. Try a smaller learning rate."
    )
