"""Persistence across a reboot without Ansible: roles mptcp_host (limits, endpoints, policy routing,
sysctls) and router (routes, ECMP, tbf shaping, forwarding) applied to a systemd lab container (each
restored by a JSON plan of ip/tc argument vectors, run by the boot_restore program), then
`docker restart` (a new network namespace: the kernel forgets routes, endpoints and limits; systemd
boots again and runs the restore units), then everything read back with ip/tc/sysctl and compared
with what was there before the restart. A route added by hand (not by the roles) is gone after the
restart: proof that the state really was lost and restored, not kept.

Container: eth0 10.124.10.2/24, eth1 10.124.11.2/24 (Docker networks mptcp-persist-a/-b, gateways .1).
"""
import json

import pytest

from lab_container import changed_tasks, dexec, docker_available, failures, inventory, remove, run_plays, start, wait_booted
from ansible_cli import sh

pytestmark = pytest.mark.skipif(not docker_available(), reason="needs Docker and the lab image")

NAME = "mptcp-persist-host"
NETWORKS = [("mptcp-persist-a", "10.124.10.0/24", "10.124.10.2"), ("mptcp-persist-b", "10.124.11.0/24", "10.124.11.2")]

MPTCP_HOST = {
    "mptcp_host_sysctls": {"allow_join_initial_addr_port": 0, "add_addr_timeout": 60},
    "mptcp_host_limits": {"subflows": 3, "add_addr_accepted": 2},
    "mptcp_host_endpoints": [
        {"address": "10.124.10.2", "dev": "eth0", "flags": ["subflow"]},                      # id from the kernel
        {"address": "10.124.11.2", "dev": "eth1", "id": 7, "flags": ["subflow", "backup"]},
    ],
    "mptcp_host_purge_endpoints": True,
    "mptcp_host_policy_routing": True,   # gateways from the main table (eth0) or given (eth1)
    "mptcp_host_policy_routes": [{"address": "10.124.10.2", "dev": "eth0"},
                                 {"address": "10.124.11.2", "dev": "eth1", "gateway": "10.124.11.1"}],
}
ROUTER = {
    "router_ip_forward": True,
    "router_rp_filter": 2,
    "router_routes": [
        {"dest": "10.124.99.0/24", "via": "10.124.10.1", "metric": 5},
        {"dest": "10.124.98.0/24", "nexthops": [{"via": "10.124.10.1", "weight": 3}, {"via": "10.124.11.1"}]},
        {"dest": "10.124.97.0/24", "via": "10.124.11.1", "table": "50"},
    ],
    "router_rate_limits": [{"dev": "eth1", "rate": "20mbit"}],
}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    start(NAME, NETWORKS)
    try:
        yield inventory(tmp_path_factory.mktemp("persist") / "inventory.json", NAME)
    finally:
        remove(NAME, NETWORKS)


def state():
    """Everything the roles set that the kernel forgets at a reboot, read with ip/tc/sysctl."""
    def j(*cmd):
        return json.loads(dexec(NAME, *cmd).stdout or "[]")
    routes = [r for r in j("ip", "-j", "route", "show", "table", "all")
              if r.get("protocol") != "kernel" and r.get("table") != "local" and r.get("type") != "multicast"]
    return {
        "endpoints": j("ip", "-j", "mptcp", "endpoint", "show"),
        "limits": dexec(NAME, "ip", "mptcp", "limits", "show").stdout.split(),
        "rules": j("ip", "-j", "rule", "show"),
        "routes": sorted(routes, key=json.dumps),
        "qdisc_eth1": [{k: q[k] for k in ("kind", "options")} for q in j("tc", "-j", "qdisc", "show", "dev", "eth1") if q.get("root")],
        "sysctls": dexec(NAME, "sysctl", "-n", "net.mptcp.allow_join_initial_addr_port", "net.mptcp.add_addr_timeout",
                         "net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter").stdout.split(),
        # by name: after a restart the interfaces may be created in another order (ifindex)
        "addresses": sorted((a["ifname"], [i["local"] for i in a.get("addr_info", [])]) for a in j("ip", "-j", "-4", "addr", "show")),
    }


def test_configuration_survives_a_restart_without_ansible(host, tmp_path):
    plays = [{"name": "configure", "hosts": NAME, "gather_facts": False, "roles": [
        {"role": "multipath.mptcp.mptcp_host", "vars": MPTCP_HOST}, {"role": "multipath.mptcp.router", "vars": ROUTER}]}]
    out = run_plays(plays, tmp_path / "apply.json", host)
    assert out["stats"][NAME]["failures"] == 0, failures(out)

    before = state()
    # what was configured is there
    assert before["limits"] == ["add_addr_accepted", "2", "subflows", "3"]
    assert before["endpoints"] == [{"address": "10.124.10.2", "id": 1, "subflow": True, "dev": "eth0"},
                                   {"address": "10.124.11.2", "id": 7, "subflow": True, "backup": True, "dev": "eth1"}]
    assert {"priority": 1000, "src": "10.124.11.2", "table": "101"} in before["rules"]
    assert {"priority": 1000, "src": "10.124.10.2", "table": "100"} in before["rules"]
    assert {"dst": "default", "gateway": "10.124.11.1", "dev": "eth1", "table": "101", "flags": []} in before["routes"]
    assert {"dst": "default", "gateway": "10.124.10.1", "dev": "eth0", "table": "100", "flags": []} in before["routes"]
    assert before["qdisc_eth1"][0]["kind"] == "tbf" and before["qdisc_eth1"][0]["options"]["rate"] == 2500000
    assert before["sysctls"] == ["0", "60", "1", "2"]
    units = ["multipath-mptcp-host.service", "multipath-mptcp-router.service"]
    assert dexec(NAME, "systemctl", "is-enabled", *units).stdout.split() == ["enabled", "enabled"]

    # a route the roles do not manage: must be gone after the restart
    dexec(NAME, "ip", "route", "add", "10.124.96.0/24", "via", "10.124.10.1")
    assert any(r["dst"] == "10.124.96.0/24" for r in state()["routes"])

    sh("docker", "restart", NAME)
    assert wait_booted(NAME) == "running", dexec(NAME, "systemctl", "--failed", "--no-legend", check=False).stdout
    for unit in units:
        shown = dexec(NAME, "systemctl", "show", "-p", "ActiveState", "-p", "Result", "-p", "ExecMainStatus", unit).stdout.split()
        assert shown == ["Result=success", "ExecMainStatus=0", "ActiveState=active"], (unit, shown)

    after = state()
    assert not any(r["dst"] == "10.124.96.0/24" for r in after["routes"])  # the namespace was new
    before["routes"] = [r for r in before["routes"] if r["dst"] != "10.124.96.0/24"]
    for key in before:
        assert after[key] == before[key], key

    # and a run after the reboot has nothing to do (the restore was complete and the role idempotent)
    third = run_plays(plays, tmp_path / "third.json", host)
    assert third["stats"][NAME]["failures"] == 0, failures(third)
    assert changed_tasks(third["plays"][0], NAME) == []


def test_persist_false_removes_the_units(host, tmp_path):
    plays = [{"name": "unpersist", "hosts": NAME, "gather_facts": False, "roles": [
        {"role": "multipath.mptcp.mptcp_host", "vars": dict(MPTCP_HOST, mptcp_host_persist=False)},
        {"role": "multipath.mptcp.router", "vars": dict(ROUTER, router_persist=False)}]}]
    out = run_plays(plays, tmp_path / "off.json", host)
    assert out["stats"][NAME]["failures"] == 0, failures(out)
    assert "Remove the restore unit and plan" in changed_tasks(out["plays"][0], NAME)
    listing = dexec(NAME, "ls", "/etc/systemd/system", "/etc/multipath-mptcp").stdout
    assert "multipath-mptcp-host.service" not in listing and "multipath-mptcp-router.service" not in listing
    assert "mptcp_host.json" not in listing and "router.json" not in listing
    again = run_plays(plays, tmp_path / "off2.json", host)
    assert changed_tasks(again["plays"][0], NAME) == []
