"""Every host tool a test starts must come from a package the project installs (issue 21).

A test run records each program it starts on the host (a Python audit hook on
``subprocess.Popen``), with the tier of the test that started it. Wrappers that run another
host program are looked through: ``nsenter`` without a mount namespace, ``ip netns exec``,
``env``, ``timeout``, ``setsid``, ``unshare`` without ``--mount``. At the end of the run each
program is traced to its Debian package (``dpkg -S``), and the run fails when that package is
neither part of every Debian system (Essential or Priority required) nor listed by the deps
script of the tier that used it: ``lab/system-packages.txt`` (``make deps``) for every tier,
plus ``lab/vagrant/system_deps.PACKAGES`` for the Vagrant tier, which installs them itself.

So a tool that is only there because another tier (or a person) installed it fails the run on
the machine where it *is* installed, not first on a fresh one.

What it does not catch: programs started by a child process (a script's own commands, pyinfra
or ``python -m lab`` in a subprocess), programs run inside a box (their packages come from the
image recipe), and code paths this run did not take (``make test-faults``'s long tests).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB_PACKAGES_FILE = REPO / "lab" / "system-packages.txt"
LOG_ENV = "LOCKDOWN_TOOLS_LOG"

# Programs whose argv names another host program to run, and how to find it.
_NSENTER_VALUE_OPTIONS = {"-t", "--target", "-S", "--setuid", "-G", "--setgid"}

_current_tier = "other"


def lab_packages() -> set[str]:
    names = set()
    for line in LAB_PACKAGES_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line)
    return names


def allowed_packages(tier: str) -> set[str]:
    allowed = lab_packages()
    if tier == "vagrant":
        from lab.vagrant.system_deps import PACKAGES

        allowed |= set(PACKAGES)
    return allowed


def host_program(argv: list[str]) -> str | None:
    """The host program that `argv` ends up running, or None when it runs in another mount
    namespace (a box's own binaries) or names nothing."""
    while argv:
        name = os.path.basename(argv[0])
        rest = list(argv[1:])
        if name == "nsenter":
            target = _after_options(rest, _NSENTER_VALUE_OPTIONS)
            if _enters_mount_namespace(rest[:len(rest) - len(target)]):
                return None
            argv = target
        elif name == "ip" and rest[:2] == ["netns", "exec"]:
            argv = rest[3:]
        elif name == "unshare":
            target = _after_options(rest, set())
            if _enters_mount_namespace(rest[:len(rest) - len(target)]):
                return None
            argv = target
        elif name == "env":
            argv = _after_options([a for a in rest if "=" not in a or a.startswith("-")], set())
        elif name == "timeout":
            argv = _after_options(rest, {"-s", "--signal", "-k", "--kill-after"})[1:]
        elif name == "setsid":
            argv = _after_options(rest, set())
        else:
            return argv[0]
    return None


def _enters_mount_namespace(options: list[str]) -> bool:
    for option in options:
        if option.startswith("--mount"):
            return True
        if option.startswith("-") and not option.startswith("--") and "m" in option[1:]:
            return True
    return False


def _after_options(args: list[str], takes_value: set[str]) -> list[str]:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args[i + 1:]
        if not arg.startswith("-"):
            return args[i:]
        i += 2 if arg in takes_value else 1
    return []


def _audit(event: str, args) -> None:
    if event != "subprocess.Popen":
        return
    executable, argv = args[0], args[1]
    if isinstance(argv, (str, bytes)):
        return  # shell strings: the shell is the program; what it runs is not traced
    try:
        argv = [os.fsdecode(a) for a in argv]
    except TypeError:
        return
    program = host_program(argv)
    log = os.environ.get(LOG_ENV)
    if program and log:
        with open(log, "a") as handle:
            handle.write(f"{_current_tier}\t{program}\n")


def install(log_path: Path) -> None:
    """Start recording (once per process; pytest-xdist workers inherit the log's path)."""
    os.environ.setdefault(LOG_ENV, str(log_path))
    if not getattr(sys, "_lockdown_tool_guard", False):
        sys.addaudithook(_audit)
        sys._lockdown_tool_guard = True


def set_tier(tier: str) -> None:
    global _current_tier
    _current_tier = tier


def package_of(program: str) -> tuple[str | None, str]:
    """(package, path) of a program on PATH; package None when dpkg owns no such file."""
    path = program if "/" in program else shutil.which(program)
    if path is None:
        return None, program
    real = os.path.realpath(path)
    merged = [p[len("/usr"):] if p.startswith("/usr/") else "/usr" + p for p in (path, real)]
    for candidate in dict.fromkeys([path, real, *merged]):  # usrmerge: dpkg may know /bin/ip
        found = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        owners = [line.split(":", 1)[0].split(",")[0].strip() for line in found.stdout.splitlines()
                  if not line.startswith("diversion ")]  # "diversion by dash from: /bin/sh"
        if found.returncode == 0 and owners:
            return owners[0], candidate
    return None, real


def is_base_package(package: str) -> bool:
    found = subprocess.run(["dpkg-query", "-W", "-f=${Essential} ${Priority}", package],
                           capture_output=True, text=True)
    essential, _, priority = found.stdout.strip().partition(" ")
    return essential == "yes" or priority == "required"


def _project_owned(path: str) -> bool:
    """Programs of this interpreter's installation or the venv (pyinfra, pytest, python), or of
    a venv a test made from this same interpreter (test_package's user venvs: pip, pyinfra)."""
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, REPO)}
    real = os.path.realpath(path)
    return any(real.startswith(root + os.sep) for root in roots) or _in_own_venv(path)


def _in_own_venv(path: str) -> bool:
    config = Path(path).parent.parent / "pyvenv.cfg"
    if not config.is_file():
        return False
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            base = os.path.realpath(sys.base_prefix)
            return os.path.realpath(value.strip()).startswith(base + os.sep)
    return False


def problems(log_path: Path) -> list[str]:
    """One line per program that the project does not install, with what to do."""
    if not log_path.exists():
        return []
    used: dict[str, set[str]] = {}
    for line in log_path.read_text().splitlines():
        tier, _, program = line.partition("\t")
        used.setdefault(program, set()).add(tier)
    found = []
    for program in sorted(used):
        package, path = package_of(program)
        if package is None:
            if shutil.which(path) is None:
                found.append(f"{program}: started by the {'/'.join(sorted(used[program]))} tier "
                             "but not installed; add its Debian package to lab/system-packages.txt")
            elif not _project_owned(path):
                found.append(f"{program} ({path}): no Debian package owns it and the project does "
                             "not install it; install it from a package the project lists")
            continue
        if is_base_package(package):
            continue
        for tier in sorted(used[program]):
            if package not in allowed_packages(tier):
                found.append(f"{program} ({path}, package {package}): started by the {tier} tier, "
                             f"but no deps script of that tier installs {package}; add it to "
                             "lab/system-packages.txt")
    return found
