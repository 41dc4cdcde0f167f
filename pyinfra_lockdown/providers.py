"""The relay providers lockdown knows: one small data entry each.

An entry says what the provider's own documentation says (checked 2026-12 where the source is
named; see the README's providers table for what could not be checked): the host per region,
the ports it accepts and which of them speak TLS from the first byte (implicit TLS, Postfix's
``smtp_tls_wrappermode``), what its SMTP login looks like, and whether the login tells the
sending domain. ``settings.relay_settings`` applies them; nothing else reads this module's
data. Adding a provider is one ``Provider(...)`` entry in ``PROVIDERS`` plus its lab test
(``tests/lab/test_providers.py``) and the stand-in's profile (``lab/standin_server.py``).

``relay_host`` overrides only the host: ports, TLS mode and login convention stay the
provider's (the lab points every preset at its stand-in that way).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_ADDRESS = re.compile(r"^[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_AWS_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}")  # fullmatch only
# The AWS regions where Amazon SES has an endpoint: AWS's machine-readable endpoint data
# (botocore 1.43.11, service "email": commercial and GovCloud partitions; regions under other
# domains than amazonaws.com left out), whose rows read the same as the part of
# docs.aws.amazon.com/general/latest/gr/ses.html read on 2026-12-04. That page's separate SMTP
# endpoint table could not be read in full here. SES SMTP credentials work only in the region
# they were created in.
SES_REGIONS = (
    "af-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-5",
    "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1",
    "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
    "us-gov-east-1", "us-gov-west-1",
)
CHECKED = "2026-12-04"  # the day the sources below were last read


def _address_login(login: str, password: str) -> str | None:
    if not _ADDRESS.match(login):
        return "is an SMTP user of the form name@your-sending-domain"
    return None


def _brevo_login(login: str, password: str) -> str | None:
    if not _ADDRESS.match(login):
        return ("is the SMTP login shown under SMTP & API > SMTP "
                "(an address, e.g. 8a1b2c001@smtp-brevo.com)")
    return None


def _sendgrid_login(login: str, password: str) -> str | None:
    if login != "apikey":
        return "is the literal word `apikey` (the API key itself is the password)"
    return None


def _ses_login(login: str, password: str) -> str | None:
    # SES SMTP credentials: the user name has the form of an AWS access key id (AKIA...).
    if not re.fullmatch(r"[A-Z0-9]{16,128}", login):
        return ("is the user name of SES SMTP credentials (an access key id: AKIA and 16 "
                "more capitals or digits), not an address or an IAM user name")
    return None


def _postmark_login(login: str, password: str) -> str | None:
    # A Server API token (used as user AND password) or an SMTP token's access key.
    if "@" in login or not re.fullmatch(r"[A-Za-z0-9-]{16,}", login):
        return ("is a Server API token (used as both login and password) "
                "or an SMTP token's access key")
    return None


@dataclass(frozen=True)
class Provider:
    name: str
    title: str
    hosts: dict[str, str]                # region -> host; "{region}" is filled in for SES
    starttls_ports: tuple[int, ...]
    implicit_tls_ports: tuple[int, ...]  # TLS from the first byte: smtp_tls_wrappermode = yes
    login: str                           # the convention, for the README and errors
    check_login: Callable[[str, str], str | None]
    login_names_domain: bool             # the login's domain is the sending domain
    default_region: str | None = None    # None with hosts: a region is required
    region_format: re.Pattern | None = None  # free-form regions (SES), else the keys of hosts
    known_regions: tuple[str, ...] = ()  # with region_format: the provider's own list of them
    source: str = ""                     # where the facts come from (README: the page read)
    checked: str = CHECKED               # when that page was last read

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(sorted(self.starttls_ports + self.implicit_tls_ports))

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(k for k in self.hosts if k != "{region}")

    def host(self, region: str | None) -> str | None:
        if "{region}" in self.hosts:
            return self.hosts["{region}"].format(region=region) if region else None
        return self.hosts.get(region or "") or self.hosts.get(self.default_region or "")

    def inventory_line(self) -> str:
        """The one host data line a user needs (README)."""
        line = f'"relay_provider": "{self.name}"'
        if self.region_format is not None:
            line += ', "relay_region": "eu-west-1"'
        if not self.login_names_domain:
            line += ', "mail_sender_domain": "example.com"'
        return line


PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    Provider(
        "mailgun", "Mailgun", {"us": "smtp.mailgun.org", "eu": "smtp.eu.mailgun.org"},
        starttls_ports=(25, 587, 2525), implicit_tls_ports=(465,),
        login="postmaster@your-domain (or another SMTP user of the domain)",
        check_login=_address_login, login_names_domain=True, default_region="us",
        source="documentation.mailgun.com (SMTP: ports 25, 465, 587, 2525); "
               "mailgun.com/blog/product/tls-version-1-0-and-1-1-deprecation",
    ),
    Provider(
        "ses", "Amazon SES", {"{region}": "email-smtp.{region}.amazonaws.com"},
        starttls_ports=(25, 587, 2587), implicit_tls_ports=(465, 2465),
        login="SES SMTP credentials' user name (AKIA..., not IAM keys)",
        check_login=_ses_login, login_names_domain=False, region_format=_AWS_REGION,
        known_regions=SES_REGIONS,
        source="docs.aws.amazon.com/ses/latest/dg/smtp-connect.html; regions: "
               "docs.aws.amazon.com/general/latest/gr/ses.html",
    ),
    Provider(
        # eu: the host of EU regional subusers (SendGrid's own pages name only api.eu.sendgrid.net;
        # smtp.eu.sendgrid.net comes from a third-party source, see the README)
        "sendgrid", "SendGrid", {"global": "smtp.sendgrid.net", "eu": "smtp.eu.sendgrid.net"},
        starttls_ports=(25, 587, 2525), implicit_tls_ports=(465,),
        login="the word `apikey`; the password is the API key",
        check_login=_sendgrid_login, login_names_domain=False, default_region="global",
        source="twilio.com/docs/sendgrid/for-developers/sending-email/integrating-with-the-smtp-api",
    ),
    Provider(
        # Not regions but message streams, one host each: relay_region picks the stream.
        "postmark", "Postmark", {"transactional": "smtp.postmarkapp.com",
                                 "broadcasts": "smtp-broadcasts.postmarkapp.com"},
        starttls_ports=(25, 587, 2525), implicit_tls_ports=(),
        login="Server API token as both login and password (or an SMTP token)",
        check_login=_postmark_login, login_names_domain=False, default_region="transactional",
        source="postmarkapp.com/support/article/811-what-are-the-smtp-details-api-tokens-i-should-be-using",
    ),
    Provider(
        "brevo", "Brevo", {"": "smtp-relay.brevo.com"},
        starttls_ports=(587, 2525), implicit_tls_ports=(465,),
        login="the SMTP login from SMTP & API settings; the password is an SMTP key",
        check_login=_brevo_login, login_names_domain=False,
        source="developers.brevo.com/docs/smtp-integration",
    ),
)}
CUSTOM = "custom"
PROVIDER_NAMES = (*PROVIDERS, CUSTOM)


def markdown_table() -> str:
    """The README's providers table (checked by tests/unit/test_providers.py)."""
    lines = ["| provider | host | STARTTLS ports | implicit TLS | login | inventory line | "
             "source (checked) |",
             "|---|---|---|---|---|---|---|"]
    for p in PROVIDERS.values():
        hosts = ", ".join(f"`{h}`" + (f" ({r})" if r and r != "{region}" else "")
                          for r, h in p.hosts.items())
        lines.append(f"| {p.title} | {hosts} | {', '.join(map(str, p.starttls_ports))} | "
                     f"{', '.join(map(str, p.implicit_tls_ports)) or 'none'} | {p.login} | "
                     f"`{p.inventory_line()}` | {p.source} ({p.checked}) |")
    lines.append("| any other | `relay_host` | any (`relay_port`) | `relay_tls_wrappermode` | "
                 "anything | "
                 "`\"relay_provider\": \"custom\", \"relay_host\": \"smtp.example.net\"` "
                 "| your relay's own documentation |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
