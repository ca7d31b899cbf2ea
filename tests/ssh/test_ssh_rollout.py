"""The rollout over SSH, for real: the `simple` scenario in a lab whose containers Ansible reaches
with `ansible_connection: ssh` and a key made by this test (tests/ssh/inventory.yml: ssh-client
and ssh-server on networks ssh-a 10.127.1.0/24 and ssh-b 10.127.2.0/24), with the collection's own
playbooks, as a user would run them against real hosts.

1. playbooks/scenario.yml (lab up, configure, check): the counts table of `simple`
   (CREATED 2, ESTABLISHED 2, ANNOUNCED 2, SF_ESTABLISHED 2, CLOSED 2), all `ok`.
2. playbooks/configure.yml again, then playbooks/check.yml: changed=0 on both hosts, the same
   exact counts.
3. playbooks/configure.yml --check --diff: no change and no diff on either host.
   Steps 2 and 3 run with DOCKER_HOST (and ansible_docker_docker_host) pointing at a socket that
   does not exist: anything in the roles or playbooks that needed Docker (a Docker connection, a
   community.docker module) fails.
4. In each container: root's authorized_keys has mode 0600 (.ssh 0700); sshd logged an "Accepted
   publickey for root" from the controller with this test's key in every step (each step gets its
   own SSH control sockets, so it logs in anew); every Ansible module that ran there (the
   "ansible-<module>" lines of the journal) ran under ssh.service, i.e. was started by sshd, not
   by `docker exec`.
5. playbooks/lab_down.yml leaves no ssh-* container or network.
"""
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "scenarios"))

from lab_container import dexec, docker_available, failures  # noqa: E402
from molecule_helpers import EXPECTED, leftovers  # noqa: E402

INVENTORY = os.path.join(HERE, "inventory.yml")
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
HOSTS = ("ssh-client", "ssh-server")
CHECKER = "ssh-client"
LOCK = "/tmp/multipath-mptcp-ssh-lab.lock"
NO_DOCKER = "unix:///nonexistent/multipath-mptcp-ssh-lab/docker.sock"
ROW = re.compile(r"^  (?P<event>[A-Z_]+)\s+(?P<expected>\d+)\s+(?P<seen>\d+)\s+(?P<verdict>ok|MISMATCH)$")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not docker_available(),
                                reason="needs root, a Docker engine and the lab image")


def playbook(name, key, *extra, docker=True, timeout=900):
    """ansible-playbook <name> with the SSH inventory; returns the ansible.posix.json output.
    docker=False: DOCKER_HOST points at nothing, so any use of Docker fails. Each call gets fresh
    SSH control sockets (a new login per host)."""
    control = tempfile.mkdtemp(prefix="sshcp-", dir="/tmp")  # short: a socket path has <= 107 chars
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_SSH_CONTROL_PATH_DIR=control, ANSIBLE_NO_TARGET_SYSLOG="False",
               ANSIBLE_FORCE_COLOR="0", NO_COLOR="1")
    cmd = [PLAYBOOK, "-i", INVENTORY, os.path.join(ROOT, "playbooks", name), "-e", "ssh_lab_key=%s" % key] + list(extra)
    if not docker:
        # community.docker modules and the docker CLI read DOCKER_HOST; the docker_api connection
        # plugin only its variable.
        env["DOCKER_HOST"] = NO_DOCKER
        cmd += ["-e", "ansible_docker_docker_host=%s" % NO_DOCKER]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(control, ignore_errors=True)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("%s printed no JSON (rc %d):\n%s\n%s" % (name, proc.returncode, proc.stdout[-4000:],
                                                                    proc.stderr[-4000:]))
    assert proc.returncode == 0, "%s %s failed (rc %d): %s\n%s" % (name, " ".join(extra), proc.returncode,
                                                                 failures(out), proc.stderr[-3000:])
    return out


def changed(out):
    """{host: changed count} of the play recap, lab hosts only."""
    return {h: s["changed"] for h, s in out["stats"].items() if h in HOSTS}


def changes_and_diffs(out):
    """Every task result on a lab host that reported a change or a non-empty diff."""
    found = []
    for play in out["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                results = res.get("results") or [res]
                for r in results:
                    diffs = r.get("diff") or []
                    diffs = diffs if isinstance(diffs, list) else [diffs]
                    if host in HOSTS and (r.get("changed") or any(d.get("prepared") or d.get("before") != d.get("after")
                                                                  for d in diffs if isinstance(d, dict))):
                        found.append("%s: %s" % (host, task["task"]["name"]))
    return found


def counts_table(out):
    """The rows of the counts table that mptcp_check printed on the checker: {event: (expected, seen, verdict)}."""
    for play in out["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith("Show the MPTCP events") and CHECKER in task["hosts"]:
                msg = task["hosts"][CHECKER]["msg"]
                assert msg[0] == "MPTCP events on %s" % CHECKER, msg
                return {m["event"]: (int(m["expected"]), int(m["seen"]), m["verdict"])
                        for m in map(ROW.match, msg) if m}
    raise AssertionError("no counts table in the output: %s" % failures(out))


def check_passed(out):
    for play in out["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith("Assert the exact counts and the traffic"):
                return task["hosts"][CHECKER].get("msg")
    return None


def key_fingerprint(key):
    out = subprocess.run(["ssh-keygen", "-lf", key + ".pub"], capture_output=True, text=True, check=True).stdout
    return out.split()[1]  # SHA256:...


def journal(host):
    """The container's journal as a list of entries (dicts)."""
    out = dexec(host, "journalctl", "--no-pager", "--output=json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def ssh_logins(host, fingerprint):
    """sshd's messages about root logins with the key of this fingerprint."""
    messages = [str(e.get("MESSAGE", "")) for e in journal(host) if e.get("SYSLOG_IDENTIFIER") == "sshd"]
    return [m for m in messages if m.startswith("Accepted publickey for root ") and m.endswith(" " + fingerprint)]


def module_runs(host):
    """(module, systemd unit, cgroup of its process) of every Ansible module that logged its invocation
    ("ansible-<module>: Invoked with ..."). journald reads the unit from /proc when it handles the
    message: for a module that had already exited (a busy machine) it has none, and the entry
    tells nothing; those are left out. A module run through `docker exec` has a cgroup outside
    every unit."""
    return [(e["SYSLOG_IDENTIFIER"][len("ansible-"):], e.get("_SYSTEMD_UNIT"), e["_SYSTEMD_CGROUP"])
            for e in journal(host)
            if str(e.get("SYSLOG_IDENTIFIER", "")).startswith("ansible-") and "_SYSTEMD_CGROUP" in e]


def test_simple_scenario_rolled_out_over_ssh(tmp_path):
    key = str(tmp_path / "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "multipath-mptcp-ssh-lab", "-f", key],
                   check=True)
    fingerprint = key_fingerprint(key)
    expected = EXPECTED["simple"]
    timings = {}

    def timed(step, *args, **kwargs):
        start = time.monotonic()
        out = playbook(*args, **kwargs)
        timings[step] = round(time.monotonic() - start, 1)
        return out

    def logins():
        return {h: len(ssh_logins(h, fingerprint)) for h in HOSTS}

    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        playbook("lab_down.yml", key)  # a fresh lab: containers left by an interrupted run have old journals
        try:
            # 1. The scenario, end to end, as playbooks/simple.yml runs it on the Docker lab.
            out = timed("scenario", "scenario.yml", key, "-e", "scenario=ssh")
            assert counts_table(out) == {e: (n, n, "ok") for e, n in expected.items()}, counts_table(out)
            assert check_passed(out) == "MPTCP check passed on %s" % CHECKER
            after_scenario = logins()
            assert all(n >= 1 for n in after_scenario.values()), after_scenario

            # 2. Again, without Docker: nothing to change, the same exact counts.
            out = timed("configure again", "configure.yml", key, "-e", "scenario=ssh", docker=False)
            assert changed(out) == {h: 0 for h in HOSTS}, changes_and_diffs(out)
            out = timed("check again", "check.yml", key, "-e", "scenario=ssh", docker=False)
            assert counts_table(out) == {e: (n, n, "ok") for e, n in expected.items()}, counts_table(out)
            assert check_passed(out) == "MPTCP check passed on %s" % CHECKER
            after_again = logins()

            # 3. The plan on configured hosts (check mode and diff), without Docker: empty.
            out = timed("check mode", "configure.yml", key, "-e", "scenario=ssh", "--check", "--diff", docker=False)
            assert changed(out) == {h: 0 for h in HOSTS}, changes_and_diffs(out)
            assert changes_and_diffs(out) == []
            after_plan = logins()

            # 4. Every step logged in over SSH with this key; every module ran under sshd.
            assert all(after_again[h] > after_scenario[h] for h in HOSTS), (after_scenario, after_again)
            assert all(after_plan[h] > after_again[h] for h in HOSTS), (after_again, after_plan)
            for host in HOSTS:
                mode = dexec(host, "stat", "-c", "%a %U %G", "/root/.ssh", "/root/.ssh/authorized_keys").stdout
                mode = mode.splitlines()
                assert mode[:2] == ["700 root root", "600 root root"], (host, mode)
                login = ssh_logins(host, fingerprint)[-1]
                # from the controller: the Docker host's address on ssh-a
                assert re.match(r"Accepted publickey for root from 10\.127\.1\.1 port \d+ ssh2: ED25519 ", login), login
                runs = module_runs(host)
                assert runs, "no Ansible module logged its run in %s" % host
                assert {unit for _, unit, _ in runs} == {"ssh.service"}, [r for r in runs if r[1] != "ssh.service"]
                modules = {m for m, _, _ in runs}
                assert {"multipath.mptcp.mptcp_host_plan", "multipath.mptcp.mptcp_proxy_instance"} <= modules, sorted(modules)
            # the modules that ran only where something differed or was checked (the server's limits
            # are the kernel's defaults already, so mptcp_limits ran on the client only)
            assert "multipath.mptcp.mptcp_endpoint" in {m for m, _, _ in module_runs("ssh-server")}
            assert {"multipath.mptcp.mptcp_limits", "multipath.mptcp.mptcp_monitor"} <= {m for m, _, _ in module_runs(CHECKER)}
        finally:
            # 5. Nothing left (also after a failure above, whose message is kept).
            timed("lab down", "lab_down.yml", key)
            print("timings (s): %s" % timings)
    assert leftovers("ssh") == [], leftovers("ssh")
