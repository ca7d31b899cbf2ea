"""Role multipath.mptcp.router with bad input against the real kernel: every case fails naming the
bad value, and nothing was changed - read back after each case: routes of every table (IPv4 and
IPv6), root qdiscs, forwarding and rp_filter sysctls, the sysctl file.

One ansible-playbook run inside a network namespace (`ip netns exec`) holds all cases; each case
is a block (the role, then a marker that it did not fail) with a rescue that records the message
and an `always` that reads the state with ip/tc/sysctl (raw: no module start-up). Every case also
lists a valid route and a valid rate limit before the bad entry, and a different rp_filter, so
that a change made before the failure would show. The namespace starts with forwarding off, a tbf
of 5mbit on eth1 and a route in table 100.
"""
import json
import os

import pytest

from ansible_cli import run_playbook, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

GOOD_ROUTE = {"dest": "10.123.209.0/24", "via": "10.123.200.3"}
GOOD_LIMIT = {"dev": "eth1", "rate": "10mbit"}
ECMP = [{"via": "10.123.200.3"}, {"via": "10.123.201.3"}]

# (variables, words the failure message must hold)
CASES = [
    # the cases: each used to change forwarding, the sysctl file, a route or a qdisc first
    (dict(router_routes=[{"dest": "10.123.202.0/24", "nexthops": [ECMP[0], {"via": "10.9.9.9"}]}]),
     ["route 10.123.202.0/24", "nexthop via 10.9.9.9 is not reachable", "Nothing was changed"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "0mbit"}]), ["rate 0mbit is below 8bit (1 byte/s)"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "0.0001bit"}]), ["router_rate_limits[1] (dev eth0): rate 0.0001bit"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "10mbit", "burst": "1b"}]),
     ["burst 1b (1 bytes) is smaller than a full frame of dev eth0 (MTU 1500 + header = 1514 bytes)"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "10mbit", "burst": "1513"}]), ["give at least 1514"]),
    (dict(router_rate_limits=[{"dev": "nosuch0", "rate": "10mbit"}]), ["dev nosuch0 does not exist"]),
    (dict(router_routes=[dict(GOOD_ROUTE, via="10.123.201.3")]),
     ["router_routes[1] (dest 10.123.209.0/24): the same route as router_routes[0]"]),
    (dict(router_routes=[{"dest": "10.123.205.0/24", "via": "10.123.200.3", "table": "0"}]),
     ["table '0' is table 0 (unspec), which the kernel takes as main"]),
    (dict(router_routes=[{"dest": "10.123.205.0/24", "via": "10.123.200.3", "table": "255"}]),
     ["table 255 is the kernel's local table"]),
    (dict(router_routes=[{"dest": "10.123.205.0/24", "via": "10.123.200.3", "table": "local"}]),
     ["table local is the kernel's local table"]),
    # interface names: shell characters (a name the kernel allows, but no such link), white space, length
    (dict(router_routes=[{"dest": "10.123.205.0/24", "via": "10.123.200.3", "dev": "eth0;reboot"}]),
     ["dev eth0;reboot does not exist"]),
    (dict(router_rate_limits=[{"dev": "eth0 $(id)", "rate": "10mbit"}]), ["dev 'eth0 $(id)' is not a valid interface name"]),
    (dict(router_routes=[{"dest": "10.123.205.0/24", "nexthops": [dict(ECMP[0], dev="eth0\nExecStart=x"), ECMP[1]]}]),
     ["nexthops[0] dev 'eth0\\nExecStart=x' is not a valid interface name"]),
    (dict(router_rate_limits=[{"dev": "a-very-long-name0", "rate": "10mbit"}]), ["17 bytes, the kernel allows at most 15"]),
    (dict(router_routes=[{"dest": "2001:db8:205::/64", "via": "fe80::1%e;x"}]), ["via 'fe80::1%e;x' has a scope id"]),
    # what only the target's kernel can tell (the check pass of ip_route)
    (dict(router_routes=[{"dest": "10.123.205.0/24", "via": "10.123.200.3", "table": "nosuchtable"}]),
     ["table 'nosuchtable' is not a number 1-4294967295"]),
    (dict(router_routes=[{"dest": "10.123.205.0/24", "via": "10.123.200.3", "dev": "eth1"}]),
     ["via 10.123.200.3 is not reachable on dev eth1"]),
    (dict(router_routes=[{"dest": "10.123.205.0/24", "via": "10.123.200.255"}]), ["via 10.123.200.255 is a broadcast address"]),
    (dict(router_routes=[{"dest": "2001:db8:205::/64", "via": "2001:db8:200::2"}]),
     ["via 2001:db8:200::2 is a local address of this host"]),
    (dict(router_routes=[{"dest": "10.123.205.0/24", "nexthops": [{"via": "10.9.9.9"}, ECMP[1]]},
                         {"dest": "10.123.206.0/24", "via": "10.8.8.8"}]),
     ["nexthop via 10.9.9.9 is not reachable", "via 10.8.8.8 is not reachable"]),  # every bad route named
    # tbf bounds of tc and the kernel
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "1kbit", "burst": "40000"}]), ["takes 320 s to fill at rate 1kbit"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "10mbit", "latency": "5000s"}]), ["latency 5000s is outside 1us-4294s"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "8bit"}]), ["rate 8bit is too low for dev eth0", "at least 48bit"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "10mbit", "burst": "5g"}]), ["burst 5g"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "10mbit"}, {"dev": "eth0", "rate": "5mbit"}]),
     ["dev eth0 is listed more than once"]),
    # every problem at once, routes and links
    (dict(router_routes=[{"dest": "10.123.205.0/24", "via": "10.123.200.3", "table": "0"}],
          router_rate_limits=[{"dev": "eth0", "rate": "0mbit"}]), ["table '0'", "rate 0mbit"]),
    # the other variables
    (dict(router_rp_filter=3), ["router_rp_filter 3 is not 0 (off), 1 (strict), 2 (loose)"]),
    (dict(router_sysctl_file="/etc/sysctl.d/my file.conf"), ["router_sysctl_file '/etc/sysctl.d/my file.conf' is not"]),
    (dict(router_persist_dir="relative/dir"), ["router_persist_dir 'relative/dir' is not an absolute path"]),
    (dict(router_persist_wait=-1), ["router_persist_wait -1 is outside 0-3600"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "10mbit", "state": "gone"}]), ["state", "gone"]),  # argument_specs
]

READ = ("ip -j -4 route show table all; echo @@; ip -j -6 route show table all; echo @@; tc -j qdisc show; echo @@;"
        " sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.ipv4.conf.all.rp_filter"
        " net.ipv4.conf.default.rp_filter; echo @@; cat %s 2>/dev/null || echo none")

# the failure message, and those of the failed items of a loop
RECORD = ("{{ router_test_msgs + [ansible_failed_result.msg | default('') ~ ' ' ~ (ansible_failed_result.results"
          " | default([]) | selectattr('failed', 'defined') | selectattr('failed') | map(attribute='msg') | join(' '))] }}")


@pytest.fixture(scope="module")
def ns():
    """Seed 001's server: eth0 10.123.200.2/24, eth1 10.123.201.2/24 (+ IPv6), the router at .3."""
    name = "rt-%d-bad" % os.getpid()
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
        sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0",
           "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
        sh("ip", "netns", "exec", name, "tc", "qdisc", "replace", "dev", "eth1", "root", "tbf", "rate", "5mbit",
           "burst", "16k", "latency", "50ms")
        sh("ip", "-n", name, "route", "add", "10.123.210.0/24", "via", "10.123.201.3", "table", "100")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def parse_state(text):
    """What the role may change, from the READ output: routes of every table (without those the
    kernel makes for addresses), root qdiscs, the four sysctls, the sysctl file."""
    v4, v6, qdiscs, sysctls, conf = text.split("@@")
    routes = [r for r in json.loads(v4) + json.loads(v6) if r.get("protocol") != "kernel" and r.get("table") != "local"
              and not r.get("dst", "").startswith("fe80:") and not r.get("dst", "").startswith("ff00:")]
    roots = sorted((q["dev"], q["kind"], json.dumps(q.get("options"), sort_keys=True))
                   for q in json.loads(qdiscs) if q.get("root"))
    return routes, roots, sysctls.split(), conf.split()


def test_router_bad_input_names_the_value_and_changes_nothing(ns, tmp_path):
    sysctl_file = str(tmp_path / "90-multipath-router.conf")
    read = READ % sysctl_file
    tasks = [{"name": "state before", "ansible.builtin.raw": read, "register": "router_test_before", "changed_when": False}]
    for index, (variables, words) in enumerate(CASES):
        variables = dict(dict(router_sysctl_file=sysctl_file, router_rp_filter=2, router_persist=False,
                              router_persist_dir=str(tmp_path / "persist")), **variables)
        variables["router_routes"] = [GOOD_ROUTE] + variables.get("router_routes", [])
        variables["router_rate_limits"] = [GOOD_LIMIT] + variables.get("router_rate_limits", [])
        tasks.append({"name": "case %d" % index, "block": [
            {"name": "run the role", "ansible.builtin.include_role": {"name": "multipath.mptcp.router"}, "vars": variables},
            {"name": "not failed", "ansible.builtin.set_fact": {"router_test_msgs": "{{ router_test_msgs + ['NOT FAILED'] }}"}},
        ], "rescue": [
            {"name": "record", "ansible.builtin.set_fact": {"router_test_msgs": RECORD}},
        ], "always": [
            {"name": "read the state", "ansible.builtin.raw": read, "register": "router_test_read", "changed_when": False},
            {"name": "keep it", "ansible.builtin.set_fact": {
                "router_test_states": "{{ router_test_states + [router_test_read.stdout] }}"}},
        ]})
    tasks.append({"name": "results", "ansible.builtin.debug": {"msg": {
        "msgs": "{{ router_test_msgs }}", "states": "{{ router_test_states }}", "before": "{{ router_test_before.stdout }}"}}})
    out = run_playbook([{"name": "bad input", "hosts": "localhost", "gather_facts": False,
                         "vars": {"router_test_msgs": [], "router_test_states": []}, "tasks": tasks}],
                       tmp_path / "bad.json", netns=ns)
    result = out["plays"][0]["tasks"][-1]["hosts"]["localhost"]["msg"]
    before = parse_state(result["before"])
    assert before[2] == ["0", "0", "0", "0"] and before[3] == ["none"]  # a change would show
    assert [r for r in before[0] if r.get("table") == "100"] and ("eth1", "tbf") in [q[:2] for q in before[1]]
    assert len(result["msgs"]) == len(CASES) == len(result["states"]), result["msgs"]
    for msg, state, (variables, words) in zip(result["msgs"], result["states"], CASES):
        assert msg != "NOT FAILED", variables
        for word in words:
            assert word in msg, (variables, msg)
        assert parse_state(state) == before, (variables, msg)
    assert len(CASES) >= 20
