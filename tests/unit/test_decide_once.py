"""A deploy asks each operation once (issue 24 item 2): mail.configure needs to know whether
ANY step is needed before it calls the first (the reload it owes is noted first), and keeps
those answers instead of running each step's generator a second time."""
import collections
import json
from pathlib import Path

from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host

from pyinfra_lockdown import mail, plan
from pyinfra_lockdown.settings import relay_settings

STATE = json.loads((Path(__file__).parent / "facts" / "audit.converged_state.json").read_text())
DATA = {"relay_host": "10.77.0.1", "relay_tls_level": "encrypt",
        "mail_root_forward": "admin@lab.test", "apt_update": False}
ENVIRON = {"LOCKDOWN_RELAY_LOGIN": "postmaster@lab.test", "LOCKDOWN_RELAY_PASSWORD": "lab-password"}


def test_each_step_generator_runs_once(monkeypatch):
    found = {**STATE, "dpkg": None, "logwatch": None, "mail_log_files": None,
             "tls_policy_map": None, "canary_routes_map": None}
    runs: collections.Counter = collections.Counter()
    real = plan.operation_generator

    def counted(op):
        generator = real(op)

        def run(**kwargs):
            runs[(op.__name__, kwargs.get("path"), kwargs.get("service"))] += 1
            return generator(**kwargs)
        return run

    monkeypatch.setattr(plan, "operation_generator", counted)
    monkeypatch.setattr(mail, "log_file_step", lambda *a, **k: None)
    monkeypatch.setattr(mail, "logwatch_step", lambda *a, **k: None)
    monkeypatch.setattr(mail, "rotation_step", lambda *a, **k: None)
    state = FakeState()
    host = create_host(state, facts={}, name="box")
    with ctx_state.use(state), ctx_host.use(host):
        mail.configure(relay_settings(DATA, ENVIRON), found)
    assert runs, "no step was asked"
    assert {key: n for key, n in runs.items() if n > 1} == {}
