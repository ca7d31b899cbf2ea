"""Fault tests in a dedicated Docker lab (tests/faults/inventory.yml: faults-client and
faults-server, networks faults-a/faults-b on 10.125.1.0/24 and 10.125.2.0/24).

The lab is brought up with playbooks/lab_up.yml and configured with playbooks/configure.yml
(roles mptcp_host and mptcp_proxy), exactly as a user would, and torn down with
playbooks/lab_down.yml at the end.  Checked:
- a proxy killed with SIGKILL is restarted by systemd and a new connection works;
- after `docker restart` of both containers, the client's MPTCP limits are back from the
  boot-time unit (mptcp_host_persist: true), the server's signal endpoint is not (persist
  off there) until the playbook runs again; after the re-run, endpoints, limits and both
  proxies are as configured and a connection through the proxies joins the second path.
"""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INVENTORY = os.path.join(HERE, "inventory.yml")
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
CLIENT, SERVER = "faults-client", "faults-server"
BACKEND_PORT = 7000


def _docker_ok():
    if not shutil.which("docker") or os.geteuid() != 0:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _docker_ok(), reason="needs root and a working Docker engine")

RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                   re.M)

# Echo server for the backend of the server proxy (127.0.0.1:7000 in faults-server).
ECHO = r"""
import socket, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", %d)); srv.listen(16)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
""" % BACKEND_PORT

# Client: 1 MiB through the client proxy (127.0.0.1:5555 in faults-client), echoed back.
CLIENT_CODE = r"""
import hashlib, json, os, socket, threading
data = os.urandom(1 << 20)
s = socket.create_connection(("127.0.0.1", 5555), timeout=20)
got = []
def rd():
    while True:
        d = s.recv(65536)
        if not d:
            break
        got.append(d)
t = threading.Thread(target=rd); t.start()
s.sendall(data); s.shutdown(socket.SHUT_WR); t.join(30)
back = b"".join(got)
print(json.dumps({"sent": len(data), "back": len(back),
                  "equal": hashlib.sha256(back).digest() == hashlib.sha256(data).digest()}))
"""


def dx(host, *cmd, check=True, timeout=60):
    res = subprocess.run(["docker", "exec", host] + list(cmd), capture_output=True, text=True,
                         check=False, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError("docker exec %s %s: rc=%d %s" % (host, " ".join(cmd),
                                                             res.returncode, res.stderr))
    return res.stdout


def playbook(name, *extra):
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    res = subprocess.run([PLAYBOOK, "-i", INVENTORY, os.path.join(ROOT, "playbooks", name)]
                         + list(extra), cwd=ROOT, capture_output=True, text=True, env=env,
                         check=False, timeout=900)
    assert res.returncode == 0, "%s failed:\n%s\n%s" % (name, res.stdout[-6000:], res.stderr[-2000:])
    return {host: int(changed) for host, _ok, changed, _u, _f in RECAP.findall(res.stdout)}


def provision():
    changed = playbook("lab_up.yml", "-e", "lab_group=faults")
    for host, count in playbook("configure.yml", "-e", "scenario=faults").items():
        changed[host] = changed.get(host, 0) + count
    return changed


def start_backend():
    subprocess.run(["docker", "exec", "-d", SERVER, "python3", "-c", ECHO], check=True)
    deadline = time.monotonic() + 10
    while ":%d " % BACKEND_PORT not in dx(SERVER, "ss", "-Htln"):
        assert time.monotonic() < deadline, "echo backend does not listen"
        time.sleep(0.1)


def join_count(host):
    out = dx(host, "nstat", "-asz", "MPTcpExtMPJoinSynAckRx")
    match = re.search(r"MPTcpExtMPJoinSynAckRx\s+(\d+)", out)
    return int(match.group(1)) if match else 0


def echo_through_proxies():
    before = join_count(CLIENT)
    result = json.loads(dx(CLIENT, "python3", "-c", CLIENT_CODE).strip().splitlines()[-1])
    result["joins"] = join_count(CLIENT) - before
    return result


def unit(host, mode):
    out = dx(host, "systemctl", "show", "mptcp-proxy@%s.service" % mode,
             "-p", "MainPID", "-p", "ActiveState", "-p", "NRestarts")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def limits(host):
    out = dx(host, "ip", "mptcp", "limits", "show")
    return {k: int(v) for k, v in re.findall(r"(subflows|add_addr_accepted) (\d+)", out)}


def endpoints(host):
    return dx(host, "ip", "mptcp", "endpoint", "show")


def wait_booted(host, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = subprocess.run(["docker", "exec", host, "systemctl", "is-system-running"],
                             capture_output=True, text=True, check=False)
        if res.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise AssertionError("%s did not boot within %d s" % (host, timeout))


@pytest.fixture(scope="module")
def lab():
    try:
        provision()
        start_backend()
        yield
    finally:
        playbook("lab_down.yml", "-e", "lab_group=faults")


def test_lab_relays_over_both_paths(lab):
    result = echo_through_proxies()
    assert result == {"sent": 1 << 20, "back": 1 << 20, "equal": True, "joins": 1}


@pytest.mark.parametrize("host,mode", [(SERVER, "server"), (CLIENT, "client")])
def test_killed_proxy_is_restarted_by_systemd(lab, host, mode):
    before = unit(host, mode)
    assert before["ActiveState"] == "active" and int(before["MainPID"]) > 0
    dx(host, "kill", "-9", before["MainPID"])
    deadline = time.monotonic() + 15
    while True:
        now = unit(host, mode)
        if (now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"])
                and int(now["NRestarts"]) > int(before["NRestarts"])):
            break
        assert time.monotonic() < deadline, "not restarted within 15 s: %s" % now
        time.sleep(0.2)
    assert int(now["NRestarts"]) == int(before["NRestarts"]) + 1
    # The new process listens (RestartSec=1 plus start-up), then a new connection works.
    port = "5555" if mode == "client" else "4444"
    deadline = time.monotonic() + 10
    while ":%s " % port not in dx(host, "ss", "-Htln"):
        assert time.monotonic() < deadline, "restarted proxy does not listen on %s" % port
        time.sleep(0.1)
    result = echo_through_proxies()
    assert result["equal"] and result["back"] == 1 << 20, result


def test_restarted_containers_restored_by_playbook(lab):
    subprocess.run(["docker", "restart", CLIENT, SERVER], check=True, capture_output=True)
    for host in (CLIENT, SERVER):
        wait_booted(host)
    # Client: mptcp_host_persist true, the boot-time unit put the limits back.
    assert limits(CLIENT) == {"subflows": 2, "add_addr_accepted": 2}
    # Server: persistence off, a fresh network namespace has no endpoint.
    assert "10.125.2.2" not in endpoints(SERVER)

    changed = provision()
    assert changed.get(SERVER, 0) >= 1, changed  # the endpoint and limits were set again

    assert re.search(r"10\.125\.2\.2 id 1 signal dev eth1", endpoints(SERVER)), endpoints(SERVER)
    assert limits(SERVER) == {"subflows": 2, "add_addr_accepted": 0}
    assert limits(CLIENT) == {"subflows": 2, "add_addr_accepted": 2}
    for host, mode in ((CLIENT, "client"), (SERVER, "server")):
        assert unit(host, mode)["ActiveState"] == "active"
    start_backend()  # the test's echo server is not managed by the playbook
    result = echo_through_proxies()
    assert result == {"sent": 1 << 20, "back": 1 << 20, "equal": True, "joins": 1}

    # Running the roles again changes nothing.
    again = playbook("configure.yml", "-e", "scenario=faults")
    assert again.get(CLIENT) == 0 and again.get(SERVER) == 0, again
