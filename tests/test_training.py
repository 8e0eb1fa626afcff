"""Tests of single-model training: early stop, divergence, determinism and optimizers."""

import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ddcore.models import init_model_
from ddcore.training import (
    TrainConfig,
    TrainingCancelled,
    epoch_order,
    fit,
    make_optimizer,
    train_regressor,
)

N_ROWS = 40
D_IN = 3
D_OUT = 2


def tiny_data(dtype=torch.float64):
    """Build 40 rows of a smooth 3 -> 2 target, small enough to train in milliseconds."""
    generator = torch.Generator().manual_seed(11)
    x = torch.randn(N_ROWS, D_IN, generator=generator, dtype=dtype)
    y = torch.stack([torch.sin(x[:, 0]) + x[:, 1], x[:, 2] * x[:, 0]], dim=1)
    return x, y


def tiny_model(seed=0, dtype=torch.float64):
    model = nn.Sequential(nn.Linear(D_IN, 8), nn.Tanh(), nn.Linear(8, D_OUT))
    init_model_(model, torch.Generator().manual_seed(seed))
    return model.to(dtype)


def tiny_config(**overrides):
    settings = {"optimizer": "adam", "lr": 1e-2, "batch_size": 8, "max_epochs": 60,
                "target_loss": None, "seed": 0}
    settings.update(overrides)
    return TrainConfig(**settings)


# Early stop and max_epochs


def test_fit_stops_below_target():
    x, y = tiny_data()
    full_run = fit(tiny_model(), x, y, tiny_config())

    # A target halfway through the full run's losses: the early-stopped run
    # must end at the first epoch whose loss is below it.
    target = sorted(full_run.losses)[len(full_run.losses) // 2]
    expected_epoch = next(i + 1 for i, loss in enumerate(full_run.losses) if loss < target)
    result = fit(tiny_model(), x, y, tiny_config(target_loss=target))

    assert result.epochs_to_target == expected_epoch
    assert result.epochs_to_target == len(result.losses)
    assert result.losses[-1] < target
    assert result.losses[-2] >= target
    assert result.losses == full_run.losses[:expected_epoch]
    assert result.diverged_epoch is None


@pytest.mark.parametrize("target_loss", [None, 0.0])
def test_fit_respects_max_epochs(target_loss):
    x, y = tiny_data()
    result = fit(tiny_model(), x, y, tiny_config(max_epochs=7, target_loss=target_loss))

    assert len(result.losses) == 7
    assert result.epochs_to_target is None


def test_fit_reports_divergence():
    x, y = tiny_data()
    config = tiny_config(optimizer="sgd", lr=1e6, max_epochs=50)
    result = fit(tiny_model(), x, y, config)

    assert result.diverged_epoch is not None, f"losses stayed finite: {result.losses}"
    assert result.diverged_epoch == len(result.losses)
    assert len(result.losses) < config.max_epochs
    assert not math.isfinite(result.final_loss)
    assert all(math.isfinite(loss) for loss in result.losses[:-1])
    assert result.epochs_to_target is None


def test_fit_calls_on_epoch_each_epoch():
    x, y = tiny_data()
    calls = []
    result = fit(tiny_model(), x, y, tiny_config(max_epochs=5),
                 on_epoch=lambda epoch, loss: calls.append((epoch, loss)))

    assert calls == list(enumerate(result.losses, start=1))


def test_epoch_loss_is_batch_mean():
    """The epoch loss is the mean of the batch losses, including a short last batch."""
    x, y = tiny_data()
    model = tiny_model()
    config = tiny_config(optimizer="sgd", lr=1e-2, batch_size=16, max_epochs=1)

    # Replay the one epoch by hand: three batches of 16, 16 and 8 rows.
    replay = copy.deepcopy(model)
    optimizer = torch.optim.SGD(replay.parameters(), lr=1e-2)
    order = epoch_order(N_ROWS, torch.Generator().manual_seed(0))
    batch_losses = []
    for index in order.split(16):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(replay(x[index]), y[index])
        loss.backward()
        optimizer.step()
        batch_losses.append(loss.item())

    result = fit(model, x, y, config)
    assert len(batch_losses) == 3
    assert result.losses[0] == pytest.approx(sum(batch_losses) / 3, rel=1e-12)


# Determinism


def test_same_seed_same_losses():
    x, y = tiny_data()
    first = fit(tiny_model(), x, y, tiny_config(max_epochs=20, seed=5))
    second = fit(tiny_model(), x, y, tiny_config(max_epochs=20, seed=5))
    assert first.losses == second.losses


def test_other_seed_other_losses():
    x, y = tiny_data()
    first = fit(tiny_model(), x, y, tiny_config(max_epochs=20, seed=5))
    second = fit(tiny_model(), x, y, tiny_config(max_epochs=20, seed=6))
    assert first.losses != second.losses


def test_train_regressor_is_deterministic():
    x, y = tiny_data(torch.float32)
    config = tiny_config(max_epochs=3, lr=1e-3, seed=2)
    model_a, result_a = train_regressor(x, y, config)
    model_b, result_b = train_regressor(x, y, config)

    assert result_a.losses == result_b.losses
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), f"{name} differs between two runs with seed 2"


def dataloader_losses(model, x, y, config):
    """Train with the exercise's loop, a shuffling DataLoader, and return epoch-mean losses."""
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=config.batch_size, shuffle=True,
                        generator=generator)
    optimizer = make_optimizer(model.parameters(), config)
    losses = []
    for _ in range(config.max_epochs):
        batch_losses = []
        for x_batch, y_batch in loader:
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x_batch), y_batch)
            loss.backward()
            optimizer.step()
            batch_losses.append(loss.item())
        losses.append(sum(batch_losses) / len(batch_losses))
    return losses


def test_fit_matches_dataloader_loop():
    x, y = tiny_data()
    config = tiny_config(batch_size=8, max_epochs=10, seed=4)
    expected = dataloader_losses(tiny_model(), x, y, config)
    result = fit(tiny_model(), x, y, config)
    assert result.losses == pytest.approx(expected, rel=1e-12, abs=0)


# Optimizers and configuration


@pytest.mark.parametrize(
    ("name", "optimizer_class", "momentum"),
    [
        ("sgd", torch.optim.SGD, 0),
        ("momentum", torch.optim.SGD, 0.8),
        ("rmsprop", torch.optim.RMSprop, None),
        ("adam", torch.optim.Adam, None),
        ("adamw", torch.optim.AdamW, None),
    ],
)
def test_make_optimizer_builds_named(name, optimizer_class, momentum):
    config = TrainConfig(optimizer=name, lr=0.03, weight_decay=0.01, momentum=0.8)
    optimizer = make_optimizer(tiny_model().parameters(), config)
    settings = optimizer.param_groups[0]

    # type() and not isinstance(), because AdamW subclasses Adam in torch 2.x.
    assert type(optimizer) is optimizer_class
    assert settings["lr"] == 0.03
    assert settings["weight_decay"] == 0.01
    if momentum is not None:
        assert settings["momentum"] == momentum


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"optimizer": "lbfgs"}, "'lbfgs'"),
        ({"lr": 0.0}, "got 0.0"),
        ({"lr": -1e-3}, "got -0.001"),
        ({"lr": math.nan}, "got nan"),
        ({"lr": math.inf}, "got inf"),
        ({"batch_size": 0}, "got 0"),
        ({"max_epochs": 0}, "got 0"),
        ({"weight_decay": -0.1}, "got -0.1"),
    ],
)
def test_train_config_rejects_invalid(overrides, fragment):
    with pytest.raises(ValueError) as error:
        TrainConfig(**overrides)
    assert fragment in str(error.value)


def test_should_stop_cancels_training():
    x, y = tiny_data()
    epochs_seen = []
    with pytest.raises(TrainingCancelled, match="after epoch 1"):
        fit(tiny_model(), x, y, tiny_config(max_epochs=10),
            on_epoch=lambda epoch, loss: epochs_seen.append(epoch),
            should_stop=lambda: True)
    assert epochs_seen == [1]


def test_should_stop_false_runs_on():
    x, y = tiny_data()
    result = fit(tiny_model(), x, y, tiny_config(max_epochs=4), should_stop=lambda: False)
    assert len(result.losses) == 4
