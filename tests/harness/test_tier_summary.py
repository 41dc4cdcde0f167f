"""Issue 9 item 4: the run says what each tier ran, and a skipped tier is not silently green.

Runs pytest in a subprocess on a tiny tree shaped like ours (tests/unit, tests/harness, tests/lab) with this
project's conftest hooks, where the lab test skips.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.api import Lab
from lab.config import REPO_ROOT


def _run(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    tests = tmp_path / "tests"
    (tests / "unit").mkdir(parents=True)
    (tests / "harness").mkdir()
    (tests / "lab").mkdir()
    (tests / "conftest.py").write_text("from tests.conftest import *  # noqa: the project's hooks\n")
    # pyinfra_cli's import gevent-patches the process, as the real suite's collection does
    # (under xdist that broke the workers' wait for their next test: tests/conftest.py)
    (tests / "unit" / "test_u.py").write_text("import pyinfra_cli  # noqa: F401\n\n"
                                              "def test_passes():\n    pass\n")
    (tests / "harness" / "test_h.py").write_text("def test_passes():\n    pass\n")
    (tests / "lab" / "test_l.py").write_text(
        "import pytest\n\ndef test_needs_the_lab():\n    pytest.skip('lab not available: pretend')\n")
    log = tmp_path / "pytest.log"
    base = {k: v for k, v in os.environ.items() if k != "LOCKDOWN_ALLOW_SKIP"}
    with open(log, "w") as out:
        child = subprocess.run(
            [sys.executable, "-m", "pytest", "-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
             "-p", "no:cacheprovider", *args, "tests"],
            check=False, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=90,
            # a ledger of its own: the child's start of run must not empty this run's
            env={**base, "PYTHONPATH": str(REPO_ROOT),
                 "LOCKDOWN_SECURITY_LEDGER": str(tmp_path / "security-ledger.jsonl"), **env})
    return child.returncode, log.read_text()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [[], ["-n", "2", "--dist", "loadgroup"]], ids=["serial", "xdist"])
def test_a_skipped_lab_test_fails_the_run_where_the_lab_can_run(tmp_path, workers):
    """Also with pytest-xdist: the controller counts what the workers report."""
    returncode, text = _run(tmp_path, *workers)
    assert "unit     1 passed in" in text, text
    assert "harness  1 passed in" in text, text
    assert "lab      1 skipped in" in text, text
    assert "vagrant  not selected" in text, text
    closing = text.strip().splitlines()[-1]
    if Lab.missing_requirements():  # e.g. not root: skips are expected there, and said so
        assert returncode == 0, text
        assert "skips allowed: this machine cannot run the lab" in text
    else:
        assert returncode == 1, text
        assert "FAILED: tests skipped in lab (1)" in text
        assert "2 passed, 1 skipped, 1 unexpected skips" in closing, closing


@pytest.mark.timeout(120)
def test_lockdown_allow_skip_allows_it_and_says_so(tmp_path):
    returncode, text = _run(tmp_path, LOCKDOWN_ALLOW_SKIP="1")
    assert returncode == 0, text
    assert "skips allowed: LOCKDOWN_ALLOW_SKIP=1" in text


@pytest.mark.timeout(120)
def test_a_pytest_run_started_by_a_test_leaves_the_outer_runs_security_ledger_alone(tmp_path):
    from tests import security_ledger

    ledger = tmp_path / "security.jsonl"
    security_ledger.record("an attack", "where", "held", True, path=ledger)
    _run(tmp_path, LOCKDOWN_SECURITY_LEDGER=str(ledger), LOCKDOWN_ALLOW_SKIP="1")
    assert [a.attack for a in security_ledger.load(ledger)] == ["an attack"]
