#!/usr/bin/env python3
"""Re-extract the vendored ONNX Runtime 1.17 C/C++ API headers.

The headers come from the ``amd-quark==0.13`` wheel, which ships a copy of
ONNX Runtime 1.17.0's public API headers (MIT, Microsoft; reformatted by AMD)
under ``quark/onnx/operators/custom_ops/include/onnxruntime-1.17.0/``. The
wheel is fetched with ``pip download`` (from whatever index pip is configured
to use) and only read as a zip archive: amd-quark is never installed.

Usage::

    python custom_ops/third_party/fetch_ort_headers.py            # download + extract
    python custom_ops/third_party/fetch_ort_headers.py --wheel W  # use a wheel on disk
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "amd-quark==0.13"
WHEEL_DIR = "quark/onnx/operators/custom_ops/include/onnxruntime-1.17.0/onnxruntime/core/session/"
HEADERS = (
    "onnxruntime_c_api.h",
    "onnxruntime_cxx_api.h",
    "onnxruntime_cxx_inline.h",
    "onnxruntime_float16.h",
)
EXPECTED_API_VERSION = 17
DEFAULT_DEST = Path(__file__).resolve().parent / "onnxruntime" / "include"


def download_wheel(dest_dir: Path) -> Path:
    """Download the wheel (no dependencies, never installed) into ``dest_dir``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "-d", str(dest_dir), PACKAGE]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest_dir.glob("amd_quark-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download produced no amd_quark wheel in {dest_dir}")
    return wheels[0]


def extract(wheel: Path, dest: Path) -> None:
    """Copy the API headers out of ``wheel`` into ``dest`` (flat) and check the version."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in HEADERS:
            data = zf.read(WHEEL_DIR + name)
            (dest / name).write_bytes(data)
            print(f"wrote {dest / name} ({len(data)} bytes)")
    c_api = (dest / "onnxruntime_c_api.h").read_text(encoding="utf-8")
    match = re.search(r"#define ORT_API_VERSION (\d+)", c_api)
    if match is None or int(match.group(1)) != EXPECTED_API_VERSION:
        raise SystemExit(f"unexpected ORT_API_VERSION in {wheel.name}: "
                         f"{match.group(1) if match else 'missing'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="an amd_quark-0.13 wheel already on disk")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                        help=f"output folder (default: {DEFAULT_DEST})")
    args = parser.parse_args()
    if args.wheel is not None:
        extract(args.wheel, args.dest)
        return
    with tempfile.TemporaryDirectory() as tmp:
        extract(download_wheel(Path(tmp)), args.dest)


if __name__ == "__main__":
    main()
