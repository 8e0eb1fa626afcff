"""Tests of the work estimates and the budget that rejects oversized settings."""

import pytest

from ddcore.budget import (
    DEFAULT_MAX_WORK,
    MAX_WORK_ENV,
    WorkBudgetError,
    check_work,
    max_work,
    sweep_work,
)
from ddcore.models import StudentMLP


def weight_count(width, d_in=10, d_out=5):
    """Count the weight-matrix entries of a student, biases excluded."""
    model = StudentMLP(d_in, width, d_out)
    return sum(p.numel() for name, p in model.named_parameters() if name.endswith("weight"))


@pytest.fixture(autouse=True)
def default_budget(monkeypatch):
    """Run every test with the default budget, whatever the shell has set."""
    monkeypatch.delenv(MAX_WORK_ENV, raising=False)


@pytest.mark.parametrize("width", [2, 15, 60])
def test_sweep_work_one_width(width):
    epochs, n_train, n_seeds = 2000, 100, 3
    # Forward and backward passes cost about 3 multiply-adds per weight and sample.
    expected = epochs * n_train * n_seeds * 3 * weight_count(width)
    assert sweep_work([width], n_seeds, epochs, n_train) == expected


def test_sweep_work_sums_widths():
    widths = [2, 17, 60]
    total = sweep_work(widths, 2, 50, 100)
    assert total == sum(sweep_work([w], 2, 50, 100) for w in widths)


def test_sweep_work_other_dimensions():
    expected = 10 * 40 * 1 * 3 * weight_count(7, d_in=3, d_out=2)
    assert sweep_work([7], 1, 10, 40, d_in=3, d_out=2) == expected


def test_check_work_names_estimate():
    with pytest.raises(WorkBudgetError) as error:
        check_work(3e12, "This sweep", "Use fewer widths.", limit=1e12)
    message = str(error.value)

    assert "3e+12" in message
    assert "1e+12" in message
    assert "Use fewer widths." in message
    assert MAX_WORK_ENV in message


def test_check_work_allows_limit():
    check_work(1e12, "This sweep", "Use fewer widths.", limit=1e12)


def test_default_budget_applies():
    assert max_work() == DEFAULT_MAX_WORK
    with pytest.raises(WorkBudgetError):
        check_work(DEFAULT_MAX_WORK * 1.01, "This sweep", "Use fewer widths.")


def test_env_variable_sets_budget(monkeypatch):
    monkeypatch.setenv(MAX_WORK_ENV, "1e3")
    assert max_work() == 1e3

    check_work(900, "This sweep", "Use fewer widths.")
    with pytest.raises(WorkBudgetError, match="1e\\+03"):
        check_work(2e3, "This sweep", "Use fewer widths.")


def test_env_variable_raises_budget(monkeypatch):
    monkeypatch.setenv(MAX_WORK_ENV, str(DEFAULT_MAX_WORK * 10))
    check_work(DEFAULT_MAX_WORK * 5, "This sweep", "Use fewer widths.")


@pytest.mark.parametrize("value", ["lots", "", "1e12 macs"])
def test_invalid_env_variable(monkeypatch, value):
    monkeypatch.setenv(MAX_WORK_ENV, value)
    with pytest.raises(WorkBudgetError) as error:
        max_work()
    message = str(error.value)

    assert f"{MAX_WORK_ENV}={value!r}" in message
    assert "not a number" in message
