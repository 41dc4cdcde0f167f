"""Issue 9 item 2: a hanging test fails by itself and the rest of the run goes on.

Runs pytest in a subprocess with this project's pytest configuration (pyproject.toml: the
pytest-timeout method) on a small file whose tests hang the ways this suite can: a gevent
sleep, a read on a silent child's pipe (the Vagrant probe's old hang) and a busy loop, all in
a process patched by `import pyinfra_cli` like the real one, and a wait on a child through
lab.waiting with no deadline of its own (the child must be stopped when the test fails). Only the limit is shortened.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lab import processes
from lab.config import REPO_ROOT

HANGING = '''
import os, subprocess, time
import pyinfra_cli  # noqa: F401  gevent.monkey.patch_all(), as in the real suite

def test_sleeps_forever():
    time.sleep(600)

def test_reads_a_silent_child(tmp_path):
    child = subprocess.Popen(["sleep", "600"], stdout=subprocess.PIPE)
    try:
        os.set_blocking(child.stdout.fileno(), False)
        child.stdout.read()
    finally:
        child.kill()
        child.wait()

def test_spins():
    while True:
        pass

def test_waits_on_a_child_without_deadline(tmp_path):
    from lab import waiting
    waiting.run(["/bin/sh", "-c", "echo $$ > '{pidfile}'; exec sleep 600"], timeout=None)

def test_after_the_hangs():
    assert True
'''


@pytest.mark.timeout(120)
def test_a_hanging_test_fails_alone_and_the_run_goes_on(tmp_path):
    pidfile = tmp_path / "child.pid"
    (tmp_path / "test_hanging.py").write_text(HANGING.replace("{pidfile}", str(pidfile)))
    log = tmp_path / "pytest.log"
    with open(log, "w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
             "-p", "no:cacheprovider", "-o", "timeout=2", str(tmp_path / "test_hanging.py")],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"})
        try:
            child.wait(timeout=90)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            pytest.fail("the inner pytest run hung: " + log.read_text()[-3000:])
    text = log.read_text()
    for name in ("test_sleeps_forever", "test_reads_a_silent_child", "test_spins",
                 "test_waits_on_a_child_without_deadline"):
        assert f"FAILED test_hanging.py::{name} - Failed: Timeout" in text, text[-3000:]
    assert "4 failed, 1 passed" in text, text[-3000:]
    assert child.returncode == 1
    # the timeout's exception went through lab.waiting, which stopped the child
    assert processes.start_time(int(pidfile.read_text())) is None
