"""The two networks of the exercise and their parameter counts."""

import math

import torch
from torch import nn


class RegressionMLP(nn.Module):
    """Problem 1 regressor: d_in -> 400 -> 200 -> 100 -> d_out with ReLU."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(d_in, 400),
            nn.ReLU(),
            nn.Linear(400, 200),
            nn.ReLU(),
            nn.Linear(200, 100),
            nn.ReLU(),
            nn.Linear(100, d_out),
        )

    def forward(self, x):
        return self.layers(x)


class StudentMLP(nn.Module):
    """Problem 2 student of width M: d_in -> M -> M -> d_out with ReLU."""

    def __init__(self, d_in, width, d_out):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(d_in, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, d_out),
        )

    def forward(self, x):
        return self.layers(x)


def count_parameters(model):
    """Count the trainable parameters of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def student_n_params(width, d_in=10, d_out=5):
    """Parameter count of a StudentMLP: M^2 + (d_in + d_out + 2) M + d_out."""
    return (d_in * width + width) + (width * width + width) + (width * d_out + d_out)


def interpolation_threshold_width(n_train, d_in=10, d_out=5):
    """Compute the real-valued width at which the student network can interpolate the training set.

    The student D->M->M->O ReLU network has
    n_params(M) = (D*M + M) + (M*M + M) + (M*O + O) = M**2 + (D + O + 2)*M + O
    parameters. The threshold is the positive root of n_params(M) = n_train * d_out, the width
    where the parameter count equals the number of scalar training targets.

    Parameters
    ----------
    n_train : int
        Number of training samples N (at least 1).
    d_in, d_out : int
        Input dimension D and output dimension O (at least 1 each).

    Returns
    -------
    float
        The width M, for example about 15.3 for N=100, D=10, O=5 (n_params = 500).
    """
    for name, value in (("n_train", n_train), ("d_in", d_in), ("d_out", d_out)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")

    # Quadratic M**2 + b*M + c = 0 with c <= 0, so it has exactly one root M >= 0.
    b = d_in + d_out + 2
    c = d_out - n_train * d_out

    # This form of the positive root avoids cancelling -b against sqrt(b**2 - 4c) when c is small.
    return 2 * -c / (b + math.sqrt(b * b - 4 * c))


def init_linear_(layer, generator):
    """Initialise an nn.Linear in place as its constructor does, from a generator.

    nn.Linear draws weights and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    using the global random state. Drawing from an explicit generator gives
    the same distribution without touching global state, which concurrent
    sessions of the app would otherwise race on.
    """
    bound = 1 / math.sqrt(layer.in_features)
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)


def init_model_(model, generator):
    """Initialise every nn.Linear of a model, in order, from one generator."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            init_linear_(module, generator)
    return model


def build_model(make, generator):
    """Call make() to build a model, then initialise it from generator.

    Built on the meta device, the layers allocate nothing and draw no random
    numbers, so the global random state stays untouched. to_empty then
    allocates the weights that init_model_ fills.
    """
    with torch.device("meta"):
        model = make()
    model.to_empty(device="cpu")
    return init_model_(model, generator)
