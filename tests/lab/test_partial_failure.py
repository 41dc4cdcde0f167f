"""One host of several failing (issue 14 item 5): in a 5-host run that changes the relay of all
five, one host fails mid-way (sshd killed, /etc/postfix full, Postfix refusing its config).
The other four converge, the failed one is named with the reason, no mail is lost, and the
next run, after the cause is removed, converges it."""
from __future__ import annotations

import json

import pytest

from pyinfra_lockdown.facts.postfix import MAIN_CF_WRITTEN
from tests.lab import fault_ledger
from tests.lab.deploy_helpers import canaries, converge, pyinfra, queue, send_mail, wait_for

pytestmark = pytest.mark.lab

LOGIN, PASSWORD = "postmaster@lab.test", "lab-password"  # lab.standin_server.DEFAULT_CONTROL
ENV = {"LOCKDOWN_RELAY_LOGIN": LOGIN, "LOCKDOWN_RELAY_PASSWORD": PASSWORD}
SUITES = ["bookworm", "trixie", "bookworm", "trixie", "bookworm"]

# Kill every sshd (listener and sessions) as soon as the run has rewritten main.cf: the
# controller loses the host between two operations of the mail deploy. main.cf's own mtime is
# backdated by the deploy (Postfix's doze), so the real write time is the one lockdown keeps.
KILL_SSHD_AFTER_MAIN_CF = (
    f"touch /run/lab-fault-mark && cat > /run/lab-fault-sshd.sh <<'EOF'\n"
    f"while [ ! {MAIN_CF_WRITTEN} -nt /run/lab-fault-mark ]; do sleep 0.05; done\n"
    "for d in /proc/[0-9]*; do case $(cat $d/comm 2>/dev/null) in sshd|sshd-session) "
    "kill -9 ${d#/proc/};; esac; done\nEOF\n"
    "systemd-run --quiet --collect --unit=lab-fault-sshd sh /run/lab-fault-sshd.sh"
)
# /etc/postfix on a tmpfs holding a copy of it, with one page left and the old main.cf held
# open (so its rename frees nothing): the main.cf rewrite fits, the SASL map does not.
# Unmounting it brings back the untouched directory underneath.
FILL_ETC_POSTFIX = (
    "set -e; rm -rf /run/lab-postfix && cp -a /etc/postfix /run/lab-postfix && "
    "mount -t tmpfs -o size=$(( $(du -sk /etc/postfix | cut -f1) + 256 ))k,mode=755 lab-full "
    "/etc/postfix && cp -a /run/lab-postfix/. /etc/postfix/ && "
    "systemd-run --quiet --collect --unit=lab-hold-main-cf sh -c 'exec sleep 600 "
    "< /etc/postfix/main.cf' && "
    "{ dd if=/dev/zero of=/etc/postfix/.lab-filler bs=4k 2>/dev/null || true; } && "
    "truncate -s -4K /etc/postfix/.lab-filler"
)
EMPTY_ETC_POSTFIX = ("systemctl stop lab-hold-main-cf; "  # lazy: a daemon may hold a map open
                     "umount --lazy /etc/postfix && rm -rf /run/lab-postfix")
BREAK_MASTER_CF = "printf 'lab-broken\\tinet\\n' >> /etc/postfix/master.cf"  # bad field count
MEND_MASTER_CF = "sed -i '/^lab-broken/d' /etc/postfix/master.cf"
RESTART_SSHD = "systemctl reset-failed ssh.service; systemctl restart ssh.service"

FAULTS = [  # (what, inject, remove, what the operator must be told)
    ("sshd killed after main.cf was rewritten", KILL_SSHD_AFTER_MAIN_CF, RESTART_SSHD,
     "SSH connection was lost mid-run"),
    ("/etc/postfix full (one page left)", FILL_ETC_POSTFIX, EMPTY_ETC_POSTFIX, "No space left"),
    ("Postfix refuses its config (bad master.cf line)", BREAK_MASTER_CF, MEND_MASTER_CF,
     "master.cf entry 'lab-broken inet' has 2 of the 8 fields"),
]


@pytest.fixture(scope="module")
def five(lab):
    from lab.standin_server import DEFAULT_CONTROL

    lab.standin.set(**DEFAULT_CONTROL)
    boxes = lab.up(len(SUITES), suites=SUITES)
    try:
        converge(lab, boxes, ENV)
        yield boxes
    finally:
        for box in boxes:
            lab.remove_box(box)


def _relay_of(box) -> tuple[str, str]:
    result = box.root("postconf -h relayhost smtp_tls_wrappermode; "
                      "postfix status >/dev/null 2>&1 && echo running || echo stopped")
    relayhost, wrapper, status = result.stdout.splitlines()
    return relayhost, f"{wrapper} {status}"


def _converged_to(box, port: int) -> bool:
    """From the box: main.cf, the SASL map and the running Postfix all say this port."""
    relayhost, state = _relay_of(box)
    keyed = box.root(f"grep -c '^\\[smtp.mailgun.org\\]:{port} ' /etc/postfix/sasl_passwd").stdout.strip()
    wrapper = "yes" if port == 465 else "no"
    return relayhost == f"[smtp.mailgun.org]:{port}" and state == f"{wrapper} running" and keyed == "1"


def _host_lines(output: str, box) -> str:
    return "\n".join(line for line in output.splitlines() if f"[{box.name}]" in line)


def _failed_at(output: str, box) -> str:
    """The step where ``box`` failed: the operation (or the state read) before its error."""
    step = "the state read"
    for line in output.splitlines():
        if "--> Starting operation:" in line:
            step = line.split("|", 1)[-1].strip()
        elif f"[{box.name}]" in line and "rror" in line:
            return step
    return "nowhere (no error shown)"


def test_one_host_failing_mid_run_leaves_the_other_four_converged(lab, five, standin):
    standin.set(login=LOGIN, password=PASSWORD)
    ports = [465, 587, 465]
    for (what, inject, remove, reason), failing, port in zip(FAULTS, five, ports):
        assert failing.root(inject).returncode == 0, f"could not inject: {what}"
        standin.clear()
        result = pyinfra(lab, five, "deploys/mail.py", env=ENV, data={"relay_port": port})
        output = result.stdout + result.stderr
        failed_lines = _host_lines(output, failing)
        # Mail submitted on the failed host while it is broken must wait, not bounce, even
        # through Postfix processes that read what the run left on disk (as after a reboot).
        if what.startswith("sshd"):
            assert failing.root(RESTART_SSHD).returncode == 0
        if not what.startswith("Postfix refuses"):
            assert failing.root("postfix reload").returncode == 0
        send_mail(failing, subject=f"while {what}")
        others = [box for box in five if box is not failing]
        converged = [box.name for box in others if _converged_to(box, port)]
        named = "Error" in failed_lines and (reason is None or reason in failed_lines)
        bounced = "status=bounced" in failing.root(
            "journalctl -q --no-pager -t postfix/smtp -t postfix/bounce --since -2min").stdout
        assert failing.root(remove).returncode == 0, f"could not remove: {what}"
        rerun = pyinfra(lab, five, "deploys/mail.py", "--json", env=ENV, data={"relay_port": port})
        healed = rerun.returncode == 0 and _converged_to(failing, port)
        delivered = wait_for(lambda: f"while {what}" in json.dumps(standin.messages()), 30)
        fault_ledger.record(
            kind="host-failure", where=f"host {five.index(failing) + 1} of 5 ({failing.suite}): "
            f"{what}; it failed at {_failed_at(output, failing)}",
            checked="other 4 converged (main.cf, SASL map, running Postfix), failed host named "
            "with the reason, its mail kept and delivered, the next run converged it",
            ok=result.returncode != 0 and len(converged) == 4 and named and healed
            and delivered and not bounced,
            mails_lost=int(not delivered or bounced))
        assert result.returncode != 0, output[-3000:]
        assert len(converged) == 4, (what, converged, [_relay_of(b) for b in others],
                                     output[-5000:])
        assert named, f"{what}: {failing.name} not named with the reason:\n{output[-4000:]}"
        assert not bounced and delivered, (what, queue(failing))
        assert healed, (what, _relay_of(failing), rerun.stderr[-3000:])
    standin.clear()
    totals = converge(lab, five, ENV, data={"relay_port": ports[-1]})[1]
    assert totals["success"] == 0 and totals["error"] == 0, totals  # a no-op everywhere
    assert canaries(standin.messages()) == []
    for box in five:
        assert "Mail queue is empty" in queue(box), (box.name, queue(box))
