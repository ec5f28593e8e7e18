"""Loading and saving models: clear errors on bad files, atomic writes.

Invariant: a model written by :func:`save_model` passes ``onnx.checker`` and
carries an IR version the installed onnxruntime loads; a failed save leaves no
file behind; a loaded model is a private copy (the file is never modified).
"""
from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from .errors import ConfigError, InvalidModelError

# onnxruntime >= 1.17 loads IR <= 10 (1.31 loads <= 13). Writing the lowest IR
# the opsets allow keeps models loadable by every runtime we support.
MAX_IR_VERSION = 10


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read and validate an ONNX model; raise InvalidModelError naming the problem."""
    path = Path(path)
    if path.is_dir():
        raise InvalidModelError(f"model path '{path}' is a directory; give the path of an .onnx file")
    if not path.is_file():
        raise InvalidModelError(f"model file '{path}' does not exist (give the path of an .onnx file)")
    try:
        model = onnx.load(str(path))
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise InvalidModelError(
            f"'{path}' is not a readable ONNX model ({type(exc).__name__}: {exc}); "
            "check that the file is complete and was written by an ONNX exporter"
        ) from None
    if model.ir_version <= 0 or len(model.graph.node) == 0 or not model.opset_import:
        raise InvalidModelError(
            f"'{path}' is not an ONNX model (no IR version, opset or nodes: the file is empty, "
            "truncated or of another format); export the model to ONNX again"
        )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidModelError(
            f"'{path}' is not a valid ONNX model: {first}; the file may be truncated or corrupt"
        ) from None
    return model


def compatible_ir_version(model: onnx.ModelProto) -> int:
    """The IR version to write: the model's own, capped so onnxruntime can load it,
    but never below what its opsets require."""
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx", "ai.onnx.ml")]
    needed = onnx.helper.find_min_ir_version_for(opsets, ignore_unknown=True) if opsets else 3
    return max(needed, min(model.ir_version or MAX_IR_VERSION, MAX_IR_VERSION))


def check_output_path(output: str | os.PathLike, *inputs: str | os.PathLike) -> Path:
    """Refuse to overwrite an input file or to write where no file can be created
    (a missing directory, a file used as a directory, a directory without write
    permission): checked before any work, with a file created and removed there."""
    out = Path(output)
    for inp in inputs:
        if Path(inp).exists() and out.exists() and os.path.samefile(inp, out):
            raise ConfigError(f"output path '{out}' is the input file; choose another output path")
        if Path(os.path.abspath(inp)) == Path(os.path.abspath(out)):
            raise ConfigError(f"output path '{out}' is the input file; choose another output path")
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.exists() and str(directory) not in ("", "."):
        raise ConfigError(f"cannot write '{out}': directory '{directory}' does not exist")
    if not directory.is_dir():
        raise ConfigError(f"cannot write '{out}': '{directory}' is a file, not a directory; "
                          "choose an output path in a directory")
    if out.is_dir():
        raise ConfigError(f"output path '{out}' is a directory; give a file name such as snn.onnx")
    try:  # what save_model will do: create a temporary file beside the output
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ConfigError(f"cannot write '{out}': directory '{directory}' is not writable "
                          f"({exc.strerror or type(exc).__name__}); choose an output path in a writable "
                          "directory") from None
    os.close(fd)
    os.unlink(probe)
    return out


def _new_file_mode(path: Path) -> int:
    """The mode the written file gets: an existing file's own, else what open() gives (0666 & ~umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (os.umask sets it
    to read it: a moment another thread could create a file in)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


class _Terminated(BaseException):
    """SIGTERM arrived while a file was being written (raised by the temporary handler)."""


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Validate and atomically write ``model`` to ``path`` (temp file + rename).

    The file gets the mode a plain ``open()`` would give it (0666 & ~umask), or the
    mode of the file it replaces. On any exception, and on SIGTERM during the write
    (a handler installed for the write only, the previous one restored and the
    signal delivered to it afterwards), the temporary file is removed.
    """
    path = Path(path)
    model.ir_version = compatible_ir_version(model)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    directory = path.parent if str(path.parent) else Path(".")
    mode = _new_file_mode(path)
    previous = None
    if threading.current_thread() is threading.main_thread():
        current = signal.getsignal(signal.SIGTERM)
        if current is not None and current is not signal.SIG_IGN:  # None: a handler not set from Python
            def on_term(signum, frame):
                raise _Terminated()
            previous = signal.signal(signal.SIGTERM, on_term)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, _Terminated):
            signal.signal(signal.SIGTERM, previous)
            previous = None
            signal.raise_signal(signal.SIGTERM)  # the previous handler's turn (default: terminate)
            raise KeyboardInterrupt("terminated (SIGTERM) while writing") from None
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return path
