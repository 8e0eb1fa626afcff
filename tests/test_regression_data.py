"""Tests of the Problem 1 data loader, writer and built-in data."""

import io
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ddcore.regression_data import (
    DEFAULT_MAX_ROWS,
    DataFileError,
    RegressionData,
    load_xy_file,
    make_builtin_data,
    save_xy_file,
    write_example_file,
)
from ddcore.training import TrainConfig, train_regressor

EXAMPLE_PATH = Path(__file__).resolve().parent.parent / "examples/problem1_example.pth"


def saved_bytes(obj, **save_options) -> bytes:
    """Content of the file that torch.save writes for obj."""
    buffer = io.BytesIO()
    torch.save(obj, buffer, **save_options)
    return buffer.getvalue()


def xy_bytes(x, y, **extra) -> bytes:
    return saved_bytes({"X_tensor": x, "Y_tensor": y, **extra})


def valid_xy(n_rows=8, d_in=3, d_out=2):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n_rows, d_in, generator=generator)
    y = torch.randn(n_rows, d_out, generator=generator)
    return x, y


class CreateFileOnLoad:
    """Pickles as a call to open(path, "w"), which creates the file when loaded."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# --- Round trip and sources --------------------------------------------------


def test_round_trip_keeps_values(tmp_path):
    x, y = valid_xy()
    path = tmp_path / "data.pth"
    save_xy_file(path, x, y)

    data = load_xy_file(path)

    assert isinstance(data, RegressionData)
    assert torch.equal(data.x, x)
    assert torch.equal(data.y, y)
    assert data.notes == ()
    assert (data.n_samples, data.d_in, data.d_out) == (8, 3, 2)


def test_sources_path_bytes_stream_agree(tmp_path):
    x, y = valid_xy()
    path = tmp_path / "data.pth"
    save_xy_file(path, x, y)
    content = path.read_bytes()

    loaded = [
        load_xy_file(path),
        load_xy_file(str(path)),
        load_xy_file(content),
        load_xy_file(bytearray(content)),
        load_xy_file(io.BytesIO(content)),
    ]

    for data in loaded:
        assert torch.equal(data.x, x)
        assert torch.equal(data.y, y)


def test_legacy_torch_format_loads():
    x, y = valid_xy()
    content = saved_bytes(
        {"X_tensor": x, "Y_tensor": y}, _use_new_zipfile_serialization=False
    )

    data = load_xy_file(content)

    assert torch.equal(data.x, x)
    assert torch.equal(data.y, y)


def test_saved_slice_holds_only_its_rows(tmp_path):
    x, y = valid_xy(n_rows=1000, d_in=50)
    full_path = tmp_path / "full.pth"
    slice_path = tmp_path / "slice.pth"

    save_xy_file(full_path, x, y)
    save_xy_file(slice_path, x[:10], y[:10])

    assert slice_path.stat().st_size < full_path.stat().st_size / 20
    assert load_xy_file(slice_path).n_samples == 10


def test_wrong_source_type_raises_type_error():
    with pytest.raises(TypeError, match="got int"):
        load_xy_file(42)


# --- File-level faults -------------------------------------------------------


def test_empty_file_rejected():
    with pytest.raises(DataFileError, match=r"empty \(0 bytes\)"):
        load_xy_file(b"")


@pytest.mark.parametrize("source_kind", ["bytes", "path", "stream"])
def test_file_over_max_bytes_rejected(tmp_path, source_kind):
    content = xy_bytes(*valid_xy())
    path = tmp_path / "data.pth"
    path.write_bytes(content)
    sources = {"bytes": content, "path": path, "stream": io.BytesIO(content)}

    expected = rf"is {len(content):,} bytes .*over the limit of 1,000 bytes"
    with pytest.raises(DataFileError, match=expected):
        load_xy_file(sources[source_kind], max_bytes=1000)


def test_file_at_max_bytes_accepted():
    content = xy_bytes(*valid_xy())

    data = load_xy_file(content, max_bytes=len(content))

    assert data.n_samples == 8


@pytest.mark.parametrize("legacy_format", [False, True])
@pytest.mark.parametrize("kept_fraction", [0.1, 0.5, 0.99])
def test_truncated_file_rejected(legacy_format, kept_fraction):
    content = saved_bytes(
        {"X_tensor": torch.zeros(50, 10), "Y_tensor": torch.zeros(50, 2)},
        _use_new_zipfile_serialization=not legacy_format,
    )
    truncated = content[: int(len(content) * kept_fraction)]

    with pytest.raises(DataFileError, match="truncated or damaged"):
        load_xy_file(truncated)


def numpy_file_bytes(save_function) -> bytes:
    buffer = io.BytesIO()
    save_function(buffer, np.zeros((3, 2)))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "a PNG image"),
        (b"\xff\xd8\xff\xe0" + bytes(100), "a JPEG image"),
        (b"%PDF-1.7\n" + bytes(100), "a PDF document"),
        (b"x1,x2,y\n0.5,1.5,2.0\n", r"text file starting with 'x1,x2,y"),
        (numpy_file_bytes(np.save), r"NumPy \.npy file"),
        (numpy_file_bytes(np.savez), r"NumPy \.npz archive"),
        (bytes(range(1, 100)), r"starts with the bytes b'\\x01\\x02"),
    ],
    ids=["png", "jpeg", "pdf", "csv", "npy", "npz", "unknown-binary"],
)
def test_other_file_type_rejected(content, expected):
    with pytest.raises(DataFileError, match=expected) as raised:
        load_xy_file(content)

    assert "not a PyTorch file" in str(raised.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_plain_pickle_rejected():
    x, y = valid_xy()
    content = pickle.dumps({"X_tensor": x, "Y_tensor": y})

    with pytest.raises(DataFileError, match="plain Python pickle"):
        load_xy_file(content)


def test_malicious_torch_file_not_run(tmp_path):
    # Control: loading the same kind of payload without weights_only creates
    # its marker, so the check below would notice a loader that ran it.
    control_marker = tmp_path / "control_marker"
    control = saved_bytes({"X_tensor": CreateFileOnLoad(control_marker)})
    torch.load(io.BytesIO(control), weights_only=False)
    assert control_marker.exists()

    marker = tmp_path / "marker"
    content = saved_bytes({"X_tensor": CreateFileOnLoad(marker)})

    with pytest.raises(DataFileError, match=r"other than tensors \(\S*open\)"):
        load_xy_file(content)

    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_plain_pickle_not_run(tmp_path):
    control_marker = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(CreateFileOnLoad(control_marker)))
    assert control_marker.exists()

    marker = tmp_path / "marker"
    content = pickle.dumps({"X_tensor": CreateFileOnLoad(marker)})

    with pytest.raises(DataFileError, match="plain Python pickle"):
        load_xy_file(content)

    assert not marker.exists()


def test_numpy_arrays_rejected_with_hint():
    content = saved_bytes({"X_tensor": np.zeros((3, 2)), "Y_tensor": np.zeros((3, 1))})

    with pytest.raises(DataFileError, match=r"numpy\S*_reconstruct") as raised:
        load_xy_file(content)

    assert "torch.from_numpy" in str(raised.value)


def test_missing_path_rejected(tmp_path):
    path = tmp_path / "absent.pth"

    with pytest.raises(DataFileError, match=f"File not found: {re.escape(str(path))}"):
        load_xy_file(path)


def test_directory_path_rejected(tmp_path):
    with pytest.raises(DataFileError, match="is a directory"):
        load_xy_file(tmp_path)


# --- Structure ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (torch.zeros(4, 3), r"a single tensor of shape \(4, 3\), not a dict"),
        ([torch.zeros(4, 3), torch.zeros(4, 2)], "a list of 2 items, not a dict"),
        ((torch.zeros(4, 3), torch.zeros(4, 2)), "a tuple of 2 items, not a dict"),
        (3.5, "a float, not a dict"),
    ],
    ids=["tensor", "list", "tuple", "float"],
)
def test_not_a_dict_rejected(obj, expected):
    with pytest.raises(DataFileError, match=expected):
        load_xy_file(saved_bytes(obj))


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (("x_tensor", "Y_tensor"), "rename 'x_tensor' to 'X_tensor'"),
        (("X", "Y_tensor"), "rename 'X' to 'X_tensor'"),
        (("X_tensor", "Y_Tensor"), "rename 'Y_Tensor' to 'Y_tensor'"),
        (("X_tensr", "Y_tensor"), "rename 'X_tensr' to 'X_tensor'"),
        (("x", "y"), "rename 'x' to 'X_tensor' and rename 'y' to 'Y_tensor'"),
    ],
)
def test_near_miss_key_hinted(keys, expected):
    x, y = valid_xy()
    content = saved_bytes(dict(zip(keys, (x, y), strict=True)))

    with pytest.raises(DataFileError, match=expected):
        load_xy_file(content)


def test_unrelated_keys_listed():
    x, y = valid_xy()
    content = saved_bytes({"inputs": x, "targets": y})

    with pytest.raises(DataFileError) as raised:
        load_xy_file(content)

    message = str(raised.value)
    assert "Missing keys 'X_tensor', 'Y_tensor'" in message
    assert "keys found: 'inputs', 'targets'" in message
    assert "rename" not in message


def test_empty_dict_lists_no_keys():
    with pytest.raises(DataFileError, match="keys found: none"):
        load_xy_file(saved_bytes({}))


def test_state_dict_recognised():
    content = saved_bytes(torch.nn.Linear(3, 2).state_dict())

    with pytest.raises(DataFileError, match="looks like a model's state_dict"):
        load_xy_file(content)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [([[1.0, 2.0]], "list"), (2.0, "float"), ("data", "str")],
)
def test_value_not_tensor_rejected(value, type_name):
    content = saved_bytes({"X_tensor": value, "Y_tensor": torch.zeros(1, 1)})

    with pytest.raises(DataFileError, match=f"X_tensor is a {type_name}, not a tensor"):
        load_xy_file(content)


def test_sparse_tensor_rejected():
    x, y = valid_xy()

    with pytest.raises(DataFileError, match="layout torch.sparse_coo"):
        load_xy_file(xy_bytes(x.to_sparse(), y))


def test_extra_keys_ignored_with_note():
    x, y = valid_xy()

    data = load_xy_file(xy_bytes(x, y, comment="run 3"))

    assert data.notes == ("Ignored the other keys in the file: 'comment'.",)


# --- Shapes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        (torch.zeros(5, 3), torch.zeros(5), r"Y_tensor has 1 dimension \(shape \(5,"),
        (torch.zeros(5), torch.zeros(5, 2), r"X_tensor has 1 dimension \(shape \(5,"),
        (
            torch.zeros(10, 3),
            torch.zeros(10, 2, 1),
            r"Y_tensor has 3 dimensions \(shape \(10, 2, 1\)\)",
        ),
        (
            torch.zeros(10, 4, 4),
            torch.zeros(10, 2),
            r"X_tensor has 3 dimensions \(shape \(10, 4, 4\)\)",
        ),
        (torch.tensor(1.0), torch.zeros(1, 2), r"X_tensor has 0 dimensions"),
    ],
    ids=["y-1d", "x-1d", "y-3d", "x-3d", "x-0d"],
)
def test_wrong_dimensions_rejected(x, y, expected):
    with pytest.raises(DataFileError, match=expected) as raised:
        load_xy_file(xy_bytes(x, y))

    assert "2-D tensor" in str(raised.value)


def test_row_counts_differ_rejected():
    with pytest.raises(DataFileError, match="X_tensor has 10 rows but Y_tensor has 9"):
        load_xy_file(xy_bytes(torch.zeros(10, 3), torch.zeros(9, 2)))


def test_zero_rows_rejected():
    with pytest.raises(DataFileError, match=r"empty \(0 rows"):
        load_xy_file(xy_bytes(torch.zeros(0, 3), torch.zeros(0, 2)))


def test_single_row_rejected():
    with pytest.raises(DataFileError, match="only 1 row; save at least 2 samples"):
        load_xy_file(xy_bytes(torch.zeros(1, 3), torch.zeros(1, 2)))


def test_zero_columns_rejected():
    expected = r"Y_tensor has 0 columns \(shape \(4, 0\)\)"
    with pytest.raises(DataFileError, match=expected):
        load_xy_file(xy_bytes(torch.zeros(4, 3), torch.zeros(4, 0)))


# --- Limits ------------------------------------------------------------------


def test_too_many_rows_rejected_by_default():
    n_rows = DEFAULT_MAX_ROWS + 1
    content = xy_bytes(torch.zeros(n_rows, 1), torch.zeros(n_rows, 1))

    expected = f"has {n_rows:,} rows, over the limit of {DEFAULT_MAX_ROWS:,}"
    with pytest.raises(DataFileError, match=expected) as raised:
        load_xy_file(content)

    assert "subsample" in str(raised.value)


def test_row_limit_overridable():
    content = xy_bytes(*valid_xy(n_rows=8))

    with pytest.raises(DataFileError, match="8 rows, over the limit of 5"):
        load_xy_file(content, max_rows=5)

    assert load_xy_file(content, max_rows=8).n_samples == 8


@pytest.mark.parametrize(
    ("d_in", "d_out", "expected"),
    [
        (1001, 1, "X_tensor has 1,001 columns, over the limit of 1,000"),
        (1, 1001, "Y_tensor has 1,001 columns, over the limit of 1,000"),
    ],
)
def test_too_many_features_rejected_by_default(d_in, d_out, expected):
    content = xy_bytes(torch.zeros(2, d_in), torch.zeros(2, d_out))

    with pytest.raises(DataFileError, match=expected) as raised:
        load_xy_file(content)

    assert "raise max_features" in str(raised.value)


def test_feature_limit_overridable():
    content = xy_bytes(torch.zeros(2, 1001), torch.zeros(2, 1))

    data = load_xy_file(content, max_features=1001)

    assert data.d_in == 1001


# --- Dtypes and values -------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_integers_converted_with_note(dtype):
    x = torch.arange(12, dtype=dtype).reshape(4, 3)
    y = torch.ones(4, 2)

    data = load_xy_file(xy_bytes(x, y))

    assert data.x.dtype == torch.float32
    assert torch.equal(data.x, x.float())
    assert data.notes == (
        f"X_tensor was converted from {dtype} to torch.float32 (no values changed).",
    )


def test_large_integers_rounding_noted():
    # 2**24 + 1 is the smallest positive integer that float32 cannot hold.
    x = torch.tensor([[2**24 + 1, 1], [3, 4]])

    data = load_xy_file(xy_bytes(x, torch.zeros(2, 1)))

    assert "(1 value was rounded)" in data.notes[0]


def test_float64_rounding_counted():
    x = torch.tensor([[0.1, 0.5], [0.25, 1.0 / 3.0]], dtype=torch.float64)

    data = load_xy_file(xy_bytes(x, torch.zeros(2, 1)))

    assert data.x.dtype == torch.float32
    assert data.notes == (
        "X_tensor was converted from torch.float64 to torch.float32 "
        "(2 values were rounded).",
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_widened_exactly(dtype):
    y = torch.tensor([[0.5], [-1.25]], dtype=dtype)

    data = load_xy_file(xy_bytes(torch.zeros(2, 1), y))

    assert data.y.dtype == torch.float32
    assert data.notes == (
        f"Y_tensor was converted from {dtype} to torch.float32 (no values changed).",
    )


def test_bool_rejected():
    x = torch.zeros(4, 3, dtype=torch.bool)

    with pytest.raises(DataFileError, match="X_tensor has dtype torch.bool"):
        load_xy_file(xy_bytes(x, torch.zeros(4, 2)))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_rejected(dtype):
    y = torch.zeros(4, 2, dtype=dtype)

    with pytest.raises(DataFileError, match=f"Y_tensor has complex dtype {dtype}"):
        load_xy_file(xy_bytes(torch.zeros(4, 3), y))


def test_nan_and_inf_counted():
    x = torch.zeros(5, 4)
    x[0, 0] = float("nan")
    x[1, 2] = float("nan")
    x[3, 3] = float("inf")
    x[4, 1] = float("-inf")

    expected = "X_tensor contains 2 NaN and 2 infinite values out of 20"
    with pytest.raises(DataFileError, match=expected):
        load_xy_file(xy_bytes(x, torch.zeros(5, 1)))


def test_nan_in_targets_named():
    y = torch.tensor([[1.0], [float("nan")]], dtype=torch.float64)

    with pytest.raises(DataFileError, match="Y_tensor contains 1 NaN and 0 infinite"):
        load_xy_file(xy_bytes(torch.zeros(2, 1), y))


def test_float64_overflow_rejected():
    x = torch.tensor([[1e300, 1.0], [-1e40, 2.0]], dtype=torch.float64)

    expected = "X_tensor has 2 values too large for float32"
    with pytest.raises(DataFileError, match=expected):
        load_xy_file(xy_bytes(x, torch.zeros(2, 1)))


# --- Example file and built-in data ------------------------------------------


def test_example_file_loads():
    data = load_xy_file(EXAMPLE_PATH)
    builtin = make_builtin_data()

    assert data.x.shape == (256, 100)
    assert data.y.shape == (256, 2)
    assert data.notes == ()
    assert torch.equal(data.x, builtin.x[:256])
    assert torch.equal(data.y, builtin.y[:256])
    assert EXAMPLE_PATH.stat().st_size < 150_000


def test_write_example_file_creates_folders(tmp_path):
    path = tmp_path / "new_folder" / "example.pth"

    write_example_file(path, n_rows=16)

    data = load_xy_file(path)
    assert (data.n_samples, data.d_in, data.d_out) == (16, 100, 2)


def test_builtin_data_shape_and_scale():
    data = make_builtin_data()

    assert data.x.shape == (512, 100)
    assert data.y.shape == (512, 2)
    assert data.x.dtype == torch.float32
    assert data.y.dtype == torch.float32
    assert data.y.std().item() == pytest.approx(1.0, abs=1e-5)
    assert data.notes == ()


def test_builtin_data_deterministic():
    first = make_builtin_data(seed=3)
    second = make_builtin_data(seed=3)
    other_seed = make_builtin_data(seed=4)

    assert torch.equal(first.x, second.x)
    assert torch.equal(first.y, second.y)
    assert not torch.equal(first.x, other_seed.x)


def test_builtin_data_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)

    torch.manual_seed(123)
    make_builtin_data()
    after = torch.rand(3)

    assert torch.equal(after, expected)


def test_builtin_data_custom_shape():
    data = make_builtin_data(n_samples=64, d_in=7, d_out=3, seed=1)

    assert (data.n_samples, data.d_in, data.d_out) == (64, 7, 3)


@pytest.fixture
def single_thread():
    """Run torch on one intra-op thread for the test, then restore the count.

    The regressor's matrices (batch 64, widths up to 400) are too small to
    split well. On a 2-core machine that other processes were also using, one
    200-epoch run took 2.6 s with one thread and 35 to 80 s with two.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("model_seed", [0, 1])
def test_builtin_data_reaches_target_mse(single_thread, model_seed):
    data = make_builtin_data()
    config = TrainConfig(
        optimizer="adam", lr=1e-4, batch_size=64, max_epochs=200, target_loss=1e-6,
        seed=model_seed,
    )

    _, result = train_regressor(data.x, data.y, config)

    # The untrained regressor starts near the targets' variance of 1.
    assert 0.5 < result.losses[0] < 2.0
    assert result.epochs_to_target is not None
    assert result.epochs_to_target <= 200
