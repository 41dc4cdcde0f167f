"""The host data every lab box gets, beside its connection (inventories/lab.py), and what
bench/ansible_run.py turns into the Ansible playbook's variables.

The Mailgun preset exactly as in production, no relay_host: the box looks smtp.mailgun.org up
through the lab's resolver (lab/resolver.py), which answers with the stand-in, and verifies its
certificate (issued for that name by the lab CA the box trusts: lab/tls.py). Credentials come
from the environment, as in production (`python -m lab demo` exports the stand-in's).
Boxes have no internet: those of the preinstalled image (the default) have every package
already and no source (``PREINSTALLED_DATA``: apt_update off); those of the minimal and
standard images install from the lab's package mirror with apt_update at its default.
"""
from __future__ import annotations

from typing import Any

from lab.audit_probe import lab_prober

RELAY_DATA: dict[str, Any] = {
    "mail_root_forward": "admin@lab.test",
    "audit_probe": lab_prober,  # the audit's outside view comes from the lab prober
}
PREINSTALLED_DATA: dict[str, Any] = {"apt_update": False}
