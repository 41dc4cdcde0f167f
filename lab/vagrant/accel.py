"""Which libvirt driver can boot the box's kernel here: "kvm" (hardware) or "qemu" (TCG)?

Measured, not assumed: some /dev/kvm (e.g. PVM, a software KVM variant) accept KVM_CREATE_VM
but hang a stock Debian kernel. The probe boots the box's kernel under -enable-kvm with no
disk and no network; a kernel that works panics on the missing root file system within a few
seconds. No panic message in time -> TCG. The result is cached per kernel in the state dir;
LOCKDOWN_VAGRANT_DRIVER (kvm|qemu) in the environment overrides it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .. import waiting
from ..progress import say
from .paths import VagrantPaths

PROBE_SECONDS = 25
WORKS = ("Kernel panic", "VFS: Unable to mount root")


def driver(paths: VagrantPaths, kernel: Path) -> str:
    forced = os.environ.get("LOCKDOWN_VAGRANT_DRIVER")
    if forced in ("kvm", "qemu"):
        return forced
    key = hashlib.sha256(kernel.read_bytes()).hexdigest()[:16]
    try:
        cached = json.loads(paths.accel_file.read_text())
        if cached.get("kernel") == key:
            return cached["driver"]
    except (FileNotFoundError, ValueError, KeyError):
        pass
    chosen, why = _probe(kernel)
    say(f"libvirt driver: {chosen} ({why})")
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.accel_file.write_text(json.dumps({"kernel": key, "driver": chosen, "why": why}) + "\n")
    return chosen


def _probe(kernel: Path) -> tuple[str, str]:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "qemu", "no usable /dev/kvm"
    return probe_with(probe_argv(kernel))


def probe_argv(kernel: Path) -> list[str]:
    return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-m", "256", "-nodefaults",
            "-display", "none", "-serial", "stdio", "-nic", "none", "-no-reboot",
            "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1"]


def probe_with(argv: list[str], seconds: float = PROBE_SECONDS) -> tuple[str, str]:
    """Run the probe command `argv` for at most `seconds` and judge its output.

    The waiting is lab.waiting.watch: output goes to a file and the deadline is checked by a
    poll loop, so it holds in a gevent-patched process (pytest's: pyinfra_cli patches it),
    where a read on the child's pipe would wait for output a hung kernel never prints.
    """
    watched = waiting.watch(argv, seconds=seconds, until=lambda text: any(mark in text for mark in WORKS))
    if watched.matched:
        return "kvm", f"kernel ran under KVM ({watched.seconds:.1f}s to panic as expected)"
    lines = watched.output.strip().splitlines()
    last = lines[-1][:100] if lines else "no output"
    if watched.returncode is not None:
        return "qemu", f"qemu -enable-kvm exited ({watched.returncode}) before the kernel ran: {last}"
    return "qemu", f"kernel under KVM showed no sign of life in {seconds:g}s: {last}"
