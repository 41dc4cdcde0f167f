"""pyinfra inventory of the lab's running boxes (read from the lab state file).

Run pyinfra INSIDE the lab network namespace, from the repo root:

    python -m lab exec -- pyinfra inventories/lab.py exec -- hostname
    LAB_HOSTS=box1,box3 python -m lab exec -- pyinfra inventories/lab.py ...
    LAB_PROBES=box2 ... deploys/audit.py --data audit_probe=off   # box2 probes the others

Host names are the box names; they are reached by IPv4 as the `deploy` user with the
lab-only key. Host keys are neither checked nor recorded: these boxes are throwaway and
share one image's host keys (never copy these settings to a real inventory).
"""
import os

from lab.config import LabConfig
from lab.host_data import PREINSTALLED_DATA, RELAY_DATA
from lab.processes import is_alive
from lab.state import StateStore

_config = LabConfig.from_env()


def _selected(boxes):
    wanted = [name.strip() for name in os.environ.get("LAB_HOSTS", "").split(",") if name.strip()]
    if not wanted:
        return boxes
    known = {box.name for box in boxes}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise SystemExit(f"LAB_HOSTS names boxes that are not running: {', '.join(unknown)} "
                         f"(running: {', '.join(sorted(known)) or 'none'}; see `python -m lab status`)")
    return [box for box in boxes if box.name in wanted]


def _host(box):
    return (box.name, {
        "ssh_hostname": box.ipv4,
        "ssh_user": "deploy",
        "ssh_key": str(_config.ssh_key),
        "ssh_known_hosts_file": "/dev/null",
        "ssh_strict_host_key_checking": "off",
        "_sudo": True,
        "audit_probe_addresses": [box.ipv4, box.ipv6],
        **RELAY_DATA,
        **(PREINSTALLED_DATA if box.flavor == "preinstalled" else {}),
    })


_running = [box for box in StateStore(_config.state_file, _config.lock_file).load().running_boxes()
            if is_alive(box.process)]
# LAB_PROBES=box2 makes those boxes the audit's `probes` group (outside hosts that probe
# the others) instead of mail servers.
_probe_names = {name.strip() for name in os.environ.get("LAB_PROBES", "").split(",") if name.strip()}
mail_servers = [_host(box) for box in _selected(_running) if box.name not in _probe_names]
probes = [_host(box) for box in _selected(_running) if box.name in _probe_names]
