"""Tests of the Problem 2 teacher data against the exercise's own code."""

import pytest
import torch
from torch import nn

from ddcore.data import make_teacher_data


def exercise_data(noise=0.1):
    """Run the exercise's data code, in its corrected form, on the global RNG.

    fork_rng restores the global random state afterwards, so this test
    leaves no trace on the tests that run after it.
    """
    with torch.random.fork_rng():
        torch.manual_seed(78798)
        x = torch.randn(100, 10)
        # nn.Linear's default initialisation draws from the global RNG, so
        # the teacher must be built right after x, as in the exercise.
        teacher = nn.Sequential(nn.Linear(10, 5), nn.Tanh(), nn.Linear(5, 5))
        teacher.eval()
        y = teacher(x).detach() + noise * torch.randn(100, 5)
        x_test = torch.randn(10000, 10)
        y_test = teacher(x_test).detach() + noise * torch.randn(10000, 5)
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test, "teacher": teacher}


@pytest.fixture(scope="module")
def exercise():
    return exercise_data()


@pytest.fixture(scope="module")
def default_data():
    return make_teacher_data()


@pytest.mark.parametrize("name", ["x", "y", "x_test", "y_test"])
def test_defaults_match_exercise(default_data, exercise, name):
    tensor = getattr(default_data, name)
    assert torch.equal(tensor, exercise[name]), f"{name} differs from the exercise's {name}"


def test_default_shapes_and_dtype(default_data):
    assert default_data.x.shape == (100, 10)
    assert default_data.y.shape == (100, 5)
    assert default_data.x_test.shape == (10000, 10)
    assert default_data.y_test.shape == (10000, 5)
    assert default_data.x.dtype == torch.float32
    assert (default_data.n_train, default_data.d_in, default_data.d_out) == (100, 10, 5)


@pytest.mark.parametrize("n_train", [1, 37, 99])
def test_smaller_n_takes_first_rows(default_data, n_train):
    data = make_teacher_data(n_train=n_train)

    assert torch.equal(data.x, default_data.x[:n_train])
    assert torch.equal(data.y, default_data.y[:n_train])
    assert torch.equal(data.x_test, default_data.x_test)
    assert torch.equal(data.y_test, default_data.y_test)


def test_larger_n_keeps_first_100(default_data):
    data = make_teacher_data(n_train=500)

    assert data.x.shape == (500, 10)
    assert data.y.shape == (500, 5)
    assert torch.equal(data.x[:100], default_data.x)
    assert torch.equal(data.y[:100], default_data.y)
    assert torch.equal(data.x_test, default_data.x_test)
    assert torch.equal(data.y_test, default_data.y_test)


def test_extra_points_are_new_draws(default_data):
    """The points after the first 100 are fresh samples, not copies of earlier ones."""
    extra_x = make_teacher_data(n_train=200).x[100:]
    distances = torch.cdist(extra_x, default_data.x)
    assert distances.min() > 0, "an extra training point repeats one of the first 100"


def test_zero_noise_gives_teacher_output():
    data = make_teacher_data(noise=0.0)
    teacher = exercise_data()["teacher"]

    with torch.no_grad():
        assert torch.equal(data.y, teacher(data.x))
        assert torch.equal(data.y_test, teacher(data.x_test))


def test_global_rng_state_unchanged():
    before = torch.get_rng_state()
    make_teacher_data(n_train=150)
    after = torch.get_rng_state()
    assert torch.equal(before, after), "make_teacher_data advanced the global torch RNG"


def test_other_seed_gives_other_data(default_data):
    data = make_teacher_data(seed=1)
    assert not torch.equal(data.x, default_data.x)


@pytest.mark.parametrize(
    ("kwargs", "value"),
    [
        ({"n_train": 0}, "0"),
        ({"n_train": -5}, "-5"),
        ({"noise": -0.1}, "-0.1"),
    ],
)
def test_invalid_arguments_raise(kwargs, value):
    with pytest.raises(ValueError, match=f"got {value}"):
        make_teacher_data(**kwargs)
