"""Role multipath.mptcp.mptcp_host with bad input, against the real kernel in a network namespace:
every case fails before the first change, the error names the bad value, and everything the role
could change reads back the same after each case (net.mptcp.* and rp_filter sysctls, the sysctl
file, limits, endpoints, rules, routes of every table, the persist folder).

One ansible-playbook run (inside `ip netns exec`) holds every case, each in its own block with a
rescue and a read-back of the state after it: the cases stay independent, the run stays short.

Namespace: interfaces eth0 10.131.1.2/24 (peer `e;x`), eth1 10.131.2.2/24 + 2001:db8:131::2/64
(peer "e'x$y"), a pair `e$x` / "e`x" (legal names with shell characters); a TCP listener on
port 7000 (a port in use). Before the cases: limits 1/1, one endpoint, rp_filter 0, a sysctl file
with known content.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from ansible_cli import add_netns, run_playbook, sh
from host_state import STATE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

BUSY_PORT = 7000
LISTENER = ("import socket, sys\ns = socket.socket(socket.AF_INET6)\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('::', %d)); s.listen()\n"
            "print('ready', flush=True)\nsys.stdin.read()\n" % BUSY_PORT)

GOOD_EP = {"address": "10.131.2.2", "dev": "eth1", "flags": ["subflow"]}


def many(n):
    return [{"address": "10.131.9.%d" % (i + 1), "flags": ["subflow"]} for i in range(n)]


# (variables, words the error must contain). Every case also sets limits and endpoints that
# would change the kernel, so that a change before the check would show.
CASES = [
    ({"mptcp_host_endpoints": [GOOD_EP, {"address": "10.131.1.2", "dev": "eth9", "flags": ["signal"]}]},
     ["dev 'eth9' does not exist"]),
    ({"mptcp_host_limits": {"subflows": 9, "add_addr_accepted": 1}}, ["mptcp_host_limits.subflows 9 is outside 0-8"]),
    ({"mptcp_host_limits": {"subflows": 2, "add_addr_accepted": -1}}, ["add_addr_accepted -1 is outside 0-8"]),
    ({"mptcp_host_limits": {"subflows": "3\n"}}, ["subflows '3\\n' is not a whole number"]),
    ({"mptcp_host_limits": {"subflow": 3}}, ["mptcp_host_limits.subflow", "Supported parameters include: add_addr_accepted, subflows"]),
    ({"mptcp_host_endpoints": [GOOD_EP, {"address": "10.131.1.2", "flags": ["subflow"]},
                               {"address": "10.131.9.9", "flags": ["signal", "fullmesh"]}]},
     ["mptcp_host_endpoints[2] (10.131.9.9)", "'signal' and 'fullmesh' cannot be combined"]),
    ({"mptcp_host_endpoints": [{"address": "10.131.1.2", "dev": "eth0", "port": BUSY_PORT, "flags": ["signal"]}]},
     ["port %d is in use" % BUSY_PORT]),
    ({"mptcp_host_endpoints": many(9), "mptcp_host_purge_endpoints": True}, ["9 endpoints", "at most 8"]),
    ({"mptcp_host_endpoints": many(8)}, ["9 endpoints with the 1 unlisted ones", "10.131.1.2", "at most 8"]),
    ({"mptcp_host_sysctls": {"enabled": 0}}, ["mptcp_host_sysctls.enabled 0 contradicts mptcp_host_enabled True"]),
    ({"mptcp_host_enabled": False}, ["mptcp_host_enabled is false", "need MPTCP enabled"]),
    ({"mptcp_host_endpoints": [GOOD_EP, dict(GOOD_EP, flags=["signal"])]},
     ["lists address 10.131.2.2 more than once"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, id=4), {"address": "10.131.1.2", "id": 4, "flags": ["subflow"]}]},
     ["lists id 4 more than once"]),
    ({"mptcp_host_endpoints": [{"address": "2001:0db8:131::2", "flags": ["subflow"]},
                               {"address": "2001:db8:131::2", "flags": ["subflow"]}]},
     ["lists address 2001:db8:131::2 more than once"]),
    ({"mptcp_host_persist_dir": "/etc/multipath mptcp"}, ["mptcp_host_persist_dir '/etc/multipath mptcp' is not an absolute path"]),
    ({"mptcp_host_persist_dir": "etc/multipath-mptcp"}, ["mptcp_host_persist_dir 'etc/multipath-mptcp'"]),
    ({"mptcp_host_persist_dir": "/etc/../tmp/x"}, ["mptcp_host_persist_dir '/etc/../tmp/x'"]),
    ({"mptcp_host_persist_dir": "/etc/x\nExecStartPre=/bin/id"}, ["mptcp_host_persist_dir '/etc/x\\nExecStartPre=/bin/id'"]),
    ({"mptcp_host_persist_wait": 100000}, ["mptcp_host_persist_wait 100000 is outside 0-3600"]),
    ({"mptcp_host_sysctl_file": "/tmp/sysctl file.conf"}, ["mptcp_host_sysctl_file '/tmp/sysctl file.conf'"]),
    ({"mptcp_host_policy_routing": True,
      "mptcp_host_policy_routes": [{"address": "10.131.2.2", "dev": "eth1", "table": "100\n"}]},
     ["table '100\\n' is not a whole number"]),
    ({"mptcp_host_policy_routing": True, "mptcp_host_policy_routes": [{"address": "10.131.2.2", "dev": "eth1", "table": 0}]},
     ["table 0 is outside 1-4294967295"]),
    ({"mptcp_host_policy_routing": True, "mptcp_host_policy_routes": [{"address": "10.131.2.2", "dev": "eth1", "table": 255}]},
     ["table 255 is outside 1-4294967295 or one of 253, 254, 255"]),
    ({"mptcp_host_policy_routing": True,
      "mptcp_host_policy_routes": [{"address": "10.131.2.2", "dev": "eth1", "priority": 32766}]},
     ["priority 32766 is outside 1-32765"]),
    ({"mptcp_host_policy_routing": True,
      "mptcp_host_policy_routes": [{"address": "10.131.2.2", "dev": "eth1", "gateway": "fe80::1"}]},
     ["gateway fe80::1 is of the other address family"]),
    ({"mptcp_host_policy_routing": True, "mptcp_host_policy_routes": [{"address": "10.131.2.9", "dev": "eth1"}]},
     ["10.131.2.9 is not an address of dev eth1 (it has: 10.131.2.2"]),
    ({"mptcp_host_policy_routing": True, "mptcp_host_policy_table_base": 4294967295,
      "mptcp_host_policy_routes": [{"address": "10.131.2.2", "dev": "eth1"}, {"address": "10.131.1.2", "dev": "eth0"}]},
     ["table (mptcp_host_policy_table_base + 1) 4294967296 is outside"]),
    ({"mptcp_host_policy_routing": True, "mptcp_host_endpoints": []}, ["there is nothing to route"]),
    ({"mptcp_host_sysctls": {"nope": 1}}, ["mptcp_host_sysctls: nope not known by kernel"]),
    ({"mptcp_host_sysctls": {"../../kernel/hostname": "x"}}, ["key '../../kernel/hostname' is not a sysctl name"]),
    ({"mptcp_host_sysctls": {"add_addr_timeout": "60\nnet.ipv4.ip_forward=1"}},
     ["mptcp_host_sysctls.add_addr_timeout value '60\\nnet.ipv4.ip_forward=1' is not a number or a word"]),
    ({"mptcp_host_endpoints": [{"address": "10.131.2.256", "flags": ["subflow"]}]},
     ["address '10.131.2.256' is not an IPv4 or IPv6 address"]),
    ({"mptcp_host_endpoints": [{"address": "10.131.2.2;id", "flags": ["subflow"]}]},
     ["address '10.131.2.2;id' is not an IPv4 or IPv6 address"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, id=0)]}, ["id 0 is outside 1-255"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, id=256)]}, ["id 256 is outside 1-255"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, port=70000, flags=["signal"])]}, ["port 70000 is outside 1-65535"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, port=7001)]}, ["port 7001 needs the 'signal' flag"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, dev="abcdefghijklmnop")]}, ["dev 'abcdefghijklmnop' is not an interface name"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, dev="e/x")]}, ["dev 'e/x' is not an interface name"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, dev="e x")]}, ["dev 'e x' is not an interface name"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, dev="e;touch${IFS}X")]}, ["dev 'e;touch${IFS}X' does not exist"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, dev="e\nx")]}, ["dev 'e\\nx' is not an interface name"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, adress="10.131.2.3")]}, ["mptcp_host_endpoints.adress", "Supported parameters include"]),
    ({"mptcp_host_endpoints": [dict(GOOD_EP, gateway="10.131.2.x")]}, ["gateway '10.131.2.x' is not an IPv4 or IPv6 address"]),
    ({"mptcp_host_rp_filter": 3}, ["rp_filter", "3"]),  # refused by the role's argument spec
    ({"mptcp_host_endpoints": [dict(GOOD_EP, flags=["turbo"])]}, ["turbo"]),  # argument spec
    # several problems at once: all of them named
    ({"mptcp_host_limits": {"subflows": 10}, "mptcp_host_endpoints": [dict(GOOD_EP, id=300)],
      "mptcp_host_persist_dir": "rel"}, ["subflows 10 is outside", "id 300 is outside", "mptcp_host_persist_dir 'rel'"]),
]


@pytest.fixture(scope="module")
def ns(tmp_path_factory):
    name = "h3bad-%d" % os.getpid()
    listener = None
    try:
        add_netns(name)
        for a, b in (("eth0", "e;x"), ("eth1", "e'x$y"), ("e$x", "e`x")):
            sh("ip", "-n", name, "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "-n", name, "link", "set", a, "up")
            sh("ip", "-n", name, "link", "set", b, "up")
        sh("ip", "-n", name, "addr", "add", "10.131.1.2/24", "dev", "eth0")
        sh("ip", "-n", name, "addr", "add", "10.131.2.2/24", "dev", "eth1")
        sh("ip", "-n", name, "addr", "add", "2001:db8:131::2/64", "dev", "eth1", "nodad")
        sh("ip", "-n", name, "route", "add", "default", "via", "10.131.1.1")
        sh("ip", "-n", name, "mptcp", "limits", "set", "subflows", "1", "add_addr_accepted", "1")
        sh("ip", "-n", name, "mptcp", "endpoint", "add", "10.131.1.2", "dev", "eth0", "id", "9", "subflow")
        sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
        listener = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", LISTENER],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert listener.stdout.readline().strip() == "ready"
        base = tmp_path_factory.mktemp("h3bad")
        sysctl_file = base / "90-multipath-mptcp.conf"
        sysctl_file.write_text("# before the cases\nnet.mptcp.enabled=1\n")
        state_py = base / "state.py"
        state_py.write_text(STATE)
        yield {"name": name, "base": base, "sysctl_file": str(sysctl_file), "persist": str(base / "persist"),
               "state": [sys.executable, str(state_py), str(sysctl_file), str(base / "persist")]}
    finally:
        if listener is not None:
            listener.stdin.close()
            listener.wait(timeout=10)
        sh("ip", "netns", "del", name, check=False)


def read_state(ns):
    return json.loads(sh("ip", "netns", "exec", ns["name"], *ns["state"]).stdout)


def role_vars(ns, variables):
    base = {"mptcp_host_sysctl_file": ns["sysctl_file"], "mptcp_host_persist_dir": ns["persist"],
            "mptcp_host_limits": {"subflows": 3, "add_addr_accepted": 2}, "mptcp_host_endpoints": [GOOD_EP]}
    return dict(base, **variables)


def test_bad_input_fails_before_any_change(ns, tmp_path):
    assert len(CASES) >= 45
    tasks = []
    for index, (variables, _) in enumerate(CASES):
        tasks += [
            {"name": "case %d" % index, "block": [
                {"name": "run the role", "ansible.builtin.include_role": {"name": "multipath.mptcp.mptcp_host"},
                 "vars": role_vars(ns, variables)},
                {"name": "not failed", "ansible.builtin.set_fact": {"msgs": "{{ msgs + ['NOT FAILED'] }}"}},
            ], "rescue": [{"name": "record", "ansible.builtin.set_fact": {"msgs": "{{ msgs + [ansible_failed_result.msg] }}"}}]},
            # read back on the controller (the same namespace: ansible-playbook runs inside it)
            {"name": "read back after case %d" % index,
             "ansible.builtin.set_fact": {"states": "{{ states + [lookup('ansible.builtin.pipe', state_cmd) | from_json] }}"}},
        ]
    tasks.append({"name": "results", "ansible.builtin.debug": {"msg": {"msgs": "{{ msgs }}", "states": "{{ states }}"}}})
    before = read_state(ns)
    out = run_playbook([{"name": "bad input", "hosts": "localhost", "gather_facts": False,
                         "vars": {"msgs": [], "states": [], "state_cmd": " ".join(shlex.quote(a) for a in ns["state"])},
                         "tasks": tasks}], tmp_path / "bad.json", netns=ns["name"])
    results = out["plays"][0]["tasks"][-1]["hosts"]["localhost"]["msg"]
    msgs, states = results["msgs"], results["states"]
    assert len(msgs) == len(CASES) == len(states), msgs
    problems = []
    for index, ((variables, words), msg, state) in enumerate(zip(CASES, msgs, states)):
        missing = [w for w in words if w not in msg]
        if missing:
            problems.append("case %d %r: %r not in %r" % (index, variables, missing, msg))
        if state != before:
            changed = [k for k in before if state[k] != before[k]]
            problems.append("case %d %r changed %s" % (index, variables, changed))
        if "Validation of arguments failed" not in msg:
            assert msg.endswith("Nothing was changed."), msg
    assert not problems, "\n".join(problems)
    assert before["sysctl_file"].startswith("# before the cases")
    assert before["persist"] is None
    assert before["sysctls"]["/proc/sys/net/ipv4/conf/all/rp_filter"] == "0"
    assert before["limits"].split() == ["add_addr_accepted", "1", "subflows", "1"]


def test_good_input_canonical_ipv6_and_shell_characters_converge(ns, tmp_path):
    """The role applies a valid configuration with interface names full of shell characters and a
    non-canonical IPv6 address (purging): check mode first changes nothing, the run applies, a
    second run changes nothing."""
    variables = role_vars(ns, {
        "mptcp_host_endpoints": [
            {"address": "10.131.1.2", "dev": "e;x", "id": 3, "flags": ["subflow"]},
            {"address": "2001:0DB8:131::2", "dev": "eth1", "flags": ["signal"], "port": 7002},
            {"address": "10.131.2.2", "dev": "e'x$y", "flags": ["subflow", "backup"]},
        ],
        "mptcp_host_purge_endpoints": True, "mptcp_host_persist": False})
    play = {"hosts": "localhost", "gather_facts": False, "roles": [{"role": "multipath.mptcp.mptcp_host", "vars": variables}]}
    before = read_state(ns)
    out = run_playbook([dict(play, name="check", check_mode=True), dict(play, name="apply"), dict(play, name="again")],
                       tmp_path / "good.json", netns=ns["name"])
    assert out["stats"]["localhost"]["failures"] == 0, out["plays"]
    check, apply, again = out["plays"]
    after = read_state(ns)
    try:
        assert len([t for t in again["tasks"] if t["hosts"]["localhost"].get("changed")]) == 0
        assert before["endpoints"] != after["endpoints"]
        assert sorted((e["address"], e.get("dev"), e.get("port"), e["id"] == 3) for e in after["endpoints"]) == [
            ("10.131.1.2", "e;x", None, True), ("10.131.2.2", "e'x$y", None, False), ("2001:db8:131::2", "eth1", 7002, False)]
        assert after["limits"].split() == ["add_addr_accepted", "2", "subflows", "3"]
        assert after["sysctls"]["/proc/sys/net/ipv4/conf/all/rp_filter"] == "2"
    finally:
        # put the namespace back as the other test expects it (module-scoped fixture)
        sh("ip", "-n", ns["name"], "mptcp", "endpoint", "flush")
        sh("ip", "-n", ns["name"], "mptcp", "endpoint", "add", "10.131.1.2", "dev", "eth0", "id", "9", "subflow")
        sh("ip", "-n", ns["name"], "mptcp", "limits", "set", "subflows", "1", "add_addr_accepted", "1")
        sh("ip", "netns", "exec", ns["name"], "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0",
           "net.ipv4.conf.default.rp_filter=0")
        with open(ns["sysctl_file"], "w") as f:
            f.write("# before the cases\nnet.mptcp.enabled=1\n")
        shutil.rmtree(ns["persist"], ignore_errors=True)  # the record of the values before the run
    assert read_state(ns) == before
