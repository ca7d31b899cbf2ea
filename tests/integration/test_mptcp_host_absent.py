"""Role multipath.mptcp.mptcp_host with mptcp_host_state absent, against the real kernel in a
network namespace: the state read back after apply + absent equals the state before apply
(net.mptcp.* and rp_filter sysctls, the sysctl file, limits, endpoints, rules, routes of every
table, the persist folder); check mode changes nothing; a second absent run changes nothing.

Namespace: eth0 10.132.1.2/24 (default route via 10.132.1.1), eth1 10.132.2.2/24; before the
role: limits 1/1, rp_filter 0, add_addr_timeout 120, an endpoint the role does not list (it stays),
no sysctl file, an empty persist folder (the role keeps that folder).
"""
import json
import os
import sys

import pytest

from ansible_cli import add_netns, run_playbook, sh
from host_state import STATE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


@pytest.fixture
def ns(tmp_path):
    name = "h3abs-%d" % os.getpid()
    try:
        add_netns(name)
        for dev, peer, net in (("eth0", "p0", "10.132.1"), ("eth1", "p1", "10.132.2")):
            sh("ip", "-n", name, "link", "add", dev, "type", "veth", "peer", "name", peer)
            sh("ip", "-n", name, "addr", "add", net + ".2/24", "dev", dev)
            sh("ip", "-n", name, "link", "set", dev, "up")
            sh("ip", "-n", name, "link", "set", peer, "up")
        sh("ip", "-n", name, "route", "add", "default", "via", "10.132.1.1")
        sh("ip", "-n", name, "mptcp", "limits", "set", "subflows", "1", "add_addr_accepted", "1")
        sh("ip", "-n", name, "mptcp", "endpoint", "add", "10.132.1.2", "dev", "eth0", "id", "9", "subflow")
        sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0",
           "net.ipv4.conf.default.rp_filter=0", "net.mptcp.add_addr_timeout=120")
        (tmp_path / "persist").mkdir()
        (tmp_path / "state.py").write_text(STATE)
        yield {"name": name, "sysctl_file": str(tmp_path / "90-multipath-mptcp.conf"), "persist": str(tmp_path / "persist"),
               "state": [sys.executable, str(tmp_path / "state.py"), str(tmp_path / "90-multipath-mptcp.conf"),
                         str(tmp_path / "persist")]}
    finally:
        sh("ip", "netns", "del", name, check=False)


def test_absent_puts_the_host_back_as_it_was(ns, tmp_path):
    variables = {
        "mptcp_host_sysctl_file": ns["sysctl_file"], "mptcp_host_persist_dir": ns["persist"], "mptcp_host_persist": False,
        "mptcp_host_sysctls": {"add_addr_timeout": 60},
        "mptcp_host_limits": {"subflows": 3, "add_addr_accepted": 2},
        "mptcp_host_endpoints": [{"address": "10.132.2.2", "dev": "eth1", "flags": ["signal"]}],
        "mptcp_host_policy_routing": True,
    }
    read = {"name": "read the state", "ansible.builtin.command": {"argv": ns["state"]}, "changed_when": False,
            "check_mode": False}

    record_path = os.path.join(ns["persist"], "mptcp_host.before.json")
    read_record = {"name": "read the record", "ansible.builtin.command": {"argv": ["cat", record_path]},
                   "changed_when": False}

    def play(name, state, check=False, extra=()):
        return {"name": name, "hosts": "localhost", "gather_facts": False, "check_mode": check,
                "roles": [{"role": "multipath.mptcp.mptcp_host", "vars": dict(variables, mptcp_host_state=state)}],
                "post_tasks": list(extra) + [read]}

    before = json.loads(sh("ip", "netns", "exec", ns["name"], *ns["state"]).stdout)
    out = run_playbook([play("apply", "present", extra=[read_record]), play("check", "absent", check=True), play("absent", "absent"),
                        play("again", "absent")], tmp_path / "absent.json", netns=ns["name"])
    assert out["stats"]["localhost"]["failures"] == 0, out["plays"]
    states = {p["play"]["name"]: json.loads(p["tasks"][-1]["hosts"]["localhost"]["stdout"]) for p in out["plays"]}
    changed = {p["play"]["name"]: [t["task"]["name"] for t in p["tasks"] if t["hosts"]["localhost"].get("changed")]
               for p in out["plays"]}

    applied = states["apply"]
    mptcp = "/proc/sys/net/mptcp/"
    assert applied["limits"].split() == ["add_addr_accepted", "2", "subflows", "3"]
    assert sorted(e["address"] for e in applied["endpoints"]) == ["10.132.1.2", "10.132.2.2"]
    assert applied["sysctls"][mptcp + "add_addr_timeout"] == "60"
    assert applied["sysctls"]["/proc/sys/net/ipv4/conf/all/rp_filter"] == "2"
    assert "net.mptcp.add_addr_timeout=60" in applied["sysctl_file"]
    assert [r for r in applied["rules"] if r.get("src") == "10.132.2.2" and r.get("table") == "100"]
    assert [r for r in applied["routes"] if r.get("table") == "100"]
    assert applied["persist"] == ["mptcp_host.before.json"]
    record = json.loads(out["plays"][0]["tasks"][-2]["hosts"]["localhost"]["stdout"])
    assert record["limits"] == {"subflows": 1, "add_addr_accepted": 1}
    assert record["sysctls"]["net.mptcp.add_addr_timeout"] == "120"
    assert record["sysctls"]["net.ipv4.conf.all.rp_filter"] == "0"

    assert states["check"] == applied, "check mode changed the host"
    assert changed["check"], "check mode announced no change"
    assert states["absent"] == before
    assert changed["absent"], "absent changed nothing"
    assert states["again"] == before and changed["again"] == [], changed["again"]
    assert before["persist"] == [] and before["sysctl_file"].startswith("missing")
    assert [(e["address"], e["id"]) for e in before["endpoints"]] == [("10.132.1.2", 9)]
