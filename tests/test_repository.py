"""The repository's own text: no unresolved merge-conflict markers in code or docs."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = {".py", ".md", ".cc", ".h", ".cu", ".txt", ".toml", ".cmake"}


def test_no_merge_conflict_markers():
    files = [ROOT / "README.md", ROOT / "pyproject.toml"] + [
        p for d in ("onnx2snn", "custom_ops", "benchmarks", "models", "tests", ".ci")
        for p in (ROOT / d).rglob("*") if p.is_file() and (p.suffix in TEXT or p.parent.name == ".ci")]
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in files
           for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
           if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "======="]
    assert not bad, f"unresolved merge conflicts at {', '.join(bad)}"
