"""Tests of the command line, ``python -m ddcore``.

Most tests call ddcore.cli.main in-process, which saves importing torch for
every run. Two tests start a real ``python -m ddcore`` process. Training
settings are tiny (a few epochs, widths 2 to 28), so the file runs in seconds.
"""

import argparse
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from ddcore import budget, cli, regression_data, training
from ddcore.data import make_teacher_data
from ddcore.models import student_n_params
from ddcore.sweep import RESULT_COLUMNS

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args):
    """Run main(args) in-process; return the exit status, stdout and stderr."""
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def example_file(tmp_path):
    path = tmp_path / "example.pth"
    regression_data.write_example_file(path)
    return path


# sweep


def test_sweep_csv_columns_and_rows(capsys, tmp_path):
    out = tmp_path / "sweep.csv"
    status, stdout, stderr = run_cli(
        capsys,
        "sweep",
        "--widths",
        "28,2",
        "--seeds",
        "2",
        "--epochs",
        "5",
        "--out",
        out,
    )
    assert status == 0
    assert stderr == ""
    assert "Wrote 4 rows" in stdout

    results = pd.read_csv(out)
    assert list(results.columns) == RESULT_COLUMNS
    assert sorted(zip(results["width"], results["seed"], strict=True)) == [
        (2, 0),
        (2, 1),
        (28, 0),
        (28, 1),
    ]
    assert set(results.loc[results["width"] == 28, "n_params"]) == {1265}
    assert set(results.loc[results["width"] == 2, "n_params"]) == {student_n_params(2)}
    assert set(results["n_train"]) == {100}
    assert results["diverged_epoch"].isna().all()
    assert results["train_mse"].notna().all()
    assert results["test_mse"].notna().all()


def test_sweep_prints_csv_without_out(capsys):
    status, stdout, _ = run_cli(
        capsys, "sweep", "--widths", "2,4", "--epochs", "3", "--n-train", "50"
    )
    assert status == 0

    results = pd.read_csv(io.StringIO(stdout))
    assert list(results.columns) == RESULT_COLUMNS
    assert list(results["width"]) == [2, 4]
    assert list(results["seed"]) == [0, 0]
    assert set(results["n_train"]) == {50}


def test_sweep_widths_log(capsys):
    # geomspace(2, 8, 4) is 2, 3.17, 5.04, 8.
    status, stdout, _ = run_cli(
        capsys, "sweep", "--widths-log", "2,8,4", "--epochs", "1"
    )
    assert status == 0
    assert list(pd.read_csv(io.StringIO(stdout))["width"]) == [2, 3, 5, 8]


def test_widths_log_gives_exercise_widths():
    widths = cli.log_spaced_widths("2,60,14")
    assert widths == [2, 3, 4, 5, 6, 8, 10, 13, 17, 22, 28, 36, 47, 60]


def test_sweep_progress_only_when_asked(capsys):
    _, _, quiet_stderr = run_cli(capsys, "sweep", "--widths", "2", "--epochs", "2")
    _, _, progress_stderr = run_cli(
        capsys, "sweep", "--widths", "2", "--epochs", "2", "--progress"
    )
    assert quiet_stderr == ""
    assert "progress: 100%" in progress_stderr


def test_sweep_divergence_warns_and_keeps_rows(capsys):
    # An Adam step of 1e30 overflows float32 on the first steps.
    status, stdout, stderr = run_cli(
        capsys, "sweep", "--widths", "2", "--epochs", "5", "--lr", "1e30"
    )
    assert status == 0

    results = pd.read_csv(io.StringIO(stdout))
    assert len(results) == 1
    diverged_epoch = results.loc[0, "diverged_epoch"]
    assert not pd.isna(diverged_epoch)
    assert stderr.startswith("warning: 1 of 1 runs diverged")
    assert f"width 2 seed 0 at epoch {int(diverged_epoch)}" in stderr
    assert "smaller" in stderr


# more-data


def test_more_data_rows_per_width_size_seed(capsys, tmp_path):
    out = tmp_path / "more.csv"
    status, _, _ = run_cli(
        capsys,
        "more-data",
        "--widths",
        "2,4",
        "--n-train",
        "150,100",
        "--seeds",
        "2",
        "--epochs",
        "3",
        "--out",
        out,
    )
    assert status == 0

    results = pd.read_csv(out)
    assert list(results.columns) == RESULT_COLUMNS
    assert len(results) == 8
    expected = {(w, n, s) for w in (2, 4) for n in (100, 150) for s in (0, 1)}
    assert (
        set(zip(results["width"], results["n_train"], results["seed"], strict=True))
        == expected
    )
    assert set(results["n_train"]) == {100, 150}


# data and example-data


def test_data_matches_make_teacher_data(capsys, tmp_path):
    out = tmp_path / "teacher.pth"
    status, _, _ = run_cli(capsys, "data", "--out", out)
    assert status == 0

    saved = torch.load(out, weights_only=True)
    expected = make_teacher_data()
    assert set(saved) == {"x", "y", "x_test", "y_test"}
    for name in ("x", "y", "x_test", "y_test"):
        assert torch.equal(saved[name], getattr(expected, name)), name


def test_data_passes_settings(capsys, tmp_path):
    out = tmp_path / "teacher.pth"
    status, _, _ = run_cli(
        capsys,
        "data",
        "--out",
        out,
        "--n-train",
        "120",
        "--noise",
        "0.3",
        "--data-seed",
        "5",
    )
    assert status == 0

    saved = torch.load(out, weights_only=True)
    expected = make_teacher_data(n_train=120, noise=0.3, seed=5)
    assert saved["x"].shape == (120, 10)
    assert torch.equal(saved["y"], expected.y)
    assert torch.equal(saved["y_test"], expected.y_test)


def test_example_data_loads(capsys, tmp_path):
    out = tmp_path / "example.pth"
    status, _, _ = run_cli(capsys, "example-data", "--out", out)
    assert status == 0

    data = regression_data.load_xy_file(out)
    builtin = regression_data.make_builtin_data()
    assert data.n_samples == regression_data.EXAMPLE_N_ROWS
    assert torch.equal(data.x, builtin.x[: data.n_samples])


# fit


def test_fit_example_file_writes_history(capsys, tmp_path, example_file):
    out = tmp_path / "history.csv"
    status, stdout, stderr = run_cli(
        capsys, "fit", "--data", example_file, "--max-epochs", "3", "--out", out
    )
    assert status == 0
    assert stderr == ""
    assert "Ran 3 epochs" in stdout
    assert "target loss 1e-06 not reached" in stdout

    history = pd.read_csv(out)
    assert list(history.columns) == ["epoch", "train_loss"]
    assert list(history["epoch"]) == [1, 2, 3]
    final_loss = float(re.search(r"final epoch train_loss (\S+)", stdout).group(1))
    assert final_loss == pytest.approx(history["train_loss"].iloc[-1], rel=1e-5)


def test_fit_stops_at_target(capsys, example_file):
    # The targets have unit standard deviation, so the first epoch's MSE is
    # near 1 and already below a target of 10.
    status, stdout, _ = run_cli(
        capsys,
        "fit",
        "--data",
        example_file,
        "--max-epochs",
        "5",
        "--target-loss",
        "10",
    )
    assert status == 0
    assert "Ran 1 epoch;" in stdout
    assert "target loss 10 reached at epoch 1" in stdout


def test_fit_divergence_warns(capsys, tmp_path, example_file):
    out = tmp_path / "history.csv"
    status, _, stderr = run_cli(
        capsys,
        "fit",
        "--data",
        example_file,
        "--optimizer",
        "sgd",
        "--lr",
        "1000",
        "--max-epochs",
        "5",
        "--out",
        out,
    )
    assert status == 0
    match = re.search(r"warning: training diverged at epoch (\d+)", stderr)
    assert match is not None
    assert "smaller than --lr 1000" in stderr

    history = pd.read_csv(out)
    assert len(history) == int(match.group(1))
    assert not math.isfinite(history["train_loss"].iloc[-1])


# gradnorms


def parse_value(label, text):
    return float(re.search(rf"^{label}[^:]*: (\S+)$", text, re.MULTILINE).group(1))


def test_gradnorms_statistics(capsys, tmp_path, example_file):
    out = tmp_path / "norms.csv"
    status, stdout, _ = run_cli(
        capsys,
        "gradnorms",
        "--data",
        example_file,
        "--max-epochs",
        "1",
        "--grad-batch-size",
        "100",
        "--out",
        out,
    )
    assert status == 0

    # 256 example rows in batches of 100: 100, 100 and 56.
    printed_norms = [
        float(v)
        for v in re.findall(r"^batch \d+: grad_norm (\S+)$", stdout, re.MULTILINE)
    ]
    assert len(printed_norms) == 3

    mean = parse_value("mean of grad_norm", stdout)
    std = parse_value("std of grad_norm", stdout)
    variance = parse_value("variance of grad_norm", stdout)
    assert mean == pytest.approx(sum(printed_norms) / 3, rel=1e-5)
    assert std**2 == pytest.approx(variance, rel=1e-5)
    assert variance > 0

    table = pd.read_csv(out)
    assert list(table.columns) == ["batch", "grad_norm"]
    assert list(table["batch"]) == [1, 2, 3]
    assert list(table["grad_norm"]) == pytest.approx(printed_norms, rel=1e-5)


def test_gradnorms_default_batch_is_training_batch(capsys, example_file):
    status, stdout, _ = run_cli(
        capsys,
        "gradnorms",
        "--data",
        example_file,
        "--max-epochs",
        "1",
        "--batch-size",
        "128",
    )
    assert status == 0
    assert "over 2 batches of size 128" in stdout


# --help


def command_parsers():
    parser = cli.build_parser()
    subparsers = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    return subparsers.choices


@pytest.mark.parametrize(
    "command", ["sweep", "more-data", "fit", "gradnorms", "data", "example-data"]
)
def test_help_states_every_default(command):
    parser = command_parsers()[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert "(default:" in action.help or "(required)" in action.help, (
            action.option_strings
        )


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            "sweep",
            [
                "(default: 0.001)",
                "(default: 2000)",
                "(default: 2,3,4,5,6,8,10,13,17,22,28,36,47,60)",
                "(default: 100)",
                "(default: 0.1)",
                "(default: 78798)",
                "(default: 1)",
                "(default: full batch",
            ],
        ),
        ("more-data", ["(default: 100,500)", "(default: 0.001)"]),
        (
            "fit",
            [
                "(default: adam)",
                "(default: 0.0001)",
                "(default: 64)",
                "(default: 200)",
                "(default: 1e-06)",
                "(default: 0.0)",
                "(default: 0)",
            ],
        ),
        ("gradnorms", ["(default: the training --batch-size)"]),
    ],
)
def test_help_shows_default_values(capsys, command, expected):
    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--help"])
    assert stop.value.code == 0

    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for default in expected:
        assert default in text


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for command in command_parsers():
        assert command in text


# Errors


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["sweep", "--widths", "2,a"], "--widths: 'a' is not an integer"),
        (["sweep", "--widths", "0,4"], "--widths: 0 is invalid"),
        (["sweep", "--widths", ""], "empty item"),
        (["sweep", "--widths", "2,,4"], "'2,,4' has an empty item"),
        (["sweep", "--widths-log", "10,5,3"], "smallest width (10) is above the largest (5)"),
        (["sweep", "--widths-log", "2,8"], "'2,8' has 2 values"),
        (["sweep", "--seeds", "1.5"], "--seeds: '1.5' is not an integer"),
        (["sweep", "--noise", "-0.5"], "--noise: -0.5 is invalid"),
        (["sweep", "--lr", "0"], "--lr: 0 is invalid"),
        (["sweep", "--lr", "inf"], "--lr: inf is invalid"),
        (
            ["sweep", "--out", "no-such-folder/sweep.csv"],
            "'no-such-folder' does not exist",
        ),
        (["more-data", "--n-train", "100,x"], "--n-train: 'x' is not an integer"),
        (["fit", "--lr", "-1"], "--lr: -1 is invalid"),
        (["fit", "--optimizer", "lbfgs"], "'lbfgs'"),
        (["fit", "--data", "no-such-file.pth"], "no-such-file.pth"),
        (["data"], "--out"),
        (["frobnicate"], "'frobnicate'"),
    ],
)
def test_bad_input_one_line_error(capsys, args, fragment):
    status, stdout, stderr = run_cli(capsys, *args)
    assert status != 0
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1
    assert stderr.startswith("error: ")
    assert fragment in stderr
    assert "Traceback" not in stderr


def test_invalid_data_file_rejected(capsys, tmp_path):
    path = tmp_path / "data.csv.pth"
    path.write_text("x,y\n1,2\n")
    status, _, stderr = run_cli(capsys, "fit", "--data", path)
    assert status == 1
    assert stderr.startswith("error: The file is a text file")
    assert len(stderr.strip().splitlines()) == 1


def test_sweep_over_budget_rejected(capsys, tmp_path):
    out = tmp_path / "sweep.csv"
    status, stdout, stderr = run_cli(
        capsys, "sweep", "--widths", "60", "--max-work", "1e6", "--out", out
    )
    estimate = budget.sweep_work([60], 1, 2000, 100)
    assert status == 1
    assert stdout == ""
    assert f"about {estimate:.2g} multiply-adds" in stderr
    assert "over the limit of 1e+06" in stderr
    assert "--max-work" in stderr
    assert not out.exists()


def test_more_data_over_budget_sums_sizes(capsys):
    status, _, stderr = run_cli(
        capsys,
        "more-data",
        "--widths",
        "10",
        "--n-train",
        "100,300",
        "--max-work",
        "1e6",
    )
    estimate = budget.sweep_work([10], 1, 2000, 100) + budget.sweep_work(
        [10], 1, 2000, 300
    )
    assert status == 1
    assert f"about {estimate:.2g} multiply-adds" in stderr


def test_fit_over_env_budget_rejected(capsys, monkeypatch):
    monkeypatch.setenv(budget.MAX_WORK_ENV, "1e6")
    status, _, stderr = run_cli(capsys, "fit")
    data = regression_data.make_builtin_data()
    estimate = (
        training.regressor_macs_per_sample(data.d_in, data.d_out) * data.n_samples * 200
    )
    assert status == 1
    assert f"about {estimate:.2g} multiply-adds" in stderr


def test_max_work_overrides_env_budget(capsys, monkeypatch, example_file):
    monkeypatch.setenv(budget.MAX_WORK_ENV, "1")
    status, stdout, _ = run_cli(
        capsys, "fit", "--data", example_file, "--max-epochs", "1", "--max-work", "1e12"
    )
    assert status == 0
    assert "Ran 1 epoch;" in stdout


# Real processes


def run_module(*args):
    return subprocess.run(
        [sys.executable, "-m", "ddcore", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_module_runs_sweep():
    finished = run_module("sweep", "--widths", "2,4", "--epochs", "2")
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == ""

    results = pd.read_csv(io.StringIO(finished.stdout))
    assert list(results.columns) == RESULT_COLUMNS
    assert list(results["width"]) == [2, 4]


def test_module_bad_width_one_line():
    finished = run_module("sweep", "--widths", "2,x")
    assert finished.returncode == 2
    assert finished.stderr == "error: argument --widths: 'x' is not an integer\n"
    assert finished.stdout == ""
