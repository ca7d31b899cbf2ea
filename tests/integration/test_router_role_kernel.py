"""Role multipath.mptcp.router against the real kernel: ansible-playbook runs inside a network
namespace (`ip netns exec`), so its `ip`, `tc` and net.* sysctls are the namespace's; only the
sysctl file is redirected (router_sysctl_file) into the test's temporary folder.

The namespace is seed 001's server: eth0 10.123.200.2/24 and eth1 10.123.201.2/24 towards the router
(10.123.200.3, 10.123.201.3). Between the plays, raw tasks read the kernel with ip/tc/sysctl.
"""
import json
import os

import pytest

from ansible_cli import run_playbook, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

SEED_ECMP = {"dest": "10.123.202.0/24", "nexthops": [{"via": "10.123.200.3", "weight": 1}, {"via": "10.123.201.3", "weight": 1}]}
STATIC = {"dest": "10.123.203.0/24", "via": "10.123.200.3", "table": "100", "metric": 5}
READS = {
    "routes": "ip -j -4 route show table all",
    "qdiscs": "tc -j qdisc show",
    "sysctls": "sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding",
}


@pytest.fixture
def ns():
    name = "rt-%d-a" % os.getpid()
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        for index in (0, 1):
            dev, peer = "eth%d" % index, "peer%d" % index
            sh("ip", "link", "add", dev, "netns", name, "type", "veth", "peer", "name", peer, "netns", name)
            sh("ip", "-n", name, "addr", "add", "10.123.20%d.2/24" % index, "dev", dev)
            sh("ip", "-n", name, "link", "set", dev, "up")
            sh("ip", "-n", name, "link", "set", peer, "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def state(ns):
    """What the role may change, read directly: managed routes, root qdiscs, forwarding sysctls."""
    routes = [r for r in json.loads(sh("ip", "-j", "-n", ns, "-4", "route", "show", "table", "all").stdout)
              if r.get("protocol") != "kernel" and r.get("table") != "local"]
    qdiscs = {q["dev"]: q for q in json.loads(sh("ip", "netns", "exec", ns, "tc", "-j", "qdisc", "show").stdout) if q.get("root")}
    sysctls = sh("ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding").stdout.split()
    return routes, qdiscs, sysctls


def role_play(name, check=False, **variables):
    return {"name": name, "hosts": "localhost", "gather_facts": False, "check_mode": check,
            "roles": [{"role": "multipath.mptcp.router", "vars": variables}]}


def read_play(name, sysctl_file):
    reads = dict(READS, sysctl_file="cat %s 2>/dev/null || echo none" % sysctl_file)
    return {"name": name, "hosts": "localhost", "gather_facts": False,
            "tasks": [{"name": key, "ansible.builtin.raw": cmd} for key, cmd in reads.items()]}


def changed_tasks(play):
    """Names (without the role prefix) of the play's tasks that reported a change."""
    return [t["task"]["name"].split(" : ")[-1] for t in play["tasks"] if t["hosts"]["localhost"].get("changed")]


def reads(play):
    out = {t["task"]["name"]: t["hosts"]["localhost"]["stdout"] for t in play["tasks"]}
    routes = [r for r in json.loads(out["routes"]) if r.get("protocol") != "kernel" and r.get("table") != "local"]
    qdiscs = {q["dev"]: q for q in json.loads(out["qdiscs"]) if q.get("root")}
    return routes, qdiscs, out["sysctls"].split(), out["sysctl_file"].split()


def test_router_role_check_apply_idempotent_and_change(ns, tmp_path):
    sysctl_file = str(tmp_path / "90-multipath-router.conf")
    first = dict(router_sysctl_file=sysctl_file, router_persist_dir=str(tmp_path / "persist"), router_routes=[SEED_ECMP, STATIC],
                 router_rate_limits=[{"dev": "eth0", "rate": "50mbit"},
                                     {"dev": "eth1", "rate": "20mbit", "burst": "32k", "latency": "20ms"}])
    second = dict(router_sysctl_file=sysctl_file, router_persist_dir=str(tmp_path / "persist"),
                  router_routes=[dict(SEED_ECMP, nexthops=[{"via": "10.123.200.3", "weight": 2}, {"via": "10.123.201.3"}]),
                                 dict(STATIC, state="absent")],
                  router_rate_limits=[{"dev": "eth0", "rate": "40mbit"}, {"dev": "eth1", "state": "absent"}])
    before = state(ns)
    out = run_playbook([
        role_play("check mode on a fresh host", check=True, **first), read_play("after check mode", sysctl_file),
        role_play("apply", **first), read_play("after apply", sysctl_file),
        role_play("apply again", **first),
        role_play("change", **second), read_play("after change", sysctl_file),
    ], tmp_path / "play.json", netns=ns)
    plays = out["plays"]
    assert out["stats"]["localhost"]["failures"] == 0, [
        t["hosts"]["localhost"].get("msg") for p in plays for t in p["tasks"] if t["hosts"]["localhost"].get("failed")]

    # check mode: changes reported (sysctls, routes, shaping), none made, no sysctl file
    assert set(changed_tasks(plays[0])) >= {"Set forwarding and the reverse path filter", "Manage routes",
                                            "Report what check mode would change"}
    assert reads(plays[1]) == before + (["none"],)

    # applied: the seed's ECMP route, the static route in table 100, tbf on both links, forwarding
    routes, qdiscs, sysctls, conf = reads(plays[3])
    assert {"dst": "10.123.202.0/24", "flags": [], "nexthops": [
        {"gateway": "10.123.200.3", "dev": "eth0", "weight": 1, "flags": []},
        {"gateway": "10.123.201.3", "dev": "eth1", "weight": 1, "flags": []}]} in routes
    assert {"dst": "10.123.203.0/24", "gateway": "10.123.200.3", "dev": "eth0", "table": "100", "metric": 5,
            "flags": []} in routes
    assert (qdiscs["eth0"]["kind"], qdiscs["eth0"]["options"]["rate"], qdiscs["eth0"]["options"]["lat"]) == ("tbf", 6250000, 50000)
    assert abs(qdiscs["eth0"]["options"]["burst"] - 62500) < 100  # default: 10 ms of the rate
    assert (qdiscs["eth1"]["kind"], qdiscs["eth1"]["options"]["rate"], qdiscs["eth1"]["options"]["lat"]) == ("tbf", 2500000, 20000)
    assert sysctls == ["1", "1"]
    assert conf == ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]

    # second run: nothing to do
    assert changed_tasks(plays[4]) == []

    # changed variables: weights, a route removed, a rate changed, shaping removed
    assert set(changed_tasks(plays[5])) == {"Manage routes", "Shape links with tbf, or remove the shaping"}
    routes, qdiscs, sysctls, conf = reads(plays[6])
    ecmp = [r for r in routes if r["dst"] == "10.123.202.0/24"]
    assert [(h["gateway"], h["weight"]) for h in ecmp[0]["nexthops"]] == [("10.123.200.3", 2), ("10.123.201.3", 1)]
    assert not [r for r in routes if r["dst"] == "10.123.203.0/24"]
    assert (qdiscs["eth0"]["kind"], qdiscs["eth0"]["options"]["rate"]) == ("tbf", 5000000)
    assert qdiscs["eth1"]["kind"] == "noqueue"


def test_router_absent_puts_the_host_back_as_it_was(ns, tmp_path):
    """Apply, absent in check mode (nothing changes), absent (routes, qdiscs, forwarding and
    rp_filter as before, the sysctl file and the record gone), absent again (nothing to do)."""
    sysctl_file = str(tmp_path / "90-multipath-router.conf")
    persist = tmp_path / "persist"
    persist.mkdir()
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv4.conf.all.rp_filter=1",
       "net.ipv4.conf.default.rp_filter=1")
    variables = dict(router_sysctl_file=sysctl_file, router_persist=False, router_persist_dir=str(persist),
                     router_rp_filter=2, router_routes=[SEED_ECMP, STATIC],
                     router_rate_limits=[{"dev": "eth0", "rate": "50mbit"}])
    read = read_play("read", sysctl_file)
    read["tasks"].append({"name": "rp_filter", "ansible.builtin.raw":
                          "sysctl -n net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter"})
    read["tasks"].append({"name": "persist", "ansible.builtin.raw": "ls %s" % persist})
    before = state(ns)
    out = run_playbook([
        role_play("apply", **variables), read,
        role_play("absent, check mode", check=True, router_state="absent", **variables), read,
        role_play("absent", router_state="absent", **variables), read,
        role_play("absent again", router_state="absent", **variables), read,
    ], tmp_path / "absent.json", netns=ns)
    plays = out["plays"]
    assert out["stats"]["localhost"]["failures"] == 0, [
        t["hosts"]["localhost"].get("msg") for p in plays for t in p["tasks"] if t["hosts"]["localhost"].get("failed")]

    def extra(play):
        out = {t["task"]["name"]: t["hosts"]["localhost"]["stdout"].split() for t in play["tasks"]}
        return out["rp_filter"], out["persist"]

    routes, qdiscs, sysctls, conf = reads(plays[1])
    assert len(routes) == 2 and qdiscs["eth0"]["kind"] == "tbf" and sysctls == ["1", "1"]
    assert extra(plays[1]) == (["2", "2"], ["router.before.json"])
    assert "net.ipv4.ip_forward=1" in conf
    assert reads(plays[3]) == reads(plays[1]) and extra(plays[3]) == extra(plays[1])  # check mode changed nothing
    assert set(changed_tasks(plays[2])) >= {"Manage routes", "Report what check mode would change"}
    assert reads(plays[5]) == before + (["none"],)
    assert extra(plays[5]) == (["1", "1"], [])
    assert set(changed_tasks(plays[4])) >= {"Manage routes", "Set forwarding and the reverse path filter"}
    assert changed_tasks(plays[6]) == [] and reads(plays[7]) == before + (["none"],)
    assert before[2][0] == "0"  # forwarding was off before: putting it back shows


BAD = [
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "fast"}]), ["dev eth0", "rate fast is not a tc rate"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "50"}]), ["rate 50 is not a tc rate"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "50mbit", "burst": "lots", "latency": "soon"}]),
     ["burst lots is not a tc size", "latency soon is not a tc time"]),
    (dict(router_rate_limits=[{"dev": "eth0"}]), ["rate is required"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "1mbit"}, {"dev": "eth0", "rate": "2mbit"}]),
     ["dev eth0 is listed more than once in router_rate_limits"]),
    (dict(router_rate_limits=[{"dev": "nosuch0", "rate": "10mbit"}]), ["dev nosuch0 does not exist"]),
    (dict(router_rate_limits=[{"dev": "eth0", "rate": "10mbit", "delay": "10ms", "loss": "1%"}]),
     ["netem is not available", "eth0 (delay 10ms, loss 1%)", "Nothing was changed"]),
    (dict(router_routes=[{"dest": "10.123.202.0/24", "nexthops": [{"via": "10.123.200.3", "weight": 0},
                                                                  {"via": "10.123.201.3"}]}]),
     ["nexthops[0] weight 0 is outside 1-256"]),
    (dict(router_routes=[{"dest": "10.123.202.0/33", "via": "10.123.200.3"}]), ["dest '10.123.202.0/33'"]),
    (dict(router_routes=[{"via": "10.123.200.3"}]), ["dest"]),  # argument_specs: dest is required
]


# the failure message, and those of the failed items of a loop
RECORD = ("{{ router_test_msgs + [ansible_failed_result.msg | default('') ~ ' ' ~ (ansible_failed_result.results"
          " | default([]) | selectattr('failed', 'defined') | selectattr('failed') | map(attribute='msg') | join(' '))] }}")


def test_router_role_bad_input_fails_naming_it_with_nothing_changed(ns, tmp_path):
    """Every case lists a valid route and rate limit before the bad entry: nothing may be applied."""
    sysctl_file = str(tmp_path / "90-multipath-router.conf")
    good_route = {"dest": "10.123.209.0/24", "via": "10.123.200.3"}
    good_limit = {"dev": "eth1", "rate": "10mbit"}
    tasks = []
    for index, (variables, words) in enumerate(BAD):
        # (a good route costs a module run in the check pass: in the route cases and the last rate ones)
        variables = dict(variables, router_sysctl_file=sysctl_file,
                         router_routes=[good_route] * (index >= 5) + variables.get("router_routes", []),
                         router_rate_limits=[good_limit] + variables.get("router_rate_limits", []))
        tasks.append({"name": "case %d" % index, "block": [
            {"name": "run the role", "ansible.builtin.include_role": {"name": "multipath.mptcp.router"}, "vars": variables},
            {"name": "not failed", "ansible.builtin.set_fact": {"router_test_msgs": "{{ router_test_msgs + ['NOT FAILED'] }}"}},
        ], "rescue": [
            {"name": "record", "ansible.builtin.set_fact": {"router_test_msgs": RECORD}},
        ]})
    tasks.append({"name": "messages", "ansible.builtin.debug": {"var": "router_test_msgs"}})
    before = state(ns)
    out = run_playbook([{"name": "bad input", "hosts": "localhost", "gather_facts": False,
                         "vars": {"router_test_msgs": []}, "tasks": tasks}], tmp_path / "bad.json", netns=ns)
    msgs = out["plays"][0]["tasks"][-1]["hosts"]["localhost"]["router_test_msgs"]
    assert len(msgs) == len(BAD), msgs
    for msg, (variables, words) in zip(msgs, BAD):
        for word in words:
            assert word in msg, (variables, msg)
    assert state(ns) == before and not os.path.exists(sysctl_file)


def test_gateway_reached_through_a_device_route_of_the_same_run(ns, tmp_path):
    """A gateway that only a device route listed before it makes reachable is not refused in
    advance (check mode on a fresh host works too); an unreachable one next to it still is."""
    sysctl_file = str(tmp_path / "90-multipath-router.conf")
    routes = [{"dest": "10.50.0.0/24", "dev": "eth0"}, {"dest": "10.60.0.0/24", "via": "10.50.0.1"}]
    common = dict(router_sysctl_file=sysctl_file, router_ip_forward=False, router_persist=False,
                  router_persist_dir=str(tmp_path / "persist"))
    before = state(ns)
    out = run_playbook([
        role_play("check mode", check=True, router_routes=routes, **common), read_play("after check", sysctl_file),
        {"name": "with an unreachable gateway too", "hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "run", "block": [{"name": "role", "ansible.builtin.include_role": {"name": "multipath.mptcp.router"},
                                       "vars": dict(common, router_routes=routes + [{"dest": "10.61.0.0/24", "via": "10.9.9.9"}])}],
             "rescue": [{"name": "failed", "ansible.builtin.debug": {"msg": "{{ ansible_failed_result.msg }}"}}]}]},
        read_play("after the failure", sysctl_file),
        role_play("apply", router_routes=routes, **common), read_play("after apply", sysctl_file),
    ], tmp_path / "run.json", netns=ns)
    plays = out["plays"]
    assert out["stats"]["localhost"]["failures"] == 0
    assert "Manage routes" in changed_tasks(plays[0]) and reads(plays[1]) == before + (["none"],)
    failed = [t["hosts"]["localhost"]["msg"] for t in plays[2]["tasks"] if t["task"]["name"] == "failed"]
    assert failed and "via 10.9.9.9 is not reachable" in failed[0], plays[2]
    assert reads(plays[3]) == before + (["none"],)
    routes_after = reads(plays[5])[0]
    assert {"dst": "10.50.0.0/24", "dev": "eth0", "scope": "link", "flags": []} in routes_after
    assert {"dst": "10.60.0.0/24", "gateway": "10.50.0.1", "dev": "eth0", "flags": []} in routes_after
