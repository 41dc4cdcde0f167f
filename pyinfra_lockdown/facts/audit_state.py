"""The audit's one remote read per host: every LockdownState section plus the audit facts."""
from .audit import MailQueue, RelayLastAttempt, RelayNoise
from .host_state import LockdownState
from .postfix import ALIASES_MAP, SASL_PASSWORD_MAP, SENDERS_MAP


class AuditState(LockdownState):
    """
    Returns LockdownState's dict (see facts/host_state.py) plus:

    noise (facts.audit.RelayNoise over the last ``noise_hours``), queue (facts.audit.MailQueue),
    relay_last (facts.audit.RelayLastAttempt over the same window)
    """

    @staticmethod
    def sections(noise_hours=24, sasl_map=SASL_PASSWORD_MAP, aliases_map=ALIASES_MAP,
                 senders_map=SENDERS_MAP):
        sections = LockdownState.sections(sasl_map=sasl_map, aliases_map=aliases_map,
                                          senders_map=senders_map)
        sections["noise"] = (RelayNoise, {"hours": int(noise_hours)})
        sections["queue"] = (MailQueue, {})
        sections["relay_last"] = (RelayLastAttempt, {"hours": int(noise_hours)})
        return sections

    def command(self, noise_hours=24, sasl_map=SASL_PASSWORD_MAP, aliases_map=ALIASES_MAP,
                senders_map=SENDERS_MAP):
        return super(LockdownState, self).command(
            noise_hours=noise_hours, sasl_map=sasl_map, aliases_map=aliases_map,
            senders_map=senders_map)
