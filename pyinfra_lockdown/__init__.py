"""lockdown: a send-only Postfix relaying through Mailgun (or another relay), behind a
default-deny ufw firewall, as pyinfra deploys.

    from pyinfra_lockdown import firewall, mail_relay
    firewall()      # ufw: default deny, only firewall_allowed, never an SSH lockout
    mail_relay()    # Postfix null client via the relay, AUTH only inside TLS

    from pyinfra_lockdown import audit
    audit()         # facts only: PASS/FAIL per check; exit status 1 when anything fails

Every host data key is defined, defaulted and validated in ``pyinfra_lockdown.settings``.
Each function also takes its settings object directly (``mail_relay(relay_settings(...))``).

Layers (each imports only those below it; docs/design.md):

    firewall, mail, audit (+ audit_*, canary, fallback, logwatch, mail_log, plan)
                   the @deploy functions: validate, read the host once, call operations
    settings       the interface: every host data key, its check, its default (the checks in
                   value_checks, the reading of the relay credentials in credentials)
    operations/    pyinfra operations: decide what differs, yield only that
    facts/         pyinfra facts: one read-only command each, and its parser
    remote/        the scripts sent to hosts (read as text, never imported by the others)
    leaves         import nothing of lockdown; any layer may use them: ufw_rules (the rule
                   domain), secret_stamp (the SASL map's stamp), providers, relay_causes,
                   renamed, text, value_checks, exposure (what a host
                   exposes, the DOCKER-USER guard's block), _typing, _pyinfra (what goes beyond
                   pyinfra's API)

The public API is what ``__all__`` lists, here and in each facts/ and operations/ module.
"""
__version__ = "0.2.0"  # the one version source: pyproject.toml reads it (CHANGELOG.md's top entry)

from .audit import audit
from .firewall import firewall
from .mail import mail_relay
from .settings import (
    AuditSettings,
    FirewallSettings,
    RelaySettings,
    SettingsError,
    audit_settings,
    firewall_settings,
    relay_settings,
)

__all__ = [
    "audit", "firewall", "mail_relay",
    "AuditSettings", "FirewallSettings", "RelaySettings", "SettingsError",
    "audit_settings", "firewall_settings", "relay_settings",
]
