"""The audit's one remote read per host: every LockdownState section plus the audit facts."""
from __future__ import annotations

from typing import cast

from .._typing import override
from .audit import MailQueue, RelayLastAttempt, RelayNoise
from .combined import SectionSpec
from .host_state import HostState, LockdownState, Section
from .postfix import ALIASES_MAP, SASL_PASSWORD_MAP, SENDERS_MAP

# The facts (and their types); the constants are the paths and markers they share.
__all__ = ["AuditHostState", "AuditState"]


class AuditHostState(HostState):
    """AuditState's sections: LockdownState's plus the audit's own."""

    noise: Section  # RelayNoise
    queue: Section  # MailQueue
    relay_last: Section  # RelayLastAttempt


class AuditState(LockdownState):
    """
    Returns LockdownState's dict (see facts/host_state.py) plus:

    noise (facts.audit.RelayNoise over the last ``noise_hours``), queue (facts.audit.MailQueue),
    relay_last (facts.audit.RelayLastAttempt over the same window)
    """

    @staticmethod
    def sections(noise_hours: int = 24, sasl_map: str = SASL_PASSWORD_MAP,  # type: ignore[override]
                 aliases_map: str = ALIASES_MAP,
                 senders_map: str = SENDERS_MAP) -> dict[str, SectionSpec]:
        sections = LockdownState.sections(sasl_map=sasl_map, aliases_map=aliases_map,
                                          senders_map=senders_map)
        sections["noise"] = (RelayNoise, {"hours": int(noise_hours)})
        sections["queue"] = (MailQueue, {})
        sections["relay_last"] = (RelayLastAttempt, {"hours": int(noise_hours)})
        return sections

    @override
    def command(self, noise_hours: int = 24, sasl_map: str = SASL_PASSWORD_MAP,  # type: ignore[override]
                aliases_map: str = ALIASES_MAP, senders_map: str = SENDERS_MAP) -> str:
        return self.combined_command(noise_hours=noise_hours, sasl_map=sasl_map,
                                     aliases_map=aliases_map, senders_map=senders_map)

    @override
    def process(self, output: list[str]) -> AuditHostState:
        return cast(AuditHostState, super().process(output))
