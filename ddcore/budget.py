"""Work estimates, so that settings too large for a live session are refused up front.

Work is counted in multiply-adds of training: models x epochs x training
samples x multiply-adds per sample (forward and backward, about 3 times the
forward pass). One number covers wide students, many seeds and long runs
alike, and it is known before any training starts.
"""

import os

from ddcore.models import student_n_params

# About a minute of training on a 2-core CPU at the engine's measured rate
# (see docs/benchmarks.md); the app shares one server among a class.
DEFAULT_MAX_WORK = 5e11
MAX_WORK_ENV = "DDCORE_MAX_WORK"  # instructors raise the limit with this variable


class WorkBudgetError(ValueError):
    """Settings whose estimated work exceeds the budget."""


def max_work():
    """Return the work budget in multiply-adds: DDCORE_MAX_WORK if set, else the default."""
    value = os.environ.get(MAX_WORK_ENV)
    if value is None:
        return DEFAULT_MAX_WORK
    try:
        return float(value)
    except ValueError:
        raise WorkBudgetError(
            f"{MAX_WORK_ENV}={value!r} is not a number; set it to a count of "
            "multiply-adds such as 2e12, or unset it to use the default."
        ) from None


def student_macs_per_sample(width, d_in=10, d_out=5):
    """Multiply-adds of one forward and backward pass of a student on one sample."""
    return 3 * (student_n_params(width, d_in, d_out) - 2 * width - d_out)


def sweep_work(widths, n_seeds, epochs, n_train, d_in=10, d_out=5):
    """Estimated multiply-adds of training every width with every seed."""
    per_epoch = sum(student_macs_per_sample(w, d_in, d_out) for w in widths) * n_train
    return per_epoch * n_seeds * epochs


def check_work(work, what, how_to_reduce, limit=None):
    """Raise WorkBudgetError when work exceeds the budget, naming the fix."""
    limit = max_work() if limit is None else limit
    if work > limit:
        raise WorkBudgetError(
            f"{what} needs about {work:.2g} multiply-adds, over the limit of {limit:.2g}. "
            f"{how_to_reduce} An instructor can raise the limit with the environment "
            f"variable {MAX_WORK_ENV}."
        )
