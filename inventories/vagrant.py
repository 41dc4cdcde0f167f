"""pyinfra inventory of the Vagrant VMs of the repo's Vagrantfile.

    vagrant up && pyinfra -y inventories/vagrant.py deploys/mail.py    # public boxes (laptop)
    python -m lab.vagrant up && python -m lab.vagrant converge           # local offline mode

Run from the repo root (pyinfra's @vagrant runs `vagrant status` in the cwd). Groups:
`mail_servers` = @vagrant/mail; `probes` = @vagrant/probe, only when that VM is running
(LOCKDOWN_VAGRANT_PROBE=1 vagrant up), because naming a VM that is not up fails the run.

Host keys are neither checked nor recorded: pyinfra ignores Vagrant's own host-key options,
and a recreated VM has new keys (never copy these settings to a real inventory).
"""
import os

_host_keys = {"ssh_known_hosts_file": "/dev/null", "ssh_strict_host_key_checking": "off"}

# ---------------------------------------------------------------------------------------
# Your relay host data for the Vagrant VM (every key: pyinfra_lockdown/settings.py). Credentials never
# go here: they come from LOCKDOWN_RELAY_LOGIN / LOCKDOWN_RELAY_PASSWORD.
_relay_data = {
    # "mail_root_forward": "you@example.com",   # required: where root's mail goes
    # "relay_region": "eu",
    # "relay_port": 2525,
}
# ---------------------------------------------------------------------------------------

# Local offline mode (python -m lab.vagrant sets LOCKDOWN_VAGRANT_LOCAL_BOX): the relay is the
# lab's Mailgun stand-in. The VM's default route is the libvirt bridge inside the lab namespace,
# which owns 10.77.0.1, so the VM reaches the stand-in without any forwarding.
def _local_lab_data() -> dict:
    from lab.audit_probe import lab_prober

    return {
        "relay_host": "10.77.0.1",
        # An IP cannot be matched to a certificate (and the VM does not trust the lab CA):
        # the weaker level, chosen explicitly as a user would have to.
        "relay_tls_level": "encrypt",
        "relay_port": 587,
        "mail_root_forward": "admin@lab.test",
        "apt_update": False,  # the VM has no mirror; every package is in the box
        # pyinfra runs inside the lab namespace: the outside view comes from the lab prober
        "audit_probe": lab_prober,
    }


_data = {
    **_host_keys,
    "_sudo": True,
    **(_local_lab_data() if os.environ.get("LOCKDOWN_VAGRANT_LOCAL_BOX") else {}),
    **_relay_data,
}


def _probe_is_running() -> bool:
    if os.environ.get("LOCKDOWN_VAGRANT_PROBE") != "1":  # not even defined in the Vagrantfile
        return False
    from pyinfra.connectors.vagrant import get_vagrant_config

    return any(line.strip() == "Host probe" for line in get_vagrant_config("probe"))


mail_servers = [("@vagrant/mail", dict(_data))]
probes = [("@vagrant/probe", {**_host_keys, "_sudo": True})] if _probe_is_running() else []
