"""Problem 1 data: load and validate an uploaded (X, Y) file, or generate one.

Problem 1 trains an MLP regressor d -> 400 -> 200 -> 100 -> k until the
epoch-mean minibatch MSE drops below 1e-6. Its data comes from a .pth file
written by ``torch.save({"X_tensor": x, "Y_tensor": y}, path)``, where x has
shape (n_samples, d) and y has shape (n_samples, k).

Files are read only with ``torch.load(..., weights_only=True)``, which
rebuilds tensors and plain containers but rejects any other Python object.
An unrestricted load would run whatever code the file's pickle names, so a
rejected file is reported and never loaded again another way.
"""

import difflib
import io
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

X_KEY = "X_tensor"
Y_KEY = "Y_tensor"
REQUIRED_KEYS = (X_KEY, Y_KEY)

# Upload limits, which keep one upload small enough to train interactively on
# a CPU. 50,000 rows are about 780 Adam steps per epoch at batch size 64, so
# 200 epochs of the 100-input regressor take an estimated 4 minutes on one
# thread (at the 1.5 ms per step measured on the built-in data). 20 MB fits
# about 49,000 rows of 100 float32 inputs and 2 outputs. 1,000 features make
# the first layer 400,000 weights, about three times the rest of the network.
DEFAULT_MAX_BYTES = 20_000_000
DEFAULT_MAX_ROWS = 50_000
DEFAULT_MAX_FEATURES = 1_000

MIN_ROWS = 2

# Built-in data. d_in and d_out are those of the course's private file, and
# 512 samples keep a 200-epoch run to a few seconds on one CPU thread.
BUILTIN_N_SAMPLES = 512
BUILTIN_D_IN = 100
BUILTIN_D_OUT = 2
BUILTIN_SEED = 0
BUILTIN_TEACHER_WIDTH = 20

EXAMPLE_N_ROWS = 256

# float32 has a 24-bit significand, so integers up to 2**24 convert exactly.
FLOAT32_EXACT_INT_LIMIT = 2**24

SAVE_HINT = 'torch.save({"X_tensor": x, "Y_tensor": y}, "data.pth")'


class DataFileError(ValueError):
    """Invalid Problem 1 data file; the message names the fault and the fix."""


@dataclass(frozen=True, eq=False)
class RegressionData:
    """Inputs and targets of Problem 1 as float32 tensors.

    eq=False because == on tensors compares element-wise, so the generated
    field-by-field __eq__ would raise on any data set of more than one value.
    """

    x: torch.Tensor  # shape (n_samples, d_in)
    y: torch.Tensor  # shape (n_samples, d_out)
    notes: tuple[str, ...] = ()  # conversions made while loading

    @property
    def n_samples(self) -> int:
        return self.x.shape[0]

    @property
    def d_in(self) -> int:
        return self.x.shape[1]

    @property
    def d_out(self) -> int:
        return self.y.shape[1]


# --- Loading -----------------------------------------------------------------


def load_xy_file(
    source,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_features: int = DEFAULT_MAX_FEATURES,
) -> RegressionData:
    """Load and validate a Problem 1 data file.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray, memoryview or binary file
        The file's path, its content, or an open binary file (such as a
        Streamlit UploadedFile), read from its current position.
    max_bytes, max_rows, max_features : int
        Limits on the file size, on n_samples, and on each of d and k.

    Returns
    -------
    RegressionData
        X_tensor and Y_tensor as float32, with a note for every conversion
        made and for any other keys that were ignored.

    Raises
    ------
    DataFileError
        For every fault in the file, with a message that names the value
        found and the fix.
    """
    content = read_source_bytes(source, max_bytes)
    loaded = unpickle_tensors(content)
    x, y, notes = extract_xy(loaded)

    check_shapes(x, y)
    check_limits(x, y, max_rows, max_features)
    for name, tensor in ((X_KEY, x), (Y_KEY, y)):
        check_dtype(name, tensor)
        check_finite(name, tensor)

    x32, x_note = convert_to_float32(X_KEY, x)
    y32, y_note = convert_to_float32(Y_KEY, y)
    notes += [note for note in (x_note, y_note) if note]
    return RegressionData(x=x32, y=y32, notes=tuple(notes))


def read_source_bytes(source, max_bytes: int) -> bytes:
    """Read the whole file from a path, a bytes object or a binary file."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        content = bytes(source)
        check_size(len(content), max_bytes)
    elif isinstance(source, (str, os.PathLike)):
        content = read_path_bytes(Path(source), max_bytes)
    elif hasattr(source, "read"):
        content = read_stream_bytes(source, max_bytes)
    else:
        raise TypeError(
            "source must be a path, bytes or a binary file object, "
            f"got {type(source).__name__}"
        )

    if not content:
        raise DataFileError(
            f"The file is empty (0 bytes); save the data again with {SAVE_HINT}."
        )
    return content


def read_path_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        check_size(path.stat().st_size, max_bytes)
        return path.read_bytes()
    except FileNotFoundError as error:
        raise DataFileError(f"File not found: {path}; check the path.") from error
    except IsADirectoryError as error:
        raise DataFileError(
            f"{path} is a directory; give the path of a .pth file."
        ) from error
    except OSError as error:
        raise DataFileError(
            f"Could not read {path}: {error.strerror}; check that the file exists "
            "and is readable."
        ) from error


def read_stream_bytes(stream, max_bytes: int) -> bytes:
    # Reading one byte past the limit shows whether the file exceeds it
    # without reading all of a huge file into memory.
    content = stream.read(max_bytes + 1)
    if not isinstance(content, bytes):
        raise TypeError(
            f"the file object returned {type(content).__name__}, not bytes; "
            "open the file in binary mode ('rb')"
        )
    if len(content) > max_bytes:
        size = stream_size(stream)
        check_size(size if size is not None else len(content), max_bytes)
    return content


def stream_size(stream) -> int | None:
    """Total size of a seekable stream in bytes, or None if it cannot seek."""
    try:
        position = stream.tell()
        size = stream.seek(0, io.SEEK_END)
        stream.seek(position)
        return size
    except (AttributeError, OSError):
        return None


def check_size(n_bytes: int, max_bytes: int) -> None:
    if n_bytes > max_bytes:
        raise DataFileError(
            f"The file is {format_size(n_bytes)}, over the limit of "
            f"{format_size(max_bytes)}; save fewer rows, or float32 "
            "instead of float64 (x.float()), or raise max_bytes."
        )


def format_size(n_bytes: int) -> str:
    return f"{n_bytes:,} bytes ({n_bytes / 1_000_000:.1f} MB)"


# --- Unpickling ----------------------------------------------------------------


def unpickle_tensors(content: bytes):
    """Run torch.load with weights_only=True and translate its failures.

    A file that is clearly some other format is rejected before torch.load
    reads it, because torch.load reports those with unrelated messages.
    """
    other_format = describe_other_format(content)
    if other_format is not None:
        raise DataFileError(
            f"The file is {other_format}, not a PyTorch file; save the data with "
            f"{SAVE_HINT}."
        )

    try:
        return torch.load(io.BytesIO(content), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise unpickling_error(content, error) from error
    # torch.load raises many exception types on damaged input (EOFError,
    # RuntimeError from the zip reader, IndexError, KeyError, ...), so every
    # other failure is reported by what the file looks like.
    except Exception as error:
        raise unreadable_file_error(content, error) from error


# Leading bytes of formats that are sometimes renamed to .pth by mistake.
FILE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x93NUMPY", "a NumPy .npy file (load it and convert with torch.from_numpy)"),
    (b"\x89HDF", "an HDF5 file"),
)

# torch.save writes a zip archive, or with the legacy format a pickle stream.
ZIP_SIGNATURE = b"PK\x03\x04"
PICKLE_PROTOCOL_OPCODE = b"\x80"

# The legacy torch.save format begins with this number, pickled (protocol 2).
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."


def describe_other_format(content: bytes) -> str | None:
    """Name the file's format if it is certainly not a torch.save file."""
    for signature, description in FILE_SIGNATURES:
        if content.startswith(signature):
            return description

    if content.startswith(ZIP_SIGNATURE):
        return describe_zip_if_not_torch(content)
    if content.startswith(PICKLE_PROTOCOL_OPCODE):
        return None

    text_start = decode_text_start(content)
    if text_start is not None:
        return f"a text file starting with {text_start!r} (a CSV file?)"
    return None


def describe_zip_if_not_torch(content: bytes) -> str | None:
    # torch.save puts every entry under one folder, such as "archive/data.pkl".
    # The first entry's name follows the 30-byte local file header, and its
    # length is the little-endian 16-bit field at offset 26.
    name_length = int.from_bytes(content[26:28], "little")
    if len(content) < 30 + name_length:
        return None  # too short to tell; torch.load reports it as truncated
    first_name = content[30 : 30 + name_length].decode("utf-8", errors="replace")
    if "/" in first_name:
        return None
    if first_name.endswith(".npy"):
        return "a NumPy .npz archive (load it and convert with torch.from_numpy)"
    return f"a zip archive whose first entry is {first_name!r}"


def decode_text_start(content: bytes, n_chars: int = 40) -> str | None:
    """Return the file's first characters if its first kilobyte is printable UTF-8."""
    head = content[:1024]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the 1 kB boundary is still text.
        if error.start < len(head) - 3:
            return None
        text = head[: error.start].decode("utf-8")

    if not all(char.isprintable() or char in "\t\r\n" for char in text):
        return None
    return text[:n_chars]


def looks_like_torch_file(content: bytes) -> bool:
    return content.startswith(ZIP_SIGNATURE) or content.startswith(LEGACY_TORCH_MAGIC)


def unpickling_error(content: bytes, error: pickle.UnpicklingError) -> DataFileError:
    """Describe why the weights-only unpickler rejected the file."""
    if not looks_like_torch_file(content):
        return unreadable_file_error(content, error)

    message = str(error)
    found = re.search(r"GLOBAL ([\w.]+) was not an allowed global", message)
    if found is None:
        return DataFileError(
            "The file could not be read as tensors only (the weights-only loader "
            f"reported: {weights_only_detail(message)}), so it is damaged or "
            "contains objects other than tensors, which are rejected for safety; "
            f"save only tensors with {SAVE_HINT}."
        )

    global_name = found.group(1)
    hint = ""
    if global_name.startswith("numpy"):
        hint = " Convert NumPy arrays with torch.from_numpy(array) first."
    return DataFileError(
        f"The file contains objects other than tensors ({global_name}) and is "
        "rejected for safety, because loading them could run code; save only "
        f"tensors with {SAVE_HINT}.{hint}"
    )


def weights_only_detail(message: str) -> str:
    """Extract the specific reason from torch's long weights-only error message."""
    _, _, detail = message.partition("WeightsUnpickler error:")
    detail_lines = [line.strip() for line in detail.splitlines() if line.strip()]
    return detail_lines[0] if detail_lines else first_sentence(message)


def unreadable_file_error(content: bytes, error: Exception) -> DataFileError:
    """Describe a file that torch.load failed to read."""
    if looks_like_torch_file(content):
        return DataFileError(
            f"The file is truncated or damaged (PyTorch could not read it: "
            f"{first_sentence(error)}); upload it again or save it again with "
            f"{SAVE_HINT}."
        )
    if content.startswith(PICKLE_PROTOCOL_OPCODE):
        return DataFileError(
            "The file is a plain Python pickle, not a file written by torch.save; "
            f"save the data with {SAVE_HINT}."
        )
    return DataFileError(
        f"The file is not a PyTorch file (it starts with the bytes {content[:8]!r}); "
        f"save the data with {SAVE_HINT}."
    )


def first_sentence(error) -> str:
    """Return the first sentence of an error message (torch's run to paragraphs)."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    first = text.splitlines()[0]
    return first.split(". ")[0].rstrip(".")


# --- Structure -----------------------------------------------------------------


def extract_xy(loaded) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Take X_tensor and Y_tensor from the loaded dict, checking both are tensors.

    Returns the two tensors and a list of notes about ignored keys.
    """
    if not isinstance(loaded, dict):
        raise DataFileError(not_a_dict_message(loaded))

    missing = [key for key in REQUIRED_KEYS if key not in loaded]
    if missing:
        raise DataFileError(missing_keys_message(missing, list(loaded)))

    for key in REQUIRED_KEYS:
        value = loaded[key]
        if not isinstance(value, torch.Tensor):
            raise DataFileError(
                f"{key} is a {type(value).__name__}, not a tensor; convert it with "
                "torch.tensor(value, dtype=torch.float32) before saving."
            )
        if value.layout != torch.strided:
            raise DataFileError(
                f"{key} is a tensor with layout {value.layout}; save a dense tensor "
                "(value.to_dense())."
            )

    notes = []
    extra_keys = [key for key in loaded if key not in REQUIRED_KEYS]
    if extra_keys:
        notes.append(f"Ignored the other keys in the file: {format_keys(extra_keys)}.")
    return loaded[X_KEY].detach(), loaded[Y_KEY].detach(), notes


def not_a_dict_message(loaded) -> str:
    kind = type(loaded).__name__
    if isinstance(loaded, torch.Tensor):
        found = f"a single tensor of shape {tuple(loaded.shape)}"
    elif isinstance(loaded, (list, tuple)):
        found = f"a {kind} of {len(loaded)} items"
    else:
        found = f"a {kind}"
    return f"The file contains {found}, not a dict; save the data with {SAVE_HINT}."


def missing_keys_message(missing: list[str], found_keys: list) -> str:
    hints = []
    for key in missing:
        match = closest_key(key, found_keys)
        if match is not None:
            hints.append(f"rename {match!r} to {key!r}")

    noun = "key" if len(missing) == 1 else "keys"
    message = f"Missing {noun} {format_keys(missing)} (keys found: "
    message += f"{format_keys(found_keys) or 'none'})"
    if hints:
        message += f"; {' and '.join(hints)}"
    message += f"; save the data with {SAVE_HINT}."
    if looks_like_state_dict(found_keys):
        message += " The file looks like a model's state_dict, not a data file."
    return message


def closest_key(expected: str, found_keys: list) -> str | None:
    """Find the key that most likely means `expected`, such as 'x' for 'X_tensor'."""
    string_keys = [key for key in found_keys if isinstance(key, str)]
    expected_stem = key_stem(expected)
    for key in string_keys:
        if key_stem(key) == expected_stem:
            return key

    lowered = {key.lower(): key for key in string_keys}
    matches = difflib.get_close_matches(expected.lower(), list(lowered), n=1)
    return lowered[matches[0]] if matches else None


def key_stem(key: str) -> str:
    """Lower-case a key, dropping underscores and "tensor": 'X_Tensor' -> 'x'."""
    return key.lower().replace("_", "").removesuffix("tensor")


def looks_like_state_dict(keys: list) -> bool:
    return any(
        isinstance(key, str)
        and (key in ("weight", "bias") or key.endswith((".weight", ".bias")))
        for key in keys
    )


def format_keys(keys: list) -> str:
    return ", ".join(repr(key) for key in keys)


# --- Shapes, limits and values -----------------------------------------------


def check_shapes(x: torch.Tensor, y: torch.Tensor) -> None:
    for name, tensor in ((X_KEY, x), (Y_KEY, y)):
        check_two_dimensional(name, tensor)

    if x.shape[0] != y.shape[0]:
        raise DataFileError(
            f"X_tensor has {x.shape[0]} rows but Y_tensor has {y.shape[0]}; "
            "save one row of Y_tensor for each row of X_tensor."
        )

    n_rows = x.shape[0]
    if n_rows == 0:
        raise DataFileError(
            f"X_tensor and Y_tensor are empty (0 rows, shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)}); save at least {MIN_ROWS} samples, one per row."
        )
    if n_rows < MIN_ROWS:
        raise DataFileError(
            f"X_tensor and Y_tensor have only {n_rows} row; save at least "
            f"{MIN_ROWS} samples, one per row."
        )


def check_two_dimensional(name: str, tensor: torch.Tensor) -> None:
    columns = "n_features" if name == X_KEY else "n_outputs"
    shape = tuple(tensor.shape)
    if tensor.ndim == 1:
        raise DataFileError(
            f"{name} has 1 dimension (shape {shape}); save it as a 2-D tensor of "
            f"shape (n_samples, {columns}), for one column with "
            f"{name}.reshape(-1, 1)."
        )
    if tensor.ndim != 2:
        raise DataFileError(
            f"{name} has {tensor.ndim} dimensions (shape {shape}); save it as a "
            f"2-D tensor of shape (n_samples, {columns}), for example with "
            f"{name}.reshape(len({name}), -1)."
        )
    if tensor.shape[1] == 0:
        raise DataFileError(
            f"{name} has 0 columns (shape {shape}); save it with at least one "
            "column."
        )


def check_limits(
    x: torch.Tensor, y: torch.Tensor, max_rows: int, max_features: int
) -> None:
    n_rows = x.shape[0]
    if n_rows > max_rows:
        raise DataFileError(
            f"The file has {n_rows:,} rows, over the limit of {max_rows:,}; "
            f"subsample the rows (for example x[:{max_rows}] and y[:{max_rows}]) "
            "or raise max_rows."
        )

    for name, tensor in ((X_KEY, x), (Y_KEY, y)):
        n_columns = tensor.shape[1]
        if n_columns > max_features:
            raise DataFileError(
                f"{name} has {n_columns:,} columns, over the limit of "
                f"{max_features:,}; keep fewer columns (for example with PCA) or "
                "raise max_features."
            )


INTEGER_DTYPES = frozenset(
    (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    + tuple(
        getattr(torch, name)
        for name in ("uint16", "uint32", "uint64")
        if hasattr(torch, name)
    )
)


def check_dtype(name: str, tensor: torch.Tensor) -> None:
    dtype = tensor.dtype
    if dtype == torch.bool:
        raise DataFileError(
            f"{name} has dtype torch.bool; regression needs numbers, so save it as "
            f"{name}.float() if 0/1 values are meant."
        )
    if dtype.is_complex:
        raise DataFileError(
            f"{name} has complex dtype {dtype}; the regressor needs real numbers, so "
            "save the real and imaginary parts as separate columns."
        )
    if not (dtype.is_floating_point or dtype in INTEGER_DTYPES):
        raise DataFileError(
            f"{name} has unsupported dtype {dtype}; save it as float32 with .float()."
        )


def check_finite(name: str, tensor: torch.Tensor) -> None:
    if not tensor.dtype.is_floating_point:
        return

    n_nan = int(torch.isnan(tensor).sum())
    n_inf = int(torch.isinf(tensor).sum())
    if n_nan or n_inf:
        raise DataFileError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite values out of "
            f"{tensor.numel():,}; remove or replace those rows before saving."
        )


def convert_to_float32(name: str, tensor: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Convert to float32; return the tensor and a note, empty if nothing changed."""
    if tensor.dtype == torch.float32:
        return tensor.contiguous(), ""

    converted = tensor.to(torch.float32).contiguous()

    n_overflow = int(torch.isinf(converted).sum())
    if n_overflow:
        raise DataFileError(
            f"{name} has {n_overflow} values too large for float32 (beyond about "
            "3.4e38); rescale the data before saving."
        )

    n_changed = count_changed_values(tensor, converted)
    if n_changed == 0:
        effect = "no values changed"
    elif n_changed == 1:
        effect = "1 value was rounded"
    else:
        effect = f"{n_changed:,} values were rounded"
    note = f"{name} was converted from {tensor.dtype} to torch.float32 ({effect})."
    return converted, note


def count_changed_values(original: torch.Tensor, converted: torch.Tensor) -> int:
    if original.dtype in INTEGER_DTYPES:
        # Only integers beyond 2**24 can round, so small tensors skip the copy.
        if int(original.abs().max()) <= FLOAT32_EXACT_INT_LIMIT:
            return 0
        return int((converted.to(torch.float64) != original.to(torch.float64)).sum())
    return int((converted.to(original.dtype) != original).sum())


# --- Writing -----------------------------------------------------------------


def save_xy_file(path, x: torch.Tensor, y: torch.Tensor) -> None:
    """Write x and y in the upload format {"X_tensor": x, "Y_tensor": y}.

    The tensors are written as given. Nothing is validated here, because
    load_xy_file performs every check when the file is read back.
    """
    # torch.save writes a view's whole underlying storage, so a slice such as
    # x[:256] would carry every row of the original. clone() copies only the
    # visible elements.
    data = {X_KEY: x.detach().clone(), Y_KEY: y.detach().clone()}
    torch.save(data, path)


def write_example_file(path, n_rows: int = EXAMPLE_N_ROWS) -> None:
    """Write the first n_rows of the built-in data as an example upload file.

    With the default 256 rows of 100 inputs and 2 outputs the file is about
    105 kB, and the regressor reached an MSE below 1e-6 on it after about 150
    epochs (model seeds 0 and 1). Missing parent folders are created.
    """
    data = make_builtin_data()
    if not 1 <= n_rows <= data.n_samples:
        raise ValueError(f"n_rows must be between 1 and {data.n_samples}, got {n_rows}")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_xy_file(path, data.x[:n_rows], data.y[:n_rows])


# --- Built-in data -------------------------------------------------------------


def make_builtin_data(
    n_samples: int = BUILTIN_N_SAMPLES,
    d_in: int = BUILTIN_D_IN,
    d_out: int = BUILTIN_D_OUT,
    seed: int = BUILTIN_SEED,
) -> RegressionData:
    """Generate regression data that replaces the course's private data file.

    Inputs are standard normal. Targets come from a random one-hidden-layer
    tanh teacher with 20 units, and are then scaled to unit standard deviation,
    so the untrained regressor starts with an MSE near 1. All draws come from
    a torch.Generator seeded with `seed`, so the data is the same on every call.

    Measured with ddcore.training.train_regressor (Adam, lr 1e-4, batch size
    64): the epoch-mean MSE fell below 1e-6 after 127 to 137 epochs for model
    seeds 0 to 4 on the default data, and after 131 to 141 epochs for data
    seeds 1 to 4 (model seeds 0 and 1). One run took about 1.5 s on one CPU
    thread (torch 2.13).
    """
    if n_samples < MIN_ROWS:
        raise ValueError(f"n_samples must be at least {MIN_ROWS}, got {n_samples}")
    if d_in < 1 or d_out < 1:
        raise ValueError(f"d_in and d_out must be at least 1, got {d_in} and {d_out}")

    generator = torch.Generator().manual_seed(seed)

    # The teacher is drawn first, so it does not depend on n_samples.
    width = BUILTIN_TEACHER_WIDTH
    hidden_weights = torch.randn(d_in, width, generator=generator) / math.sqrt(d_in)
    output_weights = torch.randn(width, d_out, generator=generator) / math.sqrt(width)

    x = torch.randn(n_samples, d_in, generator=generator)
    y = torch.tanh(x @ hidden_weights) @ output_weights
    y = y / y.std()
    return RegressionData(x=x, y=y)
