"""Minibatch training of one model, with early stop at a target loss."""

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ddcore.models import RegressionMLP, build_model

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw")


class TrainingCancelled(Exception):
    """Raised between epochs or chunks when the caller asks training to stop."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; every field is part of a cache key."""

    optimizer: str = "adam"  # one of OPTIMIZERS
    lr: float = 1e-4  # step size; the exercise used 1e-4 for Problem 1
    batch_size: int = 64  # minibatch size; the last batch of an epoch may be smaller
    max_epochs: int = 200  # upper bound on full passes over the data
    target_loss: float | None = 1e-6  # stop once the epoch-mean MSE is below it
    weight_decay: float = 0.0  # L2 penalty (decoupled for AdamW)
    momentum: float = 0.9  # used by "momentum" only
    seed: int = 0  # fixes initialisation and the shuffling order

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"Unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}."
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"The learning rate must be a positive number, got {self.lr}.")
        if self.batch_size < 1:
            raise ValueError(f"The batch size must be at least 1, got {self.batch_size}.")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be at least 1, got {self.max_epochs}.")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be 0 or more, got {self.weight_decay}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}.")


@dataclass
class FitResult:
    """Result of a training run: the loss of every epoch and how the run ended."""

    losses: list = field(default_factory=list)  # epoch-mean minibatch MSE per epoch
    epochs_to_target: int | None = None  # first epoch whose mean MSE beat the target
    diverged_epoch: int | None = None  # first epoch whose loss was NaN or infinite

    @property
    def final_loss(self):
        return self.losses[-1] if self.losses else math.nan


def make_optimizer(params, config):
    """Build the torch optimizer that config.optimizer names."""
    lr, wd = config.lr, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if config.optimizer == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


def epoch_order(n_samples, generator):
    """Draw the shuffled sample order of one epoch, as DataLoader draws it.

    Per epoch, DataLoader(shuffle=True, generator=g) draws a base seed for
    its workers, the permutation it uses, and a second permutation whose
    slice of length 0 it discards (torch 2.13). Drawing the same three keeps
    this order identical to that loader's, without its per-batch overhead.
    """
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    order = torch.randperm(n_samples, generator=generator)
    torch.randperm(n_samples, generator=generator)
    return order


def epoch_batches(n_samples, batch_size, generator):
    """Index tensors of the minibatches of one shuffled epoch."""
    return epoch_order(n_samples, generator).split(batch_size)


def train_one_epoch(model, x, y, optimizer, batches):
    """Take one optimizer step per batch; return the mean of the batch losses."""
    total = 0.0
    for index in batches:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x[index]), y[index])
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(batches)


def fit(model, x, y, config, on_epoch=None, should_stop=None):
    """Train model on (x, y) with minibatches until the target or max_epochs.

    The model is trained in place from whatever weights it holds. The
    shuffling order comes from a generator seeded with config.seed.
    on_epoch(epoch, loss) is called after every epoch; should_stop() is
    polled after every epoch and raises TrainingCancelled when it is true.
    A NaN or infinite epoch loss ends the run and is reported, not raised.
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(model.parameters(), config)
    result = FitResult()

    model.train()
    for epoch in range(1, config.max_epochs + 1):
        batches = epoch_batches(len(x), config.batch_size, generator)
        loss = train_one_epoch(model, x, y, optimizer, batches)
        result.losses.append(loss)
        if on_epoch is not None:
            on_epoch(epoch, loss)

        if not math.isfinite(loss):
            result.diverged_epoch = epoch
            break
        if config.target_loss is not None and loss < config.target_loss:
            result.epochs_to_target = epoch
            break
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"Training stopped by request after epoch {epoch}.")

    model.eval()
    return result


@torch.no_grad()
def mse(model, x, y):
    """Mean squared error of model on the whole of (x, y)."""
    return nn.functional.mse_loss(model(x), y).item()


def regressor_macs_per_sample(d_in, d_out):
    """Multiply-adds of one forward and backward pass of RegressionMLP on one sample."""
    return 3 * (d_in * 400 + 400 * 200 + 200 * 100 + 100 * d_out)


def train_regressor(x, y, config, on_epoch=None, should_stop=None):
    """Initialise a RegressionMLP from config.seed and fit it to (x, y).

    Returns the trained model and its FitResult.
    """
    generator = torch.Generator().manual_seed(config.seed)
    model = build_model(lambda: RegressionMLP(x.shape[1], y.shape[1]), generator)
    result = fit(model, x, y, config, on_epoch=on_epoch, should_stop=should_stop)
    return model, result
