"""lockdown: a send-only Postfix relaying through Mailgun (or another relay), behind a
default-deny ufw firewall, as pyinfra deploys.

    from pyinfra_lockdown import firewall, mail_relay
    firewall()      # ufw: default deny, only firewall_allowed, never an SSH lockout
    mail_relay()    # Postfix null client via the relay, AUTH only inside TLS

    from pyinfra_lockdown import audit
    audit()         # facts only: PASS/FAIL per check; exit status 1 when anything fails

Every host data key is defined, defaulted and validated in ``pyinfra_lockdown.settings``.
Each function also takes its settings object directly (``mail_relay(relay_settings(...))``).
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
