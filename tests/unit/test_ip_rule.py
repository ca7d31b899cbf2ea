"""Parsing, validation and planning of plugins/modules/ip_rule.py, fed with real `ip -j rule show`
output captured on Linux 6.18 / iproute2 6.1 (tests/unit/fixtures/rule_show_*): plain source rules
of a multi-homed host next to rules with other selectors and actions that must never be touched."""
import os

import pytest

from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import MptcpError
from ansible_collections.multipath.mptcp.plugins.modules import ip_rule as r

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def rule(priority, src=None, table="102", dst=None, family="ipv4"):
    return {"priority": priority, "family": family, "src": src, "dst": dst, "table": table, "plain": True, "other": {}}


MIXED = r.parse_rules(fixture("rule_show_mixed.json"), 4)
V6 = r.parse_rules(fixture("rule_show_v6.json"), 6)


# --- parsing ---------------------------------------------------------------------------------
def test_parse_plain_rules_hosts_prefixes_and_kernel_rules():
    by_prio = {}
    for x in MIXED:
        by_prio.setdefault(x["priority"], []).append(x)
    assert by_prio[0] == [rule(0, None, "local")]
    assert by_prio[999] == [rule(999, "10.124.5.5/32", "3000")]
    assert by_prio[1000] == [rule(1000, "10.124.2.2/32", "102"), rule(1000, "10.124.1.0/24", "101")]
    assert by_prio[32766] == [rule(32766, None, "main")] and by_prio[32767] == [rule(32767, None, "default")]
    assert [x["priority"] for x in MIXED] == [0, 999, 1000, 1000, 1100, 1200, 1300, 1400, 1500, 32766, 32767]


def test_parse_rules_with_other_selectors_or_actions_are_not_plain():
    odd = {x["priority"]: x for x in MIXED if not x["plain"]}
    assert sorted(odd) == [1100, 1200, 1300, 1500]
    assert odd[1100]["other"] == {"not": None, "fwmark": "0x10", "fwmask": "0xff"} and odd[1100]["src"] == "10.1.0.0/16"
    assert odd[1200]["table"] is None and odd[1200]["dst"] == "192.0.2.0/24" and odd[1200]["other"]["action"] == "unreachable"
    assert odd[1300]["other"] == {"ipproto": "tcp", "dport": 80}
    assert odd[1500]["other"] == {"oif": "lo"}


def test_rule_text_is_what_ip_rule_show_prints_for_plain_rules_and_the_kernel_ones():
    lines = fixture("rule_show_mixed.txt").splitlines(True)
    plain = [x for x in MIXED if x["plain"]]
    expected = [line for line in lines if not any(w in line for w in ("not", "unreachable", "ipproto", "oif"))]
    assert r.rules_text(plain) == "".join(expected)
    assert r.rule_text(next(x for x in MIXED if x["priority"] == 1100)) == "1100:\tnot from 10.1.0.0/16 fwmark 0x10 fwmask 0xff lookup 200\n"


def test_parse_ipv6_rules_and_empty_output():
    assert V6[1] == rule(1000, "2001:db8:2::2/128", "102", family="ipv6")
    assert V6[2] == rule(1001, "2001:db8:3::/64", "103", dst="2001:db8:9::/48", family="ipv6")
    assert r.rule_text(V6[2]) == "1001:\tfrom 2001:db8:3::/64 to 2001:db8:9::/48 lookup 103\n"
    assert r.parse_rules("", 4) == [] and r.parse_rules("[]", 6) == []


def test_parse_garbage_fails_clearly():
    with pytest.raises(MptcpError, match="cannot parse `ip -j rule show`"):
        r.parse_rules("from all lookup main", 4)


# --- validation ------------------------------------------------------------------------------
def test_validate_normalises_addresses_tables_and_family():
    assert r.validate_rule("10.124.2.2", table="102", priority=1000) == rule(1000, "10.124.2.2/32", "102")
    assert r.validate_rule("2001:DB8:2::2", table="0102") == rule(None, "2001:db8:2::2/128", "102", family="ipv6")
    assert r.validate_rule(None, "10.8.0.0/16", table="254")["table"] == "main"
    assert r.validate_rule("all", table="main", family="ipv6")["family"] == "ipv6"
    assert r.validate_rule(src="10.124.2.2", state="absent")["table"] is None


@pytest.mark.parametrize("kwargs, words", [
    (dict(src="10.124.2.300", table="102"), ["src '10.124.2.300' is not an IPv4/IPv6 address"]),
    (dict(src="10.124.2.2/24", table="102"), ["src '10.124.2.2/24' has host bits set", "10.124.2.0/24"]),
    (dict(src="10.124.2.2", dst="2001:db8::/32", table="102"), ["different address families"]),
    (dict(src="10.124.2.2", table="102", family="ipv6"), ["family ipv6 does not match the IPv4"]),
    (dict(src="10.124.2.2", table="102", priority=-1), ["priority -1 is outside 0-4294967295"]),
    (dict(src="10.124.2.2", table="102", priority=2 ** 32), ["priority 4294967296 is outside"]),
    (dict(src="10.124.2.2", table="0"), ["table '0' is table 0 (unspec), which the kernel takes as main"]),
    (dict(src="10.124.2.2", table="nosuchtable"), ["table 'nosuchtable' is not a number 1-4294967295, main"]),
    (dict(src="fe80::1%eth0", table="102"), ["src 'fe80::1%eth0' has a scope id"]),
    (dict(src="10.124.2.2", table="my table"), ["table 'my table'"]),
    (dict(src="10.124.2.2"), ["state=present needs table"]),
    (dict(src="nope", dst="nada", priority=-5), ["src 'nope'", "dst 'nada'", "priority -5", "needs table"]),
])
def test_validate_names_every_bad_value(kwargs, words):
    with pytest.raises(MptcpError) as e:
        r.validate_rule(**kwargs)
    for word in words:
        assert word in e.value.msg


# --- planning --------------------------------------------------------------------------------
def test_present_rule_that_exists_is_left_alone():
    want = r.validate_rule("10.124.2.2", table="102", priority=1000)
    assert r.plan_rule(MIXED, want, "present") == []
    # without a priority, the rule at any priority will do
    assert r.plan_rule(MIXED, r.validate_rule("10.124.1.0/24", table="101"), "present") == []


def test_present_rule_is_added_and_the_command_built():
    want = r.validate_rule("10.124.3.3", table="103", priority=1000)
    actions = r.plan_rule(MIXED, want, "present")
    assert actions == [("add", want)]
    assert r.rule_command(want, "add") == ["-4", "rule", "add", "from", "10.124.3.3/32", "table", "103", "priority", "1000"]
    after = r.apply_plan(MIXED, actions)
    assert len(after) == len(MIXED) + 1 and rule(1000, "10.124.3.3/32", "103") in after


def test_rule_at_another_priority_is_moved_and_the_other_selectors_never_count():
    # 10.124.5.5 -> 3000 exists at 999; wanted at 1000
    want = r.validate_rule("10.124.5.5", table="3000", priority=1000)
    actions = r.plan_rule(MIXED, want, "present")
    assert actions == [("delete", rule(999, "10.124.5.5/32", "3000")), ("add", want)]
    assert r.rule_command(actions[0][1], "del") == ["-4", "rule", "del", "priority", "999", "from", "10.124.5.5/32", "table", "3000"]
    # the ipproto/dport rule from 10.124.2.2 to main is not "from 10.124.2.2 lookup main"
    want = r.validate_rule("10.124.2.2", table="main", priority=1300)
    assert r.plan_rule(MIXED, want, "present") == [("add", want)]


def test_absent_removes_every_plain_match_and_nothing_else():
    want = r.validate_rule("10.124.2.2", state="absent")
    actions = r.plan_rule(MIXED, want, "absent")
    assert [a[1]["priority"] for a in actions] == [1000, 1400]  # not 1300 (ipproto tcp dport 80)
    want = r.validate_rule("10.124.2.2", table="102", priority=1400, state="absent")
    assert [a[1]["priority"] for a in r.plan_rule(MIXED, want, "absent")] == [1400]
    assert r.plan_rule(MIXED, r.validate_rule("10.9.9.9", state="absent"), "absent") == []
    after = r.apply_plan(MIXED, r.plan_rule(MIXED, r.validate_rule("10.124.2.2", state="absent"), "absent"))
    assert [x["priority"] for x in after] == [0, 999, 1000, 1100, 1200, 1300, 1500, 32766, 32767]


def test_check_mode_prediction_of_a_rule_without_priority():
    want = r.validate_rule(None, "10.8.0.0/16", table="200")
    after = r.apply_plan(MIXED, r.plan_rule(MIXED, want, "present"))
    assert rule(998, None, "200", dst="10.8.0.0/16") in after  # one below the lowest non-zero priority
    assert r.rule_command(want, "add") == ["-4", "rule", "add", "to", "10.8.0.0/16", "table", "200"]


def test_ipv6_commands():
    want = r.validate_rule("2001:db8:2::2", table="102", priority=1000, state="absent")
    (action,) = r.plan_rule(V6, want, "absent")
    assert r.rule_command(action[1], "del") == ["-6", "rule", "del", "priority", "1000", "from", "2001:db8:2::2/128", "table", "102"]
