"""The relay host names the lab answers for: its resolver (lab/resolver.py) points them at the
stand-in, whose certificate (lab/tls.py) names them all. Written from the providers' own
documentation, independently of pyinfra_lockdown/providers.py: a preset whose host the product
spells differently finds no relay in the lab, and its test fails."""
from __future__ import annotations

from . import addresses as A

# SES: one host per region; these are the regions the lab tests use.
SES_REGIONS = ("eu-west-1", "us-east-1")

RELAY_NAMES = (
    "smtp.mailgun.org", "smtp.eu.mailgun.org",
    *(f"email-smtp.{region}.amazonaws.com" for region in SES_REGIONS),
    "smtp.sendgrid.net", "smtp.eu.sendgrid.net",
    "smtp.postmarkapp.com", "smtp-broadcasts.postmarkapp.com",
    "smtp-relay.brevo.com",
    A.STANDIN_HOSTNAME,  # the lab's own name for it (custom relay tests)
)

# A second relay (lab.standin.second, tests/lab/test_relay_switch.py): its own name and address,
# certified by the lab CA like the others, so a switch to it verifies as in production.
SECOND_RELAY_NAME = "relay2.lab.test"
CERTIFICATE_NAMES = (*RELAY_NAMES, SECOND_RELAY_NAME)
