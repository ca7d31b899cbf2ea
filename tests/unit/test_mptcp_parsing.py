"""Parsing, validation and planning of plugins/module_utils/mptcp.py, fed with real `ip` output
captured on Linux 6.18 / iproute2 6.1 (tests/unit/fixtures)."""
import os

import pytest

from ansible_collections.multipath.mptcp.plugins.module_utils import mptcp as m

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


# --- endpoints -------------------------------------------------------------------------------
def test_parse_endpoints_every_flag_kind():
    eps = m.parse_endpoints(fixture("endpoint_show_mixed.json"))
    assert [m.endpoint_line(e) for e in eps] == [
        "10.9.0.1 port 8080 id 3 signal dev d0",
        "10.9.0.2 id 4 subflow fullmesh dev d0",
        "10.9.0.3 id 5 subflow backup dev d0",
        "2001:db8::1 id 6 signal backup dev d0",
        "10.9.0.5 id 7",
    ]
    # the same table as iproute2 prints it in text form
    assert m.endpoints_text(eps) == "".join(
        line.rstrip() + "\n" for line in fixture("endpoint_show_mixed.txt").splitlines())
    assert eps[0]["port"] == 8080 and eps[1]["port"] is None
    assert not any(e["implicit"] for e in eps)


def test_parse_endpoints_implicit_from_rawflags():
    (ep,) = m.parse_endpoints(fixture("endpoint_show_implicit.json"))
    assert ep == {"address": "192.168.0.2", "id": 1, "port": None, "dev": None, "flags": [], "implicit": True}


def test_parse_endpoints_newer_iproute2_names_implicit_and_empty_output():
    text = '[{"address":"10.0.0.9","id":2,"implicit":true},{"address":"10.0.0.8","id":1,"subflow":true,"laminar":true}]'
    eps = m.parse_endpoints(text)
    assert [(e["id"], e["flags"], e["implicit"]) for e in eps] == [(1, ["subflow", "laminar"], False), (2, [], True)]
    assert m.parse_endpoints("") == [] and m.parse_endpoints("[]") == []
    with pytest.raises(m.MptcpError, match="JSON"):
        m.parse_endpoints("Error: something")


def test_canonical_ipv6():
    assert m.canonical_address("2001:DB8:0:0::1") == "2001:db8::1"


# --- limits ----------------------------------------------------------------------------------
def test_parse_limits_plain_text_of_iproute2_6_1():
    assert m.parse_limits(fixture("limits_show.txt")) == {"subflows": 3, "add_addr_accepted": 1}


def test_parse_limits_json_of_newer_iproute2_and_garbage():
    assert m.parse_limits('{"add_addr_accepted":2,"subflows":8}') == {"subflows": 8, "add_addr_accepted": 2}
    with pytest.raises(m.MptcpError, match="limits"):
        m.parse_limits("Error: Generic Netlink family not found")


# --- monitor ---------------------------------------------------------------------------------
def test_monitor_client_side_of_one_connection_seed_000_default():
    events, counts = m.parse_monitor(fixture("monitor_client_default.txt"))
    assert [e["event"] for e in events] == [
        "CREATED", "ESTABLISHED", "ANNOUNCED", "SF_ESTABLISHED", "SF_ESTABLISHED", "CLOSED"]
    assert counts == {"CREATED": 1, "ESTABLISHED": 1, "CLOSED": 1, "ANNOUNCED": 1, "REMOVED": 0,
                      "SF_ESTABLISHED": 2, "SF_CLOSED": 0, "SF_PRIO": 0,
                      "LISTENER_CREATED": 0, "LISTENER_CLOSED": 0}
    sf = events[4]
    assert sf == {"event": "SF_ESTABLISHED", "token": sf["token"], "remid": 0, "locid": 1, "family": "ipv4",
                  "saddr": "192.168.0.2", "daddr": "10.0.0.1", "sport": sf["sport"], "dport": 4321,
                  "backup": 0, "ifindex": 3}
    assert events[2]["daddr"] == "192.168.0.1" and "saddr" not in events[2]


def test_monitor_server_side_maps_unknown_15_16_to_listener_events():
    events, counts = m.parse_monitor(fixture("monitor_server_default.txt"))
    assert events[0] == {"event": "LISTENER_CREATED"} and events[-1] == {"event": "LISTENER_CLOSED"}
    # exact names: LISTENER_* are not counted as CREATED/CLOSED
    assert (counts["CREATED"], counts["CLOSED"], counts["LISTENER_CREATED"], counts["LISTENER_CLOSED"]) == (1, 1, 1, 1)
    assert counts["ANNOUNCED"] == 0 and events[1]["flags"] == 2


def test_monitor_ignores_noise_and_keeps_ipv6_and_unknown_numbers():
    text = "garbage\n[SF_CLOSED] token=ab saddr6=2001:db8::2 daddr6=2001:db8::1 sport=1 dport=2 error=111\n[UNKNOWN 99]\n"
    events, counts = m.parse_monitor(text)
    assert events[0] == {"event": "SF_CLOSED", "token": "ab", "family": "ipv6", "saddr": "2001:db8::2",
                         "daddr": "2001:db8::1", "sport": 1, "dport": 2, "error": 111}
    assert events[1]["event"] == "UNKNOWN 99" and counts["UNKNOWN 99"] == 1 and counts["SF_CLOSED"] == 1


def test_supported_flags_and_sysctls():
    assert m.parse_supported_flags(fixture("mptcp_help_iproute2_6.1.txt")) == ["signal", "subflow", "backup", "fullmesh"]
    assert m.parse_sysctls("/proc/sys/net/mptcp/enabled:1\n/proc/sys/net/mptcp/scheduler:default\n") == {
        "enabled": 1, "scheduler": "default"}


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (("10.0.0.300", None, None, ["signal"], "present"), "'10.0.0.300' is not an IPv4 or IPv6 address"),
    (("10.0.0.1", 0, None, ["signal"], "present"), "id 0 is outside 1-255"),
    (("10.0.0.1", 256, None, ["signal"], "present"), "id 256 is outside 1-255"),
    (("10.0.0.1", None, 80, ["subflow"], "present"), "port 80 needs the 'signal' flag"),
    (("10.0.0.1", None, 70000, ["signal"], "present"), "port 70000 is outside 1-65535"),
    (("10.0.0.1", None, None, ["signal", "fullmesh"], "present"), "'signal' and 'fullmesh' cannot be combined"),
    (("10.0.0.1", None, None, ["bogus"], "present"), "unknown flag(s) 'bogus'"),
    ((None, None, None, [], "absent"), "needs address or id"),
])
def test_validate_endpoint_errors_name_the_value(args, message):
    with pytest.raises(m.MptcpError) as e:
        m.validate_endpoint(*args)
    assert message in e.value.msg


def test_validate_limits():
    m.validate_limit("subflows", 8)
    m.validate_limit("subflows", 0)
    with pytest.raises(m.MptcpError, match="add_addr_accepted 9 is outside 0-8"):
        m.validate_limit("add_addr_accepted", 9)


# --- planning --------------------------------------------------------------------------------
CURRENT = m.parse_endpoints(fixture("endpoint_show_mixed.json"))


def want(address, flags, id=None, dev=None, port=None):
    return {"address": address, "id": id, "dev": dev, "port": port, "flags": flags}


def kinds(actions):
    return [(a[0], a[1]["address"]) for a in actions]


def test_plan_nothing_to_do_when_equal_and_id_dev_are_dont_care():
    assert m.plan_endpoint(CURRENT, want("10.9.0.2", ["subflow", "fullmesh"]), "present") == []
    assert m.plan_endpoint(CURRENT, want("10.9.0.2", ["subflow", "fullmesh"], id=4, dev="d0"), "present") == []
    assert m.plan_endpoint(CURRENT, want("10.9.0.1", ["signal"], port=8080), "present") == []


def test_plan_flag_only_difference_is_a_change():
    actions = m.plan_endpoint(CURRENT, want("10.9.0.3", ["subflow"]), "present")
    assert actions == [("change", CURRENT[2], ["subflow"])]
    after = m.apply_plan(CURRENT, actions)
    assert [e["flags"] for e in after if e["id"] == 5] == [["subflow"]]


def test_plan_other_differences_replace():
    assert kinds(m.plan_endpoint(CURRENT, want("10.9.0.3", ["signal"]), "present")) == [
        ("delete", "10.9.0.3"), ("add", "10.9.0.3")]
    assert kinds(m.plan_endpoint(CURRENT, want("10.9.0.2", ["subflow", "fullmesh"], dev="d1"), "present")) == [
        ("delete", "10.9.0.2"), ("add", "10.9.0.2")]
    # the wanted id is held by another endpoint: that one goes first
    assert kinds(m.plan_endpoint(CURRENT, want("10.9.0.9", ["subflow"], id=3), "present")) == [
        ("delete", "10.9.0.1"), ("add", "10.9.0.9")]


def test_plan_absent_and_implicit_is_never_claimed():
    assert kinds(m.plan_endpoint(CURRENT, want("10.9.0.5", []), "absent")) == [("delete", "10.9.0.5")]
    assert m.plan_endpoint(CURRENT, want("10.9.9.9", []), "absent") == []
    assert kinds(m.plan_endpoint(CURRENT, {"address": None, "id": 6, "port": None}, "absent")) == [("delete", "2001:db8::1")]
    implicit = m.parse_endpoints(fixture("endpoint_show_implicit.json"))
    # same address as a kernel-made endpoint: still added (the kernel replaces the implicit one)
    actions = m.plan_endpoint(implicit, want("192.168.0.2", []), "present")
    assert kinds(actions) == [("add", "192.168.0.2")]
    assert [e["implicit"] for e in m.apply_plan(implicit, actions)] == [False]
    assert m.plan_endpoint(implicit, want("192.168.0.2", []), "absent") == []
