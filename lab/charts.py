"""Altair chart builders for the lab pages.

Every builder takes a long-form pandas DataFrame and returns an Altair chart, so the pages only
fetch data and call ``st.altair_chart``. The builders import no Streamlit and no torch, which keeps
them testable through ``chart.to_dict()``.

A log axis cannot show 0, negative values, NaN or infinity. Each builder that uses one passes its
column through ``floor_for_log``, which drops non-finite rows and raises small values to a floor,
and the chart subtitle states how many values were changed.
"""


from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from ddcore.models import interpolation_threshold_width

DEFAULT_LOG_FLOOR = 1e-8

# Okabe-Ito colours, chosen so that colour-blind viewers can tell train and test apart.
TRAIN_COLOR = "#0072B2"
TEST_COLOR = "#D55E00"
REFERENCE_COLOR = "#444444"

# Vega-Lite height of the plot area. Streamlit's autosize fits title, axes and legend into this
# height as well, so the plot itself gets less.
CHART_HEIGHT = 440
VALUE_FORMAT = ".3~g"
# Log-axis tick labels: plain numbers between 0.001 and 10000, powers of ten like "1e-8" outside.
# Vega leaves the label of a minor tick empty, so empty labels stay empty.
LOG_AXIS_LABEL_EXPR = (
    "datum.label == '' ? '' : "
    "datum.value >= 0.001 && datum.value < 10000 ? format(datum.value, '~g') : format(datum.value, '.0e')"
)
# Okabe-Ito colours without yellow, which is hard to see on white.
CATEGORY_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000"]
DASH = [6, 4]
WIDTH_TITLE = "width M (hidden units per layer, log scale)"


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


def floor_for_log(df, column, floor=DEFAULT_LOG_FLOOR, label=None):
    """Prepare one column for a log axis.

    Rows where ``column`` is NaN or infinite are dropped, and values below ``floor``
    (including 0 and negative values) are replaced by ``floor``.

    Parameters
    ----------
    df : pandas.DataFrame
        Input data; it is not modified.
    column : str
        Column that will be drawn on the log axis.
    floor : float
        Smallest value drawn, greater than 0.
    label : str, optional
        Name of the values in the note, for example "train MSE". Defaults to ``column``.

    Returns
    -------
    (pandas.DataFrame, str)
        The cleaned copy and a note for the chart, such as
        "2 train MSE values below 1e-08 shown at the floor 1e-08". The note is "" when no
        value was dropped or floored.
    """
    if not floor > 0:
        raise ValueError(f"floor must be greater than 0 for a log axis, got {floor}.")

    label = column if label is None else label
    values = df[column].astype(float)

    finite = np.isfinite(values)
    n_dropped = int((~finite).sum())

    below_floor = finite & (values < floor)
    n_floored = int(below_floor.sum())

    cleaned = df.loc[finite].copy()
    cleaned[column] = values[finite].clip(lower=floor)

    notes = []
    if n_floored:
        notes.append(f"{_count(n_floored, label + ' value')} below {floor:g} shown at the floor {floor:g}")
    if n_dropped:
        notes.append(f"{_count(n_dropped, 'NaN or infinite ' + label + ' value')} dropped")
    return cleaned, "; ".join(notes)


def _count(n, noun):
    """Format a count with a noun in singular or plural, e.g. "1 value", "3 values"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _require_columns(df, columns, name):
    missing = [column for column in columns if column not in df.columns]
    if missing:
        raise ValueError(
            f"{name} is missing the column(s) {missing}. Its columns are {list(df.columns)}. "
            f"Pass a long-form DataFrame with the columns {list(columns)}."
        )


def _title(text, notes):
    """Build a chart title whose subtitle lines are the non-empty notes."""
    lines = [note for note in notes if note]
    if lines:
        return alt.Title(text, subtitle=lines)
    return alt.Title(text)


def _log_scale():
    return alt.Scale(type="log")


def _log_axis():
    # The format makes Vega's log scale pick which ticks get a label, and labelExpr then rewrites them.
    return alt.Axis(format=".0e", labelExpr=LOG_AXIS_LABEL_EXPR)


def _style_for_projector(chart):
    """Set the chart height and enlarge fonts for a projector."""
    return _configure_for_projector(chart.properties(height=CHART_HEIGHT))


def _configure_for_projector(chart):
    """Enlarge fonts so that labels stay readable when projected in a lecture hall.

    Altair cannot concatenate a configured chart, so a concatenated chart calls this once, on the result.
    """
    return (
        chart.configure_axis(labelFontSize=14, titleFontSize=16)
        .configure_legend(labelFontSize=14, titleFontSize=15)
        .configure_title(fontSize=20, subtitleFontSize=14, subtitleColor="#333333", anchor="start")
    )


def _horizontal_reference(value, field, label, y_title):
    """Draw a dashed horizontal rule at ``value`` with ``label`` written at its left end.

    ``y_title`` must equal the title of the main layer's y axis, because Vega-Lite joins
    differing titles of a shared axis into one long title.
    """
    data = pd.DataFrame({field: [value]})
    y = alt.Y(f"{field}:Q", title=y_title, scale=_log_scale())

    rule = (
        alt.Chart(data)
        .mark_rule(color=REFERENCE_COLOR, strokeDash=DASH, strokeWidth=2)
        .encode(y=y, tooltip=[alt.Tooltip(f"{field}:Q", title=label, format=VALUE_FORMAT)])
    )
    text = (
        alt.Chart(data)
        .mark_text(align="left", baseline="bottom", dx=4, dy=-4, fontSize=14, color=REFERENCE_COLOR)
        .encode(x=alt.value(0), y=y, text=alt.value(label))
    )
    return [rule, text]


def _seed_summary(df, group_columns, value_column):
    """Aggregate one value column over seeds: mean, min, max and number of seeds per group."""
    return (
        df.groupby(group_columns, as_index=False)
        .agg(
            mean_mse=(value_column, "mean"),
            min_mse=(value_column, "min"),
            max_mse=(value_column, "max"),
            n_seeds=("seed", "nunique"),
        )
    )


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------


def loss_curve_chart(history, target_loss=None, floor=DEFAULT_LOG_FLOOR):
    """Plot the epoch-mean training loss on a log axis, with an optional dashed target rule.

    Parameters
    ----------
    history : pandas.DataFrame
        One row per epoch with the columns ``epoch`` (1-based) and ``train_loss``.
    target_loss : float, optional
        Loss at which training counts as converged. A value <= 0 cannot be drawn on the log
        axis and is mentioned in the subtitle instead.
    floor : float
        Smallest loss drawn; see ``floor_for_log``.
    """
    _require_columns(history, ["epoch", "train_loss"], "history")
    data, note = floor_for_log(history[["epoch", "train_loss"]], "train_loss", floor, "train loss")
    notes = [note]

    y_title = "train loss (MSE, log scale)"
    curve = (
        alt.Chart(data)
        .mark_line(color=TRAIN_COLOR, strokeWidth=2.5, point=alt.OverlayMarkDef(size=25, filled=True))
        .encode(
            x=alt.X("epoch:Q", title="epoch", scale=alt.Scale(type="linear"),
                    axis=alt.Axis(format="d", tickMinStep=1)),
            y=alt.Y("train_loss:Q", title=y_title, scale=_log_scale(), axis=_log_axis()),
            tooltip=[
                alt.Tooltip("epoch:Q", title="epoch", format="d"),
                alt.Tooltip("train_loss:Q", title="train loss", format=VALUE_FORMAT),
            ],
        )
    )
    layers = [curve]

    if target_loss is not None:
        if target_loss > 0:
            layers += _horizontal_reference(target_loss, "target_loss", "target", y_title)
        else:
            notes.append(f"target loss {target_loss:g} is not drawn because a log axis cannot show values <= 0")

    chart = alt.layer(*layers).properties(title=_title("Training loss per epoch", notes))
    return _style_for_projector(chart)


def grad_norm_chart(norms, mean=None, floor=DEFAULT_LOG_FLOOR):
    """Plot the L2 norm of each minibatch gradient on a log axis, with a dashed rule at the mean.

    Parameters
    ----------
    norms : pandas.DataFrame
        One row per minibatch with the columns ``batch`` (1-based) and ``grad_norm``.
    mean : float, optional
        Value for the "mean" rule. Defaults to the mean of the finite norms, before flooring.
    floor : float
        Smallest norm drawn; see ``floor_for_log``.
    """
    _require_columns(norms, ["batch", "grad_norm"], "norms")
    data, note = floor_for_log(norms[["batch", "grad_norm"]], "grad_norm", floor, "gradient norm")
    notes = [note]

    if mean is None:
        finite_norms = norms["grad_norm"].astype(float)
        finite_norms = finite_norms[np.isfinite(finite_norms)]
        mean = float(finite_norms.mean()) if len(finite_norms) else None

    y_title = "gradient L2 norm (log scale)"
    # Epochs and batches are counts: whole-number ticks only.
    x = alt.X("batch:Q", title="minibatch", scale=alt.Scale(type="linear"),
              axis=alt.Axis(format="d", tickMinStep=1))
    y = alt.Y("grad_norm:Q", title=y_title, scale=_log_scale(), axis=_log_axis())

    line = alt.Chart(data).mark_line(color=TRAIN_COLOR, strokeWidth=1, opacity=0.5).encode(x=x, y=y)
    points = (
        alt.Chart(data)
        .mark_point(color=TRAIN_COLOR, filled=True, size=50)
        .encode(
            x=x,
            y=y,
            tooltip=[
                alt.Tooltip("batch:Q", title="minibatch", format="d"),
                alt.Tooltip("grad_norm:Q", title="gradient norm", format=VALUE_FORMAT),
            ],
        )
    )
    layers = [line, points]

    if mean is not None:
        if mean > 0:
            layers += _horizontal_reference(mean, "mean_grad_norm", "mean", y_title)
        else:
            notes.append(f"mean {mean:g} is not drawn because a log axis cannot show values <= 0")

    chart = alt.layer(*layers).properties(title=_title("Gradient norm per minibatch", notes))
    return _style_for_projector(chart)


# ---------------------------------------------------------------------------
# Double descent
# ---------------------------------------------------------------------------


# Heights of the plot areas. The test panel gets more, because the test curve shows the double
# descent. Their sum stays below CHART_HEIGHT because in a concatenated chart the title, the
# threshold label and the width axis come on top of these heights. Streamlit fits a single view,
# title and axes included, into CHART_HEIGHT.
TEST_PANEL_HEIGHT = 200
TRAIN_PANEL_HEIGHT = 120
PANEL_SPACING = 16
SPLIT_COLORS = {"train": TRAIN_COLOR, "test": TEST_COLOR}
# The test MSE axis spans at least this factor, and adds this fraction of its log span
# above and below the values.
MIN_TEST_DOMAIN_RATIO = 2.0
TEST_DOMAIN_MARGIN = 0.08
# Streamlit 1.67 sets each panel's width to the page width and, without an autosize in the spec,
# pads a concatenation of layered panels, so the y axes push the chart past the right edge.
# fit-x, which Vega-Lite 6 supports for vconcat, shrinks the panels to fit instead.
CONCAT_AUTOSIZE = alt.AutoSizeParams(type="fit-x", contains="padding")
# Vega's log scale takes its ticks from d3-scale's log.ticks(count). That puts ticks only at powers
# of ten when the domain spans at least count decades, and also at 2, 3, ... 9 times each power
# within a narrower domain. A small count keeps the short train panel from drawing a grid line at
# every such minor tick, while the test panel, usually less than a decade high, keeps them.
LOG_TICK_COUNT = 3


@dataclass(frozen=True)
class ThresholdMarker:
    """Interpolation threshold as drawn: its width, parameter count and label."""

    width: float
    n_params: int
    label: str
    label_align: str  # Vega text align: "left" runs the label rightwards from the rule, "right" leftwards


def _melt_splits(runs):
    """Reshape one row per run into one row per (run, split) with the columns ``split`` and ``mse``."""
    long = runs.melt(
        id_vars=["width", "n_params", "seed"],
        value_vars=["train_mse", "test_mse"],
        var_name="split",
        value_name="mse",
    )
    long["split"] = long["split"].map({"train_mse": "train", "test_mse": "test"})
    return long


def _summarise_splits(long, floor):
    """Floor each split for the log axis and aggregate it over seeds, returning the summary and notes."""
    summaries = []
    notes = []
    for split in ("train", "test"):
        rows, note = floor_for_log(long[long["split"] == split], "mse", floor, f"{split} MSE")
        notes.append(note)

        summary = _seed_summary(rows, ["width", "n_params"], "mse")
        summary["split"] = split
        summaries.append(summary)
    return pd.concat(summaries, ignore_index=True), notes


def double_descent_chart(runs, n_train, d_out, d_in=10, floor=DEFAULT_LOG_FLOOR):
    """Plot test MSE (top panel) and train MSE (bottom panel) against width.

    The panels share the log width axis, and each has its own log MSE axis. The test axis
    spans only the test values, because they vary within a factor of a few while the train
    MSE falls by orders of magnitude. A dashed rule marks the interpolation threshold in both.

    Lines show the mean over seeds. Where a width has more than one seed, a shaded band spans
    the min to the max over seeds. Means, mins and maxes are computed after flooring.

    Parameters
    ----------
    runs : pandas.DataFrame
        Sweep result, one row per (width, seed), with the columns ``width``, ``n_params``,
        ``seed``, ``train_mse`` and ``test_mse`` (``n_train`` is checked when present).
    n_train : int
        Number of training samples N of the sweep.
    d_out, d_in : int
        Output dimension O and input dimension D of the student network.
    floor : float
        Smallest MSE drawn; see ``floor_for_log``.
    """
    _require_columns(runs, ["width", "n_params", "seed", "train_mse", "test_mse"], "runs")
    _check_single_n_train(runs, n_train)
    _require_positive_widths(runs)

    summary, notes = _summarise_splits(_melt_splits(runs), floor)
    if (summary["n_seeds"] > 1).any():
        notes.insert(0, "Lines show the mean over seeds, shaded bands the min to max over seeds.")

    threshold, threshold_note = _threshold_marker(runs["width"], n_train, d_in, d_out)
    notes.append(threshold_note)

    test_rows = summary[summary["split"] == "test"]
    train_rows = summary[summary["split"] == "train"]
    test_panel = _split_panel(test_rows, "test", TEST_PANEL_HEIGHT, _test_mse_scale(test_rows), threshold)
    train_panel = _split_panel(train_rows, "train", TRAIN_PANEL_HEIGHT, _log_scale(), threshold)

    title = _title(f"Double descent: test and train MSE against width (n_train = {n_train})", notes)
    chart = (
        alt.vconcat(test_panel, train_panel, spacing=PANEL_SPACING)
        # One width scale lines up the widths and the threshold rule in both panels, and
        # separate MSE scales let each panel span its own values.
        .resolve_scale(x="shared", y="independent")
        .properties(title=title, autosize=CONCAT_AUTOSIZE)
    )
    return _configure_for_projector(chart)


def _split_panel(rows, split, height, y_scale, threshold):
    """Draw one split's mean line, min-max band and threshold rule as one panel.

    The test panel goes on top. It hides the width labels, which the train panel below shows,
    and it carries the threshold label.
    """
    color = SPLIT_COLORS[split]
    is_top = split == "test"
    x = _width_x("width", show_labels=not is_top)
    y_title = f"{split} MSE (log scale)"
    y_axis = _log_axis()
    # The coloured title takes the place of a legend.
    y_axis.titleColor = color
    y_axis.tickCount = LOG_TICK_COUNT

    tooltip = [
        alt.Tooltip("split:N", title="split"),
        alt.Tooltip("width:Q", title="width", format="d"),
        alt.Tooltip("n_params:Q", title="n_params", format="d"),
        alt.Tooltip("mean_mse:Q", title=f"mean {split} MSE over seeds", format=VALUE_FORMAT),
        alt.Tooltip("min_mse:Q", title="min over seeds", format=VALUE_FORMAT),
        alt.Tooltip("max_mse:Q", title="max over seeds", format=VALUE_FORMAT),
        alt.Tooltip("n_seeds:Q", title="seeds", format="d"),
    ]

    line = (
        alt.Chart(rows)
        .mark_line(color=color, strokeWidth=2.5, point=alt.OverlayMarkDef(size=60, filled=True, color=color))
        .encode(x=x, y=alt.Y("mean_mse:Q", title=y_title, scale=y_scale, axis=y_axis), tooltip=tooltip)
    )
    layers = [line]

    # A band over a single seed has zero height, so only widths with several seeds get one.
    band_rows = rows[rows["n_seeds"] > 1]
    if len(band_rows):
        band = (
            alt.Chart(band_rows)
            .mark_area(color=color, opacity=0.2)
            .encode(x=x, y=alt.Y("min_mse:Q", title=y_title, scale=y_scale), y2="max_mse:Q", tooltip=tooltip)
        )
        layers.insert(0, band)

    if threshold is not None:
        layers.append(_threshold_rule(threshold, show_labels=not is_top))
        if is_top:
            layers.append(_threshold_label(threshold))

    return alt.layer(*layers).properties(height=height)


def _width_x(field, show_labels):
    """Encode ``field`` on the shared log width axis, with or without tick labels and title.

    Every layer of a panel uses the same title, because Vega-Lite joins differing titles of a
    shared axis into one long title.
    """
    if show_labels:
        axis = alt.Axis(format="~g", title=WIDTH_TITLE)
    else:
        # The ticks and grid stay, so the widths still line up by eye with the panel below.
        axis = alt.Axis(format="~g", title=None, labels=False)
    return alt.X(f"{field}:Q", scale=_log_scale(), axis=axis)


def _test_mse_scale(test_rows):
    """Build a log scale that spans the test values of the band and line, with a small margin.

    The domain is explicit rather than "nice", because nice rounding on a log scale extends
    it to whole powers of ten and leaves the curve in a fraction of the panel. It spans at
    least a factor of ``MIN_TEST_DOMAIN_RATIO``, so that seed noise of a few percent on a
    flat curve is not drawn as large swings.
    """
    if test_rows.empty:
        return _log_scale()

    log_low = np.log10(test_rows["min_mse"].min())
    log_high = np.log10(test_rows["max_mse"].max())
    log_span = max(log_high - log_low, np.log10(MIN_TEST_DOMAIN_RATIO))
    log_centre = (log_low + log_high) / 2
    half_width = log_span * (0.5 + TEST_DOMAIN_MARGIN)

    domain = [float(10 ** (log_centre - half_width)), float(10 ** (log_centre + half_width))]
    return alt.Scale(type="log", domain=domain, nice=False)


def _require_positive_widths(runs):
    invalid = sorted(runs.loc[runs["width"] <= 0, "width"].unique().tolist())
    if invalid:
        raise ValueError(f"runs contains the widths {invalid}, which a log axis cannot show. Widths must be positive.")


def _check_single_n_train(runs, n_train):
    if "n_train" not in runs.columns:
        return
    found = sorted(runs["n_train"].dropna().unique().tolist())
    if any(value != n_train for value in found):
        raise ValueError(
            f"runs contains n_train values {found} but n_train={n_train} was passed. "
            "Pass the rows of one sweep, or use more_data_chart to compare several n_train."
        )


def _threshold_marker(widths, n_train, d_in, d_out):
    """Return the threshold marker and a subtitle note, with None as the marker when it is far off the plot.

    A threshold within a factor of 2 of the plotted widths is drawn, and the log x axis
    stretches to include it. A threshold further away would squash the curves, so only the
    note mentions it.
    """
    threshold_width = interpolation_threshold_width(n_train, d_in, d_out)
    n_threshold_params = n_train * d_out

    if len(widths) == 0:
        return None, "no runs to plot"

    smallest, largest = float(widths.min()), float(widths.max())
    if not smallest / 2 <= threshold_width <= largest * 2:
        note = (
            f"The interpolation threshold (width ≈ {threshold_width:.1f}, n_params = {n_threshold_params}) "
            f"lies outside the plotted widths {smallest:g} to {largest:g}."
        )
        return None, note

    threshold = ThresholdMarker(
        width=threshold_width,
        n_params=n_threshold_params,
        label=f"interpolation threshold\nn_params = N × O = {n_train} × {d_out} = {n_threshold_params}",
        label_align=_label_alignment(threshold_width, smallest, largest),
    )
    return threshold, ""


def _label_alignment(threshold_width, smallest, largest):
    """Return "left" when the threshold lies in the left half of the log width range, else "right".

    The label then extends towards the middle of the chart, so it does not run past either edge.
    """
    low, high = min(smallest, threshold_width), max(largest, threshold_width)
    if high == low:
        return "left"
    position = np.log(threshold_width / low) / np.log(high / low)
    return "left" if position <= 0.5 else "right"


def _threshold_data(threshold):
    return pd.DataFrame({"threshold_width": [threshold.width], "threshold_n_params": [threshold.n_params]})


def _threshold_rule(threshold, show_labels):
    """Draw a vertical dashed rule at the interpolation threshold."""
    return (
        alt.Chart(_threshold_data(threshold))
        .mark_rule(color=REFERENCE_COLOR, strokeDash=DASH, strokeWidth=2)
        .encode(
            x=_width_x("threshold_width", show_labels),
            tooltip=[
                alt.Tooltip("threshold_width:Q", title="threshold width", format=".2f"),
                alt.Tooltip("threshold_n_params:Q", title="n_params = n_train × d_out", format="d"),
            ],
        )
    )


def _threshold_label(threshold):
    """Write the threshold label just above the top panel, beside the rule.

    Above the plot area the label cannot cover the test curve, which peaks near the threshold
    at the top of the panel.
    """
    align = threshold.label_align
    return (
        alt.Chart(_threshold_data(threshold))
        .mark_text(
            align=align,
            baseline="bottom",
            dx=5 if align == "left" else -5,
            dy=-4,
            fontSize=14,
            lineBreak="\n",
            color=REFERENCE_COLOR,
        )
        .encode(
            x=_width_x("threshold_width", show_labels=False),
            y=alt.value(0),
            text=alt.value(threshold.label),
        )
    )


# ---------------------------------------------------------------------------
# More data
# ---------------------------------------------------------------------------


def more_data_chart(runs, floor=DEFAULT_LOG_FLOOR):
    """Plot test MSE against width with one line per training set size n_train.

    Lines show the mean over seeds. Where a point has more than one seed, an error bar spans the
    min to the max over seeds.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per (n_train, width, seed) with the columns ``width``, ``n_train``, ``seed`` and
        ``test_mse``. A ``train_mse`` column, when present, adds its mean to the tooltip.
    floor : float
        Smallest test MSE drawn; see ``floor_for_log``.
    """
    _require_columns(runs, ["width", "n_train", "seed", "test_mse"], "runs")
    _require_positive_widths(runs)

    rows, note = floor_for_log(runs, "test_mse", floor, "test MSE")
    notes = [note]
    summary = _seed_summary(rows, ["n_train", "width"], "test_mse")

    tooltip = [
        alt.Tooltip("n_train:Q", title="n_train", format="d"),
        alt.Tooltip("width:Q", title="width", format="d"),
        alt.Tooltip("mean_mse:Q", title="mean test MSE over seeds", format=VALUE_FORMAT),
        alt.Tooltip("min_mse:Q", title="min over seeds", format=VALUE_FORMAT),
        alt.Tooltip("max_mse:Q", title="max over seeds", format=VALUE_FORMAT),
        alt.Tooltip("n_seeds:Q", title="seeds", format="d"),
    ]
    if "train_mse" in rows.columns:
        # Tooltip only, so the train MSE needs no floor, and NaN values are skipped by the mean.
        train_means = rows.groupby(["n_train", "width"], as_index=False)["train_mse"].mean()
        summary = summary.merge(train_means.rename(columns={"train_mse": "mean_train_mse"}), on=["n_train", "width"])
        tooltip.append(alt.Tooltip("mean_train_mse:Q", title="mean train MSE over seeds", format=VALUE_FORMAT))

    x = alt.X("width:Q", title=WIDTH_TITLE, scale=_log_scale(), axis=alt.Axis(format="~g"))
    y_title = "test MSE (log scale)"
    color = alt.Color("n_train:N", title="n_train", sort="ascending", scale=alt.Scale(range=CATEGORY_COLORS))

    lines = (
        alt.Chart(summary)
        .mark_line(strokeWidth=2.5, point=alt.OverlayMarkDef(size=60, filled=True))
        .encode(
            x=x,
            y=alt.Y("mean_mse:Q", title=y_title, scale=_log_scale(), axis=_log_axis()),
            color=color,
            tooltip=tooltip,
        )
    )
    layers = [lines]

    spread_rows = summary[summary["n_seeds"] > 1]
    if len(spread_rows):
        error_bars = (
            alt.Chart(spread_rows)
            .mark_errorbar(ticks=True, thickness=2)
            .encode(x=x, y=alt.Y("min_mse:Q", title=y_title, scale=_log_scale()), y2="max_mse:Q", color=color)
        )
        layers.append(error_bars)
        notes.insert(0, "Lines show the mean over seeds, error bars the min to max over seeds.")

    title = _title("More data: test MSE against width for each n_train", notes)
    return _style_for_projector(alt.layer(*layers).properties(title=title))
