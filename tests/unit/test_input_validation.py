"""Input validation shared by every module (plugins/module_utils/mptcp.py: interface names, network
namespace names, addresses with scope ids, routing tables) and the gateway check of ip_route, fed
with `ip -j route show` output captured on Linux 6.18 / iproute2 6.1."""
import os

import pytest

from ansible_collections.multipath.mptcp.plugins.module_utils import mptcp as m
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import MptcpError
from ansible_collections.multipath.mptcp.plugins.modules import ip_route as r

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
NAMES = {"isp1": "101", "main": "254"}


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


@pytest.mark.parametrize("name", ["eth0", "e;x", "a" * 15, "veth-1.100", "wg$0"])
def test_interface_names_the_kernel_allows(name):
    assert m.ifname_problem(name) is None and m.validate_ifname(name) == name


@pytest.mark.parametrize("name, words", [
    ("", ["'' is not a valid interface name"]),
    (".", ["'.' is not a valid interface name"]),
    ("..", ["'..'"]),
    ("a" * 16, ["16 bytes, the kernel allows at most 15"]),
    ("eth0 x", ["'eth0 x'", "refuses ' '"]),
    ("eth0\nx", ["refuses '\\n'"]),
    ("a/b", ["refuses '/'"]),
    ("eth0:1", ["refuses ':'"]),
    (3, ["dev 3 is not an interface name"]),
])
def test_interface_names_the_kernel_refuses(name, words):
    with pytest.raises(MptcpError) as e:
        m.validate_ifname(name)
    for word in words:
        assert word in e.value.msg


@pytest.mark.parametrize("name", ["mptcp-client", "ns 1", "x" * 255, "a;b"])
def test_netns_names_iproute2_allows(name):
    assert m.validate_netns(name) == name


@pytest.mark.parametrize("name, words", [
    ("/var/run/netns/x", ["netns '/var/run/netns/x'", "not a path", "'x'"]),
    ("/proc/1/ns/net", ["netns '/proc/1/ns/net'", "not a path"]),
    ("a/b", ["not a path"]),
    ("", ["netns ''"]),
    ("..", ["netns '..'"]),
    ("x" * 256, ["at most 255 bytes"]),
])
def test_netns_names_iproute2_refuses(name, words):
    with pytest.raises(MptcpError) as e:
        m.validate_netns(name)
    for word in words:
        assert word in e.value.msg


def test_addresses_scope_ids_are_refused_naming_them():
    assert str(m.parse_ip(" 2001:DB8::1 ", "via")) == "2001:db8::1"
    with pytest.raises(MptcpError) as e:
        m.parse_ip("fe80::1%e;x", "via")  # e;x is a name the kernel allows: refused all the same
    assert e.value.msg.startswith("via 'fe80::1%e;x' has a scope id: ip does not take one")
    with pytest.raises(MptcpError) as e:
        m.parse_ip("fe80::1%e x", "via")
    assert "via 'fe80::1%e x'" in e.value.msg and "scope id 'e x' is not a valid interface name" in e.value.msg
    with pytest.raises(MptcpError) as e:
        m.parse_ip("fe80::1%eth0", "address")
    assert "give the interface 'eth0' as dev" in e.value.msg
    with pytest.raises(MptcpError) as e:
        m.parse_ip("10.0.0.256", "via")
    assert e.value.msg == "via '10.0.0.256' is not an IPv4 or IPv6 address"
    with pytest.raises(MptcpError) as e:
        m.parse_prefix("fe80::%eth0/64", "dest")
    assert "scope id" in e.value.msg


@pytest.mark.parametrize("value, canonical", [
    ("main", "main"), ("254", "main"), ("253", "default"), ("255", "local"), ("local", "local"),
    ("0100", "100"), (100, "100"), ("4294967295", "4294967295"), ("isp1", "isp1"), (" 7 ", "7"),
])
def test_tables(value, canonical):
    assert m.validate_table(value, NAMES) == canonical


@pytest.mark.parametrize("value, words", [
    ("0", ["table '0' is table 0 (unspec), which the kernel takes as main"]),
    (0, ["table 0 is table 0 (unspec)"]),
    ("unspec", ["table 'unspec' is table 0"]),
    ("4294967296", ["outside 1-4294967295"]),
    ("my table", ["table 'my table' is not a number", "isp1"]),
    ("100\n;reboot", ["table '100\\n;reboot'"]),
    ("", ["table ''"]),
    ("-1", ["table '-1'"]),
])
def test_bad_tables(value, words):
    with pytest.raises(MptcpError) as e:
        m.validate_table(value, NAMES)
    for word in words:
        assert word in e.value.msg


def test_table_names_are_read_from_rt_tables(tmp_path):
    (tmp_path / "rt_tables").write_text("# comment\n255\tlocal\n254 main\n101 isp1 # uplink\nbad line\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.conf").write_text("102 isp2\n")
    (tmp_path / "d" / "ignored").write_text("103 isp3\n")
    names = m.read_table_names([str(tmp_path / "rt_tables"), str(tmp_path / "missing")], [str(tmp_path / "d")])
    assert names == {"local": "255", "main": "254", "isp1": "101", "isp2": "102"}


# --- ip_route -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, words", [
    (dict(dest="10.9.0.0/24", via="10.0.0.1", table="0"), ["table '0' is table 0 (unspec)"]),
    (dict(dest="2001:db8::/64", via="fe80::1%e;x"), ["via 'fe80::1%e;x' has a scope id"]),
    (dict(dest="2001:db8::/64", via="fe80::1%e/x"), ["via 'fe80::1%e/x'", "scope id 'e/x' is not a valid interface name"]),
    (dict(dest="2001:db8::/64", via="fe80::1%eth0"), ["give the interface 'eth0' as dev"]),
    (dict(dest="10.9.0.0/24", via="10.0.0.1", dev="eth0;reboot x"), ["dev 'eth0;reboot x' is not a valid interface name"]),
    (dict(dest="10.9.0.0/24", nexthops=[{"via": "10.0.0.1", "dev": "a/b"}, {"via": "10.0.1.1"}]),
     ["nexthops[0] dev 'a/b'"]),
    (dict(dest="10.9.0.0/24", dev="x" * 16), ["16 bytes"]),
])
def test_route_options_that_reach_ip_are_validated(kwargs, words):
    with pytest.raises(MptcpError) as e:
        r.validate_route(table_names=NAMES, **kwargs)
    for word in words:
        assert word in e.value.msg


def test_reserved_table_numbers_are_named():
    assert r.validate_route("10.9.0.0/24", via="10.0.0.1", table="254", table_names=NAMES)["table"] == "main"


# Seed 001's server: eth0 10.123.200.2/24, eth1 10.123.201.2/24, a default route via the router
CONNECTED = r.parse_connected(fixture("route_main_v4.json"), 4)


def test_parse_connected_keeps_routes_without_gateway():
    assert [(str(n), dev, kind) for n, dev, kind in CONNECTED] == [
        ("10.123.200.0/24", "eth0", "unicast"), ("10.123.201.0/24", "eth1", "unicast"),
        ("10.123.206.0/24", "eth1", "unicast")]  # the blackhole route has no scope link


LOCAL = r.parse_connected(
    '[{"type":"local","dst":"10.123.200.2","dev":"eth0","table":"local","protocol":"kernel","scope":"host",'
    '"prefsrc":"10.123.200.2","flags":[]},{"type":"broadcast","dst":"10.123.200.255","dev":"eth0","table":"local",'
    '"protocol":"kernel","scope":"link","prefsrc":"10.123.200.2","flags":[]}]', 4)
LOCAL6 = r.parse_connected(
    '[{"dst":"2001:db8:200::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},'
    '{"type":"local","dst":"2001:db8:200::2","dev":"eth0","table":"local","protocol":"kernel","metric":0,'
    '"flags":[],"pref":"medium"}]', 6)


def test_gateways_reachable_and_not():
    ok = r.validate_route("10.123.202.0/24", nexthops=[{"via": "10.123.200.3"}, {"via": "10.123.201.3", "dev": "eth1"}])
    assert r.gateway_problems(ok, CONNECTED) == []
    bad = r.validate_route("10.123.202.0/24", nexthops=[{"via": "10.123.200.3"}, {"via": "10.99.0.1"}])
    (problem,) = r.gateway_problems(bad, CONNECTED)
    assert problem.startswith("nexthop via 10.99.0.1 is not reachable: ") and "table main" in problem
    wrong_dev = r.validate_route("10.123.202.0/24", via="10.123.200.3", dev="eth1")
    (problem,) = r.gateway_problems(wrong_dev, CONNECTED)
    assert problem.startswith("via 10.123.200.3 is not reachable on dev eth1: ")
    assert problem.endswith("(the kernel would refuse it: Nexthop has invalid gateway)")
    assert r.gateway_problems(r.validate_route("10.5.0.0/24", dev="eth0"), CONNECTED) == []


def test_gateways_the_kernel_refuses_although_a_subnet_covers_them():
    bcast = r.validate_route("10.9.0.0/24", via="10.123.200.255")
    assert r.gateway_problems(bcast, CONNECTED + LOCAL) == [
        "via 10.123.200.255 is a broadcast address (the kernel would refuse it: Nexthop has invalid gateway)"]
    own4 = r.validate_route("10.9.0.0/24", via="10.123.200.2")  # IPv4 takes its own address
    assert r.gateway_problems(own4, CONNECTED + LOCAL) == []
    own6 = r.validate_route("2001:db8:9::/64", via="2001:db8:200::2")
    assert r.gateway_problems(own6, LOCAL6) == [
        "via 2001:db8:200::2 is a local address of this host (the kernel refuses it: Gateway can not be a local address)"]
    assert r.gateway_problems(r.validate_route("2001:db8:9::/64", via="2001:db8:200::1"), LOCAL6) == []


def test_ipv6_link_local_gateway_needs_a_dev():
    want = r.validate_route("2001:db8:5::/64", via="fe80::1")
    assert r.gateway_problems(want, []) == ["via fe80::1 is an IPv6 link-local gateway: give its dev"]
    assert r.gateway_problems(r.validate_route("2001:db8:5::/64", via="fe80::1", dev="eth0"), []) == []
