"""Shared pytest fixtures. The lab fixtures boot real Debian boxes (root needed; see lab/).

The test session uses its own lab (namespace `ldtest`, state dir /var/lib/lockdown-lab-pytest)
so it never tears down a lab someone started by hand with `python -m lab up`. Override
with LOCKDOWN_LAB_TEST_DIR / LOCKDOWN_LAB_TEST_NETNS; the image cache is shared.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_STATE_DIR = "/var/lib/lockdown-lab-pytest"
TEST_NETNS = "ldtest"


def lab_test_config():
    from lab.config import LabConfig

    default = LabConfig.from_env()
    return LabConfig(
        state_dir=Path(os.environ.get("LOCKDOWN_LAB_TEST_DIR", TEST_STATE_DIR)),
        cache_dir=default.cache_dir,
        netns=os.environ.get("LOCKDOWN_LAB_TEST_NETNS", TEST_NETNS),
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


def _tier(nodeid: str) -> str:
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"


def pytest_collection_modifyitems(config, items):
    for item in items:
        limit = TIER_TIMEOUTS.get(_tier(item.nodeid))
        if limit and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))


# --- what each tier ran, and how long (issue 9 item 4) -----------------------------------------
# Shown at the end of every run. On a machine where the lab can run (root, tools present:
# Lab.missing_requirements() is empty), a skipped lab or Vagrant test is a failure of the run
# (exit status 1, and the closing line says "unexpected skips"), so a tier that did not run can
# not look green. LOCKDOWN_ALLOW_SKIP=1 allows it (e.g. a laptop without root).
_TIERS = ("unit", "package", "lab", "vagrant")  # package: the release built and checked, no lab
_started: dict[str, float] = {}
_wall: dict[str, float] = {}
_outcomes: dict[str, dict[str, int]] = {}


def pytest_runtest_logstart(nodeid, location):
    import time

    from tests import tool_guard

    tool_guard.set_tier(_tier(nodeid))
    _started[nodeid] = time.monotonic()


# --- host tools come from packages the project installs (issue 21) ----------------------------
def pytest_configure(config):
    import tempfile

    from tests import tool_guard

    if not hasattr(config, "workerinput"):  # the controller; pytest-xdist workers inherit the log
        handle, path = tempfile.mkstemp(prefix="lockdown-tools-", suffix=".log")
        os.close(handle)
        config._lockdown_tools_log = Path(path)
        os.environ[tool_guard.LOG_ENV] = path
        from tests import security_ledger

        security_ledger.start_run()
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
    _wall[tier] = _wall.get(tier, 0.0) + time.monotonic() - _started.pop(nodeid, time.monotonic())


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
        terminalreporter.write_line(f"{tier:8} {shown or 'nothing ran'} in {_wall.get(tier, 0.0):.0f}s")
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
