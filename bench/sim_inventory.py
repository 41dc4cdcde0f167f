"""pyinfra inventory of simulated hosts (bench/simhosts.py replay): SIMHOSTS_N hosts, all at
127.0.0.1:SIMHOSTS_PORT, each with its own SSH user name (the server's idea of a host), and
the host data of inventories/lab.py (the Mailgun preset by its name, TLS verified: the
captured box resolved and verified the lab's stand-in) for a box of the default (preinstalled) image, so each
host runs exactly the commands the captured lab box ran. Host keys are neither checked nor
recorded (a throwaway server's key)."""
import os

_N = int(os.environ.get("SIMHOSTS_N", "1"))
_DATA = {
    "ssh_hostname": "127.0.0.1",
    "ssh_port": int(os.environ.get("SIMHOSTS_PORT", "22")),
    "ssh_key": os.environ.get("SIMHOSTS_KEY", ""),
    "ssh_known_hosts_file": "/dev/null",
    "ssh_strict_host_key_checking": "off",
    "_sudo": True,
    "mail_root_forward": "admin@lab.test",
    "apt_update": False,
    "audit_probe": "off",
    # paramiko waits 15 s for a banner; 1,000 handshakes queue longer for the one server process
    "ssh_paramiko_connect_kwargs": {"banner_timeout": 120, "auth_timeout": 120},
}

mail_servers = [(f"sim{i:05d}", {**_DATA, "ssh_user": f"sim{i:05d}"}) for i in range(1, _N + 1)]
