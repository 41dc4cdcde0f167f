"""The box images: a Debian rootfs per suite (12 bookworm, 13 trixie) and flavor, built by
mmdebstrap from Debian's archive, each cached by a hash of its recipe. The recipe is the same
for every suite: whatever differs between the releases is the releases' own doing.

Flavors (see lab/README.md for the real images each stands for):
- ``preinstalled`` (default): Postfix ("No configuration") and ufw already there; boxes need no
  package source. The existing lab tests use it.
- ``minimal``: a cloud/VPS image: no MTA, no ufw, no libsasl2-modules.
- ``standard``: ``minimal`` plus exim4 as the MTA (on loopback only) and a few tools.
Boxes of ``minimal`` and ``standard`` get the lab's package mirror as their only source.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from . import cache_lock, waiting
from .errors import LabError
from .progress import say, step

SUITES = ("bookworm", "trixie")
DEFAULT_SUITE = "bookworm"
FLAVORS = ("preinstalled", "minimal", "standard")
DEFAULT_FLAVOR = "preinstalled"
MIRRORED_FLAVORS = ("minimal", "standard")  # their boxes install from the lab's mirror
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo",
    "postfix", "libsasl2-modules", "bsd-mailx",
    "ufw", "iptables", "ca-certificates",
    "iproute2", "procps", "netbase", "kmod", "netcat-openbsd",
    "python3",  # as on any Debian VPS; the audit's probe hosts run a small python3 script
    "cron",  # as on any Debian VPS image: it runs logwatch's daily report
    # Present but unconfigured, like Postfix's "No configuration": the lab has no mirror, so
    # the logwatch step finds them installed (pyinfra_lockdown/logwatch.py PACKAGES).
    "logwatch", "libdate-manip-perl",
]
# Debian's cloud images: openssh-server, sudo, dbus, cloud-init (hence python3 and, through
# python3-requests/certifi, ca-certificates); they remove the exim4 that Recommends pull in.
MINIMAL_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo",
    "ca-certificates", "python3",
    "iproute2", "procps", "netbase", "kmod",
]
# A server with exim4 as its MTA (Priority optional in 12 and 13: see lab/README.md). exim4's
# Debian default (dc_eximconfig_configtype local, dc_local_interfaces 127.0.0.1 ; ::1) listens
# on loopback only.
STANDARD_PACKAGES = MINIMAL_PACKAGES + [
    "exim4-daemon-light", "bsd-mailx", "less", "bash-completion", "wget", "lsof",
]


def flavor_packages(flavor: str) -> list[str]:
    return {"preinstalled": PACKAGES, "minimal": MINIMAL_PACKAGES,
            "standard": STANDARD_PACKAGES}[check_flavor(flavor)]
# "No configuration" leaves no /etc/postfix/main.cf, like a fresh real install.
DEBCONF_PRESEED = (
    "postfix postfix/main_mailer_type select No configuration\n"
    "postfix postfix/mailname string lab.test\n"
)
DPKG_OPTIONS = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
]
PREP_SCRIPT = Path(__file__).with_name("image_prep.sh")


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise LabError(f"unknown suite {suite!r}", f"use one of: {', '.join(SUITES)}")
    return suite


def check_flavor(flavor: str) -> str:
    if flavor not in FLAVORS:
        raise LabError(f"unknown image {flavor!r}", f"use one of: {', '.join(FLAVORS)}")
    return flavor


def recipe_hash(suite: str = DEFAULT_SUITE, flavor: str = DEFAULT_FLAVOR) -> str:
    recipe = {
        "suite": check_suite(suite),
        "variant": "apt",
        "packages": sorted(flavor_packages(flavor)),
        "preseed": DEBCONF_PRESEED,
        "dpkg": DPKG_OPTIONS,
        "prep": PREP_SCRIPT.read_text(),
    }
    if flavor != DEFAULT_FLAVOR:  # the default's hash (and cached images) stay as they were
        recipe["flavor"] = flavor
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def image_name(suite: str = DEFAULT_SUITE, flavor: str = DEFAULT_FLAVOR) -> str:
    middle = "" if flavor == DEFAULT_FLAVOR else f"{flavor}-"
    return f"{suite}-{middle}{recipe_hash(suite, flavor)}"


def image_dir(cache_dir: Path, suite: str = DEFAULT_SUITE, flavor: str = DEFAULT_FLAVOR) -> Path:
    return Path(cache_dir) / "images" / image_name(suite, flavor)


def rootfs(cache_dir: Path, suite: str = DEFAULT_SUITE, flavor: str = DEFAULT_FLAVOR) -> Path:
    return image_dir(cache_dir, suite, flavor) / "rootfs"


def is_built(cache_dir: Path, suite: str = DEFAULT_SUITE, flavor: str = DEFAULT_FLAVOR) -> bool:
    return (image_dir(cache_dir, suite, flavor) / "complete").exists()


def mmdebstrap_argv(target: Path, suite: str = DEFAULT_SUITE,
                    flavor: str = DEFAULT_FLAVOR) -> list[str]:
    preseed = DEBCONF_PRESEED.replace("'", "")
    argv = [
        "mmdebstrap", "--variant=apt", "--mode=root", "--verbose",
        f"--include={','.join(flavor_packages(flavor))}",
        f"--essential-hook=printf '{preseed}' | chroot \"$1\" debconf-set-selections",
        f"--customize-hook=sh {PREP_SCRIPT} \"$1\"",
    ]
    argv += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    # No mirror argument: mmdebstrap's default is the Debian mirror this host reaches.
    return argv + [check_suite(suite), str(target)]


def ensure_image(cache_dir: Path, suite: str = DEFAULT_SUITE, flavor: str = DEFAULT_FLAVOR) -> Path:
    """Return the suite's cached rootfs, building it first if the recipe changed."""
    if is_built(cache_dir, suite, flavor):
        return rootfs(cache_dir, suite, flavor)
    with cache_lock.held(cache_dir, image_name(suite, flavor)):  # other labs wait, then find it
        if not is_built(cache_dir, suite, flavor):
            _build(cache_dir, suite, flavor)
    return rootfs(cache_dir, suite, flavor)


def _build(cache_dir: Path, suite: str, flavor: str) -> None:
    if shutil.which("mmdebstrap") is None:
        raise LabError("mmdebstrap is not installed", "apt-get install -y mmdebstrap systemd-container netcat-openbsd")
    final = image_dir(cache_dir, suite, flavor)
    final.parent.mkdir(parents=True, exist_ok=True)
    building = final.with_name(f"{final.name}.building-{os.getpid()}")
    log = final.with_name(f"{final.name}.log")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    with step(f"building {suite} {flavor} box image {final.name} (log: {log})"):
        _run_with_ticker(mmdebstrap_argv(building / "rootfs", suite, flavor), log)
        (building / "complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
        if final.exists():  # a stale, incomplete image from an interrupted build
            shutil.rmtree(final)
        os.rename(building, final)


def _run_with_ticker(argv: list[str], log: Path, timeout: float = 1800) -> None:
    # Output into the log file and a poll loop that checks the clock: holds under gevent too.
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        leader = waiting.leader_of(process)
        next_tick = started + 10
        try:
            while process.poll() is None:
                time.sleep(0.5)
                if time.monotonic() >= next_tick:
                    next_tick += 10
                    say(f"  still building ({time.monotonic() - started:.0f}s): {_last_line(log)}")
                if time.monotonic() - started > timeout:
                    raise LabError(f"mmdebstrap timed out after {timeout:.0f}s", f"read {log}, then retry",
                                   detail=_tail(log, 15))
        finally:
            waiting.stop(process, leader)
    if process.returncode != 0:
        raise LabError(
            f"mmdebstrap failed (exit {process.returncode})",
            f"read {log}; check that apt can reach the Debian mirror (apt-get update), then `python -m lab build`",
            detail=_tail(log, 15),
        )


def _last_line(log: Path) -> str:
    lines = _tail(log, 1).strip()
    return lines[:120]


def _tail(log: Path, count: int) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-count:])
    except OSError:
        return ""
