"""Parsing, validation and planning of plugins/modules/ip_route.py, fed with real `ip -j route show`
output captured on Linux 6.18 / iproute2 6.1 (tests/unit/fixtures/route_*): seed 001's routing
topology, server side (eth0 10.123.200.2, eth1 10.123.201.2, router 10.123.200.3 / 10.123.201.3)
and client side (eth0 10.123.202.3, router 10.123.202.2)."""
import os

import pytest

from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import MptcpError
from ansible_collections.multipath.mptcp.plugins.modules import ip_route as r

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def hop(via, dev=None, weight=1):
    return {"via": via, "dev": dev, "weight": weight}


SEED_ECMP = [{"via": "10.123.200.3", "weight": 1}, {"via": "10.123.201.3", "weight": 1}]


# --- parsing ---------------------------------------------------------------------------------
def test_parse_single_gateway_route_of_the_seed_client():
    (route,) = r.parse_routes(fixture("route_client_static.json"), 4)
    assert route == {"dest": "10.123.200.0/24", "family": "ipv4", "table": "main", "metric": 0,
                     "type": "unicast", "nexthops": [hop("10.123.202.2", "eth0")]}


def test_parse_ecmp_route_of_the_seed_server_and_text_form():
    (route,) = r.parse_routes(fixture("route_ecmp_seed.json"), 4)
    assert route["dest"] == "10.123.202.0/24" and route["metric"] == 0
    assert route["nexthops"] == [hop("10.123.200.3", "eth0"), hop("10.123.201.3", "eth1")]
    # the same route as `ip route show` prints it (iproute2 ends its words with a space)
    assert r.route_text(route) == "".join(line.rstrip() + "\n" for line in fixture("route_ecmp_seed.txt").splitlines())


def test_parse_weighted_ecmp_with_metric_in_another_table():
    (route,) = r.parse_routes(fixture("route_ecmp_weighted_table100.json"), 4, "100")
    assert route["table"] == "100" and route["metric"] == 50
    assert route["nexthops"] == [hop("10.123.200.3", "eth0", 3), hop("10.123.201.3", "eth1", 1)]
    assert r.route_text(route) == ("10.123.203.0/24 metric 50 table 100\n"
                                   "\tnexthop via 10.123.200.3 dev eth0 weight 3\n"
                                   "\tnexthop via 10.123.201.3 dev eth1 weight 1\n")


def test_parse_two_routes_of_one_dest_with_different_metrics():
    routes = r.parse_routes(fixture("route_two_metrics.json"), 4)
    assert [(x["metric"], x["nexthops"][0]["via"]) for x in routes] == [(0, "10.123.200.3"), (10, "10.123.201.3")]
    assert r.routes_text(routes) == "".join(line.rstrip() + "\n" for line in fixture("route_two_metrics.txt").splitlines())


def test_parse_ipv6_single_ecmp_and_default():
    (single,) = r.parse_routes(fixture("route_v6_single.json"), 6)
    assert single == {"dest": "2001:db8:202::/64", "family": "ipv6", "table": "main", "metric": 1024,
                      "type": "unicast", "nexthops": [hop("2001:db8:200::3", "eth0")]}
    (ecmp,) = r.parse_routes(fixture("route_v6_ecmp.json"), 6)
    assert ecmp["metric"] == 1024
    assert ecmp["nexthops"] == [hop("2001:db8:200::3", "eth0", 2), hop("2001:db8:201::3", "eth1", 1)]
    (default,) = r.parse_routes(fixture("route_v6_default.json"), 6)
    assert default["dest"] == "default" and default["nexthops"] == [hop("2001:db8:200::1", "eth0")]
    assert r.route_text(default) == "default via 2001:db8:200::1 dev eth0 metric 1024\n"


def test_parse_whole_table_default_host_link_and_blackhole_routes():
    routes = {x["dest"]: x for x in r.parse_routes(fixture("route_main_v4.json"), 4)}
    assert routes["default"]["nexthops"] == [hop("10.123.200.1", "eth0")]
    assert routes["10.123.205.7/32"]["nexthops"] == [hop("10.123.201.3", "eth1")]
    assert routes["10.123.206.0/24"]["nexthops"] == [hop(None, "eth1")]
    assert routes["10.123.200.0/24"]["nexthops"] == [hop(None, "eth0")]  # kernel-made, proto kernel
    assert routes["10.123.207.0/24"]["type"] == "blackhole" and routes["10.123.207.0/24"]["nexthops"] == [hop(None)]
    assert r.route_text(routes["10.123.207.0/24"]) == "blackhole 10.123.207.0/24\n"
    (host,) = r.parse_routes(fixture("route_host.json"), 4)
    assert host["dest"] == "10.123.205.7/32"


def test_parse_empty_and_garbage():
    assert r.parse_routes(fixture("route_missing.json"), 4) == [] and r.parse_routes("", 4) == []
    with pytest.raises(MptcpError, match="JSON"):
        r.parse_routes("Error: ipv4: FIB table does not exist.", 4)


# --- validation ------------------------------------------------------------------------------
def test_validate_normalises_the_request():
    want = r.validate_route("10.123.202.0/24", nexthops=[{"via": "10.123.201.3", "weight": 2}, {"via": "10.123.200.3"}])
    assert want == {"dest": "10.123.202.0/24", "family": "ipv4", "table": "main", "metric": None, "type": "unicast",
                    "nexthops": [hop("10.123.200.3", None, 1), hop("10.123.201.3", None, 2)]}
    assert r.validate_route("default", via="2001:DB8:200:0::1")["family"] == "ipv6"
    assert r.validate_route("default", via="2001:db8:200::1")["nexthops"] == [hop("2001:db8:200::1")]
    assert r.validate_route("default", dev="eth0")["dest"] == "default"
    assert r.validate_route("::/0", dev="eth0")["family"] == "ipv6"
    assert r.validate_route("10.1.2.3", via="10.0.0.1")["dest"] == "10.1.2.3/32"
    # one next hop is a plain route: the kernel keeps no weight for it
    assert r.validate_route("10.9.0.0/16", nexthops=[{"via": "10.0.0.1", "weight": 9}])["nexthops"] == [hop("10.0.0.1")]
    assert r.validate_route("10.9.0.0/16", state="absent")["nexthops"] == []
    assert r.validate_route("10.9.0.0/16", via="10.0.0.1", table=100)["table"] == "100"


@pytest.mark.parametrize("kwargs, words", [
    (dict(dest="10.123.202.0/33", via="10.0.0.1"), ["dest '10.123.202.0/33' is not"]),
    (dict(dest="bogus", via="10.0.0.1"), ["dest 'bogus' is not"]),
    (dict(dest="10.123.202.5/24", via="10.0.0.1"), ["'10.123.202.5/24' has host bits set", "10.123.202.0/24"]),
    (dict(dest="10.123.202.0/24", via="10.0.0.300"), ["via '10.0.0.300' is not an IPv4 or IPv6 address"]),
    (dict(dest="10.123.202.0/24", via="10.0.0.0/24"), ["via '10.0.0.0/24' is not"]),
    (dict(dest="10.123.202.0/24", via="2001:db8::1"), ["via 2001:db8::1 is IPv6 but dest 10.123.202.0/24 is IPv4"]),
    (dict(dest="10.123.202.0/24", nexthops=[{"via": "10.0.0.1", "weight": 0}, {"via": "10.0.0.2", "weight": 257}]),
     ["nexthops[0] weight 0 is outside 1-256", "nexthops[1] weight 257 is outside 1-256"]),
    (dict(dest="10.123.202.0/24", nexthops=[{"via": "10.0.0.1"}, {"via": "nope"}]), ["nexthops[1] via 'nope'"]),
    (dict(dest="10.123.202.0/24", nexthops=[{"via": "10.0.0.1"}, {"via": "fe80::1"}]), ["nexthops[1] via fe80::1 is IPv6"]),
    (dict(dest="10.123.202.0/24", via="10.0.0.1", nexthops=SEED_ECMP), ["nexthops cannot be combined with via or dev"]),
    (dict(dest="10.123.202.0/24", dev="eth0", nexthops=SEED_ECMP), ["nexthops cannot be combined with via or dev"]),
    (dict(dest="10.123.202.0/24"), ["state=present needs via, dev or nexthops"]),
    (dict(dest="10.123.202.0/24", via="10.0.0.1", metric=-1), ["metric -1 is outside 0-4294967295"]),
    (dict(dest="10.123.202.0/24", via="10.0.0.1", table="my table"), ["table 'my table'"]),
])
def test_validate_rejects_bad_input_naming_it(kwargs, words):
    with pytest.raises(MptcpError) as e:
        r.validate_route(**kwargs)
    for word in words:
        assert word in e.value.msg


# --- planning --------------------------------------------------------------------------------
def seed_server_routes():
    return r.parse_routes(fixture("route_ecmp_seed.json"), 4)


def test_plan_seed_ecmp_already_there_with_and_without_devices():
    current = seed_server_routes()
    assert r.plan_route(current, r.validate_route("10.123.202.0/24", nexthops=SEED_ECMP), "present") == []
    with_devs = [dict(SEED_ECMP[0], dev="eth0"), dict(SEED_ECMP[1], dev="eth1")]
    assert r.plan_route(current, r.validate_route("10.123.202.0/24", nexthops=with_devs), "present") == []
    # order of the next hops does not matter
    assert r.plan_route(current, r.validate_route("10.123.202.0/24", nexthops=SEED_ECMP[::-1]), "present") == []


@pytest.mark.parametrize("nexthops", [
    [{"via": "10.123.200.3", "weight": 2}, {"via": "10.123.201.3"}],                  # weight changed
    [{"via": "10.123.200.3", "dev": "eth1"}, {"via": "10.123.201.3"}],                # other device
    [{"via": "10.123.200.3"}, {"via": "10.123.201.3"}, {"via": "10.123.200.4"}],      # one more hop
    [{"via": "10.123.200.3"}],                                                        # single path
])
def test_plan_seed_ecmp_difference_is_one_replace(nexthops):
    want = r.validate_route("10.123.202.0/24", nexthops=nexthops)
    actions = r.plan_route(seed_server_routes(), want, "present")
    assert actions == [("replace", dict(want, metric=0))]
    args = r.route_command(actions[0][1], "replace")
    assert args[:8] == ["-4", "route", "replace", "10.123.202.0/24", "table", "main", "metric", "0"]
    predicted = r.apply_plan(seed_server_routes(), actions)
    assert predicted == [dict(want, metric=0)]


def test_route_commands_for_ecmp_single_and_delete():
    want = r.validate_route("10.123.203.0/24", nexthops=[{"via": "10.123.200.3", "dev": "eth0", "weight": 3},
                                                        {"via": "10.123.201.3"}], table="100", metric=50)
    assert r.route_command(dict(want), "replace") == [
        "-4", "route", "replace", "10.123.203.0/24", "table", "100", "metric", "50",
        "nexthop", "via", "10.123.200.3", "dev", "eth0", "weight", "3", "nexthop", "via", "10.123.201.3", "weight", "1"]
    six = dict(r.validate_route("2001:db8:202::/64", via="2001:db8:200::3"), metric=1024)
    assert r.route_command(six, "replace") == ["-6", "route", "replace", "2001:db8:202::/64", "table", "main",
                                               "metric", "1024", "via", "2001:db8:200::3"]
    (blackhole,) = [x for x in r.parse_routes(fixture("route_main_v4.json"), 4) if x["type"] == "blackhole"]
    assert r.route_command(blackhole, "del") == ["-4", "route", "del", "blackhole", "10.123.207.0/24",
                                                 "table", "main", "metric", "0"]


def test_plan_single_gateway_device_compared_only_when_given():
    current = r.parse_routes(fixture("route_client_static.json"), 4)
    assert r.plan_route(current, r.validate_route("10.123.200.0/24", via="10.123.202.2"), "present") == []
    assert r.plan_route(current, r.validate_route("10.123.200.0/24", via="10.123.202.2", dev="eth0"), "present") == []
    assert r.plan_route(current, r.validate_route("10.123.200.0/24", via="10.123.202.2", dev="eth1"), "present")
    assert r.plan_route(current, r.validate_route("10.123.200.0/24", via="10.123.202.9"), "present")
    # a route of another metric is another route: adding ours leaves that one alone
    want = r.validate_route("10.123.200.0/24", via="10.123.202.2", metric=5)
    actions = r.plan_route(current, want, "present")
    assert [m["metric"] for m in r.apply_plan(current, actions)] == [0, 5]


def test_plan_metric_picks_the_route():
    current = r.parse_routes(fixture("route_two_metrics.json"), 4)
    assert r.plan_route(current, r.validate_route("10.123.204.0/24", via="10.123.201.3", metric=10), "present") == []
    assert r.plan_route(current, r.validate_route("10.123.204.0/24", via="10.123.200.3"), "present") == []
    # the gateway of the metric-10 route wanted at the default metric: replace the metric-0 one
    want = r.validate_route("10.123.204.0/24", via="10.123.201.3")
    actions = r.plan_route(current, want, "present")
    assert actions == [("replace", dict(want, metric=0))]
    assert [(x["metric"], x["nexthops"][0]["via"]) for x in r.apply_plan(current, actions)] == [
        (0, "10.123.201.3"), (10, "10.123.201.3")]


def test_plan_ipv6_default_metric_is_1024():
    current = r.parse_routes(fixture("route_v6_ecmp.json"), 6)
    want = r.validate_route("2001:db8:203::/64", nexthops=[{"via": "2001:db8:200::3", "weight": 2}, {"via": "2001:db8:201::3"}])
    assert r.plan_route(current, want, "present") == []
    want = r.validate_route("2001:db8:203::/64", nexthops=[{"via": "2001:db8:200::3"}, {"via": "2001:db8:201::3"}])
    assert r.plan_route(current, want, "present")[0][1]["metric"] == 1024
    assert r.plan_route(current, r.validate_route("2001:db8:203::/64", nexthops=want["nexthops"], metric=1024),
                        "present")


def test_plan_absent_every_metric_or_narrowed():
    current = r.parse_routes(fixture("route_two_metrics.json"), 4)
    assert [a[1]["metric"] for a in r.plan_route(current, r.validate_route("10.123.204.0/24", state="absent"), "absent")] == [0, 10]
    assert [a[1]["metric"] for a in r.plan_route(current, r.validate_route("10.123.204.0/24", metric=10, state="absent"),
                                                 "absent")] == [10]
    assert [a[1]["metric"] for a in r.plan_route(current, r.validate_route("10.123.204.0/24", via="10.123.200.3",
                                                                           state="absent"), "absent")] == [0]
    assert r.plan_route(current, r.validate_route("10.123.204.0/24", via="10.123.200.9", state="absent"), "absent") == []
    assert [a[1]["metric"] for a in r.plan_route(current, r.validate_route("10.123.204.0/24", dev="eth1", state="absent"),
                                                 "absent")] == [10]
    assert r.plan_route([], r.validate_route("10.123.204.0/24", state="absent"), "absent") == []
    actions = r.plan_route(current, r.validate_route("10.123.204.0/24", metric=10, state="absent"), "absent")
    assert r.route_command(actions[0][1], "del") == ["-4", "route", "del", "10.123.204.0/24", "table", "main", "metric", "10"]
    assert [x["metric"] for x in r.apply_plan(current, actions)] == [0]


def test_blackhole_route_is_not_the_wanted_unicast_route():
    current = [x for x in r.parse_routes(fixture("route_main_v4.json"), 4) if x["dest"] == "10.123.207.0/24"]
    assert r.plan_route(current, r.validate_route("10.123.207.0/24", dev="eth0"), "present")


def test_hops_match_needs_the_same_multiset():
    have = [hop("10.0.0.1", "a", 1), hop("10.0.0.1", "b", 1)]
    assert r.hops_match(have, [hop("10.0.0.1", "b"), hop("10.0.0.1")])
    assert not r.hops_match(have, [hop("10.0.0.1", "a"), hop("10.0.0.1", "a")])
    assert not r.hops_match(have, [hop("10.0.0.1")])
