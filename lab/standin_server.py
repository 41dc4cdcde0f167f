"""Relay stand-in (Mailgun by default): an aiosmtpd server run by the lab inside the lab namespace.

    python -m lab.standin_server DIR [ADDRESS ...]

Listens on 10.77.0.1 and fd77::1 (or the ADDRESSes given: a second relay, lab.standin.second):
STARTTLS on 25, 587, 2525, 2587 and implicit TLS on 465,
2465 (the union of the providers' ports). Reads DIR/control.json at every new connection:
{"login", "password", "mode", "provider"}. ``provider`` (a key of PROFILES) makes it behave
like that relay: ports it does not offer close the connection at once, and AUTH fails unless
the login follows that provider's convention (this is the lab's own model of the providers,
written independently of pyinfra_lockdown/providers.py). mode "normal" | "no_starttls"
(STARTTLS not offered, AUTH still refused without TLS) | "reject_auth" (every AUTH fails with
535) | "old_tls" (STARTTLS offers only TLS 1.0/1.1) | "reject_sender" (MAIL FROM refused
with 550, as a provider does for a domain the account may not send from) | "tempfail" (every
new connection gets 421, try again later: a relay that is down for a while) | "refuse_unverified"
(the provider's own refusal of an account that may not send yet: SES's unverified identity,
Mailgun's sandbox domain, SendGrid's Sender Identity, Postmark's Sender Signature, Brevo's
unvalidated sender, each at the SMTP stage and in the wording the provider documents:
PROFILES[...]["refusal"]) | "impostor" (someone on the path answering for the relay: the same
names, a certificate from a CA no box trusts; otherwise it behaves like the relay and records
every AUTH it gets). Appends each accepted message to
DIR/messages.jsonl and each notable SMTP event (connect, refused port, STARTTLS, every AUTH
attempt) to DIR/events.jsonl, one JSON object a line.
"""
from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import re
import signal
import ssl
import sys
import threading
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from . import addresses as A

SUBMISSION_PORT = 587
SMTPS_PORT = 465
STARTTLS_PORTS = (25, 587, 2525, 2587)
IMPLICIT_TLS_PORTS = (465, 2465)
DEFAULT_CONTROL = {"login": "postmaster@lab.test", "password": "lab-password", "mode": "normal",
                   "provider": "mailgun"}
MODES = ("normal", "no_starttls", "reject_auth", "old_tls", "reject_sender", "tempfail",
         "refuse_unverified", "impostor")

# How each provider behaves, from its documentation: the ports it answers on, what its SMTP
# login looks like (login, password) -> bool, and how it refuses an account that may not send
# yet (mode refuse_unverified): (SMTP stage "mail" | "rcpt" | "data", reply), "{sender}" being
# the envelope sender. The replies quote the providers' documented wording: AWS re:Post
# "ses-554-400-message-rejected-error", Mailgun's "Authorized Recipients" help article and its
# SMTP reply as users report it (421 after DATA), Twilio's error 60222 page, Postmark's API
# error text, Brevo's SMTP troubleshooting page ("the sender is not valid"); the stage is where
# the provider can know it (the From header only after DATA).
PROFILES = {
    "mailgun": {"ports": (25, 465, 587, 2525),
                "login": lambda login, password: "@" in login,
                "refusal": ("data", "421 Domain sandbox5c1e2f.mailgun.org is not allowed to send: "
                                    "Free accounts are for test purposes only. Please upgrade or "
                                    "add the address to authorized recipients in Account Settings.")},
    "ses": {"ports": (25, 465, 587, 2465, 2587),
            "login": lambda login, password: re.fullmatch(r"AKIA[A-Z0-9]{16}", login) is not None,
            "refusal": ("data", "554 Message rejected: Email address is not verified. The "
                                "following identities failed the check in region EU-WEST-1: "
                                "{sender}")},
    "sendgrid": {"ports": (25, 465, 587, 2525),
                 "login": lambda login, password: login == "apikey",
                 "refusal": ("data", "550 The from address does not match a verified Sender "
                                     "Identity. Mail cannot be sent until this error is resolved.")},
    "postmark": {"ports": (25, 587, 2525),  # STARTTLS only; server token as user and password
                 "login": lambda login, password: login == password and "@" not in login,
                 "refusal": ("data", "550 5.7.1 Sender signature not defined for From address.")},
    "brevo": {"ports": (465, 587, 2525),
              "login": lambda login, password: "@" in login,
              "refusal": ("mail", "550 5.7.1 The sender is not valid: {sender}")},
}

_write_lock = threading.Lock()


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def append_jsonl(path: Path, record: dict) -> None:
    with _write_lock, open(path, "a") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")


def read_control(directory: Path) -> dict:
    try:
        control = {**DEFAULT_CONTROL, **json.loads((directory / "control.json").read_text())}
    except (OSError, ValueError):
        control = dict(DEFAULT_CONTROL)
    if control["mode"] not in MODES:
        control["mode"] = "normal"
    if control["provider"] not in PROFILES:
        control["provider"] = "mailgun"
    return control


def certificate_files(directory: Path, profile: str = "genuine") -> tuple[Path, Path]:
    """The certificate and key the lab issued (lab/tls.py) before starting this server:
    ``genuine`` from the CA every box trusts, ``impostor`` from one no box trusts, both for the
    same relay names."""
    prefix = "" if profile == "genuine" else "impostor-"
    return directory / f"{prefix}cert.pem", directory / f"{prefix}key.pem"


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP plus an event log, and TLS detection for implicit-TLS connections."""

    def __init__(self, *args, directory: Path, port: int, implicit_tls: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.directory, self.port, self.implicit_tls = directory, port, implicit_tls

    @property
    def tls_active(self) -> bool:
        return self.implicit_tls or self._tls_protocol is not None

    @property
    def tls_version(self) -> str | None:
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        return ssl_object.version() if ssl_object is not None else None

    def event(self, kind: str, **fields) -> None:
        peer = self.session.peer if self.session else None
        append_jsonl(self.directory / "events.jsonl", {
            "event": kind, "port": self.port, "tls": self.tls_active,
            "peer": peer[0] if peer else None, "at": now(), **fields,
        })

    def connection_made(self, transport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self.event("connect")
            self._watch_commands()

    def _watch_commands(self) -> None:
        """Record every AUTH command line as it arrives, also those aiosmtpd refuses before
        dispatching (530 before STARTTLS), so tests can prove a client never sent AUTH.
        aiosmtpd reads command lines with readuntil() and its default separator; DATA and
        AUTH challenge responses are read differently, so message bodies are not mistaken."""
        reader = self._reader
        read_command_line = reader.readuntil

        async def readuntil(separator=b"\n"):
            line = await read_command_line(separator)
            if separator == b"\n" and line[:4].upper() == b"AUTH":
                words = line.split()
                mechanism = words[1].decode(errors="replace").upper() if len(words) > 1 else ""
                self.event("auth", mechanism=mechanism)
            return line

        reader.readuntil = readuntil

    async def smtp_STARTTLS(self, arg: str) -> None:
        self.event("starttls", offered=self.tls_context is not None)
        await super().smtp_STARTTLS(arg)


def provider_refusal(control: dict, stage: str, sender: str | None) -> str | None:
    """The provider's refusal reply if mode refuse_unverified refuses at this SMTP stage."""
    if control["mode"] != "refuse_unverified":
        return None
    refused_at, reply = PROFILES[control["provider"]]["refusal"]
    return reply.replace("{sender}", sender or "") if refused_at == stage else None


class Handler:
    def __init__(self, directory: Path, port: int):
        self.directory, self.port = directory, port

    def _refused(self, server: RecordingSMTP, stage: str, sender: str | None) -> str | None:
        reply = provider_refusal(read_control(self.directory), stage, sender)
        if reply is not None:
            server.event("provider_refused", stage=stage, mail_from=sender, reply=reply)
        return reply

    async def handle_MAIL(self, server: RecordingSMTP, session, envelope, address, options) -> str:
        # reject_sender: a relay that does not let this account send from that domain
        if read_control(self.directory)["mode"] == "reject_sender":
            server.event("sender_rejected", mail_from=address)
            return "550 5.7.1 Sender address rejected: domain not verified for this account"
        refused = self._refused(server, "mail", address)
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: RecordingSMTP, session, envelope, address, options) -> str:
        refused = self._refused(server, "rcpt", envelope.mail_from)
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: RecordingSMTP, session, envelope) -> str:
        refused = self._refused(server, "data", envelope.mail_from)
        if refused:
            return refused
        auth = session.auth_data
        login = auth.login.decode(errors="replace") if isinstance(auth, LoginPassword) else None
        append_jsonl(self.directory / "messages.jsonl", {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "login": login,
            "tls": server.tls_active,
            "tls_version": server.tls_version,
            "provider": read_control(self.directory)["provider"],
            "port": self.port,
            "received_at": now(),
            "data": envelope.content.decode("utf-8", errors="replace")
            if isinstance(envelope.content, bytes) else envelope.content,
        })
        return "250 2.0.0 Ok: queued as LAB"


def make_authenticator(control: dict, log):
    follows = PROFILES[control["provider"]]["login"]

    def authenticator(server, session, envelope, mechanism, auth_data):
        login = password = None
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode(errors="replace")
            password = auth_data.password.decode(errors="replace")
        convention = login is not None and follows(login, password)
        ok = (
            control["mode"] != "reject_auth"
            and convention
            and login == control["login"]
            and password == control["password"]
        )
        # the password as a digest: tests prove a relay never saw another relay's (lab) secret
        log("auth_result", mechanism=mechanism, login=login, success=ok,
            provider=control["provider"], convention=convention,
            password_sha256=hashlib.sha256(password.encode()).hexdigest() if password else None)
        # handled=False keeps auth_data in the session (aiosmtpd gotcha).
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
    return authenticator


class RefusedPort(asyncio.Protocol):
    """A port the current provider does not offer: logged, then closed at once. With a
    ``reply`` (mode tempfail) that line is sent first."""

    def __init__(self, directory: Path, port: int, event: str = "refused_port",
                 reply: bytes = b""):
        self.directory, self.port, self.kind, self.reply = directory, port, event, reply

    def connection_made(self, transport) -> None:
        peer = transport.get_extra_info("peername")
        append_jsonl(self.directory / "events.jsonl", {
            "event": self.kind, "port": self.port, "peer": peer[0] if peer else None,
            "at": now()})
        if self.reply:
            transport.write(self.reply)
        transport.close()


def protocol_factory(directory: Path, port: int, tls_context: ssl.SSLContext, implicit_tls: bool,
                     old_tls_context: ssl.SSLContext | None = None,
                     impostor_context: ssl.SSLContext | None = None):
    def build() -> RecordingSMTP | RefusedPort:
        control = read_control(directory)  # at every new connection: tests switch modes live
        if port not in PROFILES[control["provider"]]["ports"]:
            return RefusedPort(directory, port)
        if control["mode"] == "tempfail":
            return RefusedPort(directory, port, "tempfail",
                               b"421 4.3.2 Service temporarily unavailable, try again later\r\n")
        starttls = not implicit_tls and control["mode"] != "no_starttls"
        context = old_tls_context if control["mode"] == "old_tls" and old_tls_context else tls_context
        if control["mode"] == "impostor" and impostor_context is not None:
            context = impostor_context
        server: RecordingSMTP | None = None

        def log(kind, **fields):
            server.event(kind, **fields)

        server = RecordingSMTP(
            Handler(directory, port),
            directory=directory, port=port, implicit_tls=implicit_tls,
            hostname=A.STANDIN_HOSTNAME,
            tls_context=context if starttls else None,
            require_starttls=starttls,
            auth_required=True,
            # On 465 the whole connection is TLS, which aiosmtpd cannot see by itself.
            auth_require_tls=not implicit_tls,
            authenticator=make_authenticator(control, log),
        )
        return server
    return build


def old_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context that offers only TLS 1.0 and 1.1 (what a relay stuck before 2021 did)."""
    import warnings

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 allows TLS < 1.2 only at level 0
    context.load_cert_chain(cert, key)
    return context


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def implicit_tls_context(directory: Path, impostor: ssl.SSLContext) -> ssl.SSLContext:
    """465/2465: TLS before any SMTP, so the certificate is chosen in the handshake itself
    (OpenSSL's servername callback runs for every ClientHello, with or without SNI)."""
    context = server_context(*certificate_files(directory))

    def choose(ssl_object, server_name, _context):
        if read_control(directory)["mode"] == "impostor":
            ssl_object.context = impostor
    context.sni_callback = choose
    return context


async def serve(directory: Path, hosts: tuple[str, ...] = (A.GATEWAY_V4, A.GATEWAY_V6)) -> None:
    context = server_context(*certificate_files(directory))
    impostor = server_context(*certificate_files(directory, "impostor"))
    implicit = implicit_tls_context(directory, impostor)
    old_context = old_tls_context(*certificate_files(directory))
    loop = asyncio.get_running_loop()
    servers = []
    for host in hosts:
        for port in STARTTLS_PORTS:
            servers.append(await loop.create_server(
                protocol_factory(directory, port, context, implicit_tls=False,
                                 old_tls_context=old_context, impostor_context=impostor),
                host, port))
        for port in IMPLICIT_TLS_PORTS:
            servers.append(await loop.create_server(
                protocol_factory(directory, port, implicit, implicit_tls=True), host, port,
                ssl=implicit))
    (directory / "ready").write_text("ok\n")
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(argv[0])
    directory.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(directory, *([tuple(argv[1:])] if argv[1:] else [])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
