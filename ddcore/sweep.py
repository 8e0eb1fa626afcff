"""Width sweeps and the more-data comparison, trained in batches of students.

Every (width, seed) run starts from its own fresh initialisation (see
batched.student_generator) and trains with Adam for a fixed number of
epochs, as the exercise does. After training, train MSE is measured on the
whole training set and test MSE on the test set. Results are long-form
DataFrames with one row per run.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ddcore.batched import FlatAdam, StackedStudents, init_student
from ddcore.data import EXERCISE_SEED, make_teacher_data
from ddcore.models import student_n_params
from ddcore.training import TrainingCancelled, epoch_batches, epoch_order

RESULT_COLUMNS = ["width", "n_params", "seed", "n_train", "train_mse", "test_mse", "diverged_epoch"]
EPOCHS_PER_CHUNK = 100  # progress is reported and cancellation checked this often

# Cost model for grouping widths into buckets. A bucket costs a fixed
# overhead per epoch (about 20 small torch calls) plus time proportional to
# its padded multiply-adds. The per-MAC time was measured with one torch
# thread on a 2-core x86 machine. The overhead was tuned on the exercise's
# sweep: from 7e-5 to 1.5e-4 s, 1 and 10 seeds ran within 2% of their best.
# Only the ratio of the two matters for the grouping.
OVERHEAD_PER_EPOCH_S = 1e-4
SECONDS_PER_MAC = 6e-11


@dataclass(frozen=True)
class SweepConfig:
    """Training settings shared by every run of a sweep."""

    epochs: int = 2000  # full passes over the training set
    lr: float = 1e-3  # Adam step size; the exercise used 1e-3
    batch_size: int | None = None  # None trains full-batch, as the exercise does
    dtype: str = "float32"  # "float64" costs about 1.5x and agrees across paths

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"The learning rate must be a positive number, got {self.lr}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"The batch size must be at least 1, got {self.batch_size}.")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}.")

    @property
    def torch_dtype(self):
        return getattr(torch, self.dtype)


def bucket_cost(widths, n_train, d_in, d_out, epochs):
    """Estimated seconds to train the students of these widths as one padded bucket."""
    p = max(widths)
    macs_per_model = 3 * n_train * (d_in * p + p * p + p * d_out)  # forward + backward
    return epochs * (OVERHEAD_PER_EPOCH_S + SECONDS_PER_MAC * len(widths) * macs_per_model)


def plan_buckets(widths, n_train, d_in=10, d_out=5, epochs=1):
    """Split widths (with repeats, one per run) into contiguous buckets of least cost.

    One bucket pads every student to the widest and wastes multiply-adds;
    one bucket per width pays the per-epoch overhead many times. Dynamic
    programming over the sorted widths finds the cheapest split between
    the two, under the cost model of bucket_cost.
    """
    widths = sorted(widths)
    best = [0.0] + [math.inf] * len(widths)
    cut = [0] * (len(widths) + 1)
    for end in range(1, len(widths) + 1):
        for start in range(end):
            # Never split runs of one width across buckets.
            if start > 0 and widths[start - 1] == widths[start]:
                continue
            cost = best[start] + bucket_cost(widths[start:end], n_train, d_in, d_out, epochs)
            if cost < best[end]:
                best[end], cut[end] = cost, start

    buckets, end = [], len(widths)
    while end > 0:
        buckets.append(widths[cut[end] : end])
        end = cut[end]
    return buckets[::-1]


def first_nonfinite_epoch(losses, epoch_offset):
    """Per model, the first epoch (1-based) whose loss is NaN or inf, else None."""
    bad = ~torch.isfinite(losses)
    first = []
    for k in range(losses.shape[1]):
        rows = bad[:, k].nonzero()
        first.append(epoch_offset + int(rows[0]) + 1 if len(rows) else None)
    return first


def train_epoch(stacks, optimizer, x, y, config, generators):
    """One epoch for every student of every stack; return each stack's mean batch losses.

    All stacks share one optimizer step per batch, so the fixed cost of an
    Adam call is paid once per step, not once per bucket.
    """
    if config.batch_size is None or config.batch_size >= len(x):
        losses = [stack.loss_and_grads(x, y) for stack in stacks]
        optimizer.step()
        return losses

    # Each student shuffles with its own generator, as it would alone.
    orders = [torch.stack([epoch_order(len(x), g) for g in gens]) for gens in generators]
    totals = [torch.zeros(stack.k, dtype=x.dtype) for stack in stacks]
    n_batches = math.ceil(len(x) / config.batch_size)
    for batch in range(n_batches):
        columns = slice(batch * config.batch_size, (batch + 1) * config.batch_size)
        for stack, order, total in zip(stacks, orders, totals):
            index = order[:, columns]
            total += stack.loss_and_grads(x[index], y[index])
        optimizer.step()
    return [total / n_batches for total in totals]


# Inference mode, although this trains: the gradients are computed by hand,
# and skipping autograd's bookkeeping saves about a quarter of each small op.
@torch.inference_mode()
def train_buckets(data, buckets, config, progress):
    """Train the (width, seed) runs of every bucket side by side; return result rows.

    buckets is a list of lists of (width, seed) runs; each bucket becomes
    one StackedStudents padded to its widest student.
    """
    dtype = config.torch_dtype
    x, y = data.x.to(dtype), data.y.to(dtype)
    stacks, generators = [], []
    for runs in buckets:
        students, gens = zip(*(init_student(w, s, data.d_in, data.d_out, dtype) for w, s in runs))
        stacks.append(StackedStudents(students, data.d_in, data.d_out, dtype))
        generators.append(gens)
    optimizer = FlatAdam(stacks, config.lr)

    diverged = [[None] * len(runs) for runs in buckets]
    for start in range(0, config.epochs, EPOCHS_PER_CHUNK):
        chunk = min(EPOCHS_PER_CHUNK, config.epochs - start)
        history = [train_epoch(stacks, optimizer, x, y, config, generators) for _ in range(chunk)]
        for i, first_bad in enumerate(diverged):
            losses = torch.stack([epoch_losses[i] for epoch_losses in history])
            for k, epoch in enumerate(first_nonfinite_epoch(losses, start)):
                first_bad[k] = first_bad[k] or epoch
        progress(chunk * sum(len(runs) for runs in buckets))

    rows = []
    x_test, y_test = data.x_test.to(dtype), data.y_test.to(dtype)
    for stack, runs, first_bad in zip(stacks, buckets, diverged):
        train_mse, test_mse = stack.mse(x, y).tolist(), stack.mse(x_test, y_test).tolist()
        rows += [
            result_row(w, s, data, train_mse[k], test_mse[k], first_bad[k])
            for k, (w, s) in enumerate(runs)
        ]
    return rows


def train_bucket(data, runs, config, progress):
    """Train the (width, seed) runs of one bucket together; return result rows."""
    return train_buckets(data, [runs], config, progress)


def result_row(width, seed, data, train_mse, test_mse, diverged_epoch):
    return {
        "width": width,
        "n_params": student_n_params(width, data.d_in, data.d_out),
        "seed": seed,
        "n_train": data.n_train,
        "train_mse": train_mse,
        "test_mse": test_mse,
        "diverged_epoch": diverged_epoch,
    }


def results_frame(rows):
    """Rows as a DataFrame with RESULT_COLUMNS, sorted by n_train, width and seed."""
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    frame["diverged_epoch"] = frame["diverged_epoch"].astype("Int64")
    return frame.sort_values(["n_train", "width", "seed"], ignore_index=True)


class ProgressTracker:
    """Turns finished model-epochs into a fraction for on_progress, and polls should_stop."""

    def __init__(self, total, on_progress=None, should_stop=None):
        self.total, self.done = total, 0
        self.on_progress, self.should_stop = on_progress, should_stop

    def __call__(self, model_epochs):
        self.done += model_epochs
        if self.on_progress is not None:
            self.on_progress(self.done / self.total)
        if self.should_stop is not None and self.should_stop():
            raise TrainingCancelled(f"Sweep stopped by request at {self.done / self.total:.0%}.")


def train_runs(data, runs, config, progress):
    """Train (width, seed) runs on one data set, grouped into buckets of similar width."""
    plan = plan_buckets([w for w, _ in runs], data.n_train, data.d_in, data.d_out, config.epochs)
    buckets = [[(w, s) for w, s in runs if w in set(bucket)] for bucket in plan]
    return train_buckets(data, buckets, config, progress)


def width_sweep(data, widths, seeds, config, on_progress=None, should_stop=None):
    """Train a student of every width with every seed on data; one row per run.

    on_progress(fraction) is called after every chunk of epochs, and
    should_stop() is polled there too. When it returns True the sweep
    raises TrainingCancelled, so no partial result passes for a whole one.
    """
    runs = [(int(w), int(s)) for w in sorted(set(widths)) for s in seeds]
    tracker = ProgressTracker(len(runs) * config.epochs, on_progress, should_stop)
    return results_frame(train_runs(data, runs, config, tracker))


def more_data(widths, n_values, seeds, config, noise=0.1, data_seed=EXERCISE_SEED,
              on_progress=None, should_stop=None):
    """Train each width with each seed on each training-set size in n_values.

    Every size gets its own data set from make_teacher_data: the first 100
    points and the test set are shared, so sizes differ only in the amount
    of data. Each run trains on its own n_train points.
    """
    runs = [(int(w), int(s)) for w in sorted(set(widths)) for s in seeds]
    sizes = sorted(set(int(n) for n in n_values))
    tracker = ProgressTracker(len(runs) * len(sizes) * config.epochs, on_progress, should_stop)

    rows = []
    for n_train in sizes:
        data = make_teacher_data(n_train=n_train, noise=noise, seed=data_seed)
        rows += train_runs(data, runs, config, tracker)
    return results_frame(rows)


def train_student_reference(data, width, seed, config):
    """Train one student with torch.optim.Adam and autograd: the reference path.

    Same initialisation and shuffling as the batched engine, one model at a
    time, so tests can check that both paths agree.
    """
    dtype = config.torch_dtype
    x, y = data.x.to(dtype), data.y.to(dtype)
    model, generator = init_student(width, seed, data.d_in, data.d_out, dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    batch_size = config.batch_size or len(x)

    diverged_epoch = None
    for epoch in range(1, config.epochs + 1):
        if batch_size >= len(x):
            batches = [slice(None)]
        else:
            batches = epoch_batches(len(x), batch_size, generator)
        for index in batches:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            if diverged_epoch is None and not math.isfinite(loss.item()):
                diverged_epoch = epoch

    with torch.no_grad():
        train_mse = torch.nn.functional.mse_loss(model(x), y).item()
        test_mse = torch.nn.functional.mse_loss(
            model(data.x_test.to(dtype)), data.y_test.to(dtype)
        ).item()
    return result_row(width, seed, data, train_mse, test_mse, diverged_epoch)


def log_spaced_widths(min_width, max_width, count):
    """count distinct integer widths, spaced evenly in log scale from min to max.

    Integer parts of a log-spaced grid repeat at small widths (2.0 and 2.6
    both give 2), so the grid is refined until its integer parts give count
    distinct widths. For (2, 60, 14) this yields the exercise's widths
    2, 3, 4, 5, 6, 8, 10, 13, 17, 22, 28, 36, 47, 60.
    """
    if min_width < 1:
        raise ValueError(f"The smallest width must be at least 1, got {min_width}.")
    if min_width > max_width:
        raise ValueError(
            f"The smallest width ({min_width}) is above the largest ({max_width}); swap them."
        )
    available = max_width - min_width + 1
    if count < 1 or count > available:
        raise ValueError(
            f"Cannot pick {count} distinct widths between {min_width} and {max_width}: "
            f"choose between 1 and {available} widths, or widen the range."
        )
    if count == 1:
        return [int(min_width)]

    for n_points in range(count, 100 * count):
        # The small offset keeps 59.999999 from flooring to 59.
        grid = np.logspace(np.log10(min_width), np.log10(max_width), n_points)
        widths = sorted(set(np.floor(grid + 1e-9).astype(int).tolist()))
        if len(widths) == count:
            return widths
    # Some ranges jump from count - 1 to count + 1 distinct widths: fall back
    # to the count widths of the grid nearest to even log spacing.
    # NOTE: this only happens for ranges with far fewer integers than points.
    return sorted(set(np.round(np.logspace(np.log10(min_width), np.log10(max_width), count)).astype(int).tolist()))
