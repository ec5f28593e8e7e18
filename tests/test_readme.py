"""The README cannot drift: its "Two commands" run, and the files it names exist.

The first command of "## Two commands" is ``pip install . && <main job>``; the
main job (convert, then evaluate, on the bundled MNIST example) is run here with
the package this test imported (``python -m onnx2snn`` in place of the
``onnx2snn`` command), in a temporary directory: files of the repository are
passed as absolute paths, the SNN is written to the temporary directory.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import onnx2snn

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INSTALL = "pip install . && "
TEST_COMMAND = 'pip install ".[test]" && python -m pytest -q'
# A row of `onnx2snn evaluate`'s table: model, t ("-" for the ANN), top-1 %, [difference to the ANN].
ROW = re.compile(r"^(ANN|SNN)\s+(-|\d+)\s+(-?\d+\.\d+)(?:\s+[+-]\d+\.\d+)?\s*$")


def section(text: str, heading: str) -> str:
    """The text under the level-2 ``heading`` up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)]


def two_commands() -> list[str]:
    blocks = bash_blocks(section(README.read_text(encoding="utf-8"), "Two commands"))
    assert len(blocks) >= 2, "the 'Two commands' section needs two ```bash blocks"
    return blocks


def package_env() -> dict[str, str]:
    """The environment with the imported onnx2snn package first on the path."""
    env = dict(os.environ)
    parent = str(Path(onnx2snn.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([parent] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def cli_argv(command: str, tmp: Path, outputs: set[str]) -> list[str]:
    """``onnx2snn ...`` as ``python -m onnx2snn ...``: repository files absolute, outputs in ``tmp``."""
    words = shlex.split(command)
    assert words[0] == "onnx2snn", f"not an onnx2snn command: {command!r}"
    for flag, value in zip(words, words[1:]):
        if flag in ("-o", "--output"):
            outputs.add(value)
    args = []
    for word in words[1:]:
        if word in outputs:
            args.append(str(tmp / word))
        elif not word.startswith("-") and (ROOT / word).exists():
            args.append(str(ROOT / word))
        else:
            args.append(word)
    return [sys.executable, "-m", "onnx2snn"] + args


def parse_table(stdout: str) -> tuple[int, float, dict[int, float]]:
    """(T, ANN top-1, {t: SNN top-1}) from `onnx2snn evaluate`'s printed table."""
    header = re.search(r"^\d+ samples, T=(\d+)$", stdout, re.M)
    assert header, f"no 'N samples, T=...' line in:\n{stdout}"
    ann, snn = None, {}
    for line in stdout.splitlines():
        row = ROW.match(line.strip())
        if row and row.group(1) == "ANN":
            ann = float(row.group(3))
        elif row:
            snn[int(row.group(2))] = float(row.group(3))
    assert ann is not None and snn, f"no ANN and SNN rows in:\n{stdout}"
    return int(header.group(1)), ann, snn


def test_two_commands_are_install_then_main_job_and_tests():
    first, second = two_commands()[:2]
    assert first.startswith(INSTALL), f"the first command must start with {INSTALL!r}: {first!r}"
    assert second == TEST_COMMAND


def test_main_job_of_the_readme_runs_on_the_bundled_example(tmp_path):
    job = two_commands()[0][len(INSTALL):]
    commands = [c.strip() for c in job.split(" && ")]
    assert [shlex.split(c)[1] for c in commands] == ["convert", "evaluate"], commands
    outputs: set[str] = set()
    results = []
    for command in commands:
        argv = cli_argv(command, tmp_path, outputs)
        done = subprocess.run(argv, cwd=tmp_path, env=package_env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        results.append(done)
    assert outputs, "convert has no -o output"
    for name in outputs:
        assert (tmp_path / name).is_file(), f"convert did not write {name}"
        assert not Path(name).is_absolute()
    T, ann, snn = parse_table(results[-1].stdout)
    assert max(snn) == T and sorted(snn) == list(range(1, T + 1)), sorted(snn)
    assert abs(snn[T] - ann) <= 2.0, f"SNN at t={T}: {snn[T]:.2f}% vs ANN {ann:.2f}%"


def named_files(text: str) -> set[str]:
    """Relative link targets and file paths (…/x.py, x.md, ...) written in ``text``."""
    links = {m.group(1) for m in re.finditer(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
             if not re.match(r"[a-z]+:", m.group(1))}
    paths = set(re.findall(r"(?<![\w/.$-])((?:[\w.-]+/)*[\w*-]+\.(?:py|md|cc))\b", text))
    return links | paths


def exists(name: str, base: Path) -> bool:
    if "*" in name:
        return any(base.glob(name))
    if "/" in name or (base / name).exists():
        return (base / name).exists()
    return (ROOT / "benchmarks" / name).exists()  # a script named by itself, as in "Benchmark data"


def test_files_the_readme_names_exist():
    names = named_files(README.read_text(encoding="utf-8"))
    assert any(n.startswith("docs/") for n in names) and any(n.startswith("benchmarks/") for n in names)
    missing = sorted(n for n in names if not exists(n, ROOT))
    assert not missing, f"README.md names files that do not exist: {missing}"


def test_links_of_the_docs_pages_resolve():
    missing = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        links = {m.group(1) for m in re.finditer(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
                 if not re.match(r"[a-z]+:", m.group(1))}
        missing += [f"{page.name}: {link}" for link in sorted(links) if not (page.parent / link).exists()]
    assert not missing, f"broken links: {missing}"
