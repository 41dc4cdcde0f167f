"""virtlogd and libvirtd started inside the lab namespace, so libvirt's bridge, dnsmasq and
every VM's network live there. PIDs are recorded in the Vagrant state file; stopped by PID.

`ip netns exec` (not nsenter) on purpose: it remounts /sys for the namespace, which libvirt
needs to see its bridge; libvirt then runs without cgroups, which is fine for TCG VMs.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from .. import processes, waiting
from ..errors import LabError
from ..state import ProcessRecord
from .paths import VagrantPaths

SOCKET = Path("/run/libvirt/libvirt-sock")
URI = "qemu:///system"
DAEMONS = ("virtlogd", "libvirtd")  # start order; stopped in reverse


def load_state(paths: VagrantPaths) -> dict:
    try:
        return json.loads(paths.state_file.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def save_state(paths: VagrantPaths, state: dict) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    tmp = paths.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, paths.state_file)


def recorded(paths: VagrantPaths, daemon: str) -> ProcessRecord | None:
    raw = load_state(paths).get(daemon)
    return ProcessRecord(**raw) if raw else None


def running(paths: VagrantPaths) -> bool:
    return all(processes.is_alive(recorded(paths, d)) for d in DAEMONS)


def virsh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    result = waiting.run(["virsh", "-c", URI, "-q", *args], timeout=timeout)
    if check and result.returncode != 0:
        raise LabError(f"virsh {' '.join(args)} failed: {result.stderr.strip()}",
                       "see the libvirtd log in the lab state dir (vagrant/logs/libvirtd.log)")
    return result


def _libvirt_answers() -> bool:
    try:
        return virsh("uri", check=False, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def start(paths: VagrantPaths, netns: str, timeout: float = 30) -> None:
    if running(paths):
        return
    if SOCKET.exists() and _libvirt_answers():
        raise LabError("a libvirtd that lockdown did not start is running (it may be in the root namespace)",
                       "stop it the way it was started (e.g. `systemctl stop libvirtd`), then retry; "
                       "lockdown needs its own libvirtd inside the lab namespace")
    paths.logs.mkdir(parents=True, exist_ok=True)
    state = load_state(paths)
    for daemon in DAEMONS:
        if processes.is_alive(recorded(paths, daemon)):
            continue
        with open(paths.logs / f"{daemon}.log", "ab") as log:
            child = subprocess.Popen(["ip", "netns", "exec", netns, daemon], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        time.sleep(0.2)
        try:
            state[daemon] = processes.record(child.pid).__dict__
        except ProcessLookupError:
            raise LabError(f"{daemon} exited at once", f"read {paths.logs / f'{daemon}.log'}") from None
        save_state(paths, state)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _libvirt_answers():
            return
        if not running(paths):
            break
        time.sleep(0.3)
    raise LabError("libvirtd did not come up", f"read {paths.logs / 'libvirtd.log'}; then "
                   "`python -m lab.vagrant destroy` and retry")


def stop(paths: VagrantPaths) -> None:
    state = load_state(paths)
    for daemon in reversed(DAEMONS):
        processes.stop(recorded(paths, daemon), timeout=15)
        state.pop(daemon, None)
        save_state(paths, state)
