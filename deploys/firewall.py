"""lockdown's firewall alone: default-deny ufw with only the declared services.

    pyinfra inventories/prod.py deploys/firewall.py

Host data keys: pyinfra_lockdown/settings.py (firewall_*, apt_update).
"""
from pyinfra_lockdown import firewall

firewall()
