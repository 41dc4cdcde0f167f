"""Lock the mail servers down: ufw first (default deny, SSH kept open), then Postfix as a
send-only null client relaying through Mailgun. A second run changes nothing."""
from pyinfra_lockdown import firewall, mail_relay

firewall()
mail_relay()
