"""The SASL map's stamp costs the controller one scrypt per distinct credential per run, at any
fleet size (issue 28 item 1): the key derivations of 50 hosts are counted, for a first converge,
a no-op run, the audit after it, two credentials, and a fleet upgraded from per-host salts."""
import hashlib
import threading

import gevent
import pytest
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from pyinfra_lockdown import secret_stamp
from pyinfra_lockdown.audit_checks import expected_state, sasl_map_check
from pyinfra_lockdown.operations import postfix
from pyinfra_lockdown.settings import audit_settings

HOSTS = 50
PATH = "/etc/postfix/sasl_passwd"
# relay_host an IP, as on the boxes the fixtures come from: level encrypt chosen explicitly
DATA = {"relay_host": "10.77.0.1", "relay_tls_level": "encrypt", "mail_root_forward": "admin@lab.test",
        "apt_update": False}
ENVIRON = {"LOCKDOWN_RELAY_LOGIN": "postmaster@lab.test", "LOCKDOWN_RELAY_PASSWORD": "lab-password"}
CONTENT = "[10.77.0.1]:587 postmaster@lab.test:lab-password\n"  # sasl_map_line of DATA, ENVIRON
OTHER = "[10.77.0.1]:587 postmaster@lab.test:another-password\n"
MISSING = {"exists": False, "type": "missing",
           "compiled": {"db": {"exists": False}, "lmdb": {"exists": False}, "cdb": {"exists": False}}}


def converged(stamp: str) -> dict:
    """A SecretFileState of a map lockdown wrote with ``stamp``, untouched since."""
    return {"exists": True, "type": "file", "user": "root", "group": "root", "mode": 600,
            "mtime_ns": 1, "stamp_status": "valid", "stamp": stamp,
            "compiled": {"db": {"exists": True, "user": "root", "group": "root", "mode": 600,
                                "mtime_ns": 2}}}


@pytest.fixture
def scrypts(monkeypatch):
    """Counts hashlib.scrypt calls; each test starts like a new controller process."""
    calls = []
    real = hashlib.scrypt

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    monkeypatch.setattr(secret_stamp, "_DERIVED", {})
    monkeypatch.setattr(secret_stamp, "_NO_RUN_SALTS", {})
    return calls


class Run:
    """One pyinfra run (its State) over HOSTS hosts."""

    def __init__(self):
        self.state = FakeState()
        self.hosts = [create_host(self.state, facts={}, name=f"host{i}") for i in range(HOSTS)]

    def sasl_map(self, host, current: dict, content: str = CONTENT) -> list:
        with ctx_state.use(self.state), ctx_host.use(host):
            return list(postfix.sasl_password_map._inner(
                path=PATH, content=content, db_type="hash", current=current))

    def audit(self, host, current: dict) -> str:
        with ctx_state.use(self.state), ctx_host.use(host):
            exp = expected_state(audit_settings(DATA, ENVIRON))
            return sasl_map_check(exp, {"sasl_map": current, "parameters": {}}).verdict


def written_stamp(commands: list) -> str:
    return commands[0].connector_arguments["_stdin"].partition("\n")[0]


def test_a_fleet_written_and_checked_in_later_runs_costs_one_scrypt_per_run(scrypts):
    first = Run()
    stamps = {written_stamp(first.sasl_map(host, MISSING)) for host in first.hosts}
    assert len(stamps) == 1 and len(scrypts) == 1  # one salt, one key for the 50 writes

    stamp = stamps.pop()
    secret_stamp._DERIVED.clear()  # the next run is a new controller process
    noop = Run()
    assert all(noop.sasl_map(host, converged(stamp)) == [] for host in noop.hosts)
    assert all(noop.audit(host, converged(stamp)) == "PASS" for host in noop.hosts)
    assert len(scrypts) == 2  # the no-op run and its audit: one more, for all 50 hosts


def test_each_distinct_credential_costs_one(scrypts):
    run = Run()
    for index, host in enumerate(run.hosts):
        run.sasl_map(host, MISSING, CONTENT if index % 2 else OTHER)
    assert len(scrypts) == 2


def test_older_per_host_salts_are_recognised_and_later_writes_join_one(scrypts):
    salts = [secret_stamp.new_salt() for _ in range(HOSTS)]  # an older lockdown: one per host
    per_host = [f"{secret_stamp.SCHEME} {salt} {secret_stamp._derive(secret_stamp.SCHEME, salt, CONTENT)}"
                for salt in salts]
    scrypts.clear()
    run = Run()
    assert all(run.sasl_map(host, converged(stamp)) == [] for host, stamp in zip(run.hosts, per_host))
    assert len(scrypts) == HOSTS  # recognised, one each: no map of the fleet is rewritten
    new_host = create_host(run.state, facts={}, name="added")
    assert written_stamp(run.sasl_map(new_host, MISSING)).split()[1] == salts[0]
    assert len(scrypts) == HOSTS  # the added host joins a known salt: no new derivation


def test_hosts_checked_at_once_share_one_derivation_and_never_stall_the_others(scrypts):
    import pyinfra_cli  # noqa: F401  (patches like the CLI: scrypt then runs in a thread pool)

    assert gevent.monkey.is_module_patched("threading")
    stamp = f"{secret_stamp.SCHEME} {'ab' * 16} {secret_stamp._derive(secret_stamp.SCHEME, 'ab' * 16, CONTENT)}"
    scrypts.clear()
    run = Run()
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.001)) for _ in range(10_000)])
    checks = [gevent.spawn(run.sasl_map, host, converged(stamp)) for host in run.hosts]
    gevent.joinall(checks, timeout=30, raise_error=True)
    ticker.kill()
    assert [check.value for check in checks] == [[]] * HOSTS
    assert len(scrypts) == 1
    # scrypt takes tens of ms of one core: the other greenlet kept running all along
    assert len(ticks) >= 5, ticks
    assert threading.main_thread() is threading.current_thread()


def _next_process(monkeypatch) -> None:
    """A new controller process: nothing derived or loaded, the cache file kept on disk."""
    monkeypatch.setattr(secret_stamp, "_DERIVED", {})
    monkeypatch.setattr(secret_stamp, "_NO_RUN_SALTS", {})
    monkeypatch.setattr(secret_stamp, "_REMEMBERED", [])
    monkeypatch.setattr(secret_stamp, "_SAVING", [])


def test_the_next_run_starts_the_key_before_the_state_read_and_never_derives_it_twice(
        scrypts, monkeypatch):
    stamp = secret_stamp.new_stamp(CONTENT)
    salt = stamp.split()[1]
    secret_stamp._save(secret_stamp._SAVING[0], secret_stamp._remembered_salts())  # run's end
    _next_process(monkeypatch)
    scrypts.clear()

    secret_stamp.prefetch(CONTENT)  # the deploy, before the state read
    assert secret_stamp.derivations() == 1  # started (in the pool when gevent runs the process)
    assert secret_stamp.stamp_matches(stamp, CONTENT)  # the state read came back
    assert len(scrypts) == 1
    assert salt in stamp


def test_the_remembered_salts_are_private_and_hold_no_login_nor_password(scrypts, tmp_path):
    secret_stamp.new_stamp(CONTENT)
    path = secret_stamp._SAVING[0]
    secret_stamp._save(path, secret_stamp._remembered_salts())
    assert path.is_relative_to(tmp_path) and path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    text = path.read_text()
    assert "[10.77.0.1]:587" in text
    assert "postmaster" not in text and "lab-password" not in text


@pytest.mark.parametrize("tampered", ['{"[10.77.0.1]:587": "not-hex-at-all"}', '["x"]', "{", ""])
def test_a_tampered_or_broken_salt_file_costs_only_the_head_start(scrypts, monkeypatch, tampered):
    path = secret_stamp._salts_file()
    path.parent.mkdir(parents=True)
    path.write_text(tampered)
    stamp = secret_stamp.new_stamp(CONTENT)
    _next_process(monkeypatch)
    scrypts.clear()
    secret_stamp.prefetch(CONTENT)
    assert secret_stamp.derivations() == 0  # nothing usable remembered: nothing started
    assert secret_stamp.stamp_matches(stamp, CONTENT) and len(scrypts) == 1
