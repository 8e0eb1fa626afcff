"""Gradient norm of each minibatch of a trained model."""

import math
from dataclasses import dataclass

import torch
from torch import nn

from ddcore.training import epoch_batches


@dataclass(frozen=True)
class GradNormStats:
    """Per-batch L2 gradient norms and their spread across batches."""

    norms: tuple  # L2 norm of the full gradient of each batch, in batch order
    batch_size: int

    @property
    def mean(self):
        return sum(self.norms) / len(self.norms)

    @property
    def variance(self):
        """Population variance of the norms (divides by the number of batches)."""
        return sum((n - self.mean) ** 2 for n in self.norms) / len(self.norms)

    @property
    def std(self):
        return math.sqrt(self.variance)


def gradient_norm(model):
    """L2 norm of all parameter gradients taken as one vector."""
    squares = [p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None]
    return torch.stack(squares).sum().sqrt().item()


def minibatch_grad_norms(model, x, y, batch_size, seed=0):
    """Gradient norm of the MSE on each minibatch, every batch on its own.

    Gradients are zeroed before every batch; without that, backward() adds
    into .grad and each "batch norm" would measure the sum of all batches
    so far. The model's weights are not changed.
    """
    generator = torch.Generator().manual_seed(seed)
    norms = []

    model.eval()
    for index in epoch_batches(len(x), batch_size, generator):
        model.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x[index]), y[index])
        loss.backward()
        norms.append(gradient_norm(model))

    model.zero_grad(set_to_none=True)
    return GradNormStats(norms=tuple(norms), batch_size=batch_size)
