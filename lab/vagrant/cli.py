"""python -m lab.vagrant up | converge | audit | ssh [CMD...] | destroy | status | build

Local offline mode (this machine, CI): the lab's namespace, a locally built Debian 13 box,
libvirtd inside the lab namespace, the lab's Mailgun stand-in as relay. Relay credentials come
from LOCKDOWN_RELAY_LOGIN / LOCKDOWN_RELAY_PASSWORD like production; when unset, the stand-in's
lab-only credentials are used.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..config import REPO_ROOT
from ..errors import LabError
from ..network import in_netns
from ..progress import say
from . import box, daemons, libvirt_objects
from .lifecycle import MACHINE, LocalVagrant

INVENTORY = "inventories/vagrant.py"
DEPLOY = "deploys/mail.py"
AUDIT = "deploys/audit.py"
OUTSIDE_PORTS = {22: True, 25: False, 587: False}  # port -> expected open from outside


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.vagrant", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="install what is missing, build/add the box, start libvirtd, vagrant up")
    converge = commands.add_parser("converge", help=f"pyinfra -y {INVENTORY} {DEPLOY}")
    converge.add_argument("extra", nargs=argparse.REMAINDER, help="more pyinfra arguments")
    commands.add_parser("audit", help=f"pyinfra {INVENTORY} {AUDIT} (if present) + outside checks from the prober")
    ssh = commands.add_parser("ssh", help="vagrant ssh mail [-c CMD]")
    ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    commands.add_parser("destroy", help="vagrant destroy; remove volumes, network, pool; stop libvirtd")
    commands.add_parser("status", help="vagrant status, daemons, libvirt objects")
    commands.add_parser("build", help="build the local box (cached by recipe hash)")
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](LocalVagrant(), args)
    except LabError as error:
        print(f"lab.vagrant: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab.vagrant: interrupted; `python -m lab.vagrant destroy` cleans up", file=sys.stderr)
        return 130


def cmd_up(local: LocalVagrant, args) -> int:
    seconds = local.up()
    print(f"{MACHINE} is up ({seconds:.0f}s for vagrant up); next: python -m lab.vagrant converge")
    return 0


def relay_credentials(local: LocalVagrant) -> dict[str, str]:
    if os.environ.get("LOCKDOWN_RELAY_LOGIN") and os.environ.get("LOCKDOWN_RELAY_PASSWORD"):
        return {}
    control = local.lab.standin.control()
    say("LOCKDOWN_RELAY_LOGIN/PASSWORD not set: using the lab stand-in's credentials")
    return {"LOCKDOWN_RELAY_LOGIN": control["login"], "LOCKDOWN_RELAY_PASSWORD": control["password"]}


def pyinfra_argv() -> list[str]:
    return [str(Path(sys.executable).parent / "pyinfra")]


def cmd_converge(local: LocalVagrant, args) -> int:
    argv = pyinfra_argv() + ["-y", INVENTORY, DEPLOY] + args.extra
    return local.run(argv, capture=False, timeout=None, extra_env=relay_credentials(local)).returncode


def cmd_audit(local: LocalVagrant, args) -> int:
    rc = 0
    if (REPO_ROOT / AUDIT).exists():
        rc = local.run(pyinfra_argv() + ["-y", INVENTORY, AUDIT], capture=False, timeout=None,
                       extra_env=relay_credentials(local)).returncode
    else:
        say(f"{AUDIT} not written yet: outside checks only")
    address = local.address()
    for port, expected in OUTSIDE_PORTS.items():
        is_open = local.lab.probe.tcp_open(address, port)
        verdict = "ok" if is_open == expected else "UNEXPECTED"
        rc = rc or (0 if is_open == expected else 1)
        print(f"{address}:{port} {'open' if is_open else 'closed'} from the outside ({verdict})")
    return rc


def cmd_ssh(local: LocalVagrant, args) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    argv = in_netns(local.lab.config.netns, ["vagrant", "ssh", MACHINE] + (["-c", " ".join(cmd)] if cmd else []))
    os.chdir(REPO_ROOT)
    os.execvpe(argv[0], argv, {**os.environ, **local.env()})


def cmd_destroy(local: LocalVagrant, args) -> int:
    started = time.monotonic()
    problems = local.destroy()
    if problems:
        raise LabError("some Vagrant resources could not be removed", "run `python -m lab.vagrant destroy` again",
                       detail="\n".join(problems))
    print(f"destroyed in {time.monotonic() - started:.1f}s (the lab itself: `python -m lab down`)")
    return 0


def cmd_status(local: LocalVagrant, args) -> int:
    paths = local.paths
    state = daemons.load_state(paths)
    info = {"box": state.get("box"), "driver": state.get("driver"), "daemons_running": daemons.running(paths),
            "network": paths.network_name, "pool": paths.pool_name}
    if info["daemons_running"]:
        info["domains"] = libvirt_objects.our_domains()
        info["volumes"] = libvirt_objects.volumes(paths)
    print(json.dumps(info, indent=2))
    if info["daemons_running"] and state.get("box"):
        print(local.vagrant("status", check=False).stdout)
    return 0


def cmd_build(local: LocalVagrant, args) -> int:
    print(box.ensure_box(local.lab.config.cache_dir))
    return 0


COMMANDS = {"up": cmd_up, "converge": cmd_converge, "audit": cmd_audit, "ssh": cmd_ssh,
            "destroy": cmd_destroy, "status": cmd_status, "build": cmd_build}
