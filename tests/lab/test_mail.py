"""The Postfix null client on real booted boxes: mail relays with AUTH inside TLS, nothing
listens for SMTP from outside, a second run changes nothing, the secret is never shown."""
import pytest

from lab.standin_server import DEFAULT_CONTROL
from lab.story import INTERNET_SITE  # what Debian's postinst writes for "Internet Site"
from tests.conftest import SUITES
from tests.lab import fault_ledger
from tests.lab.secret_forms import FAST_DIGESTS, leaks, needles
from tests.lab.deploy_helpers import (
    LOGIN, canaries, converge, new_credentials, not_canaries, pyinfra, queue, send_mail,
    wait_for, wait_for_mail,
)

pytestmark = pytest.mark.lab
FORWARD = "admin@lab.test"  # mail_root_forward of inventories/lab.py
SMTP_PORTS = (25, 465, 587)
RELAYHOST = "[smtp.mailgun.org]:587"  # inventories/lab.py: the Mailgun preset, its port
SEARCHED = "/etc /var /tmp /root /home /run /srv /opt /usr/local"  # every writable place


@pytest.fixture
def converged(lab, box, standin):
    """A fresh box of each release, converged, for a test that changes it."""
    env = new_credentials(standin)
    converge(lab, [box], env)
    assert len(canaries(standin.messages())) == 1  # the relay canary (tests/lab/test_canary.py)
    return box, env


@pytest.fixture(scope="module", params=SUITES)
def converged_once(lab, request):
    """One box per release converged once, shared by the tests that only read it or make a
    no-op run (issue 23: no fresh box and first converge per such test)."""
    box = lab.add_box(suite=request.param)
    try:
        env = new_credentials(lab.standin)
        lab.standin.clear()
        converge(lab, [box], env)
        assert len(canaries(lab.standin.messages())) == 1
        yield box, env
    finally:
        lab.standin.set(**DEFAULT_CONTROL)
        lab.remove_box(box)


@pytest.fixture
def converged_shared(converged_once, standin):
    """The shared converged box, with the stand-in taking its credentials again (the
    `standin` fixture resets them for every test)."""
    box, env = converged_once
    standin.set(login=LOGIN, password=env["LOCKDOWN_RELAY_PASSWORD"], mode="normal")
    return box, env


def test_fresh_box_relays_root_mail_authenticated_over_tls(lab, converged_shared, standin):
    box, env = converged_shared
    send_mail(box, to="root", subject="cron says hi")
    messages = wait_for_mail(standin, 1, timeout=15)
    assert len(messages) == 1, f"nothing arrived; queue:\n{queue(box)}"
    message = messages[0]
    assert message["login"] == LOGIN and message["tls"] is True and message["port"] == 587
    assert message["rcpt_tos"] == [FORWARD]
    assert message["mail_from"] == "root@mg.lab.test"  # rewritten from root@<host>
    assert "Subject: cron says hi" in message["data"]
    assert "Mail queue is empty" in queue(box)


def test_second_run_reports_no_changes(lab, converged_shared):
    box, env = converged_shared
    _, totals = converge(lab, [box], env)
    assert totals["success"] == 0 and totals["error"] == 0, totals


def test_no_smtp_port_reachable_and_no_relay_from_outside(lab, converged_shared):
    box, _ = converged_shared
    # every port tried at once (one prober, each connect with its own 2 s limit), not in turn
    targets = [(address, port) for address in (box.ipv4, box.ipv6) for port in SMTP_PORTS]
    assert lab.probe.open_ports(targets) == [], "these accept connections"
    for address in (box.ipv4, box.ipv6):
        attempt = lab.probe.smtp_relay_attempt(address, 25)
        assert not attempt.get("accepted"), attempt
    listeners = box.root("ss -Hltn").stdout
    for line in listeners.splitlines():
        local = line.split()[3]
        if local.rsplit(":", 1)[1] in ("25", "465", "587"):
            assert local.startswith(("127.0.0.1:", "[::1]:")), line


def test_relay_without_starttls_defers_and_never_sends_auth(lab, converged, standin):
    box, _ = converged
    standin.set(mode="no_starttls")
    standin.clear()
    send_mail(box, subject="must not leak")
    assert wait_for(lambda: "TLS is required" in _mail_log(box)), _mail_log(box)
    assert not_canaries(standin.messages()) == []
    assert not [e for e in standin.events() if e.get("event") == "auth"], standin.events()
    assert "Mail queue is empty" not in queue(box)  # deferred, not lost


def test_bad_password_defers_then_fixed_credentials_deliver_without_loss(lab, converged, standin):
    box, env = converged
    wrong = {**env, "LOCKDOWN_RELAY_PASSWORD": env["LOCKDOWN_RELAY_PASSWORD"] + "-old"}
    failed = pyinfra(lab, [box], "deploys/mail.py", env=wrong)  # the canary catches it
    assert failed.returncode != 0 and "refused the login" in failed.stdout + failed.stderr
    standin.clear()
    send_mail(box, subject="queued while the password was wrong")
    assert wait_for(lambda: "authentication failed" in _mail_log(box)), _mail_log(box)
    assert standin.messages() == []
    assert "Mail queue is empty" not in queue(box)

    converge(lab, [box], env)  # the fixed credentials
    messages = wait_for_mail(standin, 1, timeout=30)
    assert ["Subject: queued while the password was wrong" in m["data"] for m in messages] == [True]
    assert "Mail queue is empty" in queue(box)


def test_port_465_relays_over_implicit_tls(lab, box, standin):
    env = new_credentials(standin)
    converge(lab, [box], env, data={"relay_port": 465})
    assert "smtp_tls_wrappermode = yes" in box.root("postconf smtp_tls_wrappermode").stdout
    send_mail(box, subject="via smtps")
    messages = wait_for_mail(standin, 1, timeout=15)
    assert len(messages) == 1 and messages[0]["port"] == 465 and messages[0]["tls"] is True


def test_password_never_shown_nor_world_readable(lab, box, standin):
    """Neither the secret nor a fast digest of it (issue 14 item 7) in any output, at every
    verbosity, planning or applying, writing or no-op, rotating, auditing; nor in a file others
    can read."""
    assert box.root("touch /run/lockdown-leak-test-start").returncode == 0
    runs, searched = [], {}
    def run(what, deploy, *options):
        runs.append((what, pyinfra(lab, [box], deploy, *options, env=env)))

    for rotation in ("first", "rotated"):
        env = new_credentials(standin)
        searched.update(needles(RELAYHOST, env["LOCKDOWN_RELAY_LOGIN"], env["LOCKDOWN_RELAY_PASSWORD"]))
        if rotation == "first":
            run("--dry -vvv", "deploys/mail.py", "--dry", "-vvv")
            run("--dry --json", "deploys/mail.py", "--dry", "--json")
            run("-vvv --debug-operations (the plan)", "deploys/mail.py", "-vvv",
                "--debug-operations")
        run(f"--json -vvv ({rotation}: writes)", "deploys/mail.py", "--json", "-vvv")
        run(f"-vvv ({rotation}: no-op)", "deploys/mail.py", "-vvv")
    run("-v (no-op)", "deploys/mail.py", "-v")
    run("-vv --dry (no-op)", "deploys/mail.py", "-vv", "--dry")
    run("audit -vvv", "deploys/audit.py", "-vvv")
    leaked = {what: leaks(result.stdout + result.stderr, searched) for what, result in runs}
    # Files written since the test began that nobody (any local user) can read.
    readable = box.root(
        f"cat /etc/postfix/main.cf /etc/postfix/master.cf; runuser -u nobody -- sh -c 'find "
        f"{SEARCHED} -xdev -type f -readable -newer /run/lockdown-leak-test-start "
        "-exec cat {} + 2>/dev/null' || true").stdout
    leaked["files readable by nobody"] = leaks(readable, searched)
    exposed = sum(len(found) for found in leaked.values())
    fault_ledger.record(
        kind="secret-leak", where=f"{box.suite}: {len(runs)} runs (-v..-vvv, --dry, --json, "
        "write, no-op, rotation, audit) and every file written meanwhile that nobody can read",
        checked=f"{len(searched)} forms: the secret, AUTH base64, {len(FAST_DIGESTS)} fast "
        "digests (hex, base64) of 4 secret forms", ok=not exposed, secrets_exposed=exposed)
    for what, result in runs:
        assert result.returncode == 0, (what, result.stderr[-3000:])
    assert {what: found for what, found in leaked.items() if found} == {}
    # The no-op runs read the stamp: a salted scrypt key is what -vvv may show, nothing faster.
    assert all("stamp: valid scrypt-" in result.stderr for what, result in runs if "no-op)" in what
               and "-vvv" in what)
    # Every file on the box that holds the password is readable by root only.
    password = env["LOCKDOWN_RELAY_PASSWORD"]
    holders = box.root(f"grep -rlsF -- '{password}' {SEARCHED} || true")
    for path in holders.stdout.split():
        mode = box.root(f"stat -c '%U %a' {path}").stdout.split()
        assert mode[0] == "root" and mode[1] in ("600", "400"), (path, mode)
    assert set(holders.stdout.split()) <= {f"/etc/postfix/sasl_passwd{suffix}"
                                           for suffix in ("", ".db", ".lmdb")}


def test_a_pty_asked_by_the_caller_never_echoes_the_secret(lab, box, standin, request, tmp_path):
    """``mail_relay(_get_pty=True)`` (as for a requiretty sudoers) puts its commands on a
    pseudo-terminal, whose echo returned the SASL map's stdin as output: -vvv printed the
    line, password included. The map's write command asks for no pty whatever the caller or
    the inventory says (issue 22 item 6). (``_get_pty`` in host data also reaches the state
    read, which then fails on the terminal's CR line ends before anything is written.)"""
    from tests.security_ledger import record

    deploy = tmp_path / "mail_pty.py"
    deploy.write_text("from pyinfra_lockdown import firewall, mail_relay\n\n"
                      "firewall()\nmail_relay(_get_pty=True)\n")
    searched = {}
    runs = []
    for rotation in ("first", "rotated"):
        env = new_credentials(standin)
        searched.update(needles(RELAYHOST, env["LOCKDOWN_RELAY_LOGIN"], env["LOCKDOWN_RELAY_PASSWORD"]))
        runs.append(pyinfra(lab, [box], str(deploy), "-vvv", env=env))
    found = [leaks(r.stdout + r.stderr, searched) for r in runs]
    held = not any(found) and all(r.returncode == 0 for r in runs)
    record(attack="secret echoed by a pty: mail_relay(_get_pty=True), -vvv, write and rotation",
           where=request.node.nodeid, held=held,
           outcome="no form of the secret in the output, exit 0" if held
           else f"NOT held: exit {[r.returncode for r in runs]}, leaked {found}")
    for result in runs:
        assert result.returncode == 0, result.stderr[-3000:]
    assert found == [[], []]
    assert "sasl_passwd" in box.root("ls /etc/postfix").stdout


def _mail_log(box) -> str:
    return box.root("journalctl --no-pager -q -t postfix/smtp -t postfix/qmgr").stdout



def test_internet_site_box_stops_listening_and_relays(lab, box, standin):
    """The problem lockdown exists for: a Postfix installed as "Internet Site" on a VPS."""
    assert box.root(INTERNET_SITE).returncode == 0
    assert wait_for(lambda: lab.probe.tcp_open(box.ipv4, 25)), "setup: 25 should be open"
    probe = lab.probe.smtp_relay_attempt(box.ipv4, 25)
    assert probe["connected"] and not probe["accepted"]  # Relay access denied, as in the logs

    converge(lab, [box], new_credentials(standin))
    assert not lab.probe.tcp_open(box.ipv4, 25) and not lab.probe.tcp_open(box.ipv6, 25)
    send_mail(box, to="root", subject="logwatch")
    messages = wait_for_mail(standin, 1, timeout=15)
    assert [(m["mail_from"], m["rcpt_tos"]) for m in messages] == [
        ("root@mg.lab.test", [FORWARD])], queue(box)


def test_failing_postfix_check_fails_the_host_and_leaves_postfix_running(lab, converged):
    box, env = converged
    master_pid = box.root("cat /var/spool/postfix/pid/master.pid").stdout.strip()
    reloads = box.root("journalctl -q --no-pager -t postfix/master | grep -c 'reload --'").stdout
    assert box.root("postconf -e mail_owner=nosuchuser").returncode == 0  # broken by hand
    result = pyinfra(lab, [box], "deploys/mail.py", env=env, data={"relay_port": 465})
    assert result.returncode != 0
    assert "nosuchuser" in result.stderr, result.stderr[-3000:]  # Postfix's own message
    assert box.root("cat /var/spool/postfix/pid/master.pid").stdout.strip() == master_pid
    assert box.root(f"cat /proc/{master_pid}/comm").stdout.strip() == "master"  # not restarted
    assert box.root("journalctl -q --no-pager -t postfix/master | grep -c 'reload --'"
                    ).stdout == reloads  # and not reloaded


def test_converge_keeps_the_release_compatibility_level(lab, converged_shared):
    # lockdown needs 3.6; a newer release's own level (Debian 13 ships 3.9) must not go down.
    box, _ = converged_shared
    stock = box.root("sed -n 's/^compatibility_level *= *//p' "
                     "/usr/share/postfix/main.cf.debian").stdout.strip()
    level = box.root("postconf -h compatibility_level").stdout.strip()
    assert stock, "the box's Postfix package ships no main.cf.debian"

    def version(text):
        return tuple(int(part) for part in text.split("."))

    assert version(level) == max(version(stock), (3, 6)), (level, stock)
    if box.suite == "trixie":
        assert level == "3.9"
