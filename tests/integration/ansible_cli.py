"""Helpers shared by the kernel tests: run a collection module through ansible itself (the `ansible`
ad-hoc command of this .venv, on localhost, results as JSON), run a command, check a failure."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV_PY = sys.executable


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def add_netns(name):
    """A network namespace with lo up and no IPv6 link-local addresses (they would appear, after
    DAD, while a test reads the state)."""
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1")


def run_module(module, check=False, diff=False, **args):
    """Run multipath.mptcp.<module> on localhost through ansible; return the task result dict."""
    cmd = [os.path.join(os.path.dirname(VENV_PY), "ansible"), "localhost", "-c", "local", "-i", "localhost,",
           "-e", "ansible_python_interpreter=%s" % VENV_PY, "-m", "multipath.mptcp." + module, "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible printed no JSON (rc %d): %s %s" % (proc.returncode, proc.stdout, proc.stderr))
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def assert_failed_naming(result, *words):
    assert result.get("failed") is True, result
    for word in words:
        assert word in result["msg"], result["msg"]


def run_playbook(plays, path, netns=None, check=False):
    """Run a playbook (a list of plays, written as JSON to `path`) on localhost through
    ansible-playbook, inside network namespace `netns` when given (`ip netns exec`: then `ip`, `tc`
    and net.* sysctls of the whole run are the namespace's). Returns the ansible.posix.json output."""
    with open(str(path), "w") as f:
        json.dump(plays, f)
    cmd = [os.path.join(os.path.dirname(VENV_PY), "ansible-playbook"), "-c", "local", "-i", "localhost,",
           "-e", "ansible_python_interpreter=%s" % VENV_PY, str(path)]
    if check:
        cmd.append("--check")
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON (rc %d): %s %s" % (proc.returncode, proc.stdout, proc.stderr))


def module_task(module, check=False, diff=False, **args):
    """A task that runs multipath.mptcp.<module> with `args` (for run_tasks)."""
    return {"name": module, "multipath.mptcp." + module: args, "check_mode": check, "diff": diff}


def read_task(*argv):
    """A task that reads kernel state with a plain command (for run_tasks): its result's stdout is
    what the command printed at that point of the run, independently of the collection's modules."""
    return {"name": "read " + " ".join(argv), "ansible.builtin.command": {"argv": list(argv)}, "changed_when": False}


def run_tasks(tasks, path, netns=None):
    """Run `tasks` (dicts) in one play on localhost, each with ignore_errors; return their results."""
    tasks = [dict(task, ignore_errors=True) for task in tasks]
    out = run_playbook([{"name": "kernel test", "hosts": "localhost", "gather_facts": False, "tasks": tasks}],
                       path, netns=netns)
    results = [task["hosts"]["localhost"] for task in out["plays"][0]["tasks"]]
    assert len(results) == len(tasks), out
    return results
