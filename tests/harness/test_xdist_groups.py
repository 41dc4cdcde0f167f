"""Issue 23: how `pytest -n N --dist loadgroup` hands out the tests (tests/xdist_groups.py,
tests/machine_share.py), on a tiny tree shaped like ours with this project's conftest hooks.

- the tests of a module sharing a module-scoped fixture run on one worker (the fixture is set
  up once: xdist 3.8's own loadgroup misses its groups under pytest 9);
- a `whole_machine` test overlaps with no other lab test;
- `quiet_machine` tests overlap with each other (handed out one by one, in one phase) and with
  no other lab test;
- ungrouped tests spread over the workers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.config import REPO_ROOT

RECORDER = '''
import json, os, time
from pathlib import Path

import pytest

LOG = Path(os.environ["GROUPS_TEST_LOG"])


def record(name, seconds=0.4):
    start = time.time()
    time.sleep(seconds)
    with open(LOG, "a") as log:
        log.write(json.dumps({"name": name, "worker": os.environ.get("PYTEST_XDIST_WORKER"),
                              "start": start, "end": time.time()}) + "\\n")
'''

SHARED_MODULE = RECORDER + '''

SETUPS = []


@pytest.fixture(scope="module", params=["a", "b"])
def converged(request):
    record("setup-" + request.param, 0)
    yield request.param


@pytest.mark.parametrize("n", range(3))
def test_reads(converged, n):
    record(f"shared-{converged}-{n}")
'''

ALONE_MODULE = RECORDER + '''

pytestmark = pytest.mark.whole_machine


def test_alone_one():
    record("alone-1", 1.0)


def test_alone_two():
    record("alone-2", 1.0)
'''

QUIET_MODULE = RECORDER + '''

pytestmark = pytest.mark.quiet_machine


@pytest.mark.parametrize("n", range(3))
def test_quiet(n):
    record(f"quiet-{n}", 1.0)
'''

FREE_MODULE = RECORDER + '''

@pytest.mark.parametrize("n", range(8))
def test_free(n):
    record(f"free-{n}")
'''


def _run(tmp_path: Path) -> tuple[int, str, list[dict]]:
    tests = tmp_path / "tests"
    (tests / "lab").mkdir(parents=True)
    (tests / "conftest.py").write_text("from tests.conftest import *  # noqa: the project's hooks\n")
    (tests / "lab" / "test_shared.py").write_text(SHARED_MODULE)
    (tests / "lab" / "test_alone.py").write_text(ALONE_MODULE)
    (tests / "lab" / "test_free.py").write_text(FREE_MODULE)
    (tests / "lab" / "test_quiet.py").write_text(QUIET_MODULE)
    log = tmp_path / "records.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GROUPS_TEST_LOG": str(log),
           "LOCKDOWN_ALLOW_SKIP": "1"}
    env.pop("LOCKDOWN_MACHINE_LOCK_DIR", None)  # the child run makes its own
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir",
         str(tmp_path), "-p", "no:cacheprovider", "-n", "3", "--dist", "loadgroup", "tests"],
        check=False, cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=100, env=env)
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return child.returncode, child.stdout + child.stderr, records


@pytest.mark.timeout(120)
def overlapping(records: list[dict], name: str) -> list[str]:
    """The tests (not fixture setups) that ran while ``name`` did."""
    this = next(r for r in records if r["name"] == name)
    return [r["name"] for r in records if r["name"] != name and r["start"] < this["end"]
            and r["end"] > this["start"] and not r["name"].startswith("setup-")]


def test_groups_stay_on_one_worker_and_whole_machine_tests_run_alone(tmp_path):
    returncode, output, records = _run(tmp_path)
    assert returncode == 0, output
    assert "19 passed" in output.strip().splitlines()[-1], output
    by_name = {r["name"]: r for r in records}

    shared = [r for r in records if r["name"].startswith(("shared-", "setup-"))]
    assert len({r["worker"] for r in shared}) == 1, shared  # one worker: fixture set up once
    assert sorted(r["name"] for r in records if r["name"].startswith("setup-")) == ["setup-a", "setup-b"]

    free_workers = {r["worker"] for r in records if r["name"].startswith("free-")}
    assert len(free_workers) >= 2, records  # ungrouped tests are handed out one by one

    for name in ("alone-1", "alone-2"):
        assert not overlapping(records, name), name
    alone_end = max(by_name[name]["end"] for name in ("alone-1", "alone-2"))
    before = [r["name"] for r in records if not r["name"].startswith("alone-")
              and r["start"] < alone_end]
    assert not before, before  # the alone group first: no other lab test slipped in before

    quiet = [f"quiet-{n}" for n in range(3)]
    for name in quiet:
        beside = overlapping(records, name)
        assert all(other in quiet for other in beside), (name, beside)
    assert any(overlapping(records, name) for name in quiet), records  # they did share
    assert len({by_name[name]["worker"] for name in quiet}) >= 2, records
