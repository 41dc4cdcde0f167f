"""Plain unit tests for the pure ufw helpers, fact error paths and the not-installed op path."""

import pytest
from pyinfra.api.exceptions import FactProcessError
from pyinfra.context import ctx_host, ctx_state
from pyinfra_testing.util import FakeState, create_host, get_command_string

from pyinfra_lockdown.facts.ufw import SshConnection, SshdConfig, UfwConfig
from pyinfra_lockdown.operations import ufw
from pyinfra_lockdown.ufw_rules import (
    lockout_reason,
    normalize_rule,
    parse_service,
    rule_arguments,
    ssh_allowed,
)


def rule(**fields):
    return normalize_rule({"proto": "tcp", "v6": False, **fields})


# ---------------------------------------------------------------- parse_service


def test_ssh_expands_to_sshd_ports_for_both_families():
    rules = parse_service("ssh", ssh_ports=[22, 2222])
    assert [(r["port"], r["v6"]) for r in rules] == [
        ("22", False), ("22", True), ("2222", False), ("2222", True),
    ]
    assert {r["comment"] for r in rules} == {"lockdown: ssh"}
    assert {r["proto"] for r in rules} == {"tcp"}


@pytest.mark.parametrize(
    ("item", "port", "proto", "comment"),
    [
        ("http/tcp", "80", "tcp", "lockdown: http/tcp"),
        ("443/tcp", "443", "tcp", "lockdown: 443/tcp"),
        ({"port": 443, "proto": "tcp"}, "443", "tcp", "lockdown: 443/tcp"),
        ("6000:6007/udp", "6000:6007", "udp", "lockdown: 6000:6007/udp"),
        (53, "53", "any", "lockdown: 53"),
        ("submission", "587", "tcp", "lockdown: submission"),
    ],
)
def test_service_items(item, port, proto, comment):
    v4, v6 = parse_service(item)
    assert (v4["port"], v4["proto"], v4["comment"], v4["v6"]) == (port, proto, comment, False)
    assert v6 == {**v4, "v6": True}


def test_source_cidr_gives_one_family_and_custom_comment():
    (only,) = parse_service(
        {"port": 22, "from": "198.51.100.0/24", "action": "limit", "comment": "office"},
    )
    assert only == rule(
        action="limit", proto="any", port="22", **{"from": "198.51.100.0/24"},
        comment="lockdown: office",
    )


def test_ipv6_off_expands_to_ipv4_only_and_rejects_ipv6_sources():
    assert [r["v6"] for r in parse_service("ssh", families=(4,))] == [False]
    with pytest.raises(ValueError, match="^from: "):
        parse_service({"port": 22, "from": "2001:db8::/32"}, families=(4,))


def test_custom_tag():
    assert parse_service("smtp", families=(4,), tag="mx")[0]["comment"] == "mx: smtp"


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ("telnetz", "port"),
        ("0/tcp", "port"),
        ("70000", "port"),
        ({"port": 70000}, "port"),
        ("22/sctp", "proto"),
        ({"port": 22, "from": "198.51.100.0/33"}, "from"),
        ({"port": 22, "from": "198.51.100.5/24"}, "from"),
        ({"port": 22, "from": "office"}, "from"),
        ({"port": 22, "action": "permit"}, "action"),
        ({"port": 22, "comment": "it's"}, "comment"),
        ({"port": 22, "colour": "red"}, "service"),
        ({"port": 22, "service": "ssh"}, "port"),
        ("6000:6007", "proto"),
        (None, "service"),
    ],
)
def test_bad_items_name_the_field(item, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        parse_service(item)


def test_ssh_without_ports_is_an_error():
    with pytest.raises(ValueError, match="^port: "):
        parse_service("ssh", ssh_ports=[])


def test_normalize_rule_needs_family_for_any_to_any():
    with pytest.raises(ValueError, match="^v6: "):
        normalize_rule({"port": 22})
    assert normalize_rule({"port": 22, "from": "2001:DB8::/32"})["from"] == "2001:db8::/32"
    assert normalize_rule({"port": 22, "from": "203.0.113.7/32"})["from"] == "203.0.113.7"


# ---------------------------------------------------------------- command arguments


def test_rule_arguments_pin_the_family_unless_both():
    v4, v6 = parse_service("ssh")
    assert rule_arguments(v4) == [
        "allow", "proto", "tcp", "from", "0.0.0.0/0", "to", "any", "port", "22",
        "comment", "lockdown: ssh",
    ]
    assert rule_arguments(v6, delete=True) == [
        "delete", "allow", "proto", "tcp", "from", "::/0", "to", "any", "port", "22",
    ]
    assert rule_arguments(v4, both_families=True)[3:5] == ["from", "any"]


# ---------------------------------------------------------------- lockout guard


def test_ssh_allowed_needs_every_port_for_that_family():
    declared = parse_service("ssh", ssh_ports=[22]) + parse_service("smtp")
    assert ssh_allowed(declared, [22], 4)
    assert ssh_allowed(declared, [22], 6)
    assert not ssh_allowed(declared, [22, 2222], 4)
    assert not ssh_allowed(parse_service("ssh", families=(6,)), [22], 4)


def test_limit_counts_and_ranges_and_any_proto_cover():
    assert ssh_allowed([rule(action="limit", port="22")], [22], 4)
    assert ssh_allowed([rule(port="2000:3000")], [2222], 4)
    assert ssh_allowed([rule(port="22,80")], [22], 4)
    assert ssh_allowed([rule(proto="any", port="22")], [22], 4)
    assert not ssh_allowed([rule(proto="udp", port="22")], [22], 4)
    assert not ssh_allowed([], [22], 4)


def test_first_matching_rule_decides():
    assert not ssh_allowed([rule(action="deny", port="22"), rule(port="22")], [22], 4)
    assert ssh_allowed([rule(port="22"), rule(action="deny", port="22")], [22], 4)


def test_source_restricted_ssh_only_counts_for_a_matching_client():
    office = parse_service({"port": 22, "proto": "tcp", "from": "198.51.100.0/24"})
    assert not ssh_allowed(office, [22], 4)
    assert ssh_allowed(office, [22], 4, client="198.51.100.7")
    assert not ssh_allowed(office, [22], 4, client="192.0.2.1")


def test_lockout_reason():
    ssh = parse_service("ssh", ssh_ports=[22])
    v4_session = {"client": "10.77.0.1", "client_port": 40000, "server": "10.77.0.11",
                  "server_port": 22, "family": 4}
    v6_session = {**v4_session, "client": "2001:db8::1", "server": "2001:db8::11", "family": 6}
    assert lockout_reason(ssh, [22], v4_session, ipv6=True) is None
    assert lockout_reason(ssh, [22], None, ipv6=True) is None
    v4_only = parse_service("ssh", families=(4,))
    assert "IPV6=no" in lockout_reason(v4_only, [22], v6_session, ipv6=False)
    assert "2222" in lockout_reason(ssh, [22], {**v4_session, "server_port": 2222}, ipv6=True)
    assert "IPv6" in lockout_reason(parse_service("ssh", families=(4,)), [22], None, ipv6=True)


def test_lockout_reason_follows_the_incoming_default():
    session = {"client": "10.77.0.1", "client_port": 40000, "server": "10.77.0.11",
               "server_port": 22, "family": 4}
    http = parse_service("http/tcp")
    assert "10.77.0.1" in lockout_reason(http, [22], session, ipv6=True)
    assert "10.77.0.1" in lockout_reason(http, [22], session, ipv6=True, default_incoming="reject")
    assert lockout_reason(http, [22], session, ipv6=True, default_incoming="allow") is None
    deny_ssh = parse_service({"service": "ssh", "action": "deny"})
    assert lockout_reason(deny_ssh, [22], session, ipv6=True, default_incoming="allow")


# ---------------------------------------------------------------- fact error paths


def test_ufw_config_unreadable_is_an_error():
    with pytest.raises(FactProcessError):
        UfwConfig().process(["ufw: cannot read /etc/ufw/user.rules (run as root)"])


def test_ufw_config_malformed_tuple_is_an_error():
    with pytest.raises(FactProcessError):
        UfwConfig().process(["/etc/ufw/user.rules:### tuple ### allow tcp 22"])


def test_sshd_failure_is_an_error():
    # real output of the fact command run as a non-root user (Debian 12)
    with pytest.raises(FactProcessError, match="no hostkeys"):
        SshdConfig().process(["sshd -T failed: sshd: no hostkeys available -- exiting."])


def test_ssh_connection_unmaps_ipv4_mapped_addresses():
    value = SshConnection().process(["SSH_CONNECTION=::ffff:10.77.0.1 40000 ::ffff:10.77.0.11 22"])
    assert value == {"client": "10.77.0.1", "client_port": 40000, "server": "10.77.0.11",
                     "server_port": 22, "family": 4}


# ---------------------------------------------------------------- ufw not installed (fact None)


def run_op_without_ufw(op, **kwargs):
    state = FakeState()
    host = create_host(state, facts={})
    host.get_fact = lambda *args, **kw: None
    with ctx_state.use(state), ctx_host.use(host):
        return [get_command_string(command) for command in op._inner(**kwargs)]


def test_ops_converge_blindly_when_ufw_is_not_installed_yet():
    assert run_op_without_ufw(ufw.enable) == ["ufw --force enable"]
    assert run_op_without_ufw(ufw.default_policy, direction="incoming", policy="deny") == [
        "ufw default deny incoming",
    ]
    assert run_op_without_ufw(ufw.logging, level="low") == ["ufw logging low"]
    assert run_op_without_ufw(ufw.rules, declared=parse_service("ssh")) == [
        "ufw allow proto tcp from any to any port 22 comment 'lockdown: ssh'",
    ]


def test_lockout_fix_fits_the_case():
    from pyinfra_lockdown.firewall import firewall_rules, lockout_fix
    from pyinfra_lockdown.settings import firewall_settings

    session = {"family": 4, "client": "10.77.0.1", "client_port": 40000,
               "server": "10.77.0.11", "server_port": 2222}
    no_ssh = firewall_settings({"firewall_allowed": ["http/tcp"]})
    fix = lockout_fix(no_ssh, firewall_rules(no_ssh, [2222]), [2222], session)
    assert "on port(s) 2222" in fix and "open 80 " in fix and 'Add "ssh"' in fix

    with_ssh = firewall_settings({"firewall_allowed": ["ssh"]})
    forwarded = {**session, "server_port": 2200}
    fix = lockout_fix(with_ssh, firewall_rules(with_ssh, [2222]), [2222], forwarded)
    assert 'Add "ssh"' not in fix and 'Add "2200/tcp"' in fix
