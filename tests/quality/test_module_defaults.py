"""The action group multipath.mptcp.netns (meta/runtime.yml): `netns` set once in module_defaults
reaches every module of the group, a task's own `netns` wins, and a change lands in the namespace."""
import glob
import json
import os
import re
import subprocess

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv", "bin")

# Each module of the group with arguments that pass its own validation, so that the first thing it
# meets is the namespace (all run in check mode).
GROUP_TASKS = {
    "ip_route": {"dest": "10.254.1.0/24", "state": "absent"},
    "ip_rule": {"src": "10.254.1.0/24", "table": "100", "state": "absent"},
    "mptcp_endpoint": {"address": "10.254.1.1", "state": "absent"},
    "mptcp_host_plan": {},
    "mptcp_info": {},
    "mptcp_limits": {"subflows": 2},
    "mptcp_monitor": {"state": "started"},
}


def limits(netns):
    """`ip mptcp limits show` of a namespace as {name: int} (its text: `add_addr_accepted 0 subflows 2`;
    iproute2 6.1 prints no JSON for it)."""
    words = subprocess.run(["ip", "-n", netns, "mptcp", "limits", "show"], capture_output=True, text=True,
                           check=True).stdout.split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}


def test_group_is_every_module_with_netns():
    with open(os.path.join(ROOT, "meta", "runtime.yml")) as f:
        groups = yaml.safe_load(f)["action_groups"]
    with_netns = []
    for path in sorted(glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py"))):
        with open(path) as f:
            if re.search(r"\bnetns=dict\(", f.read()):  # the option in the module's argument spec
                with_netns.append(os.path.basename(path)[:-3])
    assert groups == {"netns": with_netns}
    assert sorted(GROUP_TASKS) == groups["netns"]


def test_module_defaults_group_sets_netns(tmp_path):
    absent = "mptcp-defaults-absent-%d" % os.getpid()
    other = "mptcp-task-own-%d" % os.getpid()
    ns = "mptcp-defaults-%d" % os.getpid()
    plays = [
        {"hosts": "localhost", "gather_facts": False, "check_mode": True,
         "module_defaults": {"group/multipath.mptcp.netns": {"netns": absent}},
         "tasks": [{"name": module, "multipath.mptcp." + module: dict(args, path=str(tmp_path / "capture"))
                    if module == "mptcp_monitor" else args, "ignore_errors": True}
                   for module, args in sorted(GROUP_TASKS.items())]
         + [{"name": "own netns", "multipath.mptcp.mptcp_info": {"netns": other}, "ignore_errors": True}]},
        {"hosts": "localhost", "gather_facts": False,
         "module_defaults": {"group/multipath.mptcp.netns": {"netns": ns}},
         "tasks": [{"name": "limits in the namespace",
                    "multipath.mptcp.mptcp_limits": {"subflows": 3, "add_addr_accepted": 5}}]},
    ]
    playbook = tmp_path / "defaults.yml"
    playbook.write_text(json.dumps(plays))
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    # ansible itself runs in a namespace of its own too: should the default not reach a module, what
    # that module changes is in `outer` (thrown away), not in the host's namespace
    outer = "mptcp-defaults-outer-%d" % os.getpid()
    for name in (ns, outer):
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        proc = subprocess.run(["ip", "netns", "exec", outer, os.path.join(BIN, "ansible-playbook"), "-c", "local",
                               "-i", "localhost,", "-e", "ansible_python_interpreter=" + os.path.join(BIN, "python"),
                               str(playbook)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
                              check=False)
        ns_limits, outer_limits = limits(ns), limits(outer)
    finally:
        for name in (ns, outer):
            subprocess.run(["ip", "netns", "del", name], check=True)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON (rc %d): %s %s"
                             % (proc.returncode, proc.stdout, proc.stderr))
    first, second = ([(t["task"]["name"], t["hosts"]["localhost"]) for t in play["tasks"]] for play in out["plays"])
    assert [pair[0] for pair in first] == sorted(GROUP_TASKS) + ["own netns"]
    for name, result in first:
        wanted = other if name == "own netns" else absent
        assert result.get("failed") is True, (name, result)
        assert "network namespace %r does not exist" % wanted in result["msg"], (name, result["msg"])
    (name, result), = second
    assert result.get("failed") is not True and result["changed"] is True, result
    assert (ns_limits["subflows"], ns_limits["add_addr_accepted"]) == (3, 5), (ns_limits, outer_limits)
    assert (outer_limits["subflows"], outer_limits["add_addr_accepted"]) != (3, 5), outer_limits
