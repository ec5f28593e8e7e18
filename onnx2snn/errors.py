"""One exception hierarchy for everything a user can get wrong.

Every message says what is wrong (naming each offending node with its op type,
or the offending file, array or flag) and what to do next. The CLI turns any
:class:`Onnx2SnnError` into one line on stderr and exit code 2.
"""
from __future__ import annotations

from typing import Iterable, Sequence


class Onnx2SnnError(Exception):
    """Base class of every error onnx2snn raises on bad input."""


class InvalidModelError(Onnx2SnnError):
    """The file is not a loadable, valid ONNX model."""


class ConversionError(Onnx2SnnError):
    """The model is valid ONNX but cannot be converted."""


class UnsupportedOpError(ConversionError):
    """One or more nodes have no spiking equivalent.

    ``offenders`` holds ``(node_name, op_type, reason)`` for every such node.
    """

    def __init__(self, offenders: Sequence[tuple[str, str, str]]):
        self.offenders = list(offenders)
        lines = [f"  - node '{name}' ({op}): {reason}" for name, op, reason in self.offenders]
        super().__init__(
            f"{len(self.offenders)} node(s) cannot be converted to a spiking network:\n"
            + "\n".join(lines)
            + "\nReplace these layers in the source model (see `onnx2snn inspect MODEL.onnx` "
            "for the supported ops) and export it again."
        )


class DataError(Onnx2SnnError):
    """Calibration or evaluation data that does not fit the model."""


class CalibrationError(Onnx2SnnError):
    """Calibration could not compute parameters from the data given."""


class ConfigError(Onnx2SnnError):
    """A setting (flag, argument) that cannot be used."""


class DistributedError(Onnx2SnnError):
    """A run on a Ray cluster that failed (a worker lost beyond its retries) or came back incomplete."""


def format_names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)
