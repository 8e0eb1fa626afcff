"""Smoke test of benchmarks/bench_sweep.py: a short run prints its report."""

import importlib.util
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest

BENCH_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sweep.py"


def load_bench_module():
    # benchmarks/ is a folder of scripts, not a package, so load the file by path.
    spec = importlib.util.spec_from_file_location("bench_sweep", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_report():
    bench = load_bench_module()
    output = StringIO()
    with redirect_stdout(output):
        exit_code = bench.main(["--quick", "--repeats", "1", "--widths", "2,8"])
    return exit_code, output.getvalue()


def test_quick_run_exits_zero(quick_report):
    exit_code, _ = quick_report
    assert exit_code == 0


@pytest.mark.parametrize(
    "ratio_name",
    [
        "(a) per-model loop / engine",
        "(a) MLPRegressor / engine",
        "(b) engine 10 seeds / per-model loop 1 seed",
        "(c) per-model loop / engine",
        "(c) MLPRegressor / engine",
    ],
)
def test_quick_run_prints_ratio(quick_report, ratio_name):
    _, report = quick_report
    lines = [line for line in report.splitlines() if line.strip().startswith(ratio_name)]
    assert len(lines) == 1, f"no single line for {ratio_name!r} in:\n{report}"

    # The ratio itself is the first number after the name.
    ratio = float(lines[0].split(ratio_name, 1)[1].split()[0])
    assert ratio > 0


def test_quick_run_prints_targets_and_load(quick_report):
    _, report = quick_report
    assert "target >= 25" in report
    assert "target >= 8" in report
    assert "target < 0.25" in report
    assert "load average (1, 5, 15 min) at start" in report


def test_quick_run_engine_matches_loop(quick_report):
    # Engine and loop train the same network with the same optimizer, so a
    # warning here means one of them trains something else.
    _, report = quick_report
    sanity = [line for line in report.splitlines() if "per-model loop" in line and "engine" in line
              and "ratio" in line]
    assert len(sanity) == 2
    for line in sanity:
        assert "similar" in line, line


def test_quick_run_estimates_b_without_full(quick_report):
    _, report = quick_report
    assert "per-model loop, 10 seeds, 1 thread" in report
    assert "estimated: 10 x (a)" in report


def test_invalid_widths_rejected(capsys):
    bench = load_bench_module()
    with pytest.raises(SystemExit) as stop:
        bench.parse_args(["--widths", "2,x"])
    assert stop.value.code == 2
    assert "invalid width list '2,x'" in capsys.readouterr().err
