"""lockdown: send-only Postfix relaying through Mailgun, behind a default-deny ufw.

    pyinfra inventories/prod.py deploys/mail.py

Host data keys: pyinfra_lockdown/settings.py (and the README's table).
"""
from pyinfra_lockdown import firewall, mail_relay

firewall()
mail_relay()
