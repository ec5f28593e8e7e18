"""Command line: ``onnx2snn convert | evaluate | inspect``.

Thin: one module per command (:mod:`.convert`, :mod:`.evaluate`, :mod:`.inspect`)
parses its flags and calls the Python API; the analysis ``inspect`` prints is
:func:`onnx2snn.inspection.inspect_model`. :mod:`.main` assembles the parser and
dispatches (``onnx2snn.cli.main`` is the function: the entry point).
"""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
