"""Shared pytest fixtures. The lab fixtures boot real Debian boxes (root needed; see lab/).

The test session uses its own lab (namespace `ldtest`, state dir /var/lib/lockdown-lab-pytest)
so it never tears down a lab someone started by hand with `python -m lab up`. Override
with LOCKDOWN_LAB_TEST_DIR / LOCKDOWN_LAB_TEST_NETNS; the image cache is shared.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests import machine_share

TEST_STATE_DIR = "/var/lib/lockdown-lab-pytest"
TEST_NETNS = "ldtest"


# With pytest-xdist every worker runs its own lab: the worker's id (gw0, gw1, ...) is appended
# to the namespace and the state dir, so `ldtest` becomes `ldtestgw0`, `ldtestgw1`... (no "-":
# a lab's teardown removes the namespaces named "<its netns>-*", which must never be another
# worker's). The namespace name ends up in interface names (the Vagrant tier's bridge
# `vbr-<netns>`), limited to 15 characters: hence the limit below.
MAX_NETNS_CHARS = 11


def lab_test_config(env=None):
    from lab.config import LabConfig

    env = os.environ if env is None else env
    default = LabConfig.from_env(env)
    worker = env.get("PYTEST_XDIST_WORKER", "")
    netns = env.get("LOCKDOWN_LAB_TEST_NETNS", TEST_NETNS) + worker
    if len(netns) > MAX_NETNS_CHARS:
        raise ValueError(f"lab namespace name {netns!r} is over {MAX_NETNS_CHARS} characters "
                         "(interface names derived from it must fit in 15): shorten "
                         "LOCKDOWN_LAB_TEST_NETNS")
    state_dir = env.get("LOCKDOWN_LAB_TEST_DIR", TEST_STATE_DIR)
    return LabConfig(
        state_dir=Path(f"{state_dir}-{worker}" if worker else state_dir),
        cache_dir=default.cache_dir,
        netns=netns,
    )


@pytest.fixture(scope="session")
def lab():
    """Network, image and Mailgun stand-in, up once per session; always torn down at the end."""
    from lab.api import Lab

    problems = Lab.missing_requirements()
    if problems:
        pytest.skip("lab not available: " + "; ".join(problems))
    instance = Lab(lab_test_config())
    instance.down()  # leftovers of a crashed earlier session
    try:
        instance.ensure_network()
        for suite in SUITES:
            instance.ensure_image(suite)
        instance.standin_start()
        yield instance
    finally:
        instance.down()


# Every test that takes a `box` runs once per Debian release the lab builds (ids
# box[bookworm], box[trixie]); a test can pin one with
# @pytest.mark.parametrize("box", ["trixie"], indirect=True).
SUITES = ("bookworm", "trixie")


@pytest.fixture(params=SUITES)
def box(lab, request):
    """A fresh booted box of each suite for one test, removed afterwards."""
    fresh = lab.add_box(suite=request.param)
    try:
        yield fresh
    finally:
        lab.remove_box(fresh)


@pytest.fixture
def two_boxes(lab):
    """A mixed pair: one Debian 12 and one Debian 13 box, converged and audited together."""
    boxes = lab.up(2, suites=list(SUITES))
    try:
        yield boxes
    finally:
        for fresh in boxes:
            lab.remove_box(fresh)


@pytest.fixture
def standin(lab):
    """The stand-in with default credentials, normal mode and empty logs (restored after)."""
    from lab.standin_server import DEFAULT_CONTROL

    if not lab.standin_running():
        lab.standin_start()
    lab.standin.set(**DEFAULT_CONTROL)
    lab.standin.clear()
    yield lab.standin
    lab.standin.set(**DEFAULT_CONTROL)
    if not lab.standin_running():
        lab.standin_start()


# --- time limits per tier (issue 9 item 2) ----------------------------------------------------
# pyproject's `timeout` (pytest-timeout) is the unit tier's limit. A lab or Vagrant test's limit
# also covers the session/module fixtures its setup may run first (image build, box build,
# package install, VM boot under TCG), so it sits above those fixtures' own deadlines.
# A test's own @pytest.mark.timeout(N) wins.
TIER_TIMEOUTS = {"lab": 900, "vagrant": 2700}
# The tiers that need no lab and run at unit speed: tests/unit (the product) and tests/harness
# (the lab's, the bench's and this test machinery's own logic). Neither is grouped nor waits
# for the machine; they are handed out right after the whole-machine group (see below).
UNIT_SPEED_TIERS = ("unit", "harness")


def _tier(nodeid: str) -> str:
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"


@pytest.hookimpl(trylast=True)  # after pytest orders by fixture parameters: a stable sort keeps that
def pytest_collection_modifyitems(config, items):
    for item in items:
        limit = TIER_TIMEOUTS.get(_tier(item.nodeid))
        if limit and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))
    if hasattr(config, "workerinput"):  # the same order on every worker (xdist checks it)
        groups = {item.nodeid: group for item in items if (group := _xdist_group(item))}
        sizes = Counter(groups.values())
        # by phase, and in a phase the larger groups first (a module's shared box: long), so
        # no worker is left with one at the end while the others idle
        items.sort(key=lambda item: (_schedule_rank(item),
                                     -sizes.get(groups.get(item.nodeid, ""), 1)))
        machine_share.alone_tests_first(machine_share.MARKER in sizes)
        run_dir = machine_share.lock_dir()
        if run_dir is not None:
            from tests import xdist_groups

            xdist_groups.write(run_dir, groups)


@pytest.hookimpl(optionalhook=True)  # `-p no:xdist` runs without the plugin that declares it
def pytest_xdist_make_scheduler(config, log):
    """--dist loadgroup: the groups of tests/xdist_groups.py (xdist's own miss them on pytest 9)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests import xdist_groups

    config.option.loadscopereorder = False  # keep the collection order: longest groups first
    return xdist_groups.GroupScheduling(config, log, run_dir=machine_share.lock_dir())


# --- the lab tier in parallel (issue 23) ------------------------------------------------------
# `make test` runs pytest-xdist with `--dist loadgroup`: every worker has its own lab (see
# lab_test_config), tests are handed out one by one, except that the tests of one group run on
# one worker, in order (tests/xdist_groups.py; an `xdist_group` mark names a group too):
# - a module whose tests share a module-scoped fixture (one converged box per release, the VM)
#   is one group, so that fixture is set up once, not once per worker;
# - the `whole_machine` tests are one group, and each runs alone (tests/machine_share.py);
# - the `quiet_machine` tests (timing-sensitive, mostly waiting) are handed out one by one, so
#   that several run at once, beside each other only.
# Handed out in phases: the whole-machine group first (at the start nothing is in flight, so it
# waits for no test), then the unit and harness tiers (they take no part in the machine's
# sharing: the other workers run them while the first whole-machine test sets up its boxes,
# instead of idling at the gate and running them at the end), then the quiet tests (they start
# together once the whole-machine group is done), then the Vagrant VM (long: started early, no
# long tail at the end), then the other lab tests; in a phase the larger groups first.
def _xdist_group(item) -> str | None:
    marked = item.get_closest_marker("xdist_group")
    if marked is not None:
        return str(marked.args[0] if marked.args else marked.kwargs.get("name", "default"))
    if item.get_closest_marker(machine_share.MARKER) is not None:
        return machine_share.MARKER
    if _tier(item.nodeid) not in UNIT_SPEED_TIERS and _uses_module_fixture(item):  # lab, vagrant, package
        return item.nodeid.split("::", 1)[0]
    return None


def _uses_module_fixture(item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs[-1].scope == "module" for name, defs in info.name2fixturedefs.items()
               if defs and name in info.names_closure)


UNIT_SPEED = "unit-speed"
SCHEDULE_PHASES = (machine_share.ALONE, UNIT_SPEED, machine_share.QUIET, "vagrant", "lab")


def _schedule_rank(item) -> int:
    """The phase a test is handed out in (see above); package tests come last."""
    tier = _tier(item.nodeid)
    if tier in ("lab", "vagrant"):
        mode = machine_share.mode_of(item)
        return SCHEDULE_PHASES.index(tier if mode == machine_share.SHARED else mode)
    if tier in UNIT_SPEED_TIERS:
        return SCHEDULE_PHASES.index(UNIT_SPEED)
    return len(SCHEDULE_PHASES)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outside pytest-timeout: the wait is not the test's
def pytest_runtest_protocol(item, nextitem):
    _keep_the_gevent_hub_awake(item.config)
    following = (nextitem, _tier(nextitem.nodeid)) if nextitem is not None else (None, "")
    with machine_share.holding(item, _tier(item.nodeid), *following):
        yield


def pytest_collection_finish(session):
    _keep_the_gevent_hub_awake(session.config)


def _keep_the_gevent_hub_awake(config) -> None:
    """An xdist worker waits for its next test on a threading.Event that execnet's reader
    thread sets. Once pyinfra_cli's import has gevent-patched `threading` (collection does it),
    that wait is a gevent lock, released from another OS thread: gevent wakes it, but only
    while its hub has something else to wait for; with nothing, it raises LoopExit ("This
    operation would block forever") and the worker dies. A greenlet that sleeps forever is
    that something."""
    if not hasattr(config, "workerinput") or getattr(config, "_lockdown_hub_kept", False):
        return
    from gevent import monkey

    if not monkey.is_module_patched("threading"):
        return
    import gevent

    def sleep_forever():
        while True:
            gevent.sleep(60)

    config._lockdown_hub_kept = gevent.spawn(sleep_forever)


# --- what each tier ran, and how long (issue 9 item 4) -----------------------------------------
# Shown at the end of every run. On a machine where the lab can run (root, tools present:
# Lab.missing_requirements() is empty), a skipped lab or Vagrant test is a failure of the run
# (exit status 1, and the closing line says "unexpected skips"), so a tier that did not run can
# not look green. LOCKDOWN_ALLOW_SKIP=1 allows it (e.g. a laptop without root).
# package: the release built and checked, no lab
_TIERS = ("unit", "harness", "package", "lab", "vagrant")
_started: dict[str, float] = {}
_busy: dict[str, float] = {}  # the tier's tests' times added up
_span: dict[str, list[float]] = {}  # the tier's first start and last finish: its wall time
_outcomes: dict[str, dict[str, int]] = {}


def pytest_runtest_logstart(nodeid, location):
    import time

    from tests import tool_guard

    tool_guard.set_tier(_tier(nodeid))
    now = time.monotonic()
    _started[nodeid] = now
    _span.setdefault(_tier(nodeid), [now, now])


# --- host tools come from packages the project installs (issue 21) ----------------------------
# Harness tests run pytest on tiny trees with these hooks (test_tier_summary, test_xdist_groups,
# test_pytest_timeout); such a nested run inherits this variable and leaves the outer run's
# security ledger alone (it used to empty it, dropping the lab tier's attacks recorded before).
_RUN_ACTIVE_ENV = "LOCKDOWN_TEST_RUN_ACTIVE"

def pytest_configure(config):
    import tempfile

    from tests import tool_guard

    if not hasattr(config, "workerinput"):  # the controller; pytest-xdist workers inherit its env
        handle, path = tempfile.mkstemp(prefix="lockdown-tools-", suffix=".log")
        os.close(handle)
        config._lockdown_tools_log = Path(path)
        os.environ[tool_guard.LOG_ENV] = path
        from tests import security_ledger
        from tests.lab import fault_ledger

        if os.environ.get(_RUN_ACTIVE_ENV) != "1":  # not a pytest run started by a test
            security_ledger.start_run()
        os.environ[_RUN_ACTIVE_ENV] = "1"
        fault_ledger.start_run()  # a run id only: the ledger is emptied by the run's first fault
        config._lockdown_machine_lock_dir = machine_share.make_lock_dir()
    tool_guard.install(Path(os.environ[tool_guard.LOG_ENV]))


def _tool_problems(config) -> list[str]:
    from tests import tool_guard

    log = getattr(config, "_lockdown_tools_log", None)
    if log is None:
        return []
    try:
        return tool_guard.problems(log)
    finally:
        log.unlink(missing_ok=True)


def pytest_runtest_logfinish(nodeid, location):
    import time

    tier = _tier(nodeid)
    now = time.monotonic()
    _busy[tier] = _busy.get(tier, 0.0) + now - _started.pop(nodeid, now)
    _span.setdefault(tier, [now, now])[1] = now


def _tier_time(tier: str) -> str:
    """The tier's wall time; with tests running side by side, also their times added up."""
    first, last = _span.get(tier, (0.0, 0.0))
    wall, busy = last - first, _busy.get(tier, 0.0)
    if busy > wall * 1.05 + 1:
        return f"{wall:.0f}s wall ({busy:.0f}s of tests side by side)"
    return f"{busy:.0f}s"


def pytest_runtest_logreport(report):
    # One outcome per test: a failed/skipped setup, else the call, plus a failed teardown.
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed") \
            or (report.when == "teardown" and report.outcome == "failed"):
        counts = _outcomes.setdefault(_tier(report.nodeid), {})
        outcome = "error" if report.when != "call" and report.outcome == "failed" else report.outcome
        counts[outcome] = counts.get(outcome, 0) + 1


def _skips_allowed() -> tuple[bool, str]:
    if os.environ.get("LOCKDOWN_ALLOW_SKIP") == "1":
        return True, "LOCKDOWN_ALLOW_SKIP=1"
    from lab.api import Lab

    problems = Lab.missing_requirements()
    if problems:
        return True, "this machine cannot run the lab: " + "; ".join(problems)
    return False, ""


def pytest_sessionfinish(session, exitstatus):
    skipped = {t: c.get("skipped", 0) for t, c in _outcomes.items() if t in ("lab", "vagrant")}
    allowed, why = _skips_allowed() if any(skipped.values()) else (True, "")
    session.config._lockdown_unexpected_skips = {} if allowed else {t: n for t, n in skipped.items() if n}
    session.config._lockdown_skip_note = why
    session.config._lockdown_tool_problems = _tool_problems(session.config)
    lock_dir = getattr(session.config, "_lockdown_machine_lock_dir", None)
    if lock_dir is not None:
        import shutil

        shutil.rmtree(lock_dir, ignore_errors=True)
    if (session.config._lockdown_unexpected_skips or session.config._lockdown_tool_problems) \
            and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _outcomes:
        return
    terminalreporter.section("tiers")
    for tier in [t for t in _TIERS if t in _outcomes] + [t for t in _outcomes if t not in _TIERS]:
        counts = _outcomes[tier]
        shown = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped", "xfailed",
                                                         "xpassed") if counts.get(k))
        terminalreporter.write_line(f"{tier:8} {shown or 'nothing ran'} in {_tier_time(tier)}")
    for tier in _TIERS:
        if tier not in _outcomes:
            terminalreporter.write_line(f"{tier:8} not selected")
    from tests.lab import fault_ledger

    from tests import security_ledger

    attacks = security_ledger.load()
    if attacks:
        terminalreporter.section("security")
        terminalreporter.write_line(security_ledger.summary_line(attacks))
    if fault_ledger.written_this_run():
        terminalreporter.section("faults")
        for line in fault_ledger.summary_lines(fault_ledger.load()):
            terminalreporter.write_line(line)
    tool_problems = getattr(config, "_lockdown_tool_problems", [])
    if tool_problems:
        terminalreporter.section("host tools the project does not install")
        for line in tool_problems:
            terminalreporter.write_line("FAILED: " + line, red=True)
        terminalreporter.stats.setdefault("host tools not installed by the project", []).extend(
            [None] * len(tool_problems))
    unexpected = getattr(config, "_lockdown_unexpected_skips", {})
    if unexpected:
        terminalreporter.write_line(
            "FAILED: tests skipped in " + ", ".join(f"{t} ({n})" for t, n in unexpected.items())
            + " on a machine that can run them (root, tools present); see SKIPPED below for why."
            " LOCKDOWN_ALLOW_SKIP=1 allows skips", red=True, bold=True)
        # counted in pytest's closing line, which CI reads: "... N unexpected skips in ..."
        terminalreporter.stats.setdefault("unexpected skips", []).extend(
            [None] * sum(unexpected.values()))
    elif getattr(config, "_lockdown_skip_note", ""):
        terminalreporter.write_line("skips allowed: " + config._lockdown_skip_note)

