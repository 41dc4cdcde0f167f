"""Postfix checks beyond the fixtures: the SASL secret travels only as stdin, fact commands
compose into the combined state read, and the restart decision helper."""

import pytest
from pyinfra.api import HiddenValue, StringCommand
from pyinfra.api.exceptions import FactProcessError
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from pyinfra_lockdown import secret_stamp
from pyinfra_lockdown.facts import postfix as postfix_facts
from pyinfra_lockdown.operations import postfix

SECRET = "FAKE-s3cret-never-printed"
CONTENT = f"[smtp.mailgun.org]:587 postmaster@mg.example.org:{SECRET}"
MISSING = {
    "exists": False,
    "type": "missing",
    "compiled": {"db": {"exists": False}, "lmdb": {"exists": False}, "cdb": {"exists": False}},
}


def _run(op, **kwargs):
    state = FakeState()
    host = create_host(state, facts={})
    with ctx_state.use(state), ctx_host.use(host):
        return list(op._inner(**kwargs))


@pytest.mark.parametrize("content", [HiddenValue(CONTENT), CONTENT])
@pytest.mark.parametrize("op", [postfix.map_file, postfix.sasl_password_map])
def test_postfix_secret_only_in_stdin(op, content):
    kwargs = {"path": "/etc/postfix/sasl_passwd", "content": content, "current": MISSING}
    if op is postfix.sasl_password_map:
        kwargs["db_type"] = "hash"
    commands = _run(op, **kwargs)

    for command in commands:
        assert isinstance(command, StringCommand)
        assert SECRET not in command.get_raw_value()
        assert SECRET not in command.get_masked_value()
    stdin = commands[0].connector_arguments["_stdin"]
    if op is postfix.sasl_password_map:  # the stamp's line first (secret_stamp.py)
        stamp, _, stdin = stdin.partition("\n")
        assert secret_stamp.stamp_matches(stamp, CONTENT + "\n")
    assert stdin == CONTENT + "\n"
    assert all("_stdin" not in command.connector_arguments for command in commands[1:])


def test_secret_stamp_is_salted_and_checks_only_its_own_content():
    with ctx_state.use(FakeState()):
        first, again = secret_stamp.new_stamp(CONTENT), secret_stamp.new_stamp(CONTENT)
    with ctx_state.use(FakeState()):
        second = secret_stamp.new_stamp(CONTENT)
    assert first == again  # one salt per content per run: the fleet is checked with one key
    assert first != second  # a fresh salt each run: no table of precomputed keys helps
    assert secret_stamp.stamp_matches(first, CONTENT)
    assert not secret_stamp.stamp_matches(first, CONTENT + "x")
    for foreign in (None, "", "sha256 00 11", "scrypt-14-8-1 not-hex 00", first.rsplit(" ", 1)[0]):
        assert not secret_stamp.stamp_matches(foreign, CONTENT)


def test_secret_map_current_only_with_a_valid_stamp_of_this_content():
    fresh = {"exists": True, "type": "file", "user": "root", "group": "root", "mode": 600,
             "mtime_ns": 1, "compiled": {"db": {"exists": True, "user": "root", "group": "root",
                                               "mode": 600, "mtime_ns": 2}}}
    valid = {**fresh, "stamp_status": "valid", "stamp": secret_stamp.new_stamp(CONTENT + "\n")}
    assert _run(postfix.sasl_password_map, path="/etc/postfix/sasl_passwd", content=CONTENT,
                db_type="hash", current=valid) == []
    for stale in ({**fresh, "stamp_status": "edited", "stamp": None},
                  {**fresh, "stamp_status": "missing", "stamp": None},
                  {**valid, "stamp": secret_stamp.new_stamp("other\n")}):
        commands = _run(postfix.sasl_password_map, path="/etc/postfix/sasl_passwd",
                        content=CONTENT, db_type="hash", current=stale)
        # the write, then postmap, in one remote command
        assert [c.get_raw_value().split()[0] for c in commands] == ["sh"]
        assert commands[0].get_raw_value().endswith(" && postmap hash:/etc/postfix/sasl_passwd")


@pytest.mark.parametrize(
    "fact_cls",
    [
        postfix_facts.PostfixMainCf,
        postfix_facts.PostfixMasterServices,
        postfix_facts.PostfixMapTypes,
        postfix_facts.MapFileState,
        postfix_facts.SecretFileState,
        postfix_facts.PostfixStatus,
        postfix_facts.SmtpListeners,
    ],
)
def test_postfix_fact_commands_are_plain_strings(fact_cls):
    """facts/host_state.py concatenates these with marker lines."""
    command = fact_cls().command()
    assert isinstance(command, str) and "\n" not in command


def test_postfix_settings_requiring_restart():
    current = {"installed": True, "main_cf": True, "settings": {"inet_interfaces": "all"}}
    wanted = {"inet_interfaces": "loopback-only", "inet_protocols": "all", "relayhost": "x"}
    assert postfix.settings_requiring_restart(wanted, current) == [
        "inet_interfaces",
        "inet_protocols",
    ]
    assert postfix.settings_requiring_restart({"inet_interfaces": "all"}, current) == []


@pytest.mark.parametrize("op", [postfix.map_file, postfix.sasl_password_map])
def test_the_secret_write_never_runs_on_a_pty(op, request):
    """A pty (``_get_pty=True`` from the inventory or the call) echoes stdin back as output:
    the write command overrides it (a command's own connector arguments win, command.py)."""
    from tests.security_ledger import record

    kwargs = {"path": "/etc/postfix/sasl_passwd", "content": HiddenValue(CONTENT),
              "current": MISSING}
    if op is postfix.sasl_password_map:
        kwargs["db_type"] = "hash"
    write = _run(op, **kwargs)[0]
    assert write.connector_arguments["_get_pty"] is False and "_stdin" in write.connector_arguments
    if op is postfix.sasl_password_map:
        record(attack="secret echoed by a pty: the map write under _get_pty=True",
               where=request.node.nodeid, held=True,
               outcome="the write command carries _get_pty=False, which overrides the call's")


def test_a_loose_compiled_map_is_made_private_before_postmap_writes_the_secret(request):
    """postmap keeps an existing compiled map's mode: a 0644 sasl_passwd.db from an older run
    would hold the NEW secret, readable by all, until the chmod after it."""
    from tests.security_ledger import record

    loose = {"exists": True, "user": "root", "group": "root", "mode": 644, "mtime_ns": 1}
    current = {"exists": True, "type": "file", "user": "root", "group": "root", "mode": 600,
               "mtime_ns": 2, "stamp_status": "edited", "stamp": None,
               "compiled": {"db": loose, "lmdb": {"exists": False}, "cdb": {"exists": False}}}
    commands = [str(c) for c in _run(postfix.sasl_password_map, path="/etc/postfix/sasl_passwd",
                                     content=HiddenValue(CONTENT), db_type="hash",
                                     current=current)]
    assert len(commands) == 1  # the write, the chmod and postmap: one remote command
    chmod = commands[0].index(" && chmod 600 /etc/postfix/sasl_passwd.db && ")
    assert chmod < commands[0].index(" && postmap hash:/etc/postfix/sasl_passwd")
    record(attack="secret in a world-readable compiled map (0644 sasl_passwd.db, then postmap)",
           where=request.node.nodeid, held=True,
           outcome="chmod 600 of the compiled map runs before postmap writes the new secret")


@pytest.mark.parametrize("name", ["debian12_submission_enabled_with_options", "debian13_converged"])
def test_master_cf_lines_dropped_on_the_host_are_only_those_the_parser_ignores(name):
    """PostfixMasterServices greps out prose and blank lines on the host (MASTER_CF_IGNORED):
    the whole master.cf of a box (as it was captured before) and what the grep leaves of it
    parse alike, and the grep leaves about half of it."""
    import subprocess
    from pathlib import Path

    text = (Path(__file__).parent / "facts" / f"master_cf.{name}.txt").read_text()
    kept = subprocess.run(["grep", "-vE", postfix_facts.MASTER_CF_IGNORED], input=text,
                          capture_output=True, text=True, check=True).stdout.splitlines()
    lines = text.splitlines()
    assert postfix_facts._parse_master_cf(kept) == postfix_facts._parse_master_cf(lines)
    assert len(kept) < 0.6 * len(lines)
    for prose in ("#  -o smtpd_client_restrictions=x", "#  flags=R user=cyrus argv=/x",
                  "  flags=DRXhu user=vmail argv=/usr/bin/maildrop"):  # continuations stay
        assert subprocess.run(["grep", "-vE", postfix_facts.MASTER_CF_IGNORED], input=prose + "\n",
                              capture_output=True, text=True).stdout == prose + "\n"


@pytest.mark.parametrize("fact_cls", [postfix_facts.MapFileState, postfix_facts.SecretFileState])
def test_an_unparsable_stat_line_names_the_fact_that_read_it(fact_cls):
    """Both map facts parse stat output with one helper: its error names the fact asked."""
    output = ["source: file root root 600 1795699581",
              "db: missing", "lmdb: missing", "cdb: missing"]
    with pytest.raises(FactProcessError,
                       match=rf"^{fact_cls.__name__}: cannot parse stat output for source"):
        fact_cls().process(output)
