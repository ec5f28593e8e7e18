"""The ``onnx2snn`` parser and dispatch: one module per command (convert, evaluate, inspect, report,
export-nir).

Each command module adds its sub-parser and runs the parsed flags through the
Python API. Any :class:`Onnx2SnnError` becomes one ``error:`` line on stderr and
exit code 2; Ctrl-C (KeyboardInterrupt) one ``interrupted`` line and exit code 130,
with no output file left (writes are atomic: the temporary file is removed).
"""
from __future__ import annotations

import argparse
import logging
import sys

from .._version import __version__
from ..errors import Onnx2SnnError
from . import convert, evaluate, export_nir, inspect, report
from ._args import common_options

COMMANDS = {"convert": convert, "evaluate": evaluate, "inspect": inspect, "report": report,
            "export-nir": export_nir}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onnx2snn", description="Convert ONNX ANNs to spiking networks.")
    p.add_argument("--version", action="version", version=f"onnx2snn {__version__}")
    common = common_options()
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_parser(sub, [common])
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return COMMANDS[args.command].run(args)
    except Onnx2SnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: onnx2snn {args.command} stopped, nothing written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
