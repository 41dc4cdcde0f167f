"""Bad input, table-driven (issue 14 item 6): every case against ONE already-converged box per
release must exit non-zero with exactly one message naming the key, show no Python traceback,
and leave the box byte-for-byte as it was (/etc/postfix, /etc/ufw, /etc/default/ufw and the
running firewall). Host-data checks as pure functions are in tests/unit/test_settings.py."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SUITES
from tests import security_ledger
from tests.lab import fault_ledger
from tests.lab.fault_ledger import REPO_ROOT
from tests.lab.deploy_helpers import converge

pytestmark = pytest.mark.lab

LOGIN, PASSWORD = "postmaster@lab.test", "lab-password"  # lab.standin_server.DEFAULT_CONTROL
GOOD_ENV = {"LOCKDOWN_RELAY_LOGIN": LOGIN, "LOCKDOWN_RELAY_PASSWORD": PASSWORD}
NO_ENV = {"MAILGUN_SMTP_LOGIN": "", "MAILGUN_SMTP_PASSWORD": "", "LOCKDOWN_RELAY_LOGIN": "",
          "LOCKDOWN_RELAY_PASSWORD": ""}
LOGIN_KEY, FILE_KEY = "LOCKDOWN_RELAY_LOGIN", "relay_credentials_file"
GOOD_FILE = f"LOCKDOWN_RELAY_LOGIN={LOGIN}\nLOCKDOWN_RELAY_PASSWORD={PASSWORD}\n"

# The box's state a bad input must not touch: every file's type, mode, owner, size, mtime and
# content under the three paths, and both running rule sets (packet counters removed: the SSH
# connection of the run itself moves them).
SNAPSHOT = (
    "cd / && find etc/postfix etc/ufw etc/default/ufw -printf '%p %y %m %U:%G %s %T@ %l\\n' "
    "| sort && find etc/postfix etc/ufw etc/default/ufw -type f -exec sha256sum {} + | sort && "
    "iptables-save | sed -e '/^#/d' -e 's/\\[[0-9]*:[0-9]*\\]//' && "
    "ip6tables-save | sed -e '/^#/d' -e 's/\\[[0-9]*:[0-9]*\\]//'"
)


@dataclass(frozen=True)
class Case:
    id: str
    key: str  # the key the one message must name
    data: dict = field(default_factory=dict)  # --data on the command line
    env: dict = field(default_factory=dict)  # over the good credentials
    inventory: dict | None = None  # host data in an inventory file of its own, over the lab's
    group_data: dict | None = None  # that inventory's group data
    secret_file: tuple[str, int] | None = None  # (content, mode) of a relay_credentials_file
    deploy: str = "deploys/mail.py"
    attack: str = ""  # hostile input: the case is also a row of the security table


CASES = [
    # --- host data on the command line (relay) ---
    Case("provider typo", "relay_provider", data={"relay_provider": "sendgird"}),
    Case("mailgun region unknown", "mailgun_region", data={"mailgun_region": "asia"}),
    Case("mailgun region with another provider", "mailgun_region",
         data={"relay_provider": "sendgrid", "mailgun_region": "eu"}),
    Case("region contradicts mailgun_region", "relay_region",
         data={"relay_region": "eu", "mailgun_region": "us"}),
    Case("region missing for SES", "relay_region", data={"relay_provider": "ses"}),
    Case("relay host empty", "relay_host", data={"relay_host": ""}),
    Case("relay host with a space", "relay_host", data={"relay_host": "smtp mailgun.org"}),
    Case("port of another provider", "relay_port", data={"relay_port": 2587}),
    Case("port zero", "relay_port", data={"relay_port": 0}),
    Case("port out of range", "relay_port", data={"relay_port": 70000}),
    Case("TLS level may", "relay_tls_level", data={"relay_tls_level": "may"}),
    Case("wrappermode contradicts the port", "relay_tls_wrappermode",
         data={"relay_tls_wrappermode": True}),
    Case("root forward not an address", "mail_root_forward", data={"mail_root_forward": "admin"}),
    Case("sender domain not a domain", "mail_sender_domain",
         data={"mail_sender_domain": "not a domain"}),
    Case("canary not a boolean", "relay_canary", data={"relay_canary": "maybe"}),
    Case("canary seconds too short", "relay_canary_seconds", data={"relay_canary_seconds": 1}),
    Case("apt_update not a boolean", "apt_update", data={"apt_update": "sometimes"}),
    # --- host data on the command line (firewall) ---
    Case("allowed service unknown", "firewall_allowed[1]",
         data={"firewall_allowed": json.dumps(["ssh", "80/xyz"])}),
    Case("allowed list locks SSH out", "firewall_allowed", data={"firewall_allowed": "[]"}),
    Case("incoming policy unknown", "firewall_default_incoming",
         data={"firewall_default_incoming": "open"}),
    Case("log level unknown", "firewall_logging", data={"firewall_logging": "loud"}),
    Case("ipv6 not a boolean", "firewall_ipv6", data={"firewall_ipv6": "maybe"}),
    Case("prune mode unknown", "firewall_prune", data={"firewall_prune": "everything"}),
    Case("dead-man delay zero", "firewall_deadman_seconds", data={"firewall_deadman_seconds": 0}),
    Case("dead-man check port out of range", "firewall_deadman_check_port",
         data={"firewall_deadman_check_port": 99999}),
    Case("firewall deploy alone, bad policy", "firewall_default_incoming",
         data={"firewall_default_incoming": "open"}, deploy="deploys/firewall.py"),
    Case("mail relay only not a boolean", "firewall_mail_relay_only",
         data={"firewall_mail_relay_only": "maybe"}),
    Case("relay on port 25 while mail may leave only through it", "firewall_mail_relay_only",
         data={"relay_port": 25}, deploy="deploys/firewall.py"),
    # --- credentials in the environment ---
    Case("no credentials at all", LOGIN_KEY, env=NO_ENV),
    Case("password empty", LOGIN_KEY, env={"LOCKDOWN_RELAY_PASSWORD": ""}),
    Case("login not a Mailgun login", LOGIN_KEY, env={"LOCKDOWN_RELAY_LOGIN": "apikey"}),
    Case("new and old password names differ", LOGIN_KEY,
         env={"MAILGUN_SMTP_PASSWORD": PASSWORD + "-other"}),
    # --- the credentials file ---
    Case("credentials file missing", FILE_KEY, data={FILE_KEY: "/nonexistent/lockdown.env"}),
    Case("credentials file readable by others", FILE_KEY, secret_file=(GOOD_FILE, 0o644)),
    Case("credentials file is a directory", FILE_KEY, data={FILE_KEY: "/tmp"}),
    Case("credentials file without a password", FILE_KEY,
         secret_file=(f"LOCKDOWN_RELAY_LOGIN={LOGIN}\n", 0o600)),
    Case("credentials file without key=value lines", FILE_KEY,
         secret_file=(f"{LOGIN} {PASSWORD}\n", 0o600)),
    Case("credentials file names differ", FILE_KEY,
         secret_file=(GOOD_FILE + f"MAILGUN_SMTP_PASSWORD={PASSWORD}-other\n", 0o600)),
    # --- inventory shapes ---
    Case("password in host data", "relay_password", inventory={"relay_password": PASSWORD}),
    Case("password in group data", "mailgun_password", group_data={"mailgun_password": PASSWORD}),
    Case("allowed services as a dict", "firewall_allowed",
         inventory={"firewall_allowed": {"ssh": True}}),
    Case("port as a string with a protocol", "relay_port", inventory={"relay_port": "587/tcp"}),
    Case("root forward as a list", "mail_root_forward",
         inventory={"mail_root_forward": ["admin@lab.test"]}),
    Case("credentials file as a number", FILE_KEY, inventory={FILE_KEY: 600}),
    # --- hostile values that got past the validators (issue 22 item 6) ---
    Case("sender domain with a newline", "mail_sender_domain",
         inventory={"mail_sender_domain": "example.com\n"},
         attack="a newline after a valid domain (was converged, exit 0)"),
    Case("port as a superscript digit", "relay_port", inventory={"relay_port": "²"},
         attack="a non-ASCII digit (was a ValueError traceback)"),
    Case("relay host with an IPv6 scope id", "relay_host",
         data={"relay_host": "::1%x]:587, [mx.attacker.example"},
         attack="an IPv6 scope id giving main.cf a second relay host (failed on the host, "
                "no key named)"),
    Case("root forward with a newline", "mail_root_forward",
         inventory={"mail_root_forward": "ops@example.com\n"},
         attack="a newline after a valid address (failed on the host, no key named)"),
    Case("relay host with a newline", "relay_host",
         inventory={"relay_host": "relay.example.com\n"},
         attack="a newline after a valid host name (an operation error, no key named)"),
]


@pytest.fixture(scope="module")
def converged_boxes(lab):
    """One box per release, converged once, each with its snapshot: every case runs against
    both at the same time and must leave exactly that snapshot."""
    from lab.standin_server import DEFAULT_CONTROL

    lab.standin.set(**DEFAULT_CONTROL)
    boxes = lab.up(len(SUITES), suites=list(SUITES))
    try:
        converge(lab, boxes, GOOD_ENV)
        snapshots = [box.root(SNAPSHOT) for box in boxes]
        for snapshot in snapshots:
            assert snapshot.returncode == 0 and "etc/postfix/main.cf" in snapshot.stdout, snapshot
        yield [(box, snapshot.stdout) for box, snapshot in zip(boxes, snapshots)]
    finally:
        for box in boxes:
            lab.remove_box(box)


def _inventory(lab, box, case: Case, directory: Path) -> str:
    """An inventory file holding only this box, with inventories/lab.py's host data for it
    and the case's own."""
    data = {"ssh_hostname": box.ipv4, "ssh_user": "deploy", "ssh_key": str(lab.config.ssh_key),
            "ssh_known_hosts_file": "/dev/null", "ssh_strict_host_key_checking": "off",
            "_sudo": True, "mail_root_forward": "admin@lab.test",
            "apt_update": False, **(case.inventory or {})}
    path = directory / "inventory.py"
    path.write_text(f"mail_servers = ([({box.name!r}, {data!r})], {case.group_data or {}!r})\n")
    return str(path)


def _argv(lab, box, case: Case, directory: Path) -> list[str]:
    if case.inventory is not None or case.group_data is not None:
        argv = [lab.pyinfra_argv()[0], _inventory(lab, box, case, directory)]
    else:
        argv = lab.pyinfra_argv(hosts=[box])
    argv.append("-y")
    data = dict(case.data)
    if case.secret_file:
        content, mode = case.secret_file
        secret = directory / "relay.env"
        secret.write_text(content)
        secret.chmod(mode)
        data[FILE_KEY] = str(secret)
    for key, value in data.items():
        argv += ["--data", f"{key}={value}"]
    return argv + [case.deploy]


@pytest.mark.parametrize("case", CASES, ids=[c.id.replace(" ", "-") for c in CASES])
def test_bad_input_stops_with_one_message_naming_the_key(lab, converged_boxes, case, tmp_path):
    debug_log = REPO_ROOT / "pyinfra-debug.log"
    had_debug_log = debug_log.exists()
    reads_file = bool(case.secret_file) or FILE_KEY in {**case.data, **(case.inventory or {})}
    env = {**GOOD_ENV, **(NO_ENV if reads_file else case.env)}  # a file case must read the file

    def attempt(box_and_snapshot):
        box, snapshot = box_and_snapshot
        directory = tmp_path / box.name
        directory.mkdir()
        result = lab.run(_argv(lab, box, case, directory), env=env, timeout=300)
        return box, result, int(box.root(SNAPSHOT).stdout != snapshot)

    with ThreadPoolExecutor(len(converged_boxes)) as pool:  # one run per release, side by side
        attempts = list(pool.map(attempt, converged_boxes))
    failures = {}
    for box, result, changes in attempts:
        output = result.stdout + result.stderr
        named = output.count(f"`{case.key}`")
        problems = [what for what, bad in (
            (f"exit status {result.returncode}", result.returncode == 0),
            (f"`{case.key}` named {named} times in {output.count('host data `')} messages",
             named != 1 or output.count("host data `") != 1),
            ("a Python traceback", "Traceback (most recent call last)" in output
             or (debug_log.exists() and not had_debug_log)),
            ("the box changed", changes),
        ) if bad]
        fault_ledger.record(
            kind="bad-input", where=f"{box.suite}: {case.id}",
            checked=f"exit != 0, one message naming `{case.key}`, no traceback, box unchanged",
            ok=not problems, box_changes=changes)
        if problems:
            failures[box.suite] = f"{problems}:\n{output[-2000:]}"
        if case.attack:
            security_ledger.record(
                attack=f"bad input: {case.key} ({case.attack})",
                where=f"tests/lab/test_bad_input.py::{case.id}[{box.suite}]",
                outcome="refused before any host was touched: exit 1, one message naming "
                        f"`{case.key}`" if not problems else f"NOT held: {problems}",
                held=not problems)
    assert not failures, failures
