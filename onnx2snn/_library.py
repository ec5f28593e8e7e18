"""Locate the compiled custom-op library ``libonnx2snn_ops`` and register it.

Search order of :func:`get_library_path`:

1. the environment variable ``ONNX2SNN_OPS_LIBRARY`` (a development build);
   an error if it names no file;
2. ``lib/`` next to this module (the installed wheel);
3. the files recorded for the installed ``onnx2snn`` distribution, so that code
   imported from a source checkout still finds the library that ``pip install .``
   built.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

__all__ = ["ENV_VAR", "LIBRARY_NAME", "get_library_path", "register"]

ENV_VAR = "ONNX2SNN_OPS_LIBRARY"

if sys.platform == "win32":
    LIBRARY_NAME = "onnx2snn_ops.dll"
elif sys.platform == "darwin":
    LIBRARY_NAME = "libonnx2snn_ops.dylib"
else:
    LIBRARY_NAME = "libonnx2snn_ops.so"


def _from_distribution() -> Path | None:
    """The library among the files of the installed ``onnx2snn`` distribution."""
    try:
        files = importlib.metadata.files("onnx2snn")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files or ():
        if file.name == LIBRARY_NAME:
            path = Path(file.locate()).resolve()
            if path.is_file():
                return path
    return None


def get_library_path() -> str:
    """Return the absolute path of the onnx2snn custom-op library.

    Raises:
        FileNotFoundError: ``ONNX2SNN_OPS_LIBRARY`` names no file, or no built
            library was found.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_VAR}={override!r} does not name a file")
        return str(path.resolve())

    bundled = Path(__file__).resolve().parent / "lib" / LIBRARY_NAME
    if bundled.is_file():
        return str(bundled)

    installed = _from_distribution()
    if installed is not None:
        return str(installed)

    raise FileNotFoundError(
        f"the onnx2snn custom-op library ({LIBRARY_NAME}) was not found: looked at "
        f"{bundled} and in the installed onnx2snn distribution. Build and install it "
        f"with `pip install .` from the repository root, or set {ENV_VAR} to a "
        f"library built with CMake from custom_ops/."
    )


def register(session_options):
    """Register the custom-op library with ``session_options`` and return them.

    Args:
        session_options: an ``onnxruntime.SessionOptions``.
    """
    session_options.register_custom_ops_library(get_library_path())
    return session_options
