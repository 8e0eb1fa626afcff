"""Speed of the batched sweep engine against two ways of training one model at a time.

Contenders, run side by side in one process on the same teacher data:

1. the per-model loop a student writes for the exercise: for every (width,
   seed) a fresh StudentMLP, torch.optim.Adam and a full-batch DataLoader;
2. scikit-learn's MLPRegressor with the same architecture, optimizer,
   learning rate, batch size and epoch count (skipped if sklearn is missing);
3. the batched engine, ddcore.sweep.width_sweep and ddcore.sweep.more_data.

Scenarios:

(a) the exercise's sweep: 14 widths from 2 to 60, 1 seed, N=100;
(b) the same with 10 seeds;
(c) the more-data comparison: widths 28 and 47 at N=500.

Every contender runs with the same number of torch and BLAS threads
(--threads, default 1), because the app trains with one thread. Each wall
time covers building the models, training, and measuring train and test MSE.

Run from the repository root:

    .venv/bin/python benchmarks/bench_sweep.py               # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/bench_sweep.py --quick --repeats 1 --widths 2,8
    .venv/bin/python benchmarks/bench_sweep.py --profile     # where the engine's time goes
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader, TensorDataset

# Running the file as a script puts benchmarks/ on sys.path, not the
# repository root that contains ddcore.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from ddcore.data import TeacherData, make_teacher_data  # noqa: E402
from ddcore.models import StudentMLP  # noqa: E402
from ddcore.sweep import SweepConfig, more_data, plan_buckets, width_sweep  # noqa: E402

try:
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
except ImportError:
    sklearn = None

EXERCISE_WIDTHS = [2, 3, 4, 5, 6, 8, 10, 13, 17, 22, 28, 36, 47, 60]
MORE_DATA_WIDTHS = [28, 47]
MORE_DATA_N = 500
LR = 1e-3
EPOCHS = 2000
QUICK_EPOCHS = 200
SEEDS_B = 10  # seeds of scenario (b)
SEEDS_C_ENGINE = 5  # extra engine row of scenario (c)
# Every epoch of a sweep costs the same, so a short run shows where the
# time goes without a profile of millions of events.
PROFILE_EPOCHS = 200

# Benchmark targets, printed next to the measured ratios. They are goals
# for the engine, not pass/fail tests.
TARGET_LOOP_OVER_ENGINE = 25.0
TARGET_SKLEARN_OVER_ENGINE = 8.0
TARGET_TEN_SEEDS_OVER_LOOP = 0.25

# Mean test MSEs of two contenders further apart than this factor point to
# a broken contender rather than to different initialisations.
SANITY_FACTOR = 3.0


# ---------------------------------------------------------------------------
# The three ways to train a sweep. Each returns (train MSE, test MSE) of every run.
# ---------------------------------------------------------------------------


def train_per_model_loop(data, widths, seeds, epochs):
    """Train one StudentMLP per (width, seed) the way the exercise does."""
    loader_batch = len(data.x)  # full batch
    results = []
    for width in widths:
        for seed in seeds:
            torch.manual_seed(seed)
            model = StudentMLP(data.d_in, width, data.d_out)
            optimizer = torch.optim.Adam(model.parameters(), lr=LR)
            # The DataLoader fetches the N rows one by one and stacks them
            # every epoch. That cost is part of what this style of loop pays.
            loader = DataLoader(TensorDataset(data.x, data.y), batch_size=loader_batch, shuffle=True)
            loss_fn = torch.nn.MSELoss()

            for _ in range(epochs):
                for x_batch, y_batch in loader:
                    optimizer.zero_grad()
                    loss = loss_fn(model(x_batch), y_batch)
                    loss.backward()
                    optimizer.step()

            with torch.no_grad():
                train_mse = loss_fn(model(data.x), data.y).item()
                test_mse = loss_fn(model(data.x_test), data.y_test).item()
            results.append((train_mse, test_mse))
    return results


def train_mlp_regressor(data, widths, seeds, epochs):
    """Train one sklearn MLPRegressor per (width, seed) with the exercise's settings."""
    x, y = data.x.numpy(), data.y.numpy()
    x_test, y_test = data.x_test.numpy(), data.y_test.numpy()
    results = []
    for width in widths:
        for seed in seeds:
            model = MLPRegressor(
                hidden_layer_sizes=(width, width),
                activation="relu",
                solver="adam",
                learning_rate_init=LR,
                batch_size=len(x),
                max_iter=epochs,
                alpha=0.0,
                early_stopping=False,
                # With tol=0 and n_iter_no_change=max_iter, training never stops early.
                tol=0.0,
                n_iter_no_change=epochs,
                shuffle=True,
                random_state=seed,
            )
            with warnings.catch_warnings():
                # Reaching max_iter is the intended stop, not a failure.
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x, y)

            train_mse = float(((model.predict(x) - y) ** 2).mean())
            test_mse = float(((model.predict(x_test) - y_test) ** 2).mean())
            results.append((train_mse, test_mse))
    return results


def train_engine_sweep(data, widths, seeds, epochs):
    """Train the sweep with the batched engine's width_sweep, float32 and full batch."""
    frame = width_sweep(data, widths, seeds, SweepConfig(epochs=epochs, lr=LR))
    return list(zip(frame["train_mse"], frame["test_mse"]))


def train_engine_more_data(data, widths, seeds, epochs):
    """Train the sweep with the batched engine's more_data at data's N.

    more_data draws its own data set for each N; for the default noise and
    seed it is the same tensors as make_teacher_data(n_train=N).
    """
    frame = more_data(widths, [data.n_train], seeds, SweepConfig(epochs=epochs, lr=LR))
    return list(zip(frame["train_mse"], frame["test_mse"]))


# ---------------------------------------------------------------------------
# Scenarios and contenders
# ---------------------------------------------------------------------------

KIND_NAMES = {"loop": "per-model loop", "sklearn": "MLPRegressor", "engine": "engine"}


@dataclass
class Contender:
    """One timed row of a scenario: a way to train, its seeds and its thread count."""

    kind: str  # a key of KIND_NAMES
    train: Callable
    seeds: list
    threads: int
    times: list = field(default_factory=list)
    mses: list = field(default_factory=list)  # (train, test) per run, from the last repeat

    @property
    def label(self):
        seeds = f"{len(self.seeds)} seed" + ("s" if len(self.seeds) > 1 else "")
        threads = f"{self.threads} thread" + ("s" if self.threads > 1 else "")
        return f"{KIND_NAMES[self.kind]}, {seeds}, {threads}"

    def run(self, scenario):
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            # threadpoolctl caps the BLAS that numpy and sklearn call.
            with threadpool_limits(limits=self.threads):
                start = time.perf_counter()
                self.mses = self.train(scenario.data, scenario.widths, self.seeds, scenario.epochs)
                self.times.append(time.perf_counter() - start)
        finally:
            torch.set_num_threads(previous)


@dataclass
class Scenario:
    """A sweep to time: data, widths, epochs and the contenders that run it."""

    key: str
    title: str
    data: TeacherData
    widths: list
    epochs: int
    contenders: list = field(default_factory=list)
    # Rows estimated instead of run: (label, scale, contender of another scenario).
    estimates: list = field(default_factory=list)

    def find(self, kind, n_seeds, threads):
        """Return the contender of this kind, seed count and thread count, or None."""
        for contender in self.contenders:
            if (contender.kind, len(contender.seeds), contender.threads) == (kind, n_seeds, threads):
                return contender
        return None


def single_model_contenders(seeds, threads):
    contenders = [Contender("loop", train_per_model_loop, seeds, threads)]
    if sklearn is not None:
        contenders.append(Contender("sklearn", train_mlp_regressor, seeds, threads))
    return contenders


def engine_contenders(train, seeds, args):
    contenders = [Contender("engine", train, seeds, args.threads)]
    if args.two_thread_engine and args.threads != 2:
        contenders.append(Contender("engine", train, seeds, 2))
    return contenders


def build_scenarios(args):
    """Build the scenarios (a), (b) and (c) with the contenders that the options select."""
    data_100 = make_teacher_data()
    one_seed, ten_seeds = [0], list(range(SEEDS_B))

    a = Scenario("a", "exercise sweep", data_100, args.widths, args.epochs)
    a.contenders = (single_model_contenders(one_seed, args.threads)
                    + engine_contenders(train_engine_sweep, one_seed, args))

    b = Scenario("b", f"exercise sweep, {SEEDS_B} seeds", data_100, args.widths, args.epochs)
    b.contenders = engine_contenders(train_engine_sweep, ten_seeds, args)
    if args.full:
        b.contenders += single_model_contenders(ten_seeds, args.threads)
    else:
        # These contenders train the runs of a sweep one after another and
        # independently, so 10 seeds should take about 10 times as long as one.
        for contender in a.contenders:
            if contender.kind != "engine":
                label = contender.label.replace("1 seed,", f"{SEEDS_B} seeds,")
                b.estimates.append((label, SEEDS_B, contender))

    c = Scenario("c", f"more data, N={MORE_DATA_N}", make_teacher_data(n_train=MORE_DATA_N),
                 MORE_DATA_WIDTHS, args.epochs)
    c.contenders = (single_model_contenders(one_seed, args.threads)
                    + engine_contenders(train_engine_more_data, one_seed, args)
                    + [Contender("engine", train_engine_more_data,
                                 list(range(SEEDS_C_ENGINE)), args.threads)])
    return [a, b, c]


def warm_up(scenarios):
    """Run every contender once for 2 epochs on the smallest width, untimed.

    The first call of each code path pays one-time costs (lazy imports,
    allocator growth, kernel selection) that are no part of a sweep.
    """
    for scenario in scenarios:
        for contender in scenario.contenders:
            contender.train(scenario.data, scenario.widths[:1], contender.seeds[:1], 2)


def run_interleaved(scenarios, repeats):
    """Run every contender once per repeat, rotating the order between repeats.

    Rotation spreads the slow phases of a shared machine over all contenders
    instead of always hitting the one that runs in the same slot.
    """
    for repeat in range(repeats):
        for scenario in scenarios:
            shift = repeat % len(scenario.contenders)
            order = scenario.contenders[shift:] + scenario.contenders[:shift]
            for contender in order:
                contender.run(scenario)
                print(f"  repeat {repeat + 1}/{repeats} ({scenario.key}) {contender.label}: "
                      f"{contender.times[-1]:.2f} s", flush=True)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average():
    try:
        return "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
    except OSError:
        return "unavailable"


def print_machine(args):
    sklearn_version = sklearn.__version__ if sklearn is not None else "not installed"
    print(f"date:     {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"command:  python benchmarks/bench_sweep.py {' '.join(args.argv)}".rstrip())
    print(f"cpu:      {cpu_model()}, {os.cpu_count()} logical cores")
    print(f"software: python {platform.python_version()}, torch {torch.__version__}, "
          f"scikit-learn {sklearn_version}")
    extra = ", plus 2-thread engine rows" if args.two_thread_engine else ""
    print(f"threads:  {args.threads} torch and BLAS thread(s) for every contender{extra}")
    print(f"settings: {args.epochs} epochs, Adam lr={LR}, full batch, float32, "
          f"{args.repeats} interleaved repeat(s); times include init and MSE measurement")
    print(f"widths:   {', '.join(map(str, args.widths))} for (a) and (b); "
          f"{', '.join(map(str, MORE_DATA_WIDTHS))} for (c)")
    if sklearn is None:
        print("NOTE: scikit-learn is not installed, so the MLPRegressor rows are skipped "
              "(install it with: pip install scikit-learn).")


def print_scenario(scenario):
    print(f"\n({scenario.key}) {scenario.title}: {len(scenario.widths)} widths, "
          f"N={scenario.data.n_train}, {scenario.epochs} epochs")
    print(f"  {'contender':<34}{'median s':>10}{'min s':>10}{'runs':>6}"
          f"{'train MSE':>11}{'test MSE':>11}")
    for contender in scenario.contenders:
        train_mse = statistics.fmean(m[0] for m in contender.mses)
        test_mse = statistics.fmean(m[1] for m in contender.mses)
        print(f"  {contender.label:<34}{statistics.median(contender.times):>10.2f}"
              f"{min(contender.times):>10.2f}{len(contender.times):>6}"
              f"{train_mse:>11.4f}{test_mse:>11.4f}")
    for label, scale, source in scenario.estimates:
        print(f"  {label:<34}{scale * statistics.median(source.times):>10.2f}"
              f"{scale * min(source.times):>10.2f}{'':>6}  estimated: {scale} x (a)")
    print("  (MSE columns: means over the runs of the last repeat)")


def ratio_line(name, numerator, denominator, target=None, at_least=True, decimals=2):
    """Format median/median and min/min time ratios, with a verdict when a target is given."""
    median_ratio = statistics.median(numerator.times) / statistics.median(denominator.times)
    min_ratio = min(numerator.times) / min(denominator.times)
    line = f"  {name:<46}{median_ratio:8.{decimals}f}  (min/min {min_ratio:6.{decimals}f})"
    if target is not None:
        met = median_ratio >= target if at_least else median_ratio < target
        relation = ">=" if at_least else "<"
        line += f"   target {relation} {target:g}: {'met' if met else 'MISSED'}"
    return line


def print_ratios(scenarios, args):
    a, b, c = scenarios
    print("\nratios of wall times (median/median; targets are goals, not tests)")
    print_speedups(a, args, with_targets=True)

    ten_seed_engine = b.find("engine", SEEDS_B, args.threads)
    one_seed_loop = a.find("loop", 1, args.threads)
    print(ratio_line(f"(b) engine {SEEDS_B} seeds / per-model loop 1 seed", ten_seed_engine,
                     one_seed_loop, TARGET_TEN_SEEDS_OVER_LOOP, at_least=False, decimals=3))

    print_speedups(c, args, with_targets=False)

    if args.two_thread_engine and args.threads != 2:
        for scenario, n_seeds in ((a, 1), (b, SEEDS_B), (c, 1)):
            default_threads = scenario.find("engine", n_seeds, args.threads)
            two_threads = scenario.find("engine", n_seeds, 2)
            name = f"({scenario.key}) engine {args.threads} / 2 threads, {n_seeds} seed(s)"
            print(ratio_line(name, default_threads, two_threads))


def print_speedups(scenario, args, with_targets):
    """Print how many times faster the 1-seed engine is than each single-model contender."""
    engine = scenario.find("engine", 1, args.threads)
    for kind, target in (("loop", TARGET_LOOP_OVER_ENGINE), ("sklearn", TARGET_SKLEARN_OVER_ENGINE)):
        name = f"({scenario.key}) {KIND_NAMES[kind]} / engine"
        slow = scenario.find(kind, 1, args.threads)
        if slow is None:
            print(f"  {name:<46}skipped, {KIND_NAMES[kind]} not run")
            continue
        print(ratio_line(name, slow, engine, target if with_targets else None))


def print_sanity(scenarios, args):
    """Compare mean test MSEs, so that a broken engine shows in a benchmark."""
    print("\nsanity: mean test MSE over the widths (same training maths, different initialisations)")
    for scenario in (scenarios[0], scenarios[2]):
        loop_mse = statistics.fmean(m[1] for m in scenario.find("loop", 1, args.threads).mses)
        engine_mse = statistics.fmean(m[1] for m in scenario.find("engine", 1, args.threads).mses)
        factor = max(loop_mse, engine_mse) / min(loop_mse, engine_mse)
        verdict = "similar" if factor <= SANITY_FACTOR else f"WARNING: over {SANITY_FACTOR:g}x apart"
        print(f"  ({scenario.key}) per-model loop {loop_mse:.4f}, engine {engine_mse:.4f}: "
              f"ratio {factor:.2f}, {verdict}")

# ---------------------------------------------------------------------------
# Profile
# ---------------------------------------------------------------------------


def profile_engine(args):
    """Time the engine on each bucket of scenario (a), then profile the whole sweep.

    Only the public width_sweep is called, so this keeps working when the
    engine's internals change. Each bucket's widths are timed as a sweep of
    their own for args.epochs epochs. The profiler table covers
    PROFILE_EPOCHS epochs of the whole 1-seed sweep.
    """
    data = make_teacher_data()
    config = SweepConfig(epochs=args.epochs, lr=LR)
    buckets = plan_buckets(args.widths, data.n_train, data.d_in, data.d_out, config.epochs)
    width_sweep(data, args.widths, [0], SweepConfig(epochs=2, lr=LR))  # warm-up

    print(f"engine on the buckets of (a), 1 seed, {config.epochs} epochs, {args.threads} thread(s):")
    for bucket in buckets:
        start = time.perf_counter()
        width_sweep(data, bucket, [0], config)
        seconds = time.perf_counter() - start
        print(f"  widths {bucket}: {seconds:.3f} s, {1e3 * seconds / config.epochs:.3f} ms per epoch")

    print(f"\nprofile of the whole sweep of (a), 1 seed, {PROFILE_EPOCHS} epochs:")
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        width_sweep(data, args.widths, [0], SweepConfig(epochs=PROFILE_EPOCHS, lr=LR))
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_widths(text):
    try:
        widths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid width list {text!r}: use comma-separated integers such as 2,8,28"
        ) from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"invalid width list {text!r}: every width must be >= 1")
    return sorted(set(widths))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved runs of every contender (default 3)")
    parser.add_argument("--full", action="store_true",
                        help="also run the per-model loop and MLPRegressor for (b) "
                             "instead of estimating them as 10 x (a); about 10x longer")
    parser.add_argument("--quick", action="store_true",
                        help=f"train {QUICK_EPOCHS} epochs instead of {EPOCHS}, for a smoke run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and BLAS threads for every contender (default 1, as the app)")
    parser.add_argument("--two-thread-engine", action="store_true",
                        help="add rows for the engine with 2 threads; meaningful only on a quiet machine")
    parser.add_argument("--widths", type=parse_widths, default=EXERCISE_WIDTHS,
                        help="comma-separated widths of (a) and (b) (default: the exercise's 14)")
    parser.add_argument("--profile", action="store_true",
                        help=f"time the engine on each bucket of (a), print a torch.profiler table "
                             f"of the whole sweep ({PROFILE_EPOCHS} epochs), and exit")
    args = parser.parse_args(argv)

    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    args.epochs = QUICK_EPOCHS if args.quick else EPOCHS
    args.argv = sys.argv[1:] if argv is None else list(argv)
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.profile:
        profile_engine(args)
        return 0

    print_machine(args)
    load_at_start = load_average()
    print(f"load average (1, 5, 15 min) at start: {load_at_start}\n")

    scenarios = build_scenarios(args)
    warm_up(scenarios)
    run_interleaved(scenarios, args.repeats)

    for scenario in scenarios:
        print_scenario(scenario)
    print_ratios(scenarios, args)
    print_sanity(scenarios, args)
    print(f"\nload average (1, 5, 15 min) at start: {load_at_start}; at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
