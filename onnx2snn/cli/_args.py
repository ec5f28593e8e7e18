"""Argument types shared by the commands (each turns a bad value into an argparse error)."""
from __future__ import annotations

import argparse

from ..config import ConvertConfig, ThresholdSpec
from ..errors import ConfigError
from ..sizes import parse_size


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def threshold(text: str) -> ThresholdSpec:
    try:
        return ThresholdSpec.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def calibrate_steps(text: str):
    try:
        return ConvertConfig.parse_calibrate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def memory_size(text: str) -> int:
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def common_options() -> argparse.ArgumentParser:
    """The flags every command takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log each pass")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return common


def add_ray_options(parser: argparse.ArgumentParser, what: str, note: str = ""):
    """``--ray [ADDRESS]`` and ``--ray-actors N``: ``what`` on a Ray cluster (extra onnx2snn[ray]);
    returns the argument group."""
    g = parser.add_argument_group("Ray cluster (pip install \"onnx2snn[ray]\")")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help=f"{what} on a Ray cluster, with the same result as here bit for bit: --ray alone starts a "
                        "local one for the run, --ray auto joins the one running on this machine (ray start "
                        "--head), --ray HOST:PORT (or ray://HOST:PORT) that one; every node needs onnx2snn" + note)
    g.add_argument("--ray-actors", type=positive_int, default=None, metavar="N",
                   help="Ray actors (default: one per CPU of the cluster, or per GPU on CUDA)")
    return g
