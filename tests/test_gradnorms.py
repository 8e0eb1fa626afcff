"""Tests of per-minibatch gradient norms against a hand computation."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ddcore.gradnorms import minibatch_grad_norms
from ddcore.models import StudentMLP, init_model_

N_ROWS = 10
BATCH_SIZE = 4
SEED = 3


def small_problem():
    generator = torch.Generator().manual_seed(21)
    x = torch.randn(N_ROWS, 4, generator=generator, dtype=torch.float64)
    y = torch.randn(N_ROWS, 2, generator=generator, dtype=torch.float64)
    model = init_model_(StudentMLP(4, 6, 2), torch.Generator().manual_seed(0)).double()
    return model, x, y


def hand_norm(model, x, y):
    """Compute the L2 norm of the full MSE gradient on (x, y) with autograd on a copy."""
    fresh = copy.deepcopy(model)
    loss = nn.functional.mse_loss(fresh(x), y)
    grads = torch.autograd.grad(loss, list(fresh.parameters()))
    return math.sqrt(sum(g.pow(2).sum().item() for g in grads))


def expected_norms(model, x, y):
    """Compute hand norms in the batch order a DataLoader seeded with SEED uses."""
    loader = DataLoader(TensorDataset(torch.arange(len(x))), batch_size=len(x), shuffle=True,
                        generator=torch.Generator().manual_seed(SEED))
    order = next(iter(loader))[0]
    return [hand_norm(model, x[index], y[index]) for index in order.split(BATCH_SIZE)]


def test_norms_match_hand_computation():
    model, x, y = small_problem()
    stats = minibatch_grad_norms(model, x, y, BATCH_SIZE, seed=SEED)
    expected = expected_norms(model, x, y)

    assert len(stats.norms) == len(expected)
    for batch, (norm, hand) in enumerate(zip(stats.norms, expected, strict=True), start=1):
        assert norm == pytest.approx(hand, rel=1e-12), f"batch {batch}: {norm} != {hand}"


def test_norms_leave_weights_unchanged():
    model, x, y = small_problem()
    before = copy.deepcopy(model.state_dict())
    minibatch_grad_norms(model, x, y, BATCH_SIZE, seed=SEED)

    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"{name} changed"


def test_stale_grad_is_ignored():
    """Stale values in .grad before the call must not leak into the first norms."""
    model, x, y = small_problem()
    expected = expected_norms(model, x, y)
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, 100.0)

    stats = minibatch_grad_norms(model, x, y, BATCH_SIZE, seed=SEED)
    assert stats.norms[0] == pytest.approx(expected[0], rel=1e-12)
    assert stats.norms[1] == pytest.approx(expected[1], rel=1e-12)


def test_statistics_match_numpy():
    model, x, y = small_problem()
    stats = minibatch_grad_norms(model, x, y, 2, seed=SEED)
    norms = np.array(stats.norms)

    assert stats.mean == pytest.approx(np.mean(norms), rel=1e-12)
    assert stats.variance == pytest.approx(np.var(norms), rel=1e-12)
    assert stats.variance == pytest.approx(stats.std**2, rel=1e-12)


@pytest.mark.parametrize(("n_rows", "batch_size"), [(10, 4), (10, 5), (10, 10), (10, 32), (7, 1)])
def test_norm_count_is_batch_count(n_rows, batch_size):
    model, x, y = small_problem()
    stats = minibatch_grad_norms(model, x[:n_rows], y[:n_rows], batch_size, seed=SEED)
    assert len(stats.norms) == math.ceil(n_rows / batch_size)
    assert stats.batch_size == batch_size
