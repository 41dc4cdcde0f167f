"""What Postfix's reason for not delivering to the relay means, and the fix: ONE pure table.

Used by the relay canary (canary.py: the one-line diagnosis when the canary does not leave)
and by the audit (audit_checks.queue_check: the cause of deferred mail). Input is Postfix's own
wording, the parenthesis of ``status=deferred (...)`` or the last line it logged about a
message; the patterns come from lines captured on lab boxes (tests/unit/test_canary.py,
tests/unit/test_provider_refusals.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    id: str
    what: str  # the cause, one clause
    fix: str  # what to do; may use {port}, {mailgun}

    def text(self, port: int | str = "the relay port", mailgun: bool = False) -> tuple[str, str]:
        hint = (" (for Mailgun also check relay_region: US and EU accounts are separate)"
                if mailgun else "")
        return self.what.format(port=port), self.fix.format(port=port, mailgun=hint)


# The providers' own refusals of an account that may not send yet (sandbox, unverified sender),
# in the wording their pages document (issue 26 item 2; sources in README "Relay providers").
# They come first: several of them also say "in reply to MAIL FROM/RCPT TO", which the
# generic sender/recipient causes below would otherwise claim.
PROVIDER_REFUSALS = (
    (r"Email address is not verified|identities failed the check in region",
     Cause("ses_unverified", "Amazon SES refused the message: an address is not a verified "
           "identity in this region (the sender's; in the SES sandbox the recipient's too)",
           "verify mail_sender_domain (or the sender address) in the SES console of "
           "relay_region; while the account is in the SES sandbox, also verify the recipient "
           "(relay_canary_to / mail_root_forward) or request production access")),
    (r"(Sandbox subdomains|Free accounts) are for test purposes only|"
     r"add the address to authorized recipients",
     Cause("mailgun_sandbox", "Mailgun refused the message: a sandbox domain (or a free "
           "account) sends only to its Authorized Recipients",
           "add the recipient (relay_canary_to / mail_root_forward) to the domain's Authorized "
           "Recipients and accept the invitation, or send from your own verified domain "
           "(mail_sender_domain with that domain's SMTP credentials)")),
    (r"does not match a verified Sender Identity|"
     r"not authorized to send from that email address",
     Cause("sendgrid_sender_identity", "SendGrid refused the message: the from address does not "
           "match a verified Sender Identity",
           "authenticate mail_sender_domain in SendGrid (Settings > Sender Authentication, "
           "Domain Authentication) or verify the address as a Single Sender")),
    (r"Sender signature not (defined|confirmed)|not a Sender Signature on your account",
     Cause("postmark_sender_signature", "Postmark refused the message: the From address has no "
           "confirmed Sender Signature",
           "add and confirm a Sender Signature for the sender address, or verify "
           "mail_sender_domain under Sender Signatures > Domains in Postmark")),
    (r"sender is not valid|sender (address |domain )?(is )?not (yet )?validated",
     Cause("brevo_sender_invalid", "Brevo refused the sender: it is not a validated sender "
           "(or its domain is not authenticated) in the Brevo account",
           "add and validate the sender address under Senders, Domains & Dedicated IPs > "
           "Senders in Brevo, or authenticate mail_sender_domain there")),
)

# (pattern, cause); the first match wins, so the order matters (e.g. a "TLS is required"
# line must not count as a generic handshake failure, an AUTH failure mentions TLS too).
CAUSES = PROVIDER_REFUSALS + (
    (r"SASL authentication failed|authentication credentials invalid|SASL login failed|"
     r"said: 535\b",
     Cause("auth_failed", "the relay refused the login (authentication failed)",
           "check the relay login and password (LOCKDOWN_RELAY_LOGIN / LOCKDOWN_RELAY_PASSWORD "
           "or relay_credentials_file), then converge again{mailgun}")),
    (r"TLS is required, but was not offered",
     Cause("no_starttls", "the relay offered no STARTTLS, so no AUTH was sent",
           "check that relay_host/relay_port name the provider's submission port (587, 2525, "
           "or 465 with implicit TLS); something on the path may strip STARTTLS")),
    (r"certificate verification failed|certificate not verified|untrusted issuer|"
     r"certificate not trusted|server certificate not verified|certificate name mismatch",
     Cause("tls_verify", "the relay's certificate failed verification (not from a CA in the "
           "system bundle, or not for the relay's name): whoever answered may not be the "
           "relay, so no AUTH was sent and the mail waits in the queue",
           "if the relay is genuine, check relay_host is the name its certificate carries and "
           "that its CA is in /etc/ssl/certs/ca-certificates.crt (an internal CA: "
           "/usr/local/share/ca-certificates + update-ca-certificates); otherwise find who "
           "answers for the relay's name (DNS, network path)")),
    (r"Cannot start TLS: handshake failure|TLS handshake|SSL_connect error|"
     r"lost connection .* (TLS|SSL)|wrong version number",
     Cause("tls_handshake", "the TLS handshake with the relay failed: it may offer only TLS "
           "below 1.2, which the TLS floor (postfix.tls_floor) refuses; no AUTH was sent",
           "check relay_port (465 is implicit TLS, 587/2525 STARTTLS): the relay must speak "
           "TLS 1.2 or newer")),
    (r"Host or domain name not found|Name service error|Host not found",
     Cause("host_not_found", "the relay's host name was not found (DNS)",
           "check relay_host / relay_region and this host's DNS resolver")),
    (r"Sender address rejected|in reply to MAIL FROM|sender .*(denied|rejected|not allowed)",
     Cause("sender_refused", "the relay refused the sender address",
           "check mail_sender_domain: it must be a domain your relay account may send from")),
    (r"Connection timed out|conversation with .* timed out",
     Cause("timed_out", "the connection to the relay timed out",
           "the network filters port {port}: try relay_port 2525 (SES: 2587)")),
    (r"Connection refused",
     Cause("refused", "the relay refused the connection on port {port} (relay down, or the "
           "port blocked on the way)",
           "check relay_host and relay_port; if the relay is up, the network blocks the port: "
           "try relay_port 2525 (SES: 2587)")),
    (r"Network is unreachable|No route to host",
     Cause("no_route", "this host has no route to the relay",
           "check the host's network and outgoing firewall")),
    (r"Recipient address rejected|in reply to RCPT TO|User unknown",
     Cause("recipient_refused", "the relay refused the recipient",
           "check relay_canary_to / mail_root_forward")),
)


def relay_cause(reason: str | None) -> Cause | None:
    """The cause of Postfix's ``reason`` for not delivering via the relay, or None."""
    if not reason:
        return None
    for pattern, cause in CAUSES:
        if re.search(pattern, reason, re.IGNORECASE):
            return cause
    return None
