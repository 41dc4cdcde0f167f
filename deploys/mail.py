"""lockdown: send-only Postfix relaying through Mailgun, behind a default-deny ufw.

    pyinfra inventories/prod.py deploys/mail.py

Run from the repository root. Host data keys: deploys/settings.py.
"""
from pyinfra import host

from pyinfra_lockdown.firewall import check_rules_syntax, firewall
from pyinfra_lockdown.mail import mail_relay
from pyinfra_lockdown.settings import firewall_settings, relay_settings
from pyinfra_lockdown.facts.host_state import LockdownState

# Validate everything first: a bad key stops the whole run before any host is changed.
relay = relay_settings(host.data)
firewall_config = firewall_settings(host.data)
check_rules_syntax(firewall_config)

state = host.get_fact(LockdownState, _sudo=True)
firewall(firewall_config, state, apt_update=relay.apt_update)
mail_relay(relay, state)
