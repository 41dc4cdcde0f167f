"""Issue 22 items 2, 4 and 5 at unit level: the dead-man switch as one operation (arm, enable,
check, disarm) with no daemon-reload, the kernel's view of ufw deciding the enable, and the
minimum delay. The facts' parsing is covered by fixtures captured on lab boxes
(tests/unit/facts/ufw.*); the real behaviour by tests/lab/test_firewall_trust.py."""
import json
from pathlib import Path

import pytest
from pyinfra.api import FunctionCommand
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host, get_command_string

from pyinfra_lockdown.facts.ufw import UfwConfig
from pyinfra_lockdown.operations import ufw
from pyinfra_lockdown.settings import DEADMAN_MIN_SECONDS, SettingsError, firewall_settings

FACTS = Path(__file__).parent / "facts" / "ufw.UfwConfig"


def fixture_fact(name: str) -> dict:
    return json.loads((FACTS / f"{name}.json").read_text())["fact"]


def the_check(state, host, **kwargs):
    return True


def commands(op, **kwargs):
    state = FakeState()
    host = create_host(state, facts={})
    with ctx_state.use(state), ctx_host.use(host):
        return list(op._inner(**kwargs))


def shown(command) -> str:
    if isinstance(command, FunctionCommand):
        return f"call {command.function.__name__}({command.kwargs})"
    return get_command_string(command)


def test_the_switch_is_one_operation_arm_enable_check_disarm():
    config = fixture_fact("inactive_no_rules")
    result = commands(ufw.enable_under_deadman, seconds=30, check=the_check,
                      check_kwargs={"seconds": 30, "port": None}, current=config)
    assert [shown(c).split()[0:3] for c in result] == [
        ["sh", "-c", "'if"], ["call", "the_check({'seconds':", "30,"], ["sh", "-c", "'systemctl"]]
    arm, disarm = shown(result[0]), shown(result[2])
    # the enable is the arm's own remote command, after it: only once armed
    assert arm.endswith("' && ufw --force enable")
    assert "systemd-run" in arm and "--on-active=30s" in arm
    # no daemon-reload on the hot path: only when an older lockdown's unit files are there
    assert arm.count("daemon-reload") == 1 and "then systemctl disable --now" in arm
    assert "--no-reload" in arm and "DELAY=30s" in arm
    assert "daemon-reload" not in disarm
    assert "FIRED" in disarm and "ENABLED=yes" in disarm and "ufw-before-input" in disarm
    assert disarm.index("systemctl stop") < disarm.index("ufw-deadman-fired") < \
        disarm.rindex("rm -f")  # stop first, then judge, remove the marker last


def test_the_switch_reloads_into_the_kernel_when_only_the_kernel_lost_the_rules():
    config = fixture_fact("debian12_kernel_flushed")
    assert config["enabled"] and config["kernel_problems"]
    result = [shown(c) for c in commands(ufw.enable_under_deadman, seconds=30,
                                         check=the_check, current=config)]
    assert len(result) == 3 and "ufw reload" in result[0] and "iptables -D" not in result[0]
    assert result[0].index("systemd-run") < result[0].index("$t -D $rule")  # armed first


def test_nothing_to_guard_on_an_active_ufw_without_a_switch_left():
    config = fixture_fact("debian12_converged")
    assert commands(ufw.enable_under_deadman, seconds=30, check=the_check,
                    current=config) == []
    assert commands(ufw.enable, current=config) == []


@pytest.mark.parametrize("left", ["armed", "pending", "fired"])
def test_a_switch_left_behind_is_armed_again_and_checked(left):
    config = json.loads(json.dumps(fixture_fact("debian12_converged")))
    config["deadman"][left] = True
    result = [shown(c) for c in commands(ufw.enable_under_deadman, seconds=30,
                                         check=the_check, current=config)]
    assert len(result) == 3 and result[1].startswith("call the_check")  # no enable needed


def test_the_boot_unit_restarts_the_timer_only_while_the_marker_exists():
    text = ufw.DEADMAN_BOOT_UNIT_TEXT.replace("\\n", "\n")
    assert f"ConditionPathExists={ufw.DEADMAN_ARMED_FILE}" in text
    assert f"EnvironmentFile={ufw.DEADMAN_ARMED_FILE}" in text
    assert "--on-active=${DELAY}" in text and "WantedBy=multi-user.target" in text
    assert "'" not in text and "%" not in text  # written by printf '...'


def test_kernel_problems_name_each_family_and_cause():
    config = UfwConfig().process([
        "/etc/ufw/ufw.conf:ENABLED=yes", "/etc/default/ufw:IPV6=yes",
        '/etc/default/ufw:DEFAULT_INPUT_POLICY="DROP"',
        "ufw kernel: v4 policy=ACCEPT before-input=1 user-input=1 user-rules=2",
        "ufw kernel: v6 policy=none before-input=0 user-input=0 user-rules=2",
    ])
    assert config["kernel_problems"] == [
        "IPv4: 1 of the 2 user rules are loaded in the kernel",
        "IPv4: the kernel's INPUT policy is ACCEPT, ufw's default incoming is deny",
        "IPv6: ufw's chains are not loaded in the kernel (INPUT policy none, no jump to "
        "ufw's chains)",
    ]
    assert not ufw.ufw_active(config) and ufw.deadman_needed(config)


@pytest.mark.parametrize("seconds", [1, 5, DEADMAN_MIN_SECONDS - 1])
def test_a_delay_below_the_minimum_is_refused_naming_the_key_and_the_reason(seconds):
    with pytest.raises(SettingsError, match="firewall_deadman_seconds") as error:
        firewall_settings({"firewall_deadman_seconds": seconds})
    assert "too short" in str(error.value) and "check" in str(error.value)
    assert firewall_settings({"firewall_deadman_seconds": DEADMAN_MIN_SECONDS}).deadman_seconds \
        == DEADMAN_MIN_SECONDS


def test_sshd_ports_never_come_from_a_process_name():
    from pyinfra_lockdown.facts.ufw import SshdConfig

    command = SshdConfig().command()
    assert "ss -Htlnp" not in command and '"sshd"' not in command
    assert "/proc/[0-9]*/exe" in command and '$1 == "Uid:"' in command and "ino:" in command
    fake = json.loads((Path(__file__).parent / "facts" / "ufw.SshdConfig" /
                       "debian12_fake_sshd_as_nobody_on_18022.json").read_text())
    assert fake["fact"]["ports"] == [22] and fake["fact"]["sshd_listening"] == [22]


def test_a_kernel_without_ipv6_is_not_a_problem_but_an_unread_ipv4_is():
    settings = ["/etc/ufw/ufw.conf:ENABLED=yes", "/etc/default/ufw:IPV6=yes",
                '/etc/default/ufw:DEFAULT_INPUT_POLICY="DROP"']
    v4 = "ufw kernel: v4 policy=DROP before-input=1 user-input=1 user-rules=1"
    assert UfwConfig().process(settings + [v4])["kernel_problems"] == []
    assert UfwConfig().process(settings)["kernel_problems"] == [
        "IPv4: the kernel's rules could not be read"]
