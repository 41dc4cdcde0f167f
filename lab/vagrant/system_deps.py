"""Debian packages for the local Vagrant path, installed without starting any service.

Idempotent: installs only what is missing. During the install a policy-rc.d that exits 101
keeps every service (libvirtd, virtlogd, dnsmasq) from starting in the root namespace; an
existing policy-rc.d is left alone or restored afterwards. libvirt's `default` network
(192.168.122.0/24) loses its autostart link so it never comes up.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .. import waiting
from ..errors import LabError
from ..progress import step
from ..shell import run

PACKAGES = [
    "vagrant", "vagrant-libvirt", "libvirt-daemon-system", "qemu-system-x86", "qemu-utils",
    "dnsmasq-base", "iptables", "mmdebstrap", "e2fsprogs", "netcat-openbsd", "openssh-client",
    # what libvirt-daemon-system pulls in and the lab runs itself (virsh, libvirtd, virtlogd):
    # named so the tool guard (tests/tool_guard.py) traces each to a listed package
    "libvirt-clients", "libvirt-daemon",
]
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
DENY_ALL = "#!/bin/sh\n# lockdown: no service may start during this install\nexit 101\n"
DEFAULT_NET_AUTOSTART = Path("/etc/libvirt/qemu/networks/autostart/default.xml")


def missing_packages(packages: list[str] = PACKAGES) -> list[str]:
    missing = []
    for package in packages:
        result = waiting.run(["dpkg-query", "-W", "-f=${Status}", package], timeout=60)
        if "ok installed" not in result.stdout:
            missing.append(package)
    return missing


def ensure_installed() -> None:
    # Several test workers may get here at once on a new machine: one apt at a time (apt's own
    # lock makes the second fail at once), and what the first installed is not installed again.
    from ..cache_lock import held
    from ..config import LabConfig

    if missing_packages():
        with held(LabConfig.from_env().cache_dir, "apt-vagrant-packages"):
            _install_missing()
    DEFAULT_NET_AUTOSTART.unlink(missing_ok=True)


def _install_missing() -> None:
    missing = missing_packages()
    if missing:
        if os.geteuid() != 0:
            raise LabError(f"missing Debian packages: {' '.join(missing)}",
                           f"run as root, or: sudo apt-get install --no-install-recommends {' '.join(missing)}")
        with step(f"installing {' '.join(missing)}"), _services_blocked():
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            result = run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                         check=False, timeout=1800, env=env)
            if result.returncode != 0:
                run(["apt-get", "update", "-q"], timeout=600, env=env,
                    todo="check that apt can reach the Debian mirror")
                run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], timeout=1800,
                    env=env, todo="read the apt output above; fix apt, then rerun `python -m lab.vagrant up`")


class _services_blocked:
    """Context manager: policy-rc.d exits 101 inside, the previous state is restored after."""

    def __enter__(self):
        self.saved = POLICY_RC_D.read_bytes() if POLICY_RC_D.exists() else None
        if self.saved is None or b"exit 101" not in self.saved:
            POLICY_RC_D.write_text(DENY_ALL)
            POLICY_RC_D.chmod(0o755)
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            POLICY_RC_D.unlink(missing_ok=True)
        elif POLICY_RC_D.read_bytes() != self.saved:
            POLICY_RC_D.write_bytes(self.saved)
        return False


def vagrant_public_key() -> Path:
    """Vagrant's insecure public key as shipped inside Debian's vagrant package."""
    result = waiting.run(["dpkg", "-L", "vagrant"], timeout=60)
    for line in result.stdout.splitlines():
        if line.endswith("/keys/vagrant.pub"):
            return Path(line)
    raise LabError("Vagrant's insecure public key (keys/vagrant.pub) not found",
                   "apt-get install --reinstall vagrant")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
