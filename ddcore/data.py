"""Problem 2 data: inputs labelled by a random teacher network plus noise.

The draws follow the exercise's order exactly (seed, x, teacher weights,
training noise, x_test, test noise), so the defaults reproduce its tensors
bit for bit. Extra training points for N > 100 are drawn after the test set:
every N then shares the same first 100 points and the same test set, and
comparing N values changes only the amount of data.
"""

from dataclasses import dataclass

import torch
from torch import nn

from ddcore.models import build_model

EXERCISE_SEED = 78798
EXERCISE_N_TRAIN = 100  # training points drawn before the test set
D_IN = 10
D_OUT = 5
TEACHER_WIDTH = 5
N_TEST = 10_000


@dataclass(frozen=True)
class TeacherData:
    """Training and test tensors of the teacher problem."""

    x: torch.Tensor  # (n_train, d_in)
    y: torch.Tensor  # (n_train, d_out)
    x_test: torch.Tensor  # (n_test, d_in)
    y_test: torch.Tensor  # (n_test, d_out)

    @property
    def n_train(self):
        return self.x.shape[0]

    @property
    def d_in(self):
        return self.x.shape[1]

    @property
    def d_out(self):
        return self.y.shape[1]


def make_teacher(generator, d_in=D_IN, d_out=D_OUT, width=TEACHER_WIDTH):
    """The exercise's teacher, d_in -> width (tanh) -> d_out, drawn from a generator."""
    def make():
        return nn.Sequential(nn.Linear(d_in, width), nn.Tanh(), nn.Linear(width, d_out))

    return build_model(make, generator).eval()


def make_teacher_data(n_train=100, noise=0.1, seed=EXERCISE_SEED, n_test=N_TEST):
    """Draw the teacher data set; the defaults give the exercise's tensors.

    A fresh generator replaces the exercise's global torch.manual_seed: both
    produce the same stream, and the app's concurrent sessions share no state.
    """
    if n_train < 1:
        raise ValueError(f"n_train must be at least 1, got {n_train}.")
    if not noise >= 0:  # also rejects NaN
        raise ValueError(f"noise must be 0 or more, got {noise}.")

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # The exercise's order: x, teacher, noise, x_test, test noise.
        x = torch.randn(EXERCISE_N_TRAIN, D_IN, generator=generator)
        teacher = make_teacher(generator)
        y = teacher(x) + noise * torch.randn(EXERCISE_N_TRAIN, D_OUT, generator=generator)
        x_test = torch.randn(n_test, D_IN, generator=generator)
        y_test = teacher(x_test) + noise * torch.randn(n_test, D_OUT, generator=generator)

        # Points beyond the first 100 come after the test set, so they
        # never shift the draws above.
        n_extra = max(0, n_train - EXERCISE_N_TRAIN)
        x_extra = torch.randn(n_extra, D_IN, generator=generator)
        y_extra = teacher(x_extra) + noise * torch.randn(n_extra, D_OUT, generator=generator)

    x = torch.cat([x, x_extra])[:n_train]
    y = torch.cat([y, y_extra])[:n_train]
    return TeacherData(x=x, y=y, x_test=x_test, y_test=y_test)
