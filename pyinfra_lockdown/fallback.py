"""Fallback relays (``relay_fallbacks``): Postfix's ``smtp_fallback_relay``, each fallback with its
own TLS level (``smtp_tls_policy_maps``, keyed by nexthop) and its own SASL line (the SASL map
is keyed by nexthop too, so a relay only ever gets its own credentials).

Each relay gets its own canary. It must leave through that relay and no other, so it is routed
by its envelope sender (``sender_dependent_default_transport_maps``: ``lockdown-canary-<n>@``
this host, n = 0 for the relay, 1.. for the fallbacks) to a transport of its own,
``lockdown-canary``: Postfix's smtp client with ``smtp_fallback_relay`` empty, so a relay that
refuses makes its canary fail instead of leaving through the next one. Ordinary mail never
matches those senders; the only production change is that one master.cf line and the map.
Nothing of it is written without fallbacks.
"""
from __future__ import annotations

import re

from .facts.postfix import CANARY_ROUTES_MAP, TLS_POLICY_MAP
from .settings import FallbackRelay, RelaySettings

CANARY_TRANSPORT = "lockdown-canary"
# master.cf: the stock smtp client (unprivileged, no chroot as lockdown's compatibility level
# has it) without fallback relays.
CANARY_SERVICE_ENTRY = f"{CANARY_TRANSPORT} unix - - n - - smtp -o smtp_fallback_relay="
CANARY_SENDER_PREFIX = "lockdown-canary-"
# main.cf parameters written only with fallbacks; cleared again when they are removed.
FALLBACK_PARAMETERS = ("smtp_fallback_relay", "smtp_tls_policy_maps",
                       "sender_dependent_default_transport_maps")


def fallback_settings(relay: RelaySettings) -> dict[str, str]:
    """main.cf lines for the fallbacks (none without)."""
    if not relay.fallbacks:
        return {}
    return {
        "smtp_fallback_relay": ", ".join(f.relayhost for f in relay.fallbacks),
        "smtp_tls_policy_maps": f"texthash:{TLS_POLICY_MAP}",
        "sender_dependent_default_transport_maps": f"regexp:{CANARY_ROUTES_MAP}",
    }


def cleared_settings(relay: RelaySettings, main_cf: dict | None) -> dict[str, str]:
    """Without fallbacks: the fallback parameters an earlier run set, emptied (Postfix's
    default); nothing when main.cf never had them, so hosts without fallbacks keep main.cf."""
    if relay.fallbacks:
        return {}
    found = ((main_cf or {}).get("settings")) or {}
    return {name: "" for name in FALLBACK_PARAMETERS if found.get(name)}


def tls_policy_map(relay: RelaySettings) -> str:
    """texthash table for smtp_tls_policy_maps: each fallback's own level (the relay's is
    smtp_tls_security_level). Keyed like smtp_fallback_relay names them."""
    lines = [f"{f.relayhost} {f.tls_level}" for f in relay.fallbacks]
    header = "# Managed by lockdown: the TLS level of each fallback relay.\n"
    return header + "\n".join(lines) + "\n"


def canary_sender(index: int) -> str:
    """The canary's envelope sender (local part) for relay ``index`` (0: the relay)."""
    return f"{CANARY_SENDER_PREFIX}{index}"


def canary_routes_map(relay: RelaySettings, local_domains: str) -> str:
    """regexp table for sender_dependent_default_transport_maps: canary n -> relay n, through
    the transport without fallbacks. ``local_domains``: the alternation of this host's names."""
    lines = [f"/^{re.escape(canary_sender(index))}@({local_domains})$/ "
             f"{CANARY_TRANSPORT}:{one.relayhost}"
             for index, one in enumerate(relay.all_relays)]
    return ("# Managed by lockdown: each relay canary leaves through its own relay only.\n"
            + "\n".join(lines) + "\n")


def relay_label(index: int, one: RelaySettings | FallbackRelay) -> str:
    """How the canary and the audit name relay ``index``."""
    return one.relayhost if index == 0 else f"fallback {index} {one.relayhost}"
