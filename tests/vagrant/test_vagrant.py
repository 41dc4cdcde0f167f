"""The Vagrant path (issue 6): the Vagrantfile, and a real VM converged by pyinfra @vagrant.

Slow tier: `pytest -m vagrant tests/vagrant` (root). The VM runs under libvirt inside the lab
namespace; every connection (vagrant ssh, pyinfra, the prober) starts there.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lab import waiting
from lab.config import REPO_ROOT

pytestmark = pytest.mark.vagrant

PYINFRA = str(Path(sys.executable).parent / "pyinfra")


def _require_root_and_vagrant():
    if os.geteuid() != 0:
        pytest.skip("needs root (runs vagrant in an empty network namespace)")
    if shutil.which("vagrant") is None:  # a fresh machine: install it (Debian packages), don't skip
        from lab.vagrant import system_deps

        system_deps.ensure_installed()


@pytest.mark.parametrize("flavour", ["debian", "debian12", "ubuntu"])
def test_vagrantfile_validates_with_public_boxes(flavour):
    _require_root_and_vagrant()
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKDOWN_VAGRANT_")}
        env.update(VAGRANT_HOME=home, VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_BOX_UPDATE_CHECK_DISABLE="1",
                   VAGRANT_DOTFILE_PATH=f"{home}/dotfile", LOCKDOWN_VAGRANT_BOX=flavour, LOCKDOWN_VAGRANT_PROBE="1")
        # An empty network namespace: nothing vagrant might try can leave this machine.
        result = waiting.run(["unshare", "--net", "vagrant", "validate", "--ignore-provider"], cwd=REPO_ROOT,
                             env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vagrantfile validated successfully" in result.stdout


def pyinfra(vm, *args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    return vm.run([PYINFRA, "-y", "inventories/vagrant.py", *args], timeout=900, extra_env=extra_env)


def test_pyinfra_reaches_the_vm_through_the_vagrant_inventory(vm, timings):
    started = time.monotonic()
    # is-system-running exits 1 when "degraded": judge its output, not its exit code.
    result = pyinfra(vm, "exec", "--", "systemctl is-system-running || true")
    timings["pyinfra exec"] = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    # "degraded" before the deploy (postfix has no main.cf yet: "No configuration").
    output = result.stdout + result.stderr  # pyinfra logs command output on stderr
    assert "[@vagrant/mail] running" in output or "[@vagrant/mail] degraded" in output


def test_vm_reaches_the_standin_only_through_the_lab(vm):
    result = vm.vagrant("ssh", "mail", "-c", "nc -z -w5 10.77.0.1 587 && echo reached; ip route")
    assert "reached" in result.stdout
    assert "default" not in result.stdout  # no route anywhere but the lab's subnet


def test_converge_then_idempotent(vm, timings):
    from lab.standin_server import DEFAULT_CONTROL

    creds = {"LOCKDOWN_RELAY_LOGIN": DEFAULT_CONTROL["login"], "LOCKDOWN_RELAY_PASSWORD": DEFAULT_CONTROL["password"]}
    started = time.monotonic()
    first = pyinfra(vm, "deploys/mail.py", extra_env=creds)
    timings["first converge"] = time.monotonic() - started
    assert first.returncode == 0, first.stderr[-3000:]
    started = time.monotonic()
    again = pyinfra(vm, "deploys/mail.py", extra_env=creds)
    timings["second converge"] = time.monotonic() - started
    assert again.returncode == 0, again.stderr[-3000:]
    assert _changed_count(again.stderr) == 0, again.stderr[-3000:]  # pyinfra logs on stderr


def _changed_count(log: str) -> int:
    """The Success column of pyinfra's "Grand total" line ("-" = no operation changed anything)."""
    total = [line.split() for line in log.splitlines() if line.strip().startswith("Grand total")][-1]
    return 0 if total[3] == "-" else int(total[3])


def test_mail_is_relayed_through_the_standin(vm, standin):
    vm.vagrant("ssh", "mail", "-c", "echo vagrant-relay-check | mail -s vagrant-check root")
    messages = standin.wait_for_messages(1, timeout=120)
    assert messages, "no message reached the stand-in; see `python -m lab.vagrant ssh -- sudo postqueue -p`"
    message = messages[-1]
    assert message["tls"] is True and message["port"] == 587
    assert message["login"] == standin.control()["login"]
    assert message["rcpt_tos"] == ["admin@lab.test"]
    assert "vagrant-relay-check" in message["data"]


def test_outside_view_from_the_lab_prober(vm):
    """22 open; 25 closed. Before the deploy exists, 25 is closed only because postfix is down."""
    address = vm.address()
    assert vm.lab.probe.tcp_open(address, 22)
    assert not vm.lab.probe.tcp_open(address, 25)


def test_audit_passes(vm, timings):
    started = time.monotonic()
    result = pyinfra(vm, "deploys/audit.py")
    timings["audit"] = time.monotonic() - started
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]  # the report, then why


def test_destroy_leaves_nothing_behind(vm, timings):
    from lab import processes
    from lab.vagrant import daemons

    recorded = [daemons.recorded(vm.paths, d) for d in daemons.DAEMONS]
    started = time.monotonic()
    assert vm.destroy() == []
    timings["destroy"] = time.monotonic() - started
    assert not any(processes.is_alive(r) for r in recorded)
    assert not Path("/etc/libvirt/qemu/lockdown_mail.xml").exists()
    assert not Path(f"/etc/libvirt/qemu/networks/{vm.paths.network_name}.xml").exists()
    assert not Path(f"/etc/libvirt/storage/{vm.paths.pool_name}.xml").exists()
    assert not vm.paths.pool_dir.exists()
    bridge = waiting.run(["ip", "-n", vm.lab.config.netns, "link", "show", vm.paths.bridge_name],
                         timeout=30)
    assert bridge.returncode != 0, "the libvirt bridge is still in the lab namespace"
    assert _live_processes_mentioning("lockdown_mail") == []
    assert _live_processes_mentioning(vm.paths.network_name) == []


def _live_processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(entry) != os.getpid():
            found.append(int(entry))
    return found
