"""A single systemd lab container for the persistence and conflict tests, on Docker networks of its
own (10.124.1x.0/24, never the lab inventory's 10.123.x or 10.124.{1,2,3}.0/24 of the namespace tests):
started as the lab role starts its containers (systemd as PID 1, NET_ADMIN + SYS_ADMIN), networks
attached one by one so that eth0/eth1 follow the order of the (sorted) network names, also after
`docker restart`."""
import json
import os
import subprocess
import time

from ansible_cli import ROOT, VENV_PY, sh

IMAGE = os.environ.get("MULTIPATH_LAB_IMAGE", "multipath-mptcp-lab:latest")


def docker_available():
    return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0


def dexec(name, *cmd, check=True):
    return sh("docker", "exec", name, *cmd, check=check)


def wait_booted(name, timeout=120):
    deadline = time.time() + timeout
    state = ""
    while time.time() < deadline:
        state = dexec(name, "systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(1)
    raise AssertionError("systemd in %s did not boot: %s" % (name, state))


def start(name, networks):
    """networks: [(network name, subnet, address)] in interface order (names must sort that way)."""
    remove(name, networks)
    for net, subnet, _ in networks:
        sh("docker", "network", "create", "--driver", "bridge", "--subnet", subnet, "--label", "multipath.mptcp.test=true", net)
    first = networks[0]
    sh("docker", "run", "-d", "--name", name, "--hostname", name, "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN",
       "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
       "--stop-signal", "SIGRTMIN+3", "--label", "multipath.mptcp.test=true",
       "--network", first[0], "--ip", first[2], IMAGE)
    for net, _, address in networks[1:]:
        sh("docker", "network", "connect", "--ip", address, net, name)
    wait_booted(name)


def remove(name, networks):
    sh("docker", "rm", "-f", name, check=False)
    for net, _, _ in networks:
        sh("docker", "network", "rm", net, check=False)


def inventory(path, name):
    with open(str(path), "w") as f:
        json.dump({"all": {"hosts": {name: {"ansible_connection": "community.docker.docker",
                                            "ansible_python_interpreter": "/usr/bin/python3"}}}}, f)
    return str(path)


def run_plays(plays, path, inventory_path):
    """ansible-playbook over the Docker connection; returns the ansible.posix.json output."""
    with open(str(path), "w") as f:
        json.dump(plays, f)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    proc = subprocess.run([os.path.join(os.path.dirname(VENV_PY), "ansible-playbook"), "-i", inventory_path, str(path)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON (rc %d): %s %s" % (proc.returncode, proc.stdout, proc.stderr))


def changed_tasks(play, host):
    return [t["task"]["name"].split(" : ")[-1] for t in play["tasks"]
            if host in t["hosts"] and (t["hosts"][host].get("changed")
                                       or any(r.get("changed") for r in t["hosts"][host].get("results", [])))]


def failures(out):
    return [h.get("msg") for p in out["plays"] for t in p["tasks"] for h in t["hosts"].values() if h.get("failed")]
