"""Lock the mail servers down: ufw first (default deny, SSH kept open), then Postfix as a
send-only null client relaying through Mailgun. A second run changes nothing.

pyinfra's global arguments pass through: ``_sudo=True`` runs every operation with sudo
(or set ``_sudo`` in your inventory's data instead)."""
from pyinfra_lockdown import firewall, mail_relay

firewall(_sudo=True)
mail_relay(_sudo=True)
