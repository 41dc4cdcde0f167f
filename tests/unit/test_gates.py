"""Lint, types and the shell sent to hosts are gates like the tests (issue 24 item 5): ruff and
mypy (both from requirements-test.lock, configured in pyproject.toml) over the product, and
shellcheck (lab/system-packages.txt) over the shell scripts lockdown sends to hosts. Each runs
from the checkout, and mypy once more from a bare copy of it (no editable install, no
package-dir mapping to follow), so a type checker resolves the package as it lies."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PRODUCT = ["pyinfra_lockdown", "deploys"]  # the package and the deploy files pyinfra runs
HOST_SHELL = sorted((REPO / "pyinfra_lockdown" / "remote").glob("*.sh"))


def _run(argv: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ruff_passes_over_the_product() -> None:
    checked = _run([str(BIN / "ruff"), "check", "--no-cache", *PRODUCT])
    assert checked.returncode == 0, (
        "ruff found problems (fix them, or `ruff check --fix` for the fixable ones):\n"
        + checked.stdout + checked.stderr)


def test_mypy_passes_over_the_package() -> None:
    typed = _run([sys.executable, "-m", "mypy", "--no-incremental"])
    assert typed.returncode == 0, "mypy (pyproject.toml [tool.mypy]):\n" + typed.stdout + typed.stderr
    assert "Success: no issues found" in typed.stdout


def test_mypy_passes_from_a_bare_copy_of_the_checkout(tmp_path: Path) -> None:
    shutil.copytree(REPO / "pyinfra_lockdown", tmp_path / "pyinfra_lockdown",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    typed = _run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir",
                  str(tmp_path / ".mypy_cache")], cwd=tmp_path)
    assert typed.returncode == 0, typed.stdout + typed.stderr
    checked = [line for line in typed.stdout.splitlines() if line.startswith("Success")]
    assert checked, typed.stdout


def test_shellcheck_passes_over_the_shell_sent_to_hosts() -> None:
    assert HOST_SHELL, "no shell scripts found in pyinfra_lockdown/remote/"
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, ("shellcheck is not installed: `make deps` installs it "
                        "(lab/system-packages.txt), or apt-get install shellcheck")
    checked = _run([shellcheck, "--shell=sh", *map(str, HOST_SHELL)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
