"""Every figure the README quotes is one bench/RESULTS.md states (issue: claims match
measurements). A range a-bx counts as two figures, a x and b x."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURE = re.compile(r"\b(\d+\.\d+)(?:-(\d+\.\d+))?(x|\s?s)\b")


def figures(text: str) -> set[str]:
    found = set()
    for low, high, unit in FIGURE.findall(text):
        unit = unit.strip()
        found |= {f"{n}{unit}" for n in (low, high) if n}
    return found


def test_readme_figures_come_from_the_benchmark_results():
    readme = figures((ROOT / "README.md").read_text())
    results = (ROOT / "bench" / "RESULTS.md").read_text()
    stated = figures(results) | {f"{n}s" for n in re.findall(r"\b(\d+\.\d+) s\b", results)}
    assert readme, "the README quotes no measured figure any more: update this test"
    assert readme <= stated, f"README figures missing from bench/RESULTS.md: {readme - stated}"
