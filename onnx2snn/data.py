"""Data for calibration and evaluation: .npz files matched to a model's inputs.

An .npz holds arrays keyed by the model's input names; for a single-input
model any one array is accepted (besides the labels). Arrays are checked for
shape, dtype and NaN/Inf before any run, and served in batches through the
data-reader protocol of onnxruntime's quantization tool: ``get_next()``
returns a feed dict or None when exhausted.
"""
from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import onnx

from .errors import CalibrationError, DataError

_ONNX_TO_NP = {1: np.float32, 10: np.float16, 11: np.float64, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16,
               6: np.int32, 7: np.int64, 9: np.bool_, 12: np.uint32, 13: np.uint64}


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple  # ints for static dims, None for dynamic ones
    dtype: np.dtype

    @property
    def fixed_batch(self) -> int | None:
        return self.shape[0] if self.shape and isinstance(self.shape[0], int) else None


def model_inputs(model: onnx.ModelProto) -> list[InputSpec]:
    """The inputs a user feeds (initializers listed as inputs excluded)."""
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
        specs.append(InputSpec(vi.name, dims, np.dtype(_ONNX_TO_NP.get(tt.elem_type, np.float32))))
    return specs


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"


def load_npz(path: str | os.PathLike, what: str = "data") -> dict[str, np.ndarray]:
    """All arrays of an .npz file; DataError if it is missing, a directory or not an .npz of arrays."""
    hint = "write it with numpy.savez(path, <input name>=array)"
    if os.path.isdir(path):
        raise DataError(f"{what} path '{path}' is a directory; give an .npz file of arrays keyed by input name")
    if not os.path.isfile(path):
        raise DataError(f"{what} file '{path}' does not exist (give an .npz of arrays keyed by input name)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"{what} file '{path}' cannot be read ({exc.strerror or type(exc).__name__})") from None
    if head.startswith(_NPY_MAGIC):
        raise DataError(f"{what} file '{path}' is a single .npy array; save it with "
                        "np.savez(path, <input name>=array)")
    if not head.startswith(_ZIP_MAGIC):
        raise DataError(f"{what} file '{path}' is not an .npz archive of arrays (not a readable .npz: "
                        f"the file is not a zip archive); {hint}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise DataError(f"{what} file '{path}' is a single .npy array; save it with "
                                "np.savez(path, <input name>=array)")
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc):  # an object array: numpy would unpickle it, which runs code
            raise DataError(f"{what} file '{path}' is not an .npz archive of arrays: it holds Python objects "
                            f"(pickled), not numeric arrays; save numeric arrays, {hint}") from None
        raise DataError(f"{what} file '{path}' is not an .npz archive of arrays (not a readable .npz: "
                        f"{exc}); {hint}") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise DataError(f"{what} file '{path}' is not an .npz archive of arrays (not a readable .npz: "
                        f"{type(exc).__name__}: {exc}); {hint}") from None


def _choose(keys, inputs: list[InputSpec], label_key: str | None, what: str) -> dict[str, str]:
    """The array key for each model input (input name -> key in the .npz)."""
    names = [i.name for i in inputs]
    if all(n in keys for n in names):
        return {n: n for n in names}
    if len(inputs) == 1:
        candidates = [k for k in keys if k != label_key]
        if len(candidates) != 1:
            raise DataError(
                f"{what} has arrays {sorted(keys)}; the model's input is '{names[0]}': name the array "
                f"'{names[0]}' or keep exactly one array besides '{label_key}'")
        return {names[0]: candidates[0]}
    missing = [n for n in names if n not in keys]
    raise DataError(f"{what} lacks arrays for the model inputs {missing} (it has {sorted(keys)}); "
                    "key the .npz arrays by input name")


def _check_layout(spec: InputSpec, shape: tuple, dtype: np.dtype, what: str) -> None:
    """DataError unless an array of ``shape`` and ``dtype`` can feed input ``spec``."""
    if spec.dtype.kind in "iub":  # an index or mask input (e.g. an embedding's token ids)
        if dtype.kind not in "iub":
            raise DataError(f"{what} for input '{spec.name}' has dtype {dtype}; the model expects "
                            f"{spec.dtype} (integer indices, saved as integers)")
    elif dtype.kind != "f":
        raise DataError(f"{what} for input '{spec.name}' has dtype {dtype}; the model expects "
                        f"{spec.dtype} (preprocess and save floats, e.g. images/255 as float32)")
    if len(shape) != len(spec.shape):
        raise DataError(f"{what} for input '{spec.name}' has shape {shape}; the model expects "
                        f"rank {len(spec.shape)} {_fmt(spec.shape)}")
    for axis, (have, want) in enumerate(zip(shape[1:], spec.shape[1:]), start=1):
        if want is not None and have != want:
            raise DataError(f"{what} for input '{spec.name}' has shape {shape}; the model expects "
                            f"{_fmt(spec.shape)} (axis {axis} is {have}, not {want})")
    if shape[0] == 0:
        raise DataError(f"{what} for input '{spec.name}' is empty")


def match_inputs(arrays: Mapping[str, np.ndarray], inputs: list[InputSpec], *,
                 label_key: str | None = "labels", what: str = "data") -> dict[str, np.ndarray]:
    """Pick and validate one array per model input; return float arrays of equal length."""
    keys = _choose(arrays, inputs, label_key, what)
    out, count = {}, None
    for spec in inputs:
        arr = np.asarray(arrays[keys[spec.name]])
        _check_layout(spec, arr.shape, arr.dtype, what)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise DataError(f"{what} for input '{spec.name}' contains {bad} NaN/Inf value(s); clean the data")
        if count is not None and arr.shape[0] != count:
            raise DataError(f"{what} arrays have different numbers of samples ({count} and {arr.shape[0]})")
        count = arr.shape[0]
        out[spec.name] = arr.astype(spec.dtype, copy=False)
    return out


def check_labels_key(arrays: Mapping[str, np.ndarray], key: str, what: str = "data") -> None:
    """DataError naming the missing labels array and the arrays present."""
    if key not in arrays:
        raise DataError(f"{what} has no labels array '{key}' (it has {sorted(arrays)}); pass --labels-key "
                        "with the name of the array of class indices")


def load_labels(arrays: Mapping[str, np.ndarray], key: str, count: int, what: str = "data") -> np.ndarray:
    """Integer class indices ``[count]`` (int64) from ``arrays[key]``: integers ``[N]`` ≥ 0, or
    one-hot rows ``[N, K]`` (every row exactly one 1, zeros elsewhere). Anything else (floats,
    soft targets, regression targets) is a DataError, never read as classes."""
    check_labels_key(arrays, key, what)
    labels = np.asarray(arrays[key])
    if labels.ndim == 2 and labels.dtype.kind in "iufb":
        one_hot = labels.shape[1] > 0 and np.all((labels == 0) | (labels == 1)) and \
            np.all(labels.sum(axis=1) == 1)
        if not one_hot:
            raise DataError(f"labels '{key}' have shape {labels.shape} but are not one-hot (each row exactly "
                            "one 1, zeros elsewhere); give integer class indices [N]")
        labels = labels.argmax(axis=1)
    elif labels.ndim == 1 and labels.dtype.kind == "f":
        raise DataError(f"labels '{key}' are {labels.dtype}, not class indices; top-1 needs integer class "
                        "indices [N] (a regression target cannot be scored as top-1); save them as integers, "
                        "e.g. labels.astype(np.int64)")
    if labels.ndim != 1 or labels.shape[0] != count or labels.dtype.kind not in "iu":
        raise DataError(f"labels '{key}' must be {count} integer class indices, got {labels.dtype} {labels.shape}")
    if labels.size and labels.min() < 0:
        raise DataError(f"labels '{key}' hold negative class index {int(labels.min())}; class indices "
                        "are 0..K-1")
    return labels.astype(np.int64)


def _fmt(shape) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def batch_at(feeds: Mapping[str, np.ndarray], start: int, size: int, pad: bool = False) -> dict[str, np.ndarray]:
    """Rows ``start .. start + size`` of every array (fewer at the end; with ``pad``, exactly
    ``size``, the last sample repeated), contiguous."""
    feed = {}
    for k, v in feeds.items():
        chunk = v[start:start + size]
        if pad and chunk.shape[0] < size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - chunk.shape[0], axis=0)], axis=0)
        feed[k] = np.ascontiguousarray(chunk)
    return feed


def iter_batches(feeds: Mapping[str, np.ndarray], batch_size: int,
                 fixed_batch: int | None = None) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """Yield ``(feed, n_valid)``. A model with a fixed batch size B gets batches of
    exactly B rows, the last one padded by repeating its final sample."""
    n = next(iter(feeds.values())).shape[0]
    size = fixed_batch or batch_size
    for start in range(0, n, size):
        yield batch_at(feeds, start, size, pad=bool(fixed_batch)), min(start + size, n) - start


class ArrayDataReader:
    """Data reader over in-memory arrays: ``get_next()`` -> feed dict or None (picklable, so that
    it can be sent to the workers of a Ray cluster as it is)."""

    def __init__(self, feeds: Mapping[str, np.ndarray], batch_size: int, fixed_batch: int | None = None):
        self.feeds = dict(feeds)
        self.batch_size = batch_size
        self.fixed_batch = fixed_batch
        self.num_samples = next(iter(self.feeds.values())).shape[0]
        self.num_batches = -(-self.num_samples // (fixed_batch or batch_size))
        self.rewind()

    def rewind(self) -> None:
        self._next = 0  # index of the next batch

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self.num_batches:
            return None
        size = self.fixed_batch or self.batch_size
        self._next += 1
        return batch_at(self.feeds, (self._next - 1) * size, size, pad=bool(self.fixed_batch))

    def __len__(self) -> int:
        return self.num_batches


def npz_layout(path: str | os.PathLike, what: str = "data") -> dict[str, tuple[tuple, np.dtype]]:
    """Shape and dtype of every array of an .npz file, read from the array headers only (no data)."""
    load_path = os.fspath(path)
    try:
        with zipfile.ZipFile(load_path) as archive:
            layout = {}
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(fh)
                layout[member[:-len(".npy")]] = (tuple(shape), np.dtype(dtype))
            return layout
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"{what} file '{load_path}' is not an .npz archive of arrays ({type(exc).__name__}: {exc}); "
                        "write it with numpy.savez(path, <input name>=array)") from None


class NpzShardReader:
    """Data reader over a directory of .npz shards (``*.npz``, in name order), read one shard at a time.

    The batches are those of the shards' concatenation: ``batch_size`` rows each (a batch may span
    two shards), the last one shorter, or with ``fixed_batch`` exactly that many rows (the last sample
    repeated), so that they equal :class:`ArrayDataReader`'s over the same arrays in one file. Every
    shard is checked from its array headers when the reader is made (one DataError naming the shard
    when one does not fit ``inputs``); a batch holds the model inputs and, with ``labels_key``, the
    labels under that key. At most one shard and one batch are in memory; the reader is picklable
    (it holds paths until it is read), so a Ray read task can stream it.
    """

    def __init__(self, directory: str | os.PathLike, batch_size: int, inputs: list[InputSpec], *,
                 fixed_batch: int | None = None, labels_key: str | None = None):
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise DataError(f"data directory '{directory}' does not exist (give a folder of .npz shards)")
        self.paths = sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".npz"))
        if not self.paths:
            raise DataError(f"data directory '{directory}' holds no .npz shard")
        self.inputs, self.labels_key = list(inputs), labels_key
        self.batch_size, self.fixed_batch = batch_size, fixed_batch
        self.counts = [self._check(p) for p in self.paths]
        self.num_samples = sum(self.counts)
        self.num_batches = -(-self.num_samples // (fixed_batch or batch_size))
        self.rewind()

    def _check(self, path: str) -> int:
        what = f"shard '{path}'"
        layout = npz_layout(path, what)
        keys = _choose(layout, self.inputs, self.labels_key, what)
        counts = set()
        for spec in self.inputs:
            shape, dtype = layout[keys[spec.name]]
            _check_layout(spec, shape, dtype, what)
            counts.add(shape[0])
        if self.labels_key is not None:
            if self.labels_key not in layout:
                raise DataError(f"{what} has no labels array '{self.labels_key}' (it has {sorted(layout)}); "
                                "every shard needs its labels")
            counts.add(layout[self.labels_key][0][0] if layout[self.labels_key][0] else -1)
        if len(counts) != 1:
            raise DataError(f"{what} arrays have different numbers of samples ({sorted(counts)})")
        return counts.pop()

    def _load(self, k: int) -> dict[str, np.ndarray]:
        what = f"shard '{self.paths[k]}'"
        arrays = load_npz(self.paths[k], what)
        feeds = match_inputs(arrays, self.inputs, label_key=self.labels_key, what=what)
        if self.labels_key is not None:
            feeds[self.labels_key] = load_labels(arrays, self.labels_key, self.counts[k], what)
        return feeds

    def rewind(self) -> None:
        self._shard, self._rest = 0, None  # next shard to load; rows of loaded shards not yet served

    def get_next(self) -> dict[str, np.ndarray] | None:
        size = self.fixed_batch or self.batch_size
        while (self._rest is None or len(next(iter(self._rest.values()))) < size) and self._shard < len(self.paths):
            shard = self._load(self._shard)
            self._shard += 1
            self._rest = shard if self._rest is None else \
                {k: np.concatenate([self._rest[k], v]) for k, v in shard.items()}
        if self._rest is None or len(next(iter(self._rest.values()))) == 0:
            return None
        batch = batch_at(self._rest, 0, size, pad=bool(self.fixed_batch))
        if self.labels_key is not None:
            batch[self.labels_key] = batch[self.labels_key][:min(size, len(self._rest[self.labels_key]))]
        self._rest = {k: v[size:] for k, v in self._rest.items()}
        return batch

    def __len__(self) -> int:
        return self.num_batches


def calibration_feeds(data, ann: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Calibration arrays keyed by input name, from an .npz path, a dict of arrays,
    or a data reader (``get_next()``), which is read to its end once."""
    specs = model_inputs(ann)
    if hasattr(data, "get_next"):
        batches = []
        while (feed := data.get_next()) is not None:
            batches.append(feed)
        if not batches:
            raise CalibrationError("the calibration data reader gave no batch; give at least one sample")
        data = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    arrays = load_npz(data, "calibration data") if not isinstance(data, Mapping) else dict(data)
    feeds = match_inputs(arrays, specs, what="calibration data")
    for name, value in feeds.items():
        if value.size and value.dtype.kind == "f" and np.all(value == value.reshape(-1)[0]):
            warnings.warn(f"calibration data '{name}' holds one value ({float(value.reshape(-1)[0]):g}) in every "
                          "element: thresholds calibrated on it fit no real input (an SNN calibrated on all-zero "
                          "images can lose most of its accuracy); give preprocessed samples of real data",
                          stacklevel=3)
    return feeds
