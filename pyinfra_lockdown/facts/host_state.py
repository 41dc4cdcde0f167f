"""Everything lockdown's deploys and audit decide on, read with ONE remote command per host."""
from __future__ import annotations

from typing import Any, TypedDict

from .._typing import override
from .combined import CombinedFact, SectionSpec
from .dpkg import DpkgState
from .exposure import HostExposure
from .logwatch import LogwatchState
from .packages import InstalledDebs
from .postfix import (
    ALIASES_MAP,
    CANARY_ROUTES_MAP,
    SASL_PASSWORD_MAP,
    SENDERS_MAP,
    SYSLOG_DAEMONS,
    TLS_POLICY_MAP,
    MailLogFiles,
    MapFileState,
    PostfixDefaults,
    PostfixMainCf,
    PostfixMasterServices,
    PostfixParameters,
    PostfixStatus,
    SecretFileState,
    SmtpListeners,
)
from .ufw import SshConnection, SshdConfig, UfwConfig
from .ufw_output import UfwOutputKernel

# The facts (and their types); the constants are the paths and markers they share.
__all__ = ["HostState", "LockdownState", "Section"]

Section = dict[str, Any]


class HostState(TypedDict):
    """LockdownState's sections, each the value of its granular fact (``None`` where that fact
    says so: Postfix or ufw not installed, no SSH connection)."""

    packages: Section  # InstalledDebs
    dpkg: Section  # DpkgState
    main_cf: Section | None  # PostfixMainCf
    master: Section  # PostfixMasterServices
    parameters: Section | None  # PostfixParameters
    defaults: dict[str, str] | None  # PostfixDefaults
    status: Section  # PostfixStatus
    listeners: list[Section] | None  # SmtpListeners
    sasl_map: Section  # SecretFileState
    aliases_map: Section  # MapFileState
    senders_map: Section
    tls_policy_map: Section
    canary_routes_map: Section
    mail_log_files: Section  # MailLogFiles
    ufw: Section | None  # UfwConfig
    ufw_output: dict[str, dict[str, int]]  # UfwOutputKernel
    sshd: Section | None  # SshdConfig
    ssh_connection: Section | None  # SshConnection
    logwatch: Section  # LogwatchState
    exposure: Section  # HostExposure


class LockdownState(CombinedFact[HostState]):
    """
    Returns a dict of the granular facts' values, keyed by section:

    packages, dpkg, main_cf, master, parameters, defaults, status, listeners, sasl_map,
    aliases_map, senders_map, tls_policy_map, canary_routes_map, mail_log_files, ufw,
    ufw_output (facts.ufw_output), sshd, ssh_connection, logwatch (facts.logwatch), exposure
    (facts.exposure: listeners beyond loopback, published ports, the DOCKER-USER guard)
    """

    @staticmethod
    def sections(sasl_map: str = SASL_PASSWORD_MAP, aliases_map: str = ALIASES_MAP,
                 senders_map: str = SENDERS_MAP) -> dict[str, SectionSpec]:
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
            "ufw_output": (UfwOutputKernel, {}),
            "sshd": (SshdConfig, {}),
            "ssh_connection": (SshConnection, {}),
            "logwatch": (LogwatchState, {}),
            "exposure": (HostExposure, {}),
        }

    @override
    def command(self, sasl_map: str = SASL_PASSWORD_MAP, aliases_map: str = ALIASES_MAP,
                senders_map: str = SENDERS_MAP) -> str:
        return self.combined_command(sasl_map=sasl_map, aliases_map=aliases_map,
                                     senders_map=senders_map)
