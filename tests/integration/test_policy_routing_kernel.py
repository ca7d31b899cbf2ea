"""Policy routing of role multipath.mptcp.mptcp_host against the real kernel, in network namespaces.

Topology (an MPTCP client with two uplinks, like a host with two ISPs):

    client eth0 10.124.1.2 ---- 10.124.1.1 eth0 \
                                               router (forwards; strict rp_filter = ISP anti-spoofing)
    client eth1 10.124.2.2 ---- 10.124.2.1 eth1 /    eth2 10.124.3.1 ---- 10.124.3.2 eth0 server

The client's main table has one default route, via eth0. Its second address, 10.124.2.2, is an MPTCP
`subflow` endpoint. Without policy routing the extra subflow cannot work:
- endpoint with `dev eth1`: the subflow is bound to eth1, where the main table has no route to the
  server: the kernel takes the server as on-link on eth1 and its ARP request fails;
- endpoint without dev: the subflow leaves by eth0 with source 10.124.2.2 and the router's strict
  reverse path filter drops it (its TcpExtIPReversePathFilter counter goes up).
With `mptcp_host_policy_routing: true` the role gives 10.124.2.2 its own table (10.124.2.0/24 dev eth1,
default via 10.124.2.1 dev eth1) and a rule `from 10.124.2.2 lookup <table>`: the subflow is
established. Counted from the kernel: TCP sockets in ESTABLISHED state from 10.124.2.2 to the server
(`ss`), while the MPTCP connection is open (after the server has spoken, so that the client is fully
established and its path manager creates the subflow).
"""
import json
import os
import subprocess
import sys
import time

import pytest

from ansible_cli import run_playbook, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

PORT = 5299
# server: accept one MPTCP connection, say hello (the client's path manager starts once the
# connection is fully established, which needs a packet from the server), read to EOF.
# client: connect, read hello, poll `ss` for an established subflow from ADDR for up to WAIT s, then
# print what the kernel says as JSON.
PEER = r'''
import json, socket, subprocess, sys, time
SOL_MPTCP, MPTCP_INFO = 284, 1
if sys.argv[1] == "server":
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("", int(sys.argv[2]))); l.listen(); print("listening", flush=True)
    c, _ = l.accept(); c.sendall(b"hello\n")
    while c.recv(65536):
        pass
    c.close()
else:
    server, port, addr, wait = sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP); s.settimeout(10)
    s.connect((server, port)); assert s.recv(6) == b"hello\n"
    def established():
        out = subprocess.run(["ss", "-Htn", "state", "established", "src", addr, "dst", "%s:%d" % (server, port)],
                             capture_output=True, text=True, check=True).stdout
        return len(out.splitlines())
    deadline = time.time() + wait
    while established() < 1 and time.time() < deadline:
        time.sleep(0.05)
    result = {"established_from_addr": established(), "initial_source": s.getsockname()[0],
              "mptcp_info_subflows": s.getsockopt(SOL_MPTCP, MPTCP_INFO, 64)[0]}
    s.sendall(b"x" * 10000); s.shutdown(socket.SHUT_WR); s.close()
    print(json.dumps(result))
'''


@pytest.fixture
def topo():
    tag = "%d" % os.getpid()
    c, r, s = "pr-c" + tag, "pr-r" + tag, "pr-s" + tag
    try:
        for ns in (c, r, s):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "eth0", "netns", c, "type", "veth", "peer", "name", "eth0", "netns", r)
        sh("ip", "link", "add", "eth1", "netns", c, "type", "veth", "peer", "name", "eth1", "netns", r)
        sh("ip", "link", "add", "eth2", "netns", r, "type", "veth", "peer", "name", "eth0", "netns", s)
        for ns, dev, addr in ((c, "eth0", "10.124.1.2/24"), (c, "eth1", "10.124.2.2/24"), (r, "eth0", "10.124.1.1/24"),
                              (r, "eth1", "10.124.2.1/24"), (r, "eth2", "10.124.3.1/24"), (s, "eth0", "10.124.3.2/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", c, "route", "add", "default", "via", "10.124.1.1", "dev", "eth0")
        sh("ip", "-n", s, "route", "add", "default", "via", "10.124.3.1")
        sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=1",
           "net.ipv4.conf.eth0.rp_filter=1", "net.ipv4.conf.eth1.rp_filter=1")
        sh("ip", "-n", s, "mptcp", "limits", "set", "subflows", "1", "add_addr_accepted", "0")
        yield {"client": c, "router": r, "server": s}
    finally:
        for ns in (c, r, s):
            sh("ip", "netns", "del", ns, check=False)


def measure(topo, wait=4.0):
    """One MPTCP connection client -> server; what the kernel shows about the extra subflow."""
    server = subprocess.Popen(["ip", "netns", "exec", topo["server"], sys.executable, "-c", PEER, "server", str(PORT)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        out = sh("ip", "netns", "exec", topo["client"], sys.executable, "-c", PEER, "client", "10.124.3.2", str(PORT),
                 "10.124.2.2", str(wait)).stdout
        server.wait(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
    result = json.loads(out)
    result["router_rp_filter_drops"] = rp_filter_drops(topo["router"])
    return result


def rp_filter_drops(ns):
    lines = sh("ip", "netns", "exec", ns, "cat", "/proc/net/netstat").stdout.splitlines()
    for names, values in zip(lines[0::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:]))["IPReversePathFilter"])
    raise AssertionError("no TcpExt in /proc/net/netstat")


def kernel_policy(ns):
    """The client's rules besides the kernel's three, and every route of tables other than main/local."""
    rules = [r for r in json.loads(sh("ip", "-j", "-n", ns, "rule", "show").stdout) if r["priority"] not in (0, 32766, 32767)]
    routes = [r for r in json.loads(sh("ip", "-j", "-n", ns, "-4", "route", "show", "table", "all").stdout)
              if r.get("table") not in (None, "main", "local")]
    return rules, routes


def role_play(name, check=False, **variables):
    return {"name": name, "hosts": "localhost", "gather_facts": False, "check_mode": check,
            "roles": [{"role": "multipath.mptcp.mptcp_host", "vars": variables}]}


def changed_tasks(play):
    return [t["task"]["name"].split(" : ")[-1] for t in play["tasks"]
            if any(h.get("changed") for h in [t["hosts"]["localhost"]] + t["hosts"]["localhost"].get("results", []))]


def failures(out):
    return [t["hosts"]["localhost"].get("msg") for p in out["plays"] for t in p["tasks"] if t["hosts"]["localhost"].get("failed")]


CASES = {
    # endpoint bound to its device; the policy is derived from mptcp_host_endpoints (table 100)
    "endpoint with dev, policy from the endpoints": dict(
        endpoint={"address": "10.124.2.2", "dev": "eth1", "flags": ["subflow"], "gateway": "10.124.2.1"},
        policy={}, table="100"),
    # endpoint without dev (subflow routed by source only); the policy is listed explicitly
    "endpoint without dev, policy listed": dict(
        endpoint={"address": "10.124.2.2", "flags": ["subflow"]},
        policy={"mptcp_host_policy_routes": [{"address": "10.124.2.2", "dev": "eth1", "gateway": "10.124.2.1",
                                              "table": 202, "priority": 900}]}, table="202"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_subflow_from_second_uplink_needs_policy_routing(topo, tmp_path, case):
    spec = CASES[case]
    c = topo["client"]
    base = dict(mptcp_host_sysctl_file=str(tmp_path / "90-multipath-mptcp.conf"), mptcp_host_persist=False,
                mptcp_host_persist_dir=str(tmp_path / "persist"),
                mptcp_host_limits={"subflows": 1, "add_addr_accepted": 0}, mptcp_host_endpoints=[spec["endpoint"]])
    out = run_playbook([role_play("endpoints, no policy routing", **base)], tmp_path / "p1.json", netns=c)
    assert out["stats"]["localhost"]["failures"] == 0, failures(out)
    assert kernel_policy(c) == ([], [])

    drops = rp_filter_drops(topo["router"])
    without = measure(topo)
    assert without["initial_source"] == "10.124.1.2"
    assert without["established_from_addr"] == 0, without
    if "dev" not in spec["endpoint"]:
        assert without["router_rp_filter_drops"] > drops  # the router dropped the subflow's SYN
    else:
        neigh = sh("ip", "-n", c, "neigh", "show", "10.124.3.2", "dev", "eth1").stdout
        assert "FAILED" in neigh or "INCOMPLETE" in neigh, neigh  # taken as on-link on eth1, no answer

    policy = dict(base, mptcp_host_policy_routing=True, **spec["policy"])
    out = run_playbook([role_play("check mode", check=True, **policy),
                        role_play("apply", **policy),
                        role_play("apply again", **policy)], tmp_path / "p2.json", netns=c)
    assert out["stats"]["localhost"]["failures"] == 0, failures(out)
    check, apply, again = out["plays"]
    assert {"Policy routing - connected routes of each address's table", "Policy routing - default route of each address's table",
            "Policy routing - rule of each address"} <= set(changed_tasks(check))
    assert {"Policy routing - connected routes of each address's table", "Policy routing - default route of each address's table",
            "Policy routing - rule of each address"} == set(changed_tasks(apply))
    assert changed_tasks(again) == []

    rules, routes = kernel_policy(c)
    priority = spec["policy"].get("mptcp_host_policy_routes", [{}])[0].get("priority", 1000)
    assert rules == [{"priority": priority, "src": "10.124.2.2", "table": spec["table"]}]
    assert sorted(routes, key=lambda r: r["dst"]) == [
        {"dst": "10.124.2.0/24", "dev": "eth1", "table": spec["table"], "scope": "link", "flags": []},
        {"dst": "default", "gateway": "10.124.2.1", "dev": "eth1", "table": spec["table"], "flags": []}]

    drops = rp_filter_drops(topo["router"])
    with_policy = measure(topo)
    assert with_policy["established_from_addr"] == 1, with_policy
    assert with_policy["mptcp_info_subflows"] == 1
    assert with_policy["router_rp_filter_drops"] == drops


def test_policy_routing_bad_input_fails_before_any_change(topo, tmp_path):
    c = topo["client"]
    cases = [
        ({"mptcp_host_endpoints": [{"address": "10.124.2.2", "flags": ["subflow"]}]}, ["10.124.2.2 has no dev"]),
        ({"mptcp_host_policy_routes": [{"address": "10.124.2.9", "dev": "eth1"}]},
         ["10.124.2.9 is not an address of dev eth1 (it has: 10.124.2.2"]),
        ({"mptcp_host_policy_routes": [{"address": "10.124.2.2", "dev": "eth7"}]}, ["mptcp_host_policy_routes: 10.124.2.2 dev 'eth7' does not exist"]),
        ({"mptcp_host_policy_routes": [{"address": "10.124.2.2", "dev": "eth1", "table": 254}]}, ["10.124.2.2 table 254 is outside 1-4294967295 or one of 253, 254, 255"]),
        ({"mptcp_host_policy_routes": [{"address": "10.124.2.2", "dev": "eth1", "priority": 32766}]},
         ["10.124.2.2 priority 32766 is outside 1-32765"]),
        ({"mptcp_host_policy_routes": [{"address": "10.124.2.2", "dev": "eth1", "table": 7},
                                       {"address": "10.124.1.2", "dev": "eth0", "table": 7}]},
         ["table 7 is given to more than one address"]),
        ({"mptcp_host_policy_routes": [{"address": "10.124.2.2", "dev": "eth1", "gateway": "fe80::1"}]},
         ["10.124.2.2 gateway fe80::1 is of the other address family"]),
    ]
    tasks = []
    for index, (variables, words) in enumerate(cases):
        variables = dict(variables, mptcp_host_policy_routing=True, mptcp_host_persist=False,
                         mptcp_host_persist_dir=str(tmp_path / "persist"),
                         mptcp_host_sysctl_file=str(tmp_path / "sysctl.conf"), mptcp_host_limits={"subflows": 3})
        tasks.append({"name": "case %d" % index, "block": [
            {"name": "run the role", "ansible.builtin.include_role": {"name": "multipath.mptcp.mptcp_host"}, "vars": variables},
            {"name": "not failed", "ansible.builtin.set_fact": {"msgs": "{{ msgs + ['NOT FAILED'] }}"}},
        ], "rescue": [{"name": "record", "ansible.builtin.set_fact": {"msgs": "{{ msgs + [ansible_failed_result.msg] }}"}}]})
    tasks.append({"name": "messages", "ansible.builtin.debug": {"var": "msgs"}})
    before = (kernel_policy(c), sh("ip", "-n", c, "mptcp", "limits", "show").stdout)
    out = run_playbook([{"name": "bad", "hosts": "localhost", "gather_facts": False, "vars": {"msgs": []}, "tasks": tasks}],
                       tmp_path / "bad.json", netns=c)
    msgs = out["plays"][0]["tasks"][-1]["hosts"]["localhost"]["msgs"]
    assert len(msgs) == len(cases), msgs
    for msg, (variables, words) in zip(msgs, cases):
        for word in words:
            assert word in msg, (variables, msg)
        assert "Nothing was changed" in msg
    assert (kernel_policy(c), sh("ip", "-n", c, "mptcp", "limits", "show").stdout) == before
    assert not os.path.exists(str(tmp_path / "sysctl.conf"))
