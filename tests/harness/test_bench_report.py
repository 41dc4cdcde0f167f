"""bench/report.py judges issue 15's targets from a run's medians, and lab/limits.py raises
(never lowers) the kernel limits many boxes need."""
from bench import report
from lab import limits

KINDS = ("floor", "first", "noop", "dry", "audit-facts", "audit", "ansible-first", "ansible-noop")


def _block(n, **medians):
    base = {"floor": 1.0, "first": 2.0, "noop": 1.1, "dry": 1.0, "audit-facts": 1.1, "audit": 1.3,
            "ansible-first": 12.0, "ansible-noop": 4.0}
    resources = {k: {"peak_rss_mib": 60.0, "cpu_s_per_host": 0.5 / n, "box_cpu_s_per_host": 0.3}
                 for k in KINDS}
    return {"n": n, "medians": {**base, **medians}, "lockdown_resources": resources,
            "checks": {"hosts": n, "converged": n, "canaries_arrived": n, "mail_relayed": n,
                       "audit_passed": n, "ssh_errors": 0},
            "remote_commands_per_host": {"noop": 1, "audit-facts": 1, "audit": 1},
            "load": {"load_mean": 1.0, "load_max": 2.0}, "block_seconds": 60, "profiles": {}}


def test_targets_met_and_missed_with_the_margin():
    judged = {t["target"]: t for t in report.targets([_block(1), _block(50, noop=2.5, first=6.0)])}
    assert judged["no-op run ≤ 1.15x the floor, 1 box"]["met"]
    assert judged["first converge ≥ 5x faster than the tuned playbook, 1 box"]["met"]
    missed = judged["no-op run at 50 boxes ≤ 2x its 1-box time"]
    assert not missed["met"] and missed["measured"] == "2.27x" and "over by 0.27x" in missed["by"]
    assert judged["first converge of 50 fresh boxes ≤ 3x the 1-box time"]["met"]


def test_kinds_to_profile_are_those_whose_target_is_missed():
    small = _block(1, first=3.0, audit=1.6)["medians"]
    assert report.kinds_to_profile(1, small, {}) == ["audit", "first"]
    assert report.kinds_to_profile(50, _block(50, noop=3.0)["medians"], _block(1)["medians"]) == ["noop"]


def test_section_has_every_size_and_the_rerun_command():
    run = {"date": "2026-12-01 13:00 UTC", "command": "python -m bench --boxes 1,50", "suite": "bookworm",
           "machine": {"cpus": 2, "mem_gib": 23.6, "os": "Debian", "kernel": "6", "python": "3.11"},
           "versions": {"pyinfra": "3.10.0", "ansible": "ansible [core 2.17]", "postfix": "3.7.11",
                        "ufw": "ufw 0.36.2"},
           "blocks": [_block(1), _block(50)]}
    run["targets"] = report.targets(run["blocks"])
    text = report.section(run)
    assert "| 1 | 1.00 s |" in text and "| 50 | 1.00 s |" in text
    assert "`python -m bench --boxes 1,50`" in text and "**met**" in text


def test_limits_are_raised_never_lowered(tmp_path):
    (tmp_path / "fs" / "inotify").mkdir(parents=True)
    low, high = tmp_path / "fs/inotify/max_user_instances", tmp_path / "fs/inotify/max_user_watches"
    low.write_text("128\n")
    high.write_text("99999999\n")
    limits.raise_for_many_boxes(tmp_path)
    assert int(low.read_text()) == limits.MINIMUMS["fs/inotify/max_user_instances"]
    assert high.read_text() == "99999999\n"
