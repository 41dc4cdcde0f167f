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

from lab.audit_probe import lab_prober
from lab.config import LabConfig
from lab.processes import is_alive
from lab.state import StateStore

_config = LabConfig.from_env()

# ---------------------------------------------------------------------------------------
# Relay host data for every lab box: the Mailgun preset exactly as in production, no
# relay_host: the box looks smtp.mailgun.org up through the lab's resolver (lab/resolver.py),
# which answers with the stand-in, and verifies its certificate (issued for that name by the
# lab CA the box trusts: lab/tls.py). Credentials come from the environment, as in
# production (`python -m lab demo` exports the stand-in's).
# Boxes have no internet: those of the preinstalled image (the default) have every package
# already and no source (apt_update off); those of the minimal and standard images install
# from the lab's package mirror with apt_update at its default.
_relay_data = {
    "mail_root_forward": "admin@lab.test",
    "audit_probe": lab_prober,  # the audit's outside view comes from the lab prober
}
_PREINSTALLED_DATA = {"apt_update": False}
# ---------------------------------------------------------------------------------------


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
        **_relay_data,
        **(_PREINSTALLED_DATA if box.flavor == "preinstalled" else {}),
    })


_running = [box for box in StateStore(_config.state_file, _config.lock_file).load().running_boxes()
            if is_alive(box.process)]
# LAB_PROBES=box2 makes those boxes the audit's `probes` group (outside hosts that probe
# the others) instead of mail servers.
_probe_names = {name.strip() for name in os.environ.get("LAB_PROBES", "").split(",") if name.strip()}
mail_servers = [_host(box) for box in _selected(_running) if box.name not in _probe_names]
probes = [_host(box) for box in _selected(_running) if box.name in _probe_names]
