"""Command line: ``onnx2snn convert | evaluate | inspect``."""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
