"""Tests for the Altair chart builders, read through the Vega-Lite spec from ``chart.to_dict()``."""

import math

import numpy as np
import pandas as pd
import pytest

from lab.charts import (
    MIN_TEST_DOMAIN_RATIO,
    TEST_COLOR,
    TRAIN_COLOR,
    double_descent_chart,
    floor_for_log,
    grad_norm_chart,
    interpolation_threshold_width,
    loss_curve_chart,
    more_data_chart,
)

D_IN = 10
D_OUT = 5


def student_n_params(width, d_in=D_IN, d_out=D_OUT):
    """Count weights and biases of the D->M->M->O network layer by layer."""
    return (d_in * width + width) + (width * width + width) + (width * d_out + d_out)


# ---------------------------------------------------------------------------
# Spec helpers
# ---------------------------------------------------------------------------


def mark_type(layer):
    mark = layer["mark"]
    return mark if isinstance(mark, str) else mark["type"]


def layers_with_mark(spec, mark):
    return [layer for layer in spec["layer"] if mark_type(layer) == mark]


def one_layer(spec, mark):
    layers = layers_with_mark(spec, mark)
    assert len(layers) == 1, f"expected one {mark} layer, found {len(layers)}"
    return layers[0]


def layer_rows(spec, layer):
    """Return the inline rows a layer draws, which Altair stores under the top-level "datasets"."""
    data = layer.get("data", spec.get("data"))
    return spec["datasets"][data["name"]]


def tooltip_fields(layer):
    return {tooltip["field"] for tooltip in layer["encoding"]["tooltip"]}


def subtitle_text(spec):
    subtitle = spec["title"].get("subtitle", [])
    return " | ".join([subtitle] if isinstance(subtitle, str) else subtitle)


def scale_type(layer, channel):
    return layer["encoding"][channel].get("scale", {}).get("type", "linear")


# ---------------------------------------------------------------------------
# Data builders
# ---------------------------------------------------------------------------


def make_runs(widths=(4, 8, 16, 32, 64), seeds=(0, 1), n_train=100):
    """Build a sweep result whose MSE values are easy to check by hand."""
    rows = []
    for width in widths:
        for seed in seeds:
            rows.append(
                {
                    "width": width,
                    "n_params": student_n_params(width),
                    "seed": seed,
                    "n_train": n_train,
                    "train_mse": 1.0 / width + 0.01 * seed,
                    "test_mse": 2.0 / width + 0.1 * seed,
                    "diverged_epoch": pd.NA,
                }
            )
    runs = pd.DataFrame(rows)
    runs["diverged_epoch"] = runs["diverged_epoch"].astype("Int64")
    return runs


# ---------------------------------------------------------------------------
# interpolation_threshold_width
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_train", [1, 10, 100, 1000])
def test_threshold_width_solves_parameter_equation(n_train):
    width = interpolation_threshold_width(n_train, D_IN, D_OUT)
    assert student_n_params(width) == pytest.approx(n_train * D_OUT, abs=1e-9)


def test_threshold_width_between_integer_widths():
    width = interpolation_threshold_width(100)
    below, above = math.floor(width), math.ceil(width)

    assert student_n_params(below) < 100 * D_OUT
    assert student_n_params(above) > 100 * D_OUT


def test_threshold_width_rejects_zero_n_train():
    with pytest.raises(ValueError, match="n_train"):
        interpolation_threshold_width(0)


# ---------------------------------------------------------------------------
# floor_for_log
# ---------------------------------------------------------------------------


def test_floor_raises_zero_to_floor():
    cleaned, _ = floor_for_log(pd.DataFrame({"mse": [0.5, 0.0, -1.0]}), "mse", 1e-6)
    assert cleaned["mse"].tolist() == [0.5, 1e-6, 1e-6]


def test_floor_note_counts_floored_values():
    _, note = floor_for_log(pd.DataFrame({"mse": [0.5, 0.0, 1e-9]}), "mse", 1e-8)
    assert note == "2 mse values below 1e-08 shown at the floor 1e-08"


def test_floor_drops_nan_and_infinite_rows():
    cleaned, note = floor_for_log(pd.DataFrame({"mse": [0.5, np.nan, np.inf]}), "mse")
    assert cleaned["mse"].tolist() == [0.5]
    assert note == "2 NaN or infinite mse values dropped"


def test_floor_note_empty_for_clean_data():
    _, note = floor_for_log(pd.DataFrame({"mse": [0.5, 1e-3]}), "mse")
    assert note == ""


def test_floor_rejects_nonpositive_floor():
    with pytest.raises(ValueError, match="floor"):
        floor_for_log(pd.DataFrame({"mse": [0.5]}), "mse", 0.0)


# ---------------------------------------------------------------------------
# loss_curve_chart
# ---------------------------------------------------------------------------


def make_history(losses):
    return pd.DataFrame({"epoch": range(1, len(losses) + 1), "train_loss": losses})


def test_loss_chart_axis_scales():
    line = one_layer(loss_curve_chart(make_history([1.0, 0.5])).to_dict(), "line")
    assert scale_type(line, "x") == "linear"
    assert scale_type(line, "y") == "log"


def test_loss_chart_target_rule_at_target():
    spec = loss_curve_chart(make_history([1.0, 0.5]), target_loss=0.02).to_dict()
    rule = one_layer(spec, "rule")
    assert layer_rows(spec, rule) == [{"target_loss": 0.02}]
    assert rule["encoding"]["y"]["field"] == "target_loss"


def test_loss_chart_target_rule_labelled():
    spec = loss_curve_chart(make_history([1.0, 0.5]), target_loss=0.02).to_dict()
    assert one_layer(spec, "text")["encoding"]["text"] == {"value": "target"}


def test_loss_chart_without_target_has_no_rule():
    spec = loss_curve_chart(make_history([1.0, 0.5])).to_dict()
    assert layers_with_mark(spec, "rule") == []


def test_loss_chart_zero_target_noted():
    spec = loss_curve_chart(make_history([1.0, 0.5]), target_loss=0.0).to_dict()
    assert layers_with_mark(spec, "rule") == []
    assert "target loss 0 is not drawn" in subtitle_text(spec)


def test_loss_chart_floors_zero_loss():
    spec = loss_curve_chart(make_history([1.0, 0.0]), floor=1e-7).to_dict()
    rows = layer_rows(spec, one_layer(spec, "line"))
    assert [row["train_loss"] for row in rows] == [1.0, 1e-7]
    assert "1 train loss value below 1e-07 shown at the floor 1e-07" in subtitle_text(spec)


def test_loss_chart_drops_nan_loss():
    spec = loss_curve_chart(make_history([1.0, np.nan, 0.5])).to_dict()
    rows = layer_rows(spec, one_layer(spec, "line"))
    assert [row["epoch"] for row in rows] == [1, 3]
    assert "1 NaN or infinite train loss value dropped" in subtitle_text(spec)


def test_loss_chart_tooltip_fields():
    line = one_layer(loss_curve_chart(make_history([1.0, 0.5])).to_dict(), "line")
    assert tooltip_fields(line) == {"epoch", "train_loss"}


def test_loss_chart_rejects_missing_column():
    with pytest.raises(ValueError, match="train_loss"):
        loss_curve_chart(pd.DataFrame({"epoch": [1], "loss": [0.5]}))


# ---------------------------------------------------------------------------
# grad_norm_chart
# ---------------------------------------------------------------------------


def make_norms(values):
    return pd.DataFrame({"batch": range(1, len(values) + 1), "grad_norm": values})


def test_grad_chart_log_y_axis():
    points = one_layer(grad_norm_chart(make_norms([1.0, 3.0])).to_dict(), "point")
    assert scale_type(points, "y") == "log"


def test_grad_chart_mean_rule_at_given_mean():
    spec = grad_norm_chart(make_norms([1.0, 3.0]), mean=2.5).to_dict()
    assert layer_rows(spec, one_layer(spec, "rule")) == [{"mean_grad_norm": 2.5}]
    assert one_layer(spec, "text")["encoding"]["text"] == {"value": "mean"}


def test_grad_chart_mean_defaults_to_finite_mean():
    spec = grad_norm_chart(make_norms([1.0, 3.0, np.nan])).to_dict()
    assert layer_rows(spec, one_layer(spec, "rule")) == [{"mean_grad_norm": 2.0}]


def test_grad_chart_floors_zero_norm():
    spec = grad_norm_chart(make_norms([1.0, 0.0])).to_dict()
    rows = layer_rows(spec, one_layer(spec, "point"))
    assert [row["grad_norm"] for row in rows] == [1.0, 1e-8]
    assert "1 gradient norm value below 1e-08 shown at the floor 1e-08" in subtitle_text(spec)


def test_grad_chart_tooltip_fields():
    points = one_layer(grad_norm_chart(make_norms([1.0, 3.0])).to_dict(), "point")
    assert tooltip_fields(points) == {"batch", "grad_norm"}


# ---------------------------------------------------------------------------
# double_descent_chart
# ---------------------------------------------------------------------------

PANEL_INDEX = {"test": 0, "train": 1}


def double_descent_spec(runs=None, **kwargs):
    runs = make_runs() if runs is None else runs
    return double_descent_chart(runs, 100, D_OUT, d_in=D_IN, **kwargs).to_dict()


def panel(spec, split):
    """Return the panel of one split: test MSE on top, train MSE below."""
    return spec["vconcat"][PANEL_INDEX[split]]


def test_double_descent_two_stacked_panels():
    spec = double_descent_spec()

    assert len(spec["vconcat"]) == 2
    assert one_layer(panel(spec, "test"), "line")["encoding"]["y"]["title"] == "test MSE (log scale)"
    assert one_layer(panel(spec, "train"), "line")["encoding"]["y"]["title"] == "train MSE (log scale)"


@pytest.mark.parametrize("split", ["test", "train"])
def test_double_descent_log_axes(split):
    line = one_layer(panel(double_descent_spec(), split), "line")
    assert scale_type(line, "x") == "log"
    assert scale_type(line, "y") == "log"


def test_double_descent_panels_share_width_scale():
    spec = double_descent_spec()
    assert spec["resolve"]["scale"]["x"] == "shared"
    assert spec["resolve"]["scale"]["y"] == "independent"


def test_double_descent_width_labels_bottom_only():
    spec = double_descent_spec()
    top_axis = one_layer(panel(spec, "test"), "line")["encoding"]["x"]["axis"]
    bottom_axis = one_layer(panel(spec, "train"), "line")["encoding"]["x"]["axis"]

    assert top_axis["labels"] is False
    assert top_axis["title"] is None
    assert bottom_axis.get("labels", True) is True
    assert bottom_axis["title"] == "width M (hidden units per layer, log scale)"


def test_double_descent_fits_container_width():
    # Without fit-x, Streamlit pads a concatenation of layered panels and the chart runs
    # past the right edge of the page.
    assert double_descent_spec()["autosize"] == {"type": "fit-x", "contains": "padding"}


@pytest.mark.parametrize("split", ["test", "train"])
def test_double_descent_threshold_rule_position(split):
    spec = double_descent_spec()
    [row] = layer_rows(spec, one_layer(panel(spec, split), "rule"))

    assert row["threshold_width"] == interpolation_threshold_width(100, D_IN, D_OUT)
    assert student_n_params(row["threshold_width"]) == pytest.approx(500, abs=1e-9)
    assert row["threshold_n_params"] == 500


def test_double_descent_threshold_label_once():
    spec = double_descent_spec()
    label = one_layer(panel(spec, "test"), "text")

    assert label["encoding"]["text"]["value"] == "interpolation threshold\nn_params = N × O = 100 × 5 = 500"
    assert layers_with_mark(panel(spec, "train"), "text") == []


def test_double_descent_threshold_label_above_plot():
    label = one_layer(panel(double_descent_spec(), "test"), "text")
    # y = 0 is the top edge of the plot area, and a bottom baseline puts the text above it.
    assert label["encoding"]["y"] == {"value": 0}
    assert label["mark"]["baseline"] == "bottom"


@pytest.mark.parametrize(
    "widths, align",
    [
        ((10, 40, 160, 640), "left"),  # threshold 15.3 near the smallest width
        ((2, 4, 8, 12), "right"),  # threshold 15.3 beyond the largest width
    ],
)
def test_double_descent_threshold_label_faces_inwards(widths, align):
    spec = double_descent_spec(make_runs(widths=widths))
    assert one_layer(panel(spec, "test"), "text")["mark"]["align"] == align


def test_double_descent_far_threshold_noted():
    spec = double_descent_spec(make_runs(widths=(256, 512, 1024)))

    for split in ("test", "train"):
        assert layers_with_mark(panel(spec, split), "rule") == []
        assert layers_with_mark(panel(spec, split), "text") == []
    assert "interpolation threshold (width ≈ 15.3, n_params = 500) lies outside" in subtitle_text(spec)


def summary_row(spec, split, width):
    rows = layer_rows(spec, one_layer(panel(spec, split), "line"))
    matches = [row for row in rows if row["width"] == width]
    assert len(matches) == 1
    assert matches[0]["split"] == split
    return matches[0]


def test_double_descent_mean_over_seeds():
    row = summary_row(double_descent_spec(), "test", 8)

    assert row["mean_mse"] == pytest.approx(((2.0 / 8) + (2.0 / 8 + 0.1)) / 2)
    assert row["min_mse"] == pytest.approx(2.0 / 8)
    assert row["max_mse"] == pytest.approx(2.0 / 8 + 0.1)
    assert row["n_seeds"] == 2
    assert row["n_params"] == student_n_params(8)


def test_double_descent_floors_zero_train_mse():
    runs = make_runs()
    runs.loc[runs["width"] == 64, "train_mse"] = 0.0
    spec = double_descent_spec(runs, floor=1e-9)

    assert summary_row(spec, "train", 64)["mean_mse"] == 1e-9
    assert "2 train MSE values below 1e-09 shown at the floor 1e-09" in subtitle_text(spec)


def test_double_descent_drops_nan_test_mse():
    runs = make_runs()
    runs.loc[(runs["width"] == 16) & (runs["seed"] == 1), "test_mse"] = np.nan
    spec = double_descent_spec(runs)

    assert summary_row(spec, "test", 16)["n_seeds"] == 1
    assert summary_row(spec, "train", 16)["n_seeds"] == 2
    assert "1 NaN or infinite test MSE value dropped" in subtitle_text(spec)


def test_double_descent_all_test_mse_nan():
    runs = make_runs()
    runs["test_mse"] = np.nan
    spec = double_descent_spec(runs)

    assert layer_rows(spec, one_layer(panel(spec, "test"), "line")) == []
    assert "domain" not in one_layer(panel(spec, "test"), "line")["encoding"]["y"]["scale"]
    assert "10 NaN or infinite test MSE values dropped" in subtitle_text(spec)


def test_double_descent_test_domain_excludes_floor():
    runs = make_runs()
    runs.loc[runs["width"] >= 32, "train_mse"] = 0.0
    spec = double_descent_spec(runs, floor=1e-8)
    low, high = one_layer(panel(spec, "test"), "line")["encoding"]["y"]["scale"]["domain"]

    # The smallest test value is 2 / 64, so a domain that reached down to the floor of the
    # train values would squeeze the test curve into a thin strip at the top of the panel.
    assert low > 1e-2
    assert high < 1.0


def test_double_descent_test_domain_covers_band():
    spec = double_descent_spec()
    line = one_layer(panel(spec, "test"), "line")
    low, high = line["encoding"]["y"]["scale"]["domain"]
    rows = layer_rows(spec, line)

    assert low < min(row["min_mse"] for row in rows)
    assert high > max(row["max_mse"] for row in rows)
    assert line["encoding"]["y"]["scale"]["nice"] is False


def test_double_descent_flat_test_min_ratio():
    runs = make_runs()
    runs["test_mse"] = 0.03
    spec = double_descent_spec(runs)
    low, high = one_layer(panel(spec, "test"), "line")["encoding"]["y"]["scale"]["domain"]

    assert high / low >= MIN_TEST_DOMAIN_RATIO
    assert low < 0.03 < high


def test_double_descent_band_domain_matches_line():
    test_panel = panel(double_descent_spec(), "test")
    line_scale = one_layer(test_panel, "line")["encoding"]["y"]["scale"]
    band_scale = one_layer(test_panel, "area")["encoding"]["y"]["scale"]
    assert band_scale == line_scale


@pytest.mark.parametrize("split", ["test", "train"])
def test_double_descent_band_with_several_seeds(split):
    spec = double_descent_spec()
    band = one_layer(panel(spec, split), "area")

    assert band["encoding"]["y"]["field"] == "min_mse"
    assert band["encoding"]["y2"]["field"] == "max_mse"
    assert {row["split"] for row in layer_rows(spec, band)} == {split}
    assert "min to max over seeds" in subtitle_text(spec)


def test_double_descent_no_band_single_seed():
    spec = double_descent_spec(make_runs(seeds=(0,)))

    for split in ("test", "train"):
        assert layers_with_mark(panel(spec, split), "area") == []
    assert "min to max over seeds" not in subtitle_text(spec)


@pytest.mark.parametrize("split", ["test", "train"])
def test_double_descent_tooltip_fields(split):
    line = one_layer(panel(double_descent_spec(), split), "line")
    expected = {"split", "width", "n_params", "mean_mse", "min_mse", "max_mse", "n_seeds"}
    assert tooltip_fields(line) == expected


@pytest.mark.parametrize("split, color", [("test", TEST_COLOR), ("train", TRAIN_COLOR)])
def test_double_descent_split_colors(split, color):
    split_panel = panel(double_descent_spec(), split)

    assert one_layer(split_panel, "line")["mark"]["color"] == color
    assert one_layer(split_panel, "area")["mark"]["color"] == color
    assert one_layer(split_panel, "line")["encoding"]["y"]["axis"]["titleColor"] == color


def test_double_descent_rejects_zero_width():
    runs = make_runs()
    runs.loc[runs["width"] == 4, "width"] = 0
    with pytest.raises(ValueError, match=r"widths \[0\]"):
        double_descent_chart(runs, 100, D_OUT)


def test_double_descent_rejects_other_n_train():
    with pytest.raises(ValueError, match="n_train"):
        double_descent_chart(make_runs(n_train=200), 100, D_OUT)


# ---------------------------------------------------------------------------
# more_data_chart
# ---------------------------------------------------------------------------


def make_more_data_runs(seeds=(0, 1)):
    return pd.concat([make_runs(seeds=seeds, n_train=n_train) for n_train in (50, 100)], ignore_index=True)


def test_more_data_log_axes():
    line = one_layer(more_data_chart(make_more_data_runs()).to_dict(), "line")
    assert scale_type(line, "x") == "log"
    assert scale_type(line, "y") == "log"


def test_more_data_color_by_n_train():
    line = one_layer(more_data_chart(make_more_data_runs()).to_dict(), "line")
    assert line["encoding"]["color"]["field"] == "n_train"


def test_more_data_mean_per_n_train():
    runs = make_more_data_runs()
    runs.loc[runs["n_train"] == 50, "test_mse"] *= 3
    spec = more_data_chart(runs).to_dict()
    rows = layer_rows(spec, one_layer(spec, "line"))
    means = {(row["n_train"], row["width"]): row["mean_mse"] for row in rows}

    assert means[(100, 4)] == pytest.approx((0.5 + 0.6) / 2)
    assert means[(50, 4)] == pytest.approx(3 * (0.5 + 0.6) / 2)


def test_more_data_error_bars_several_seeds():
    spec = more_data_chart(make_more_data_runs()).to_dict()
    error_bars = one_layer(spec, "errorbar")
    assert error_bars["encoding"]["y"]["field"] == "min_mse"
    assert error_bars["encoding"]["y2"]["field"] == "max_mse"


def test_more_data_no_error_bars_single_seed():
    spec = more_data_chart(make_more_data_runs(seeds=(0,))).to_dict()
    assert layers_with_mark(spec, "errorbar") == []


def test_more_data_drops_nan_test_mse():
    runs = make_more_data_runs()
    runs.loc[0, "test_mse"] = np.nan
    spec = more_data_chart(runs).to_dict()
    assert "1 NaN or infinite test MSE value dropped" in subtitle_text(spec)


def test_more_data_tooltip_fields():
    line = one_layer(more_data_chart(make_more_data_runs()).to_dict(), "line")
    expected = {"n_train", "width", "mean_mse", "min_mse", "max_mse", "n_seeds", "mean_train_mse"}
    assert tooltip_fields(line) == expected
