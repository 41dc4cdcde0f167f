"""The facts-only audit on real boxes: clean after converge (with the outside view), every
hand-made drift named with a non-zero exit, clean again after re-converge, reads only,
an unreachable host reported while the other is still audited."""
import json

import pytest

from tests.lab.deploy_helpers import converge, new_credentials, report_path, wait_for

pytestmark = pytest.mark.lab
SNAPSHOT = ("find /etc/postfix /etc/ufw /etc/default/ufw -type f -exec stat -c '%n %a %U %Y' {} + "
            "| sort; find /etc/postfix /etc/ufw -type f -exec sha256sum {} + | sort")


def audit(lab, boxes, env, json_path=None):
    json_path = json_path or report_path()
    argv = lab.pyinfra_argv(hosts=list(boxes)) + [
        "-y", "deploys/audit.py", "--data", f"audit_json={json_path}"]
    result = lab.run(argv, env=env, timeout=300)
    with open(json_path) as handle:
        report = json.load(handle)
    return result, report, {h["host"]: h for h in report["hosts"]}


def assert_report_is_the_end(result, clean: bool):
    """A failing audit is an answer, not a crash: the table, one summary line per host and
    overall, exit status 1 - no traceback, no pyinfra error text after it."""
    output = result.stdout + result.stderr
    for crash in ("Traceback", "Unexpected error", "pyinfra error", "Error: executed",
                  "No hosts remaining"):
        assert crash not in output, output[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    overall = [i for i, line in enumerate(lines) if line.startswith("audit: ")]
    assert len(overall) == 1, result.stdout[-3000:]
    if clean:
        assert result.returncode == 0
    else:
        assert result.returncode == 1 and overall[0] == len(lines) - 1, result.stdout[-3000:]


def failed(hosts, name):
    return {c["id"] for c in hosts[name]["checks"] if c["verdict"] == "FAIL"}


def test_audit_clean_drifts_reconverge_unreachable(lab, two_boxes, standin):
    box1, box2 = two_boxes
    env = new_credentials(standin)
    converge(lab, two_boxes, env)

    before = [box.root(SNAPSHOT).stdout for box in two_boxes]
    result, report, hosts = audit(lab, two_boxes, env)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert_report_is_the_end(result, clean=True)
    assert report["ok"] and set(hosts) == {box1.name, box2.name}
    for name in hosts:
        verdicts = {c["id"]: c["verdict"] for c in hosts[name]["checks"]}
        assert set(verdicts.values()) == {"PASS"}, verdicts
        assert verdicts["outside.smtp"] == "PASS"
        assert f"{name}: PASS - {len(verdicts)} pass, 0 fail" in result.stdout  # table == JSON
    assert env["LOCKDOWN_RELAY_PASSWORD"] not in result.stdout + result.stderr
    assert [box.root(SNAPSHOT).stdout for box in two_boxes] == before  # reads only

    for command in ("postconf -e 'relayhost = [10.77.0.99]:587' 'smtp_tls_security_level = may'",
                    "chmod 644 /etc/postfix/sasl_passwd",
                    "postconf -e 'inet_interfaces = all'",
                    "postconf -M smtp/inet='smtp inet n - y - - smtpd'",
                    "systemctl restart postfix", "ufw allow 8080"):
        assert box1.root(command).returncode == 0, command
    for command in ("ufw --force delete 1", "ufw disable"):
        assert box2.root(command).returncode == 0, command
    result, report, hosts = audit(lab, two_boxes, env)
    assert_report_is_the_end(result, clean=False)
    assert not report["ok"]
    assert {"postfix.relayhost", "postfix.tls_level", "postfix.sasl_map", "postfix.loopback_only",
            "postfix.no_public_listener", "ufw.rules"} <= failed(hosts, box1.name)
    rules = {name: next(c["value"] for c in hosts[name]["checks"] if c["id"] == "ufw.rules")
             for name in hosts}
    assert [r.rsplit(" ", 2)[-2] for r in rules[box1.name]["unexpected"]] == ["8080", "8080"]
    assert {"ufw.enabled", "ufw.rules"} <= failed(hosts, box2.name)
    assert len(rules[box2.name]["missing"]) == 1 and rules[box2.name]["unexpected"] == []
    for name in (box1.name, box2.name):
        assert f"{name}: FAIL" in result.stdout

    # firewall_prune=all: the default "tagged" deliberately keeps hand-made rules (ufw allow
    # 8080), which the audit still names as unexpected.
    converge(lab, two_boxes, env, data={"firewall_prune": "all"})
    result, report, hosts = audit(lab, two_boxes, env)
    assert result.returncode == 0 and report["ok"], [failed(hosts, n) for n in hosts]

    assert box2.root("systemctl stop ssh").returncode == 0
    try:
        result, report, hosts = audit(lab, two_boxes, env)
    finally:
        box2.root("systemctl start ssh")
    assert_report_is_the_end(result, clean=False)
    assert hosts[box2.name]["status"] == "unreachable"
    assert hosts[box1.name]["status"] == "pass"
    assert f"{box2.name}: UNREACHABLE" in result.stdout


def audit_from_probe_host(lab, target, probe, env, json_path=None):
    json_path = json_path or report_path()
    """The audit as in production: a `probes` inventory group host probes the target."""
    argv = lab.pyinfra_argv(hosts=[target, probe]) + [
        "-y", "deploys/audit.py", "--data", "audit_probe=off", "--data", f"audit_json={json_path}"]
    result = lab.run(argv, env={**env, "LAB_PROBES": probe.name}, timeout=300)
    with open(json_path) as handle:
        report = json.load(handle)
    checks = {c["id"]: c for c in report["hosts"][0]["checks"]}
    assert [h["host"] for h in report["hosts"]] == [target.name]  # the probe is not audited
    return result, checks


def test_relay_noise_is_counted_from_outside_and_stops_after_reconverge(lab, two_boxes, standin):
    target, probe = two_boxes
    env = new_credentials(standin)
    converge(lab, [target], env)
    for command in ("ufw allow 25/tcp", "postconf -e 'inet_interfaces = all'",
                    "postconf -M smtp/inet='smtp inet n - y - - smtpd'", "systemctl restart postfix"):
        assert target.root(command).returncode == 0, command
    assert wait_for(lambda: lab.probe.tcp_open(target.ipv4, 25))
    for _ in range(2):  # what the internet's relay probers do
        attempt = lab.probe.smtp_relay_attempt(target.ipv4, 25)
        assert attempt["connected"] and not attempt["accepted"], attempt

    result, checks = audit_from_probe_host(lab, target, probe, env)
    assert result.returncode != 0
    assert checks["noise.relay_denied"]["verdict"] == "FAIL"
    # ours, plus the audit's own relay attempt from the probe host
    assert checks["noise.relay_denied"]["value"]["since_converge"] >= 2, checks["noise.relay_denied"]
    assert checks["outside.smtp"]["verdict"] == "FAIL"
    assert checks["outside.smtp"]["value"]["via"] == probe.name

    converge(lab, [target], env, data={"firewall_prune": "all"})
    assert not lab.probe.tcp_open(target.ipv4, 25)
    assert not lab.probe.smtp_relay_attempt(target.ipv4, 25)["connected"]
    result, checks = audit_from_probe_host(lab, target, probe, env)
    assert result.returncode == 0, {k: c for k, c in checks.items() if c["verdict"] != "PASS"}
    assert checks["noise.relay_denied"]["value"]["since_converge"] == 0
    assert checks["outside.smtp"]["verdict"] == "PASS"


def test_auditing_a_never_converged_host_is_a_report_not_a_crash(lab, box, standin):
    result, report, hosts = audit(lab, [box], new_credentials(standin))
    assert_report_is_the_end(result, clean=False)
    assert hosts[box.name]["status"] == "fail"
    assert {"postfix.installed", "ufw.enabled"} <= failed(hosts, box.name)


SPOOFED = (  # what any local user can send with logger(1), under Postfix's identifiers
    ("postfix/smtp", "4B1D0C0FFEE: to=<admin@lab.test>, relay=evil.example[203.0.113.9]:25, "
     "delay=0.1, delays=0/0/0/0.1, dsn=5.7.8, status=bounced (SASL authentication failed; "
     "server evil.example[203.0.113.9] said: 535 5.7.8 spoofed)"),
    ("postfix/smtpd", "connect from evil.example[203.0.113.9]"),
    ("postfix/smtpd", "NOQUEUE: reject: RCPT from evil.example[203.0.113.9]: 554 5.7.1 "
     "<x@elsewhere.example>: Relay access denied; from=<a@b.example> to=<x@elsewhere.example>"),
)


def test_spoofed_postfix_log_lines_move_no_verdict(lab, box, standin, request):
    """Journal lines are selected by the uid that wrote them (the kernel's, not the syslog
    identifier anyone can choose): `logger -t postfix/smtp ...` by a local user neither fails
    postfix.relay nor counts as noise; the same lines from the postfix uid do (the control:
    the test sees what it looks for)."""
    from tests.security_ledger import record

    env = new_credentials(standin)
    converge(lab, [box], env)

    def log_as(user: str) -> None:
        for tag, line in SPOOFED:
            result = box.root(f"runuser -u {user} -- logger -t {tag} '{line}'")
            assert result.returncode == 0, result.stderr
        assert box.root("journalctl --sync").returncode == 0

    def relevant(hosts) -> dict:
        checks = {c["id"]: c for c in hosts[box.name]["checks"]}
        return {i: (checks[i]["verdict"], checks[i]["found"])
                for i in ("postfix.relay", "noise.relay_denied", "noise.smtpd_connects")}

    log_as("nobody")
    _, _, hosts = audit(lab, [box], env)
    spoofed = relevant(hosts)
    held = {v for v, _ in spoofed.values()} == {"PASS"}
    record(attack="spoofed journal lines: `logger -t postfix/smtp|smtpd` by user nobody "
           "(a bounced delivery, a connect, a relay attempt)", where=request.node.nodeid,
           held=held, outcome="audit unmoved: postfix.relay, noise.relay_denied and "
           "noise.smtpd_connects PASS" if held else f"NOT held: {spoofed}")
    assert held, spoofed
    log_as("postfix")  # the control: Postfix's own uid
    _, _, hosts = audit(lab, [box], env)
    control = relevant(hosts)
    assert {v for v, _ in control.values()} == {"FAIL"}, control
    assert "evil.example" in control["postfix.relay"][1]


PUBLIC_SMTPD = ("0.0.0.0:smtp inet n - y - - smtpd", "[::]:2525 inet n - y - - smtpd")


def test_smtpd_services_bound_beyond_loopback_are_disabled(lab, box, standin, request):
    """An address in a master.cf service name overrides inet_interfaces = loopback-only: such
    a service listened to the world and the audit passed. The audit now fails on it and the
    converge comments it out (and only it)."""
    from tests.security_ledger import record

    env = new_credentials(standin)
    converge(lab, [box], env)
    for entry in PUBLIC_SMTPD:
        assert box.root(f"echo '{entry}' >> /etc/postfix/master.cf").returncode == 0
    assert box.root("postfix reload").returncode == 0

    def public_listeners() -> list[str]:
        lines = box.root("ss -Hltn").stdout.split("\n")
        return sorted(line.split()[3] for line in lines if line.strip()
                      and line.split()[3].rsplit(":", 1)[1] in ("25", "2525")
                      and not line.split()[3].startswith(("127.", "[::1]")))

    assert wait_for(lambda: len(public_listeners()) == 2, 15), public_listeners()
    _, _, hosts = audit(lab, [box], env)
    assert {"postfix.loopback_only", "postfix.no_public_listener"} <= failed(hosts, box.name)
    loopback = next(c for c in hosts[box.name]["checks"] if c["id"] == "postfix.loopback_only")
    assert "0.0.0.0:smtp/inet" in loopback["found"] and "[::]:2525/inet" in loopback["found"]

    _, totals = converge(lab, [box], env)
    assert wait_for(lambda: public_listeners() == [], 15), public_listeners()
    master = box.root("cat /etc/postfix/master.cf").stdout
    assert all(f"#{entry}" in master for entry in PUBLIC_SMTPD), master[-600:]
    _, again = converge(lab, [box], env)
    assert again["success"] == 0, again
    result, report, _ = audit(lab, [box], env)
    assert report["ok"], result.stdout[-3000:]
    record(attack="public smtpd services in master.cf (0.0.0.0:smtp, [::]:2525) beside "
           "inet_interfaces = loopback-only", where=request.node.nodeid, held=True,
           outcome="audit FAILs postfix.loopback_only naming both; the converge comments out "
                   "both, nothing listens beyond loopback after, the next converge changes nothing")
