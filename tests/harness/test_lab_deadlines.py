"""Issue 9: every wait on a child has a deadline that holds in a gevent-patched process.

The hang's conditions: `import pyinfra_cli` (it runs gevent.monkey.patch_all(), as it does for
the whole pytest process through pyinfra_testing) and a child that never prints, like a stock
kernel under this machine's PVM /dev/kvm. Most tests reproduce them in a fresh interpreter that
imports pyinfra_cli first, so the result does not depend on test order; the last ones run in
this process after the same import (issue 9 item 3: the patch must not change lab helpers).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lab import processes
from lab.config import REPO_ROOT

SILENT = "import time; time.sleep(600)"  # never prints, never exits


def _patched_python(code: str, tmp_path: Path, limit: float = 60) -> dict:
    """Run `code` in a fresh interpreter after `import pyinfra_cli`; it prints one JSON line."""
    script = tmp_path / "script.py"
    script.write_text("import gevent.monkey, pyinfra_cli  # noqa: patches like pytest's process\n"
                      "assert gevent.monkey.is_module_patched('subprocess')\n" + textwrap.dedent(code))
    out = tmp_path / "out.txt"
    with open(out, "w") as handle:  # a file, not a pipe: this test process may be patched too
        child = subprocess.Popen([sys.executable, str(script)], cwd=REPO_ROOT, stdout=handle,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        try:
            child.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            pytest.fail(f"still running after {limit}s (the hang): {out.read_text()[-2000:]}")
    text = out.read_text()
    assert child.returncode == 0, text
    return json.loads(text.strip().splitlines()[-1])


def _fake(tmp_path: Path, body: str) -> list[str]:
    """A fake probe command that records its PID (then execs `body`) so the test can check it is gone."""
    return ["/bin/sh", "-c", f'echo $$ > {tmp_path}/fake.pid; exec {body}']


def _gone(tmp_path: Path) -> bool:
    pid = int((tmp_path / "fake.pid").read_text())
    return processes.start_time(pid) is None


@pytest.mark.timeout(60)
def test_the_old_pipe_loop_hangs_under_the_patch(tmp_path):
    """Control: the conditions above really reproduce the hang of the old probe loop."""
    code = f"""
        import os, subprocess, time
        child = subprocess.Popen({_fake(tmp_path, "python3 -c '" + SILENT + "'")!r}, stdout=subprocess.PIPE,
                                 start_new_session=True)
        os.set_blocking(child.stdout.fileno(), False)
        started = time.monotonic()
        while time.monotonic() - started < 2:   # the old probe's loop, 2 s instead of 25 s
            child.stdout.read()
            time.sleep(0.2)
        print('{{}}')
    """
    with pytest.raises(pytest.fail.Exception, match="the hang"):
        _patched_python(code, tmp_path, limit=8)
    pid = int((tmp_path / "fake.pid").read_text())
    processes.stop(processes.record(pid), timeout=3)  # the orphan the hung loop left
    assert _gone(tmp_path)


@pytest.mark.timeout(60)
def test_probe_gives_up_on_a_silent_kernel_in_time(tmp_path):
    code = f"""
        import json, time
        from lab.vagrant import accel
        started = time.monotonic()
        driver, why = accel.probe_with({_fake(tmp_path, "python3 -c '" + SILENT + "'")!r}, seconds=2)
        print(json.dumps({{"driver": driver, "why": why, "seconds": time.monotonic() - started}}))
    """
    result = _patched_python(code, tmp_path)
    assert result["driver"] == "qemu"
    assert "no sign of life in 2s" in result["why"]
    assert 2 <= result["seconds"] < 2 + 3, result
    assert _gone(tmp_path)


@pytest.mark.timeout(60)
def test_probe_sees_a_panicking_kernel_and_stops_it(tmp_path):
    body = """python3 -c 'import time; print("VFS: Unable to mount root fs", flush=True); time.sleep(600)'"""
    code = f"""
        import json, time
        from lab.vagrant import accel
        started = time.monotonic()
        driver, why = accel.probe_with({_fake(tmp_path, body)!r}, seconds=20)
        print(json.dumps({{"driver": driver, "why": why, "seconds": time.monotonic() - started}}))
    """
    result = _patched_python(code, tmp_path)
    assert result["driver"] == "kvm", result
    assert result["seconds"] < 10, result
    assert _gone(tmp_path)


@pytest.mark.timeout(60)
def test_probe_reports_a_qemu_that_exits(tmp_path):
    code = f"""
        import json
        from lab.vagrant import accel
        driver, why = accel.probe_with({_fake(tmp_path, "sh -c 'echo could not access KVM kernel module; exit 1'")!r}, seconds=20)
        print(json.dumps({{"driver": driver, "why": why}}))
    """
    result = _patched_python(code, tmp_path)
    assert result["driver"] == "qemu"
    assert "exited (1)" in result["why"] and "could not access KVM" in result["why"]


@pytest.mark.timeout(60)
def test_run_times_out_even_when_a_grandchild_holds_the_output(tmp_path):
    """gevent's subprocess.run(timeout=) would wait for the grandchild after killing the child."""
    code = f"""
        import json, subprocess, time
        from lab import waiting
        started = time.monotonic()
        try:
            waiting.run(["/bin/sh", "-c", "echo started; sleep 600 & echo $! > {tmp_path}/fake.pid; sleep 600"],
                        timeout=2)
            outcome = "returned"
        except subprocess.TimeoutExpired as error:
            outcome = "timeout: " + error.output
        print(json.dumps({{"outcome": outcome, "seconds": time.monotonic() - started}}))
    """
    result = _patched_python(code, tmp_path)
    assert result["outcome"] == "timeout: started\n"
    assert result["seconds"] < 2 + 3, result
    assert _gone(tmp_path), "the grandchild in the child's process group is still running"


# --- in this process, after the import that patches it (order-independent: item 3) -------------

@pytest.fixture
def patched():
    import gevent.monkey
    import pyinfra_cli  # noqa: F401  (what pyinfra_testing does to every pytest run)

    assert gevent.monkey.is_module_patched("subprocess")


@pytest.mark.timeout(30)
def test_lab_helpers_keep_their_deadlines_in_the_patched_test_process(patched, tmp_path):
    from lab import waiting
    from lab.vagrant import accel

    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        waiting.run(_fake(tmp_path, f"python3 -c '{SILENT}'"), timeout=1)
    assert time.monotonic() - started < 1 + 3
    assert _gone(tmp_path)

    started = time.monotonic()
    assert accel.probe_with(_fake(tmp_path, f"python3 -c '{SILENT}'"), seconds=1)[0] == "qemu"
    assert time.monotonic() - started < 1 + 3
    assert _gone(tmp_path)


def test_run_passes_input_and_returns_both_streams(patched):
    from lab import waiting

    result = waiting.run(["/bin/sh", "-c", "cat; echo oops >&2; exit 3"], timeout=10, input="fed\n")
    assert (result.returncode, result.stdout, result.stderr) == (3, "fed\n", "oops\n")
