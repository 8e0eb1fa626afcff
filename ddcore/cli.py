"""Command line of the lab: ``python -m ddcore COMMAND [OPTIONS]``.

Commands:
  sweep         train students of many widths on the teacher data (double descent)
  more-data     the same sweep at several training-set sizes
  fit           train the Problem 1 regressor and report epochs to the target loss
  gradnorms     train as fit does, then measure the gradient norm of each minibatch
  data          save the teacher data set, so students get the exact tensors
  example-data  save the small Problem 1 example file

Results go to stdout (or to --out). Progress goes to stderr, and only with
--progress, so piping a CSV stays clean. Every error ends the program with
one line "error: <message>" on stderr: exit status 2 for an invalid command
line, 1 for anything that failed after parsing.
"""

import argparse
import math
import sys
from pathlib import Path

import pandas as pd
import torch

from ddcore import budget, gradnorms, regression_data, sweep, training
from ddcore.data import EXERCISE_SEED, make_teacher_data

# The exercise's width sweep: 14 widths, roughly log-spaced from 2 to 60.
EXERCISE_WIDTHS = (2, 3, 4, 5, 6, 8, 10, 13, 17, 22, 28, 36, 47, 60)
# The exercise compares widths 28 and 47 trained on 100 and on 500 points.
MORE_DATA_WIDTHS = (28, 47)
MORE_DATA_N_TRAIN = (100, 500)

# The exercise trains one student per width, so one seed is the default.
# More seeds show how much test MSE varies with the initialisation.
DEFAULT_SEEDS = 1

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's convention for a process ended by Ctrl-C


class UsageError(Exception):
    """An invalid command line, reported by argparse."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser that raises UsageError instead of printing and exiting.

    argparse itself prints the usage and the message, then exits. Raising
    instead lets main() print the single "error: ..." line of every failure.
    """

    def error(self, message):
        raise UsageError(message)


# Argument types. argparse prefixes their messages with the option name,
# as in "argument --widths: 'a' is not an integer".


def parse_int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text.strip()!r} is not an integer"
        ) from None


def parse_float(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a number") from None


def positive_int(text):
    value = parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{value} is invalid; use an integer of 1 or more"
        )
    return value


def nonnegative_int(text):
    value = parse_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"{value} is invalid; use an integer of 0 or more"
        )
    return value


def positive_float(text):
    value = parse_float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(
            f"{text.strip()} is invalid; use a finite number above 0"
        )
    return value


def nonnegative_float(text):
    value = parse_float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(
            f"{text.strip()} is invalid; use a finite number of 0 or more"
        )
    return value


def optional_target_loss(text):
    """Parse a target loss, or 'none' into None, which trains every epoch."""
    if text.strip().lower() == "none":
        return None
    return nonnegative_float(text)


def positive_int_list(text):
    """Parse "2,4,8" into [2, 4, 8]. Every item must be an integer of 1 or more."""
    items = text.split(",")
    if any(item.strip() == "" for item in items):
        raise argparse.ArgumentTypeError(
            f"{text!r} has an empty item; use comma-separated integers such as 2,4,8"
        )
    return [positive_int(item) for item in items]


def log_spaced_widths(text):
    """Parse "MIN,MAX,COUNT" into COUNT distinct log-spaced integer widths."""
    values = positive_int_list(text)
    if len(values) != 3:
        raise argparse.ArgumentTypeError(
            f"{text!r} has {len(values)} values; use MIN,MAX,COUNT such as 2,60,14"
        )
    try:
        return sweep.log_spaced_widths(*values)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def output_path(text):
    """Check that an output file's folder exists, so no training is wasted."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"folder {str(path.parent)!r} does not exist; "
            "create it or choose another path"
        )
    return path


def format_ints(values):
    return ",".join(str(v) for v in values)


# Parser construction: shared option groups, then one parser per command.


def run_options():
    parent = ArgumentParser(add_help=False)
    parent.add_argument(
        "--max-work",
        type=positive_float,
        default=None,
        metavar="MACS",
        help="work limit in multiply-adds of training; settings estimated above it are "
        f"rejected (default: ${budget.MAX_WORK_ENV} if set, "
        f"else {budget.DEFAULT_MAX_WORK:g})",
    )
    parent.add_argument(
        "--progress",
        action="store_true",
        help="print progress to stderr: the fraction of a sweep done, about every "
        f"{sweep.EPOCHS_PER_CHUNK} epochs, or every epoch's loss of a fit "
        "(default: off)",
    )
    return parent


def teacher_data_options():
    parent = ArgumentParser(add_help=False)
    parent.add_argument(
        "--noise",
        type=nonnegative_float,
        default=0.1,
        help="standard deviation of the Gaussian noise added to the teacher's outputs "
        "(default: %(default)s)",
    )
    parent.add_argument(
        "--data-seed",
        type=nonnegative_int,
        default=EXERCISE_SEED,
        help="seed of the teacher data; the default reproduces the exercise's tensors "
        "(default: %(default)s)",
    )
    return parent


def sweep_training_options():
    parent = ArgumentParser(add_help=False)
    parent.add_argument(
        "--seeds",
        type=positive_int,
        default=DEFAULT_SEEDS,
        help="number of initialisation seeds per width; seeds 0 to SEEDS-1 are run, "
        "and the exercise uses 1 (default: %(default)s)",
    )
    parent.add_argument(
        "--epochs",
        type=positive_int,
        default=2000,
        help="epochs, full passes over the training set (default: %(default)s)",
    )
    parent.add_argument(
        "--lr",
        type=positive_float,
        default=1e-3,
        help="Adam learning rate (default: %(default)s)",
    )
    parent.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="minibatch size in samples (default: full batch, as in the exercise)",
    )
    parent.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="floating-point type of training; float64 is slower and reproduces "
        "results across machines more closely (default: %(default)s)",
    )
    return parent


def width_options(default_widths):
    parent = ArgumentParser(add_help=False)
    group = parent.add_mutually_exclusive_group()
    group.add_argument(
        "--widths",
        type=positive_int_list,
        default=list(default_widths),
        metavar="LIST",
        help="comma-separated student widths M, hidden units per layer "
        f"(default: {format_ints(default_widths)})",
    )
    group.add_argument(
        "--widths-log",
        type=log_spaced_widths,
        default=None,
        metavar="MIN,MAX,COUNT",
        help="COUNT distinct log-spaced integer widths from MIN to MAX in place of "
        "--widths; 2,60,14 gives the exercise's widths (default: not used)",
    )
    return parent


def regressor_training_options():
    parent = ArgumentParser(add_help=False)
    parent.add_argument(
        "--data",
        default=None,
        metavar="FILE",
        help="Problem 1 data file (.pth), a dict with tensors X_tensor and Y_tensor "
        "(default: the built-in data set)",
    )
    parent.add_argument(
        "--optimizer",
        choices=training.OPTIMIZERS,
        default="adam",
        help="optimizer; 'momentum' is SGD with momentum (default: %(default)s)",
    )
    parent.add_argument(
        "--lr",
        type=positive_float,
        default=1e-4,
        help="learning rate (default: %(default)s)",
    )
    parent.add_argument(
        "--momentum",
        type=nonnegative_float,
        default=0.9,
        help="momentum coefficient, used by --optimizer momentum only "
        "(default: %(default)s)",
    )
    parent.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        help="minibatch size in samples (default: %(default)s)",
    )
    parent.add_argument(
        "--max-epochs",
        type=positive_int,
        default=200,
        help="maximum epochs, full passes over the training set (default: %(default)s)",
    )
    parent.add_argument(
        "--target-loss",
        type=optional_target_loss,
        default=1e-6,
        help="stop once an epoch's mean minibatch MSE is below this; 'none' runs "
        "all --max-epochs (default: %(default)s)",
    )
    parent.add_argument(
        "--weight-decay",
        type=nonnegative_float,
        default=0.0,
        help="L2 penalty coefficient, decoupled for adamw (default: %(default)s)",
    )
    parent.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="seed of the initialisation and the shuffling order "
        "(default: %(default)s)",
    )
    return parent


def add_sweep_command(commands, parents):
    parser = commands.add_parser(
        "sweep",
        parents=[width_options(EXERCISE_WIDTHS), *parents],
        help="train students of many widths on the teacher data",
        description="Train a student of every width with every seed on the teacher "
        "data and write one CSV row per (width, seed) with its train and test MSE.",
    )
    parser.add_argument(
        "--n-train",
        type=positive_int,
        default=100,
        metavar="N",
        help="training points N (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=output_path,
        default=None,
        metavar="CSV",
        help="CSV file for the results (default: print the CSV to stdout)",
    )
    parser.set_defaults(run=run_sweep)


def add_more_data_command(commands, parents):
    parser = commands.add_parser(
        "more-data",
        parents=[width_options(MORE_DATA_WIDTHS), *parents],
        help="the width sweep at several training-set sizes",
        description="Train every width with every seed at each training-set size N and "
        "write one CSV row per (width, N, seed). All sizes share the first 100 "
        "points and the test set.",
    )
    parser.add_argument(
        "--n-train",
        type=positive_int_list,
        default=list(MORE_DATA_N_TRAIN),
        metavar="LIST",
        help="comma-separated training-set sizes N "
        f"(default: {format_ints(MORE_DATA_N_TRAIN)})",
    )
    parser.add_argument(
        "--out",
        type=output_path,
        default=None,
        metavar="CSV",
        help="CSV file for the results (default: print the CSV to stdout)",
    )
    parser.set_defaults(run=run_more_data)


def add_fit_command(commands, parents):
    parser = commands.add_parser(
        "fit",
        parents=parents,
        help="train the Problem 1 regressor until the target loss",
        description="Train the Problem 1 regressor "
        "(d_in -> 400 -> 200 -> 100 -> d_out, ReLU) "
        "and report the epochs it took to reach the target loss.",
    )
    parser.add_argument(
        "--out",
        type=output_path,
        default=None,
        metavar="CSV",
        help="CSV file for the per-epoch history, columns epoch and train_loss "
        "(default: not written)",
    )
    parser.set_defaults(run=run_fit)


def add_gradnorms_command(commands, parents):
    parser = commands.add_parser(
        "gradnorms",
        parents=parents,
        help="train as fit does, then measure each minibatch's gradient norm",
        description="Train the Problem 1 regressor as fit does, then compute the "
        "L2 norm of the MSE gradient on each minibatch of one shuffled epoch, and "
        "their mean, standard deviation and variance.",
    )
    parser.add_argument(
        "--grad-batch-size",
        type=positive_int,
        default=None,
        help="minibatch size in samples for the gradient norms "
        "(default: the training --batch-size)",
    )
    parser.add_argument(
        "--out",
        type=output_path,
        default=None,
        metavar="CSV",
        help="CSV file for the norms, columns batch and grad_norm "
        "(default: not written)",
    )
    parser.set_defaults(run=run_gradnorms)


def add_data_command(commands, parents):
    parser = commands.add_parser(
        "data",
        parents=parents,
        help="save the teacher data set (x, y, x_test, y_test) with torch.save",
        description="Save the Problem 2 teacher data as a dict of float32 tensors "
        "x, y, x_test and y_test, so that everyone trains on the same tensors.",
    )
    parser.add_argument(
        "--n-train",
        type=positive_int,
        default=100,
        metavar="N",
        help="training points N (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=output_path,
        required=True,
        metavar="FILE",
        help="file to write, such as teacher.pth (required)",
    )
    parser.set_defaults(run=run_data)


def add_example_data_command(commands):
    parser = commands.add_parser(
        "example-data",
        help="save the small Problem 1 example file",
        description="Save a small Problem 1 data file in the format that "
        "fit --data reads.",
    )
    parser.add_argument(
        "--out",
        type=output_path,
        required=True,
        metavar="FILE",
        help="file to write, such as example.pth (required)",
    )
    parser.set_defaults(run=run_example_data)


def build_parser():
    parser = ArgumentParser(
        prog="python -m ddcore",
        description="Neural-network optimisation and double-descent experiments "
        "from the command line.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sweep_parents = [sweep_training_options(), teacher_data_options(), run_options()]
    fit_parents = [regressor_training_options(), run_options()]
    add_sweep_command(commands, sweep_parents)
    add_more_data_command(commands, sweep_parents)
    add_fit_command(commands, fit_parents)
    add_gradnorms_command(commands, fit_parents)
    add_data_command(commands, [teacher_data_options()])
    add_example_data_command(commands)
    return parser


# Helpers shared by the commands.


def chosen_widths(args):
    widths = args.widths_log if args.widths_log is not None else args.widths
    return sorted(set(widths))


def sweep_config(args):
    return sweep.SweepConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, dtype=args.dtype
    )


def train_config(args):
    return training.TrainConfig(
        optimizer=args.optimizer,
        lr=args.lr,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        target_loss=args.target_loss,
        weight_decay=args.weight_decay,
        momentum=args.momentum,
        seed=args.seed,
    )


def count_of(n, noun):
    """Format a count with its noun in singular or plural, such as "3 epochs"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def sweep_progress_printer(args):
    """on_progress for ddcore.sweep: one stderr line per chunk of epochs, or None."""
    if not args.progress:
        return None

    def print_fraction(fraction):
        print(f"progress: {fraction:.0%}", file=sys.stderr, flush=True)

    return print_fraction


def epoch_printer(args):
    """on_epoch for ddcore.training.fit: one stderr line per epoch, or None."""
    if not args.progress:
        return None
    max_epochs = args.max_epochs

    def print_epoch(epoch, loss):
        print(
            f"epoch {epoch}/{max_epochs}: train_loss {loss:.6g}",
            file=sys.stderr,
            flush=True,
        )

    return print_epoch


def write_csv(frame, out):
    """Write frame as CSV to out, or to stdout when out is None."""
    if out is None:
        frame.to_csv(sys.stdout, index=False)
        return
    frame.to_csv(out, index=False)
    print(f"Wrote {len(frame)} rows to {out}")


def warn_diverged_runs(results, lr):
    """Print one stderr warning listing every run whose loss became NaN or inf."""
    diverged = results[results["diverged_epoch"].notna()]
    if diverged.empty:
        return

    several_sizes = results["n_train"].nunique() > 1
    runs = []
    for row in diverged.itertuples():
        size = f" N {row.n_train}" if several_sizes else ""
        runs.append(
            f"width {row.width}{size} seed {row.seed} at epoch {row.diverged_epoch}"
        )
    print(
        f"warning: {len(diverged)} of {len(results)} runs diverged "
        "(loss NaN or infinite): "
        f"{', '.join(runs)}. Their rows are kept; try a learning rate smaller than "
        f"--lr {lr:g}.",
        file=sys.stderr,
    )


def warn_diverged_fit(result, config):
    if result.diverged_epoch is None:
        return
    print(
        f"warning: training diverged at epoch {result.diverged_epoch} "
        "(loss NaN or infinite); "
        f"try a learning rate smaller than --lr {config.lr:g}.",
        file=sys.stderr,
    )


def load_regression_data(path):
    """Load the data file at path, or make the built-in data set if path is None."""
    if path is None:
        return regression_data.make_builtin_data()

    data = regression_data.load_xy_file(path)
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    return data


def fit_work(data, config, extra_epochs=0):
    """Estimated multiply-adds of training the regressor for every epoch allowed."""
    n_samples, d_in = data.x.shape
    d_out = data.y.shape[1]
    macs = training.regressor_macs_per_sample(d_in, d_out)
    return macs * n_samples * (config.max_epochs + extra_epochs)


def fit_summary(result, config, model_mse):
    """Format one line: epochs run, epochs to the target (or why not), final MSE."""
    if result.diverged_epoch is not None:
        outcome = f"stopped: loss diverged at epoch {result.diverged_epoch}"
    elif config.target_loss is None:
        outcome = "no target loss set"
    elif result.epochs_to_target is not None:
        target = f"{config.target_loss:g}"
        outcome = f"target loss {target} reached at epoch {result.epochs_to_target}"
    else:
        outcome = f"target loss {config.target_loss:g} not reached"

    return (
        f"Ran {count_of(len(result.losses), 'epoch')}; {outcome}; "
        f"final epoch train_loss {result.final_loss:.6g} (mean minibatch MSE); "
        f"MSE of the trained model on the whole training set {model_mse:.6g}."
    )


def train_and_report(args, extra_epochs=0):
    """Train the regressor with the settings in args and print the summary line.

    extra_epochs adds work after training, in epochs, to the budget check.
    Returns the model, its FitResult, the data and the TrainConfig.
    """
    data = load_regression_data(args.data)
    config = train_config(args)
    budget.check_work(
        fit_work(data, config, extra_epochs),
        f"Training for {count_of(config.max_epochs, 'epoch')} "
        f"on {count_of(len(data.x), 'sample')}",
        "Use fewer --max-epochs or a smaller data set, or pass a larger --max-work.",
        limit=args.max_work,
    )

    model, result = training.train_regressor(
        data.x, data.y, config, on_epoch=epoch_printer(args)
    )
    print(fit_summary(result, config, training.mse(model, data.x, data.y)))
    warn_diverged_fit(result, config)
    return model, result, data, config


# One function per command. Each returns the exit status.


def run_sweep(args):
    widths = chosen_widths(args)
    budget.check_work(
        budget.sweep_work(widths, args.seeds, args.epochs, args.n_train),
        f"A sweep of {count_of(len(widths), 'width')} x {count_of(args.seeds, 'seed')} "
        f"x {count_of(args.epochs, 'epoch')}",
        "Use fewer widths, seeds or epochs, a smaller --n-train, "
        "or a larger --max-work.",
        limit=args.max_work,
    )

    data = make_teacher_data(
        n_train=args.n_train, noise=args.noise, seed=args.data_seed
    )
    results = sweep.width_sweep(
        data,
        widths,
        range(args.seeds),
        sweep_config(args),
        on_progress=sweep_progress_printer(args),
    )
    write_csv(results, args.out)
    warn_diverged_runs(results, args.lr)
    return 0


def run_more_data(args):
    widths = chosen_widths(args)
    sizes = sorted(set(args.n_train))
    work = sum(budget.sweep_work(widths, args.seeds, args.epochs, n) for n in sizes)
    budget.check_work(
        work,
        f"A sweep of {count_of(len(widths), 'width')} x {count_of(len(sizes), 'size')} "
        f"x {count_of(args.seeds, 'seed')} x {count_of(args.epochs, 'epoch')}",
        "Use fewer widths, sizes, seeds or epochs, or a larger --max-work.",
        limit=args.max_work,
    )

    results = sweep.more_data(
        widths,
        sizes,
        range(args.seeds),
        sweep_config(args),
        noise=args.noise,
        data_seed=args.data_seed,
        on_progress=sweep_progress_printer(args),
    )
    write_csv(results, args.out)
    warn_diverged_runs(results, args.lr)
    return 0


def run_fit(args):
    _, result, _, _ = train_and_report(args)
    if args.out is not None:
        write_csv(fit_history(result), args.out)
    return 0


def fit_history(result):
    epochs = range(1, len(result.losses) + 1)
    return pd.DataFrame({"epoch": epochs, "train_loss": result.losses})


def run_gradnorms(args):
    # The gradient norms cost about one more epoch of forward and backward passes.
    model, _, data, config = train_and_report(args, extra_epochs=1)
    batch_size = args.grad_batch_size or config.batch_size

    # The batches are shuffled with the training seed, as lab/cached.py does,
    # so the command line and the app report the same norms.
    stats = gradnorms.minibatch_grad_norms(
        model, data.x, data.y, batch_size, config.seed
    )
    print_grad_norms(stats)
    if args.out is not None:
        write_csv(grad_norm_table(stats), args.out)
    return 0


def print_grad_norms(stats):
    count = len(stats.norms)
    for batch, norm in enumerate(stats.norms, start=1):
        print(f"batch {batch}: grad_norm {norm:.6g}")
    print(
        f"mean of grad_norm over {count} batches of size {stats.batch_size}: "
        f"{stats.mean:.6g}"
    )
    print(f"std of grad_norm (population, divides by {count}): {stats.std:.6g}")
    print(f"variance of grad_norm (population, the std squared): {stats.variance:.6g}")


def grad_norm_table(stats):
    batches = range(1, len(stats.norms) + 1)
    return pd.DataFrame({"batch": batches, "grad_norm": stats.norms})


def run_data(args):
    data = make_teacher_data(
        n_train=args.n_train, noise=args.noise, seed=args.data_seed
    )
    tensors = {"x": data.x, "y": data.y, "x_test": data.x_test, "y_test": data.y_test}
    torch.save(tensors, args.out)
    print(
        f"Wrote the teacher data (n_train {args.n_train}, noise {args.noise:g}, "
        f"data seed {args.data_seed}) to {args.out}"
    )
    return 0


def run_example_data(args):
    regression_data.write_example_file(args.out)
    print(f"Wrote the Problem 1 example data to {args.out}")
    return 0


# Entry point.


def one_line(exc):
    """Format the message of exc as one line, naming the file of an OSError."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        message = f"{exc.strerror}: {exc.filename}"
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split())


def main(argv=None):
    """Run the command named in argv (default: sys.argv[1:]); return the exit status.

    ValueError covers the engine's checks of settings and its DataFileError
    and WorkBudgetError. --help prints and raises SystemExit(0) as usual.
    """
    # One thread: the matrices are small, and on a busy 2-core machine
    # threads that contend for the cores make training many times slower.
    torch.set_num_threads(1)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE

    try:
        return args.run(args)
    except (ValueError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
