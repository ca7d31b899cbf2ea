"""Helpers of the collection-level tests (galaxy build and install, lab runs of the installed copy)."""
import os
import re
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".venv", "bin")
VENV_PY = os.path.join(BIN, "python")
with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as _galaxy:
    VERSION = re.search(r"^version: *(\S+)", _galaxy.read(), re.M).group(1)


def run(cmd, cwd=ROOT, timeout=1200, env=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def clean_env(config=None):
    """The environment without the caller's ANSIBLE_* settings (and the checkout's ansible.cfg),
    with ANSIBLE_CONFIG=config when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.pop("PYTHONPATH", None)
    if config:
        env["ANSIBLE_CONFIG"] = str(config)
    return env


def no_network_prefix():
    """`unshare --net` when this machine allows it (root): the command then has no network at all."""
    unshare = shutil.which("unshare")
    if unshare and run([unshare, "--net", "true"]).returncode == 0:
        return [unshare, "--net"]
    return []


def recap(stdout):
    """PLAY RECAP lines as {host: {ok: n, changed: n, failed: n, ...}}."""
    out = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", stdout, re.M):
        out[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return out


def play(installed_collection, *args, timeout=1800):
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", str(installed_collection["root"] / "inventories" / "lab")]
    return run(cmd + list(args), cwd=str(installed_collection["project"]), env=installed_collection["env"],
               timeout=timeout)


def lab_containers(prefix):
    proc = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [n for n in proc.stdout.split() if n.startswith(prefix)]


def assert_passed(proc, hosts, expected):
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-12000:]
    counts = recap(proc.stdout)
    assert set(hosts) <= set(counts), (counts, text[-4000:])
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), counts
    # the check's table: "  <EVENT>  <expected>  <seen>  ok" (exact names: CREATED is not LISTENER_CREATED)
    for event, n in expected.items():
        assert re.search(r"(?<![A-Z_])%s\s+%d\s+%d\s+ok\b" % (event, n, n), proc.stdout), (event, text[-6000:])
