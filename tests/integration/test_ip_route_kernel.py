"""multipath.mptcp.ip_route against the real kernel, run through ansible itself, inside a network
namespace that the tests create: seed 001's routing server (eth0 10.123.200.2/24, eth1
10.123.201.2/24, the router at .3 on both links) plus IPv6 on the same links.

Each test is one ansible-playbook run (a module's start-up, about 0.7 s of CPU, dominates the
runtime): the module's tasks alternate with `ip -j route show` tasks (raw) that read the kernel
directly, independently of the module, so every step (check mode changed nothing, the change is
there, ...) is checked.
"""
import json
import os

import pytest

from ansible_cli import run_tasks, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

ECMP = [{"via": "10.123.200.3", "weight": 1}, {"via": "10.123.201.3", "weight": 1}]
ECMP_TEXT = ("10.123.202.0/24\n"
             "\tnexthop via 10.123.200.3 dev eth0 weight 1\n"
             "\tnexthop via 10.123.201.3 dev eth1 weight 1\n")


@pytest.fixture
def ns():
    """A namespace with two links (veth pairs whose other ends stay in the namespace)."""
    name = "mod-%d-route" % os.getpid()
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        for index in (0, 1):
            dev, peer = "eth%d" % index, "peer%d" % index
            sh("ip", "link", "add", dev, "netns", name, "type", "veth", "peer", "name", peer, "netns", name)
            sh("ip", "-n", name, "addr", "add", "10.123.20%d.2/24" % index, "dev", dev)
            sh("ip", "-n", name, "addr", "add", "2001:db8:20%d::2/64" % index, "dev", dev, "nodad")
            sh("ip", "-n", name, "link", "set", dev, "up")
            sh("ip", "-n", name, "link", "set", peer, "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def route(ns, **args):
    """A task running the module in the namespace."""
    check, diff = args.pop("check", False), args.pop("diff", False)
    return {"name": "ip_route", "multipath.mptcp.ip_route": dict(args, netns=ns), "check_mode": check, "diff": diff}


def read(ns, dest, table="main", family="-4"):
    """A task reading the kernel's routes of exactly `dest` with ip itself (raw: no module start-up)."""
    return {"name": "read", "ansible.builtin.raw": "ip -j -n %s %s route show exact %s table %s" % (ns, family, dest, table),
            "changed_when": False}


def kernel(result):
    assert result.get("rc") == 0, result
    return json.loads(result["stdout"] or "[]")


def snapshot(ns):
    """Every route of the namespace, IPv4 and IPv6, every table, but those the kernel makes itself
    (for addresses; IPv6 link-local ones come up on their own time)."""
    routes = []
    for family in ("-4", "-6"):
        routes += [x for x in json.loads(sh("ip", "-j", "-n", ns, family, "route", "show", "table", "all").stdout)
                   if x.get("protocol") != "kernel" and x.get("table") != "local"]
    return routes


def test_ecmp_route_add_idempotent_check_weight_change_and_remove(ns, tmp_path):
    dest = "10.123.202.0/24"
    r = run_tasks([
        route(ns, dest=dest, nexthops=ECMP, check=True, diff=True),                           # 0
        read(ns, dest),                                                                        # 1
        route(ns, dest=dest, nexthops=ECMP, diff=True),                                        # 2
        read(ns, dest),                                                                        # 3
        route(ns, dest=dest, nexthops=ECMP),                                                   # 4
        route(ns, dest=dest, nexthops=[dict(ECMP[1], dev="eth1"), dict(ECMP[0], dev="eth0")]),  # 5
        route(ns, dest=dest, nexthops=[dict(ECMP[0], weight=3), ECMP[1]], check=True),         # 6
        read(ns, dest),                                                                        # 7
        route(ns, dest=dest, nexthops=[dict(ECMP[0], weight=3), ECMP[1]], diff=True),          # 8
        read(ns, dest),                                                                        # 9
        route(ns, dest=dest, state="absent", check=True),                                      # 10
        read(ns, dest),                                                                        # 11
        route(ns, dest=dest, state="absent", diff=True),                                       # 12
        read(ns, dest),                                                                        # 13
        route(ns, dest=dest, state="absent"),                                                  # 14
    ], tmp_path / "ecmp.json")
    assert not any(x.get("failed") for x in r), [x.get("msg") for x in r if x.get("failed")]

    # check mode: reported, not done; the diff is in `ip route show` style
    assert r[0]["changed"] is True and kernel(r[1]) == []
    assert r[0]["diff"]["before"] == "" and r[0]["diff"]["after"] == ECMP_TEXT.replace(" dev eth0", "").replace(" dev eth1", "")
    cmd = r[0]["commands"][0]
    assert cmd[cmd.index("route"):cmd.index("route") + 5] == ["route", "replace", dest, "table", "main"]

    # done: the kernel has exactly the seed's route
    assert r[2]["changed"] is True and r[2]["diff"]["after"] == ECMP_TEXT
    assert kernel(r[3]) == [{"dst": dest, "flags": [], "nexthops": [
        {"gateway": "10.123.200.3", "dev": "eth0", "weight": 1, "flags": []},
        {"gateway": "10.123.201.3", "dev": "eth1", "weight": 1, "flags": []}]}]
    assert r[2]["route"]["nexthops"] == [{"via": "10.123.200.3", "dev": "eth0", "weight": 1},
                                         {"via": "10.123.201.3", "dev": "eth1", "weight": 1}]

    # idempotent: same request; other order with the devices named: nothing to do
    for x in r[4:6]:
        assert x["changed"] is False and x["commands"] == [], x

    # a weight change is a difference; in check mode it is only reported
    assert r[6]["changed"] is True and kernel(r[7]) == kernel(r[3])
    assert r[8]["changed"] is True
    assert [h["weight"] for h in kernel(r[9])[0]["nexthops"]] == [3, 1]
    assert r[8]["diff"]["before"] == ECMP_TEXT and r[8]["diff"]["after"] == ECMP_TEXT.replace("eth0 weight 1", "eth0 weight 3")

    # remove: check mode first, then for real, then nothing left to do
    assert r[10]["changed"] is True and len(kernel(r[11])) == 1
    assert r[12]["changed"] is True and kernel(r[13]) == [] and r[12]["route"] is None and r[12]["diff"]["after"] == ""
    assert r[12]["commands"][0][-8:] == ["-4", "route", "del", dest, "table", "main", "metric", "0"]
    assert r[14]["changed"] is False

def test_static_ipv6_default_table_and_metric_routes(ns, tmp_path):
    v6_hops = [{"via": "2001:db8:200::3", "weight": 2}, {"via": "2001:db8:201::3"}]
    r = run_tasks([
        # seed 001's client: a static route through the router, then another gateway
        route(ns, dest="10.123.210.0/24", via="10.123.200.3", dev="eth0"),                   # 0
        route(ns, dest="10.123.210.0/24", via="10.123.201.3", diff=True),                    # 1
        read(ns, "10.123.210.0/24"),                                                         # 2
        # IPv6 ECMP with weights and an IPv6 default route (::/0 is the same route)
        route(ns, dest="2001:db8:202::/64", nexthops=v6_hops),                               # 3
        route(ns, dest="2001:db8:202::/64", nexthops=v6_hops),                               # 4
        read(ns, "2001:db8:202::/64", family="-6"),                                          # 5
        route(ns, dest="default", via="2001:db8:200::1"),                                    # 6
        route(ns, dest="::/0", via="2001:db8:200:0::1"),                                     # 7
        read(ns, "default", family="-6"),                                                    # 8
        # another table (numeric, not existing yet) and metrics: two routes to one dest
        route(ns, dest="10.123.211.0/24", via="10.123.200.3", table="100", metric=50),       # 9
        route(ns, dest="10.123.211.0/24", via="10.123.201.3", table="100", metric=10),       # 10
        route(ns, dest="10.123.211.0/24", table="100", metric=50, state="absent"),           # 11
        read(ns, "10.123.211.0/24", table="100"),                                            # 12
        # a connected (dev only) host route
        route(ns, dest="10.123.212.7", dev="eth1"),                                          # 13
        read(ns, "10.123.212.7"),                                                            # 14
    ], tmp_path / "static.json")
    assert not any(x.get("failed") for x in r), [x.get("msg") for x in r if x.get("failed")]
    changed = [x["changed"] for x in r if "commands" in x]
    assert changed == [True, True, True, False, True, False, True, True, True, True], changed

    assert r[1]["diff"]["before"] == "10.123.210.0/24 via 10.123.200.3 dev eth0\n"
    assert r[1]["diff"]["after"] == "10.123.210.0/24 via 10.123.201.3 dev eth1\n"
    assert kernel(r[2]) == [{"dst": "10.123.210.0/24", "gateway": "10.123.201.3", "dev": "eth1", "flags": []}]
    (v6,) = kernel(r[5])
    assert v6["metric"] == 1024 and [(h["gateway"], h["weight"]) for h in v6["nexthops"]] == [
        ("2001:db8:200::3", 2), ("2001:db8:201::3", 1)]
    assert [(x["gateway"], x["metric"]) for x in kernel(r[8])] == [("2001:db8:200::1", 1024)]
    assert r[10]["routes"][0]["metric"] == 10 and len(r[10]["routes"]) == 2
    assert [(x["gateway"], x["metric"]) for x in kernel(r[12])] == [("10.123.201.3", 10)]
    assert kernel(r[14]) == [{"dst": "10.123.212.7", "dev": "eth1", "scope": "link", "flags": []}]


def test_bad_input_fails_naming_the_value_and_changes_nothing(ns, tmp_path):
    sh("ip", "-n", ns, "route", "add", "10.123.202.0/24", "nexthop", "via", "10.123.200.3", "nexthop", "via", "10.123.201.3")
    before = snapshot(ns)
    cases = [
        (dict(dest="10.123.202.300/24", via="10.123.200.3"), ["dest '10.123.202.300/24' is not"]),
        (dict(dest="10.123.202.5/24", via="10.123.200.3"), ["'10.123.202.5/24' has host bits set"]),
        (dict(dest="10.123.202.0/24", via="10.123.200.300"), ["via '10.123.200.300' is not an IPv4 or IPv6 address"]),
        (dict(dest="10.123.202.0/24", via="2001:db8:200::3"), ["via 2001:db8:200::3 is IPv6"]),
        (dict(dest="10.123.202.0/24", nexthops=[dict(ECMP[0], weight=0), dict(ECMP[1], weight=300)]),
         ["nexthops[0] weight 0 is outside 1-256", "nexthops[1] weight 300 is outside 1-256"]),
        (dict(dest="10.123.202.0/24", nexthops=[dict(ECMP[0], weight="heavy"), ECMP[1]]), ["heavy"]),
        (dict(dest="10.123.202.0/24", via="10.123.200.3", nexthops=ECMP), ["nexthops cannot be combined with via"]),
        (dict(dest="10.123.202.0/24", via="10.123.200.3", dev="nosuchdev"), ["dev 'nosuchdev' does not exist"]),
        (dict(dest="10.123.202.0/24", nexthops=[dict(ECMP[0], dev="eth9"), ECMP[1]]), ["dev 'eth9' does not exist"]),
        (dict(dest="10.123.202.0/24", via="10.123.200.3", metric=-5), ["metric -5 is outside"]),
        (dict(dest="10.123.202.0/24", via="10.123.200.3", table="nosuchtable"), ["table 'nosuchtable' is not a number"]),
        (dict(dest="10.123.202.0/24", via="10.123.200.3", netns="no-such-ns"), ["network namespace 'no-such-ns' does not exist"]),
        # table 0 used to land in main (reported as table 0)
        (dict(dest="10.123.203.0/24", via="10.123.200.3", table="0"), ["table '0' is table 0 (unspec)"]),
        (dict(dest="10.123.203.0/24", via="10.123.200.3", table="unspec"), ["table 'unspec' is table 0"]),
        (dict(dest="10.123.203.0/24", via="10.123.200.3", netns="/var/run/netns/" + ns),
         ["netns '/var/run/netns/%s' is not a network namespace name" % ns, "'%s'" % ns]),
        (dict(dest="10.123.203.0/24", via="10.123.200.3", netns="/proc/1/ns/net"), ["netns '/proc/1/ns/net'"]),
        (dict(dest="2001:db8:203::/64", via="fe80::1%e;x"), ["via 'fe80::1%e;x' has a scope id"]),
        (dict(dest="2001:db8:203::/64", via="fe80::1%e x"), ["scope id 'e x' is not a valid interface name"]),
        (dict(dest="10.123.203.0/24", via="10.123.200.3", dev="eth0;id"), ["dev 'eth0;id' does not exist"]),
        (dict(dest="10.123.203.0/24", via="10.123.200.3", dev="eth0 x"), ["dev 'eth0 x' is not a valid interface name"]),
        # gateways the kernel would refuse, named before anything runs (check mode too)
        (dict(dest="10.123.203.0/24", via="10.9.9.9"), ["via 10.9.9.9 is not reachable", "Nexthop has invalid gateway"]),
        (dict(dest="10.123.203.0/24", via="10.9.9.9", check=True), ["via 10.9.9.9 is not reachable"]),
        (dict(dest="10.123.203.0/24", nexthops=[ECMP[0], {"via": "10.9.9.9"}]), ["nexthop via 10.9.9.9 is not reachable"]),
        (dict(dest="10.123.203.0/24", via="10.123.200.3", dev="eth1"), ["via 10.123.200.3 is not reachable on dev eth1"]),
        (dict(dest="10.123.203.0/24", via="10.123.200.255"), ["via 10.123.200.255 is a broadcast address"]),
        (dict(dest="2001:db8:203::/64", via="2001:db8:200::2"), ["via 2001:db8:200::2 is a local address"]),
        (dict(dest="2001:db8:203::/64", via="fe80::1"), ["via fe80::1 is an IPv6 link-local gateway: give its dev"]),
    ]
    tasks = []
    for args, words in cases:
        task = route(ns, **args)
        task["multipath.mptcp.ip_route"]["netns"] = args.get("netns", ns)
        tasks.append(task)
    r = run_tasks(tasks, tmp_path / "bad.json")
    for result, (args, words) in zip(r, cases):
        assert result.get("failed") is True, (args, result)
        assert result.get("commands", []) == [], (args, result)  # failed before planning a command
        for word in words:
            assert word in result["msg"], (args, result["msg"])
    assert snapshot(ns) == before
