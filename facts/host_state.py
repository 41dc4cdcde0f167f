"""Everything lockdown's deploys and audit decide on, read with ONE remote command per host."""
from .combined import CombinedFact
from .dpkg import DpkgState
from .exposure import HostExposure
from .logwatch import LogwatchState
from .packages import InstalledDebs
from .postfix import (
    ALIASES_MAP,
    CANARY_ROUTES_MAP,
    SYSLOG_DAEMONS,
    MailLogFiles,
    SASL_PASSWORD_MAP,
    TLS_POLICY_MAP,
    SENDERS_MAP,
    PostfixDefaults,
    PostfixMainCf,
    PostfixMasterServices,
    PostfixParameters,
    PostfixStatus,
    MapFileState,
    SecretFileState,
    SmtpListeners,
)
from .ufw import SshConnection, SshdConfig, UfwConfig


class LockdownState(CombinedFact):
    """
    Returns a dict of the granular facts' values, keyed by section:

    packages, dpkg, main_cf, master, parameters, defaults, status, listeners, sasl_map,
    aliases_map, senders_map, tls_policy_map, canary_routes_map, mail_log_files, ufw, sshd,
    ssh_connection, logwatch (facts.logwatch), exposure (facts.exposure: listeners beyond
    loopback, published ports, the DOCKER-USER guard)
    """

    @staticmethod
    def sections(sasl_map=SASL_PASSWORD_MAP, aliases_map=ALIASES_MAP, senders_map=SENDERS_MAP):
        return {
            "packages": (InstalledDebs, {"packages": (
                "postfix", "libsasl2-modules", "ca-certificates", "ufw", *SYSLOG_DAEMONS)}),
            "dpkg": (DpkgState, {}),
            "main_cf": (PostfixMainCf, {}),
            "master": (PostfixMasterServices, {}),
            "parameters": (PostfixParameters, {}),
            "defaults": (PostfixDefaults, {}),
            "status": (PostfixStatus, {}),
            "listeners": (SmtpListeners, {}),
            "sasl_map": (SecretFileState, {"path": sasl_map}),
            "aliases_map": (MapFileState, {"path": aliases_map}),
            "senders_map": (MapFileState, {"path": senders_map}),
            "tls_policy_map": (MapFileState, {"path": TLS_POLICY_MAP}),
            "canary_routes_map": (MapFileState, {"path": CANARY_ROUTES_MAP}),
            "mail_log_files": (MailLogFiles, {}),
            "ufw": (UfwConfig, {}),
            "sshd": (SshdConfig, {}),
            "ssh_connection": (SshConnection, {}),
            "logwatch": (LogwatchState, {}),
            "exposure": (HostExposure, {}),
        }

    def command(self, sasl_map=SASL_PASSWORD_MAP, aliases_map=ALIASES_MAP,
                senders_map=SENDERS_MAP):
        return super().command(sasl_map=sasl_map, aliases_map=aliases_map,
                               senders_map=senders_map)
