"""Benchmark: the yardstick - Ansible doing lockdown's work (bench/ansible/lockdown.yml).

    python -m bench.ansible_run [--boxes N] [--repeat R] [--strategy linear|free]

Installs Ansible (ansible-core + community.general, from the `ansible` package) into a venv
of its own once, boots N fresh lab boxes in a lab of its own, writes an inventory for them,
then times inside the lab namespace:
  first   the first converge of the fresh boxes (must change things)
  noop    R re-runs on the converged boxes (must report changed=0 on every host)
and counts SSH commands per host (`SSH: EXEC` lines of -vvv: one per module run, pipelined).
Cross-checks once that lockdown's own deploy finds nothing to change on the boxes Ansible
converged (the two do the same work). Prints medians; the lab is always torn down.

Each timed run starts cold, like a pyinfra run: the SSH ControlPersist masters a run leaves
behind are closed (`ssh -O exit` on this lab's own control sockets) before the next one.
Compare with `python -m bench.noop_run --boxes N` (lockdown, same box image).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.noop_run import CREDENTIALS, bench_lab
from lab.api import Lab
from lab.config import REPO_ROOT, LabConfig

LAB_ENV = {"LOCKDOWN_LAB_DIR": "/tmp/lockdown-bench-ansible", "LOCKDOWN_LAB_NETNS": "ldbenchan"}
VENV = Path(os.environ.get("LOCKDOWN_ANSIBLE_VENV", "/tmp/lockdown-ansible-venv"))
# The `ansible` package pins an ansible-core and ships community.general (the ufw module).
ANSIBLE_REQUIREMENT = os.environ.get("LOCKDOWN_ANSIBLE_REQUIREMENT", "ansible>=10,<13")
ANSIBLE_DIR = REPO_ROOT / "bench" / "ansible"
PLAYBOOK = ANSIBLE_DIR / "lockdown.yml"
REQUIRED_PACKAGES = ["postfix", "libsasl2-modules", "ca-certificates", "ufw"]
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def ensure_ansible() -> Path:
    """The venv's ansible-playbook, installing ansible (+ community.general) once."""
    playbook_bin = VENV / "bin" / "ansible-playbook"
    marker = VENV / ".lockdown-ansible-ok"
    if not marker.exists():
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", ANSIBLE_REQUIREMENT], check=True)
        probe = subprocess.run([str(VENV / "bin" / "ansible-doc"), "-t", "module", "community.general.ufw"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            raise SystemExit(f"bench: community.general.ufw not available in {VENV}:\n{probe.stderr}")
        marker.write_text(ANSIBLE_REQUIREMENT + "\n")
    return playbook_bin


def ansible_version() -> str:
    out = subprocess.run([str(VENV / "bin" / "ansible"), "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "?"


def lockdown_vars(boxes: int) -> dict:
    """The playbook's variables, from the lab's host data through lockdown's own functions."""
    from pyinfra_lockdown.mail import main_cf_settings
    from pyinfra_lockdown.settings import firewall_settings, relay_settings
    from lab.host_data import RELAY_DATA

    relay = relay_settings(RELAY_DATA, environ=CREDENTIALS)
    firewall = firewall_settings(RELAY_DATA)
    if firewall.allowed != ["ssh"]:
        raise SystemExit(f"bench: the playbook only knows firewall_allowed ['ssh'], not {firewall.allowed}")
    return {
        "main_cf": main_cf_settings(relay),
        "relayhost": relay.relayhost,
        "root_forward": relay.root_forward,
        "sender_domain": relay.sender_domain,
        "required_packages": REQUIRED_PACKAGES,
        "ufw_ipv6": firewall.ipv6,
        "ufw_default_incoming": firewall.default_incoming,
        "ufw_default_outgoing": firewall.default_outgoing,
        "ufw_default_routed": firewall.default_routed,
        "ufw_logging": firewall.logging,
    }


def write_inventory(config: LabConfig, boxes) -> Path:
    lines = ["[mail_servers]"]
    lines += [f"{box.name} ansible_host={box.ipv4}" for box in boxes]
    lines += ["", "[mail_servers:vars]", "ansible_user=deploy",
              f"ansible_ssh_private_key_file={config.ssh_key}", "ansible_become=true",
              "ansible_host_key_checking=false", ""]
    path = config.state_dir / "ansible" / "inventory.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


class Runner:
    def __init__(self, lab: Lab, playbook_bin: Path, inventory: Path, vars_file: Path,
                 forks: int, strategy: str):
        self.lab = lab
        self.control_dir = lab.config.state_dir / "ansible" / "cp"
        self.control_dir.mkdir(parents=True, exist_ok=True)
        self.argv = [str(playbook_bin), "-i", str(inventory), "-e", f"@{vars_file}",
                     "--forks", str(forks), str(PLAYBOOK)]
        self.env = {**CREDENTIALS, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
                    "ANSIBLE_STRATEGY": strategy, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir),
                    "ANSIBLE_LOCAL_TEMP": str(lab.config.state_dir / "ansible" / "tmp"),
                    "ANSIBLE_NOCOLOR": "1", "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}"}

    def close_masters(self) -> None:
        """Stop the ControlPersist masters of the last run through their own sockets."""
        for sock in sorted(self.control_dir.iterdir()):
            self.lab.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "lab-box"], timeout=30)
            if sock.exists():
                sock.unlink()

    def run(self, extra: list[str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
        self.close_masters()
        started = time.monotonic()
        result = self.lab.run(self.argv + (extra or []), env=self.env, timeout=900)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            raise SystemExit(f"bench: ansible-playbook failed (exit {result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
        return elapsed, result


def recap(result: subprocess.CompletedProcess) -> dict[str, int]:
    """host -> changed count, from PLAY RECAP; checks every host is ok."""
    changed = {}
    for host, _ok, chg, unreachable, failed in RECAP.findall(result.stdout):
        if int(unreachable) or int(failed):
            raise SystemExit(f"bench: {host} unreachable/failed:\n{result.stdout[-3000:]}")
        changed[host] = int(chg)
    return changed


def ssh_commands(result: subprocess.CompletedProcess, hosts: int) -> float:
    return len(re.findall(r"SSH: EXEC ssh ", result.stdout + result.stderr)) / hosts


def crosscheck_with_lockdown(lab: Lab) -> str:
    """lockdown's own deploy on the Ansible-converged boxes: it must find nothing to do."""
    result = lab.run(lab.pyinfra_argv() + ["-y", "deploys/mail.py"], env=CREDENTIALS, timeout=300)
    out = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"bench: lockdown failed on the Ansible-converged boxes:\n{out[-3000:]}")
    if not re.search(r"^\s*Grand total\s+-\s+-\s+-\s+-\s*$", out, re.M):
        raise SystemExit(f"bench: lockdown still had work on the Ansible-converged boxes:\n{out[-3000:]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boxes", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--firsts", type=int, default=1,
                        help="first converges to time (each on N freshly booted boxes)")
    parser.add_argument("--strategy", choices=["linear", "free"], default="linear")
    parser.add_argument("--ufw-guarded", action="store_true",
                        help="skip ufw tasks the state read shows done (hand-tuned; default: stock ufw module)")
    parser.add_argument("--no-crosscheck", action="store_true")
    args = parser.parse_args()

    os.environ.update(LAB_ENV)  # the bench's own lab, for everything started from here
    playbook_bin = ensure_ansible()
    print(f"bench: {ansible_version()}, strategy {args.strategy}, forks {args.boxes}, pipelining, "
          f"ControlPersist (closed between runs), ufw {'guarded' if args.ufw_guarded else 'stock module'}")
    with bench_lab(LAB_ENV["LOCKDOWN_LAB_DIR"], LAB_ENV["LOCKDOWN_LAB_NETNS"]) as lab:
        config = lab.config
        vars_file = config.state_dir / "ansible" / "vars.json"
        vars_file.parent.mkdir(parents=True, exist_ok=True)
        vars_file.write_text(json.dumps({**lockdown_vars(args.boxes), "ufw_guarded": args.ufw_guarded}, indent=2))

        firsts = []
        for attempt in range(args.firsts):
            for box in lab.boxes():
                lab.remove_box(box)
            boxes = lab.up(args.boxes)
            runner = Runner(lab, playbook_bin, write_inventory(config, boxes), vars_file,
                            forks=args.boxes, strategy=args.strategy)
            elapsed, result = runner.run()
            changed = recap(result)
            if len(changed) != args.boxes or not all(changed.values()):
                raise SystemExit(f"bench: first converge did not change every host: {changed}")
            firsts.append(elapsed)
            print(f"boxes={args.boxes} ansible first converge #{attempt + 1}: {elapsed:.2f}s  changed/host "
                  f"{statistics.median(changed.values()):g}")
        if args.firsts > 1:
            print(f"boxes={args.boxes} ansible first  median {statistics.median(firsts):.3f}s  min {min(firsts):.3f}s")

        samples = []
        for _ in range(args.repeat):
            elapsed, result = runner.run()
            changed = recap(result)
            if len(changed) != args.boxes or any(changed.values()):
                raise SystemExit(f"bench: no-op re-run changed something: {changed}\n{result.stdout[-3000:]}")
            samples.append(elapsed)
        _, verbose = runner.run(["-vvv"])
        if any(recap(verbose).values()):
            raise SystemExit("bench: -vvv no-op re-run changed something")
        print(f"boxes={args.boxes} ansible noop   median {statistics.median(samples):.3f}s  min {min(samples):.3f}s  "
              f"changed=0 on all {args.boxes} hosts x{args.repeat}  SSH commands/host {ssh_commands(verbose, args.boxes):g}")

        if not args.no_crosscheck:
            out = crosscheck_with_lockdown(lab)
            (config.state_dir / "ansible" / "crosscheck.log").write_text(out)
            _, result = runner.run()
            if any(recap(result).values()):
                raise SystemExit("bench: Ansible changed something after lockdown's run")
            print("bench: crosscheck ok: lockdown's deploys/mail.py ran no operation on the boxes Ansible "
                  "converged, and Ansible then reported changed=0")
        runner.close_masters()


if __name__ == "__main__":
    main()
