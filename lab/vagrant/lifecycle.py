"""The local offline Vagrant mode, end to end: prerequisites, vagrant up, destroy.

Everything runs against the lab (`lab.api.Lab`): its namespace holds libvirtd, the libvirt
bridge and every TCP connection (vagrant's SSH, pyinfra, the prober).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time

from .. import waiting
from ..api import Lab
from ..config import REPO_ROOT
from ..errors import LabError
from ..network import in_netns
from ..progress import say, step
from . import accel, box, daemons, libvirt_objects, system_deps
from .paths import VagrantPaths

MACHINE = "mail"


class LocalVagrant:
    def __init__(self, lab: Lab | None = None):
        self.lab = lab or Lab()
        self.paths = VagrantPaths(self.lab.config)

    # --- environment shared by every vagrant/pyinfra call ------------------------------------
    def env(self) -> dict[str, str]:
        state = daemons.load_state(self.paths)
        if "box" not in state:
            raise LabError("the local Vagrant mode is not set up", "run `python -m lab.vagrant up` first")
        return {
            **self.lab.config.env(),
            "VAGRANT_HOME": str(self.paths.vagrant_home),
            "VAGRANT_DOTFILE_PATH": str(self.paths.dotfile),
            "VAGRANT_CWD": str(REPO_ROOT),
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
            "VAGRANT_DEFAULT_PROVIDER": "libvirt",
            "LIBVIRT_DEFAULT_URI": daemons.URI,
            "LOCKDOWN_VAGRANT_LOCAL_BOX": state["box"],
            "LOCKDOWN_VAGRANT_DRIVER": state["driver"],
            "LOCKDOWN_VAGRANT_NETWORK": self.paths.network_name,
            "LOCKDOWN_VAGRANT_POOL": self.paths.pool_name,
        }

    def run(self, argv: list[str], *, capture: bool = True, timeout: float | None = 1800,
            extra_env: dict | None = None) -> subprocess.CompletedProcess:
        """Run argv inside the lab namespace from the repo root, with the Vagrant environment."""
        env = {**os.environ, **self.env(), **(extra_env or {})}
        # A captured run gets its own process group, so a timeout also stops vagrant's children;
        # an uncaptured one (output on the terminal) stays in ours.
        return waiting.run(in_netns(self.lab.config.netns, argv), env=env, cwd=REPO_ROOT,
                           timeout=timeout, capture=capture, new_session=capture)

    def vagrant(self, *args: str, check: bool = True, capture: bool = True,
                timeout: float | None = 1800) -> subprocess.CompletedProcess:
        result = self.run(["vagrant", *args], capture=capture, timeout=timeout)
        if check and result.returncode != 0:
            raise LabError(f"vagrant {' '.join(args)} failed (exit {result.returncode})",
                           "read the output above; `python -m lab.vagrant status`, then "
                           "`python -m lab.vagrant destroy` and retry",
                           detail=((result.stdout or "") + (result.stderr or ""))[-3000:])
        return result

    # --- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Packages, lab network + stand-in, box, driver, libvirtd, network, pool, box added."""
        system_deps.ensure_installed()
        self.lab.ensure_network()
        self.lab.standin_start()
        box_file = box.ensure_box(self.lab.config.cache_dir)
        name = box.box_name()
        driver = accel.driver(self.paths, box.kernel_file(self.lab.config.cache_dir))
        state = daemons.load_state(self.paths)
        state.update(box=name, driver=driver)
        daemons.save_state(self.paths, state)
        with step("libvirtd + virtlogd inside the lab namespace"):
            daemons.start(self.paths, self.lab.config.netns)
            libvirt_objects.ensure_network(self.paths)
            libvirt_objects.ensure_pool(self.paths)
        if not (self.paths.vagrant_home / "boxes" / name).exists():
            with step(f"vagrant box add {name}"):
                self.vagrant("box", "add", "--name", name, str(box_file))

    def up(self) -> float:
        self.prepare()
        started = time.monotonic()
        with step("vagrant up --provider=libvirt"):
            self.vagrant("up", "--provider=libvirt", capture=False)
        with step("waiting for systemd in the VM to finish booting"):
            result = self.vagrant("ssh", MACHINE, "-c", "systemctl is-system-running --wait", check=False)
            say(f"  system state: {(result.stdout or '').strip() or result.stderr.strip()[-200:]}")
        return time.monotonic() - started

    def address(self, machine: str = MACHINE) -> str:
        for line in self.vagrant("ssh-config", machine).stdout.splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "HostName":
                return value
        raise LabError(f"no address for {machine}", "`python -m lab.vagrant status`; is it up?")

    def destroy(self) -> list[str]:
        """Remove VMs, volumes, network, pool and stop our daemons; returns problems."""
        problems = []
        if daemons.running(self.paths) and "box" in daemons.load_state(self.paths):
            result = self.vagrant("destroy", "-f", check=False)
            if result.returncode != 0:
                problems.append("vagrant destroy: " + (result.stderr or result.stdout)[-500:])
        if daemons.running(self.paths):
            problems += libvirt_objects.remove_all(self.paths)
        daemons.stop(self.paths)
        shutil.rmtree(self.paths.dotfile, ignore_errors=True)
        state = daemons.load_state(self.paths)
        state.pop("box", None)
        daemons.save_state(self.paths, state)
        return problems
