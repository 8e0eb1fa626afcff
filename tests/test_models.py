"""Tests of the two networks, their parameter counts and their initialisation."""

import pytest
import torch
from torch import nn

from ddcore.models import (
    RegressionMLP,
    StudentMLP,
    count_parameters,
    init_linear_,
    init_model_,
    interpolation_threshold_width,
    student_n_params,
)


@pytest.mark.parametrize(("width", "expected"), [(28, 1265), (47, 3013)])
def test_student_parameter_count(width, expected):
    assert count_parameters(StudentMLP(10, width, 5)) == expected


@pytest.mark.parametrize("width", [1, 2, 15, 16, 28, 60])
@pytest.mark.parametrize(("d_in", "d_out"), [(10, 5), (3, 1)])
def test_student_n_params_formula(width, d_in, d_out):
    model = StudentMLP(d_in, width, d_out)
    assert student_n_params(width, d_in, d_out) == count_parameters(model)


def test_regression_mlp_parameter_count():
    # Weights plus biases of each layer: 100 -> 400 -> 200 -> 100 -> 2.
    expected = (100 * 400 + 400) + (400 * 200 + 200) + (200 * 100 + 100) + (100 * 2 + 2)
    assert count_parameters(RegressionMLP(100, 2)) == expected


def test_count_skips_frozen_parameters():
    model = StudentMLP(10, 4, 5)
    model.layers[0].weight.requires_grad_(False)
    assert count_parameters(model) == student_n_params(4) - 4 * 10


@pytest.mark.parametrize(("n_train", "d_in", "d_out"), [(100, 10, 5), (500, 10, 5), (40, 3, 1)])
def test_threshold_width_interpolates(n_train, d_in, d_out):
    width = interpolation_threshold_width(n_train, d_in, d_out)
    n_params = student_n_params(width, d_in, d_out)
    assert n_params == pytest.approx(n_train * d_out, rel=1e-12)


def test_threshold_width_exercise_value():
    # N * d_out = 500 targets lie between the counts of widths 15 (485) and 16 (533).
    width = interpolation_threshold_width(100)
    assert student_n_params(15) < 500 < student_n_params(16)
    assert 15 < width < 16


@pytest.mark.parametrize("name", ["n_train", "d_in", "d_out"])
def test_threshold_width_rejects_zero(name):
    arguments = {"n_train": 100, "d_in": 10, "d_out": 5, name: 0}
    with pytest.raises(ValueError, match=f"{name} must be at least 1, got 0"):
        interpolation_threshold_width(**arguments)


@pytest.mark.parametrize(("in_features", "out_features"), [(10, 28), (3, 1), (400, 200)])
@pytest.mark.parametrize("seed", [0, 78798])
def test_init_linear_matches_torch(in_features, out_features, seed):
    layer = nn.Linear(in_features, out_features)
    init_linear_(layer, torch.Generator().manual_seed(seed))

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        reference = nn.Linear(in_features, out_features)

    assert torch.equal(layer.weight, reference.weight)
    assert torch.equal(layer.bias, reference.bias)


def test_init_model_matches_torch():
    """Every layer of a model, initialised in order, matches construction under manual_seed."""
    model = init_model_(StudentMLP(10, 17, 5), torch.Generator().manual_seed(3))

    with torch.random.fork_rng():
        torch.manual_seed(3)
        reference = StudentMLP(10, 17, 5)

    for (name, value), expected in zip(
        model.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        assert torch.equal(value, expected), f"{name} differs from torch's own initialisation"


def test_init_linear_leaves_global_rng():
    layer = nn.Linear(10, 5)
    before = torch.get_rng_state()
    init_linear_(layer, torch.Generator().manual_seed(0))
    assert torch.equal(before, torch.get_rng_state())
