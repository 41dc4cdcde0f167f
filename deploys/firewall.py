"""lockdown's firewall alone: default-deny ufw with only the declared services.

    pyinfra inventories/prod.py deploys/firewall.py

Run from the repository root. Host data keys: deploys/settings.py (firewall_*, apt_update).
"""
from pyinfra import host

from pyinfra_lockdown.settings import apt_update, firewall_settings
from pyinfra_lockdown.firewall import check_rules_syntax, firewall
from pyinfra_lockdown.facts.host_state import LockdownState

firewall_config = firewall_settings(host.data)
check_rules_syntax(firewall_config)

state = host.get_fact(LockdownState, _sudo=True)
firewall(firewall_config, state, apt_update=apt_update(host.data))
