"""The boot restore program (roles/boot_restore/files/multipath-mptcp-restore) against the real
kernel in a network namespace, on a plan built by role mptcp_host from a configuration whose
interface names are full of shell characters (all legal for the kernel): `e;touch${IFS}X`,
"e'x$y", "e`x", `e$x`.

- The plan the role builds restores exactly what the role configured (limits, endpoints with the
  kernel's ids, policy routes and rules) after the kernel state was wiped, and nothing else runs:
  no file X appears (in the working directory or /), shims for sh/touch/bash on PATH are never
  called, and every command the program logs is `ip ...`.
- Everything is bounded: a step that keeps succeeding runs repeat_max + 1 times, missing
  interfaces are waited for at most wait_seconds, and plans that ask for anything but ip/tc, bad
  interface names, bad step fields or a plan writable by others are refused with nothing run.
"""
import json
import os
import stat
import subprocess

import pytest

from ansible_cli import ROOT, add_netns, run_playbook, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

PROGRAM = os.path.join(ROOT, "roles", "boot_restore", "files", "multipath-mptcp-restore")
EVIL = "e;touch${IFS}X"
QUOTE = "e'x$y"


@pytest.fixture(scope="module")
def ns(tmp_path_factory):
    name = "h3rst-%d" % os.getpid()
    try:
        add_netns(name)
        for a, b in ((EVIL, QUOTE), ("e`x", "e$x")):
            sh("ip", "-n", name, "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "-n", name, "link", "set", a, "up")
            sh("ip", "-n", name, "link", "set", b, "up")
        sh("ip", "-n", name, "addr", "add", "10.131.21.2/24", "dev", EVIL)
        sh("ip", "-n", name, "addr", "add", "10.131.22.2/24", "dev", QUOTE)
        sh("ip", "-n", name, "addr", "add", "10.131.23.2/24", "dev", "e`x")
        sh("ip", "-n", name, "route", "add", "default", "via", "10.131.21.1", "dev", EVIL)
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def kernel(ns):
    def j(*args):
        return json.loads(sh("ip", "-n", ns, "-j", *args).stdout or "[]")
    return {
        "limits": sh("ip", "-n", ns, "mptcp", "limits", "show").stdout,
        "endpoints": j("mptcp", "endpoint", "show"),
        "rules": j("rule", "show"),
        "routes": sorted((r for r in j("route", "show", "table", "all") if r.get("table") not in ("local",)), key=json.dumps),
    }


def wipe(ns):
    sh("ip", "-n", ns, "mptcp", "endpoint", "flush")
    sh("ip", "-n", ns, "mptcp", "limits", "set", "subflows", "0", "add_addr_accepted", "0")
    for rule in json.loads(sh("ip", "-n", ns, "-j", "rule", "show").stdout):
        if rule["priority"] not in (0, 32766, 32767):
            sh("ip", "-n", ns, "rule", "del", "priority", str(rule["priority"]))
    for table in ("100", "101", "102"):
        sh("ip", "-n", ns, "route", "flush", "table", table, check=False)


def run_program(ns, plan_path, cwd, *extra):
    """The program as the unit runs it (as root, in the namespace), with shims for sh, bash and
    touch first on PATH that leave a mark if anything ever calls them."""
    shims = os.path.join(str(cwd), "shims")
    os.makedirs(shims, exist_ok=True)
    for tool in ("sh", "bash", "dash", "touch"):
        path = os.path.join(shims, tool)
        with open(path, "w") as f:
            f.write("#!/bin/sh\necho %s >> %s/CALLED\n" % (tool, shims))
        os.chmod(path, 0o755)
    env = dict(os.environ, PATH=shims + ":" + os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), IFS=" ")
    proc = subprocess.run(["ip", "netns", "exec", ns, PROGRAM] + list(extra) + [str(plan_path)],
                          capture_output=True, text=True, cwd=str(cwd), env=env, timeout=300)
    assert not os.path.exists(os.path.join(shims, "CALLED")), open(os.path.join(shims, "CALLED")).read()
    return proc


def ran(proc):
    return [line.split(": run: ", 1)[1] for line in proc.stderr.splitlines() if ": run: " in line]


def write_plan(path, steps=(), **fields):
    plan = dict({"version": 1, "wait_devices": [], "wait_seconds": 0, "sysctl_file": "", "steps": list(steps)}, **fields)
    with open(str(path), "w") as f:
        json.dump(plan, f)
    os.chmod(str(path), 0o644)
    return path


def test_role_plan_restores_state_and_runs_nothing_but_ip(ns, tmp_path):
    variables = {
        "mptcp_host_sysctl_file": str(tmp_path / "sysctl.conf"), "mptcp_host_persist": False,
        "mptcp_host_persist_dir": str(tmp_path / "persist"),  # the record of the values before the run
        "mptcp_host_limits": {"subflows": 4, "add_addr_accepted": 2},
        "mptcp_host_endpoints": [
            {"address": "10.131.21.2", "dev": EVIL, "flags": ["signal"], "port": 7101},
            {"address": "10.131.22.2", "dev": QUOTE, "id": 7, "flags": ["subflow", "backup"]},
            {"address": "10.131.23.2", "dev": "e`x", "flags": ["subflow"]},
        ],
        "mptcp_host_purge_endpoints": True,
        "mptcp_host_policy_routing": True,
        "mptcp_host_policy_routes": [{"address": "10.131.22.2", "dev": QUOTE, "gateway": "10.131.22.1"},
                                     {"address": "10.131.23.2", "dev": "e`x", "table": 102, "priority": 900}],
    }
    plan_path = tmp_path / "mptcp_host.json"
    play = {"name": "configure", "hosts": "localhost", "gather_facts": False,
            "roles": [{"role": "multipath.mptcp.mptcp_host", "vars": variables}],
            # the plan the role hands to boot_restore (written by it on hosts with systemd)
            "post_tasks": [{"name": "plan", "ansible.builtin.copy": {
                "dest": str(plan_path), "mode": "0644",
                "content": "{{ {'version': 1, 'wait_devices': __mptcp_host_plan.devices, 'wait_seconds': 5,"
                           " 'sysctl_file': mptcp_host_sysctl_file, 'steps': __mptcp_host_restore_steps} | to_json }}"}}]}
    out = run_playbook([play], tmp_path / "configure.json", netns=ns)
    assert out["stats"]["localhost"]["failures"] == 0, out["plays"][0]["tasks"][-3:]
    configured = kernel(ns)
    assert len(configured["endpoints"]) == 3
    assert {"priority": 900, "src": "10.131.23.2", "table": "102"} in configured["rules"]

    plan = json.loads(plan_path.read_text())
    assert plan["wait_devices"] == [EVIL, QUOTE, "e`x"]
    assert all(step["argv"][0] == "ip" for step in plan["steps"])
    # the evil name is one argument, exactly as given
    assert ["ip", "mptcp", "endpoint", "add", "10.131.21.2", "dev", EVIL, "id", "1", "port", "7101", "signal"] in [
        s["argv"] for s in plan["steps"]]

    wipe(ns)
    assert kernel(ns) != configured
    proc = run_program(ns, plan_path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert kernel(ns) == configured
    assert not os.path.exists(str(tmp_path / "X")) and not os.path.exists("/X")
    commands = ran(proc)
    assert len(commands) >= len(plan["steps"]) and all(c.startswith("ip ") for c in commands), commands

    # again on the restored state: still the same (it replaces what it restores)
    proc = run_program(ns, plan_path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert kernel(ns) == configured


def test_bounded_repeat_wait_and_failures(ns, tmp_path):
    # a step that keeps succeeding: repeat_max + 1 runs, then the next step
    plan = write_plan(tmp_path / "repeat.json", [
        {"argv": ["ip", "link", "show", "lo"], "on_error": "ignore", "repeat_max": 5},
        {"argv": ["ip", "-4", "rule", "del", "priority", "1234", "table", "100\n"], "on_error": "ignore", "repeat_max": 64},
        {"argv": ["ip", "link", "show", "dev", EVIL]},
    ], wait_devices=["missing0"], wait_seconds=1)
    proc = run_program(ns, plan, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ran(proc) == ["ip link show lo"] * 6 + ['ip -4 rule del priority 1234 table "100\\n"', 'ip link show dev "e;touch${IFS}X"']
    assert "interfaces still missing after 1s: missing0" in proc.stderr

    # a failing reported step: the others still run, exit 1, the command named
    plan = write_plan(tmp_path / "fail.json", [
        {"argv": ["ip", "link", "show", "dev", "nosuchdev"]}, {"argv": ["ip", "link", "show", "lo"]}])
    proc = run_program(ns, plan, tmp_path)
    assert proc.returncode == 1
    assert "failed (rc 1): ip link show dev nosuchdev" in proc.stderr
    assert ran(proc) == ["ip link show dev nosuchdev", "ip link show lo"]


BAD_PLANS = [
    ({"steps": [{"argv": ["sh", "-c", "touch X"]}]}, "'sh' may not be run (only ip, tc)"),
    ({"steps": [{"argv": ["/bin/sh", "-c", "touch X"]}]}, "'/bin/sh' may not be run"),
    ({"steps": [{"argv": ["ip", "link"], "on_error": "shell"}]}, "on_error 'shell' is not one of report, ignore"),
    ({"steps": [{"argv": ["ip", "link"], "repeat_max": 100000}]}, "repeat_max 100000 is not 0-256"),
    ({"steps": [{"argv": ["ip", "link"], "run": "touch X"}]}, "is not {argv, on_error, repeat_max}"),
    ({"steps": [{"argv": "ip link; touch X"}]}, "argv must be a non-empty list of strings"),
    ({"steps": [{"argv": ["ip", 5]}]}, "argv must be a non-empty list of strings"),
    ({"wait_devices": ["e/../x"]}, "wait_devices must be a list of interface names"),
    ({"wait_devices": ["e\nx"]}, "wait_devices must be a list of interface names"),
    ({"wait_seconds": 100000}, "wait_seconds 100000 is not a number of seconds 0-3600"),
    ({"sysctl_file": "relative.conf"}, "sysctl_file 'relative.conf' is not an absolute path"),
    ({"version": 2}, "not a version 1 plan"),
]


@pytest.mark.parametrize("index", range(len(BAD_PLANS)))
def test_bad_plan_refused_with_nothing_run(ns, tmp_path, index):
    fields, words = BAD_PLANS[index]
    plan = write_plan(tmp_path / "bad.json", **dict({"steps": [{"argv": ["ip", "link", "show", "lo"]}]}, **fields))
    for extra in ((), ("--check",)):
        proc = run_program(ns, plan, tmp_path, *extra)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "nothing was restored" in proc.stderr, proc.stderr
        assert ran(proc) == []
    assert not os.path.exists(str(tmp_path / "X"))


def test_plan_writable_by_others_refused(ns, tmp_path):
    plan = write_plan(tmp_path / "open.json", [{"argv": ["ip", "link", "show", "lo"]}])
    os.chmod(str(plan), 0o666)
    proc = run_program(ns, plan, tmp_path)
    assert proc.returncode == 2 and "must be owned by root and writable by root only" in proc.stderr
    assert ran(proc) == []
    os.chmod(str(plan), stat.S_IRUSR | stat.S_IWUSR)
    assert run_program(ns, plan, tmp_path).returncode == 0
