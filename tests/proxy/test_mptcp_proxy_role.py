"""The mptcp_proxy role on a systemd lab container of its own (pxy-role, Docker networks
pxy-net-a 10.126.10.0/24 and pxy-net-b 10.126.11.0/24): converge and relay, idempotence,
the listeners on exactly the given addresses, the address filter (IPAddressAllow=),
`systemd-analyze security`, and bad inputs, each with the host's state read back after it
(unit files, argument files, units, listening sockets) and compared with the state before."""
import hashlib
import json
import os
import re
import socket
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import lab_container as lc  # noqa: E402

NAME = "pxy-role"
NETWORKS = [("pxy-net-a", "10.126.10.0/24", "10.126.10.2"),
            ("pxy-net-b", "10.126.11.0/24", "10.126.11.2")]
ROLE = "multipath.mptcp.mptcp_proxy"
SERVER = {"mptcp_proxy_mode": "server", "mptcp_proxy_port": 24444,
          "mptcp_proxy_remote": "127.0.0.1:25201",
          "mptcp_proxy_listen": ["10.126.10.2", "10.126.11.2"]}
CLIENT = {"mptcp_proxy_mode": "client", "mptcp_proxy_instance": "smoke-client",
          "mptcp_proxy_port": 25555, "mptcp_proxy_remote": "10.126.10.2:24444",
          "mptcp_proxy_listen": "127.0.0.1"}

pytestmark = pytest.mark.skipif(not lc.docker_available() or os.geteuid() != 0,
                                reason="needs root, Docker and the lab image")

# Everything the role could change, read in one go on the host.
SNAPSHOT = r"""
import hashlib, json, os, subprocess
files = {}
for top in ("/etc/mptcp-proxy", "/etc/systemd/system", "/usr/local/bin"):
    for folder, _dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(folder, name)
            if "mptcp-proxy" in path and os.path.isfile(path):
                with open(path, "rb") as fh:
                    files[path] = hashlib.sha256(fh.read()).hexdigest()
run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True).stdout
units = run("systemctl", "list-units", "--all", "--no-legend", "--plain", "mptcp-proxy@*")
listening = sorted(line.split()[3] for line in run("ss", "-Hltn").splitlines())
print(json.dumps({"files": files, "units": sorted(units.split("\n")), "listening": listening}))
"""


def role_task(vars_, name="Include the role"):
    return {"name": name, "ansible.builtin.include_role": {"name": ROLE}, "vars": vars_}


def play(tasks):
    return [{"name": "mptcp_proxy", "hosts": NAME, "gather_facts": False, "tasks": tasks}]


def snapshot():
    return json.loads(lc.dexec(NAME, "python3", "-c", SNAPSHOT).stdout)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    lc.start(NAME, NETWORKS)
    path = tmp_path_factory.mktemp("pxy")
    inventory = lc.inventory(path / "inventory.json", NAME)
    try:
        yield path, inventory
    finally:
        lc.remove(NAME, NETWORKS)


def run(host, tasks, name, check=False):
    path, inventory = host
    plays = play(tasks)
    if check:
        plays[0]["check_mode"] = True
        plays[0]["diff"] = True
    return lc.run_plays(plays, path / ("%s.json" % name), inventory)


def failures(out):
    return [(t["task"]["name"], t["hosts"][NAME].get("msg"))
            for t in out["plays"][0]["tasks"] if t["hosts"].get(NAME, {}).get("failed")]


@pytest.fixture(scope="module")
def converged(host):
    """Both instances converged twice; the second run changes nothing."""
    tasks = [role_task(SERVER, "Server instance"), role_task(CLIENT, "Client instance")]
    first = run(host, tasks, "converge1")
    assert failures(first) == []
    second = run(host, tasks, "converge2")
    assert failures(second) == []
    assert lc.changed_tasks(second["plays"][0], NAME) == []
    return first, second


def test_converge_listens_where_told_and_relays(converged):
    state = snapshot()
    # Listeners on exactly the given addresses; no wildcard.
    assert {"10.126.10.2:24444", "10.126.11.2:24444", "127.0.0.1:25555"} <= set(state["listening"])
    assert not [a for a in state["listening"] if a.endswith((":24444", ":25555"))
                and a.split(":")[0] in ("0.0.0.0", "*", "[::]")]
    conf = lc.dexec(NAME, "cat", "/etc/mptcp-proxy/server.conf").stdout.splitlines()
    assert [line for line in conf if not line.startswith("#")] == [
        "--mode=server", "--port=24444", "--remote=127.0.0.1:25201", "--listen=10.126.10.2",
        "--listen=10.126.11.2", "--max-connections=1024", "--idle-timeout=3600"]
    dropin = lc.dexec(NAME, "cat", "/etc/systemd/system/mptcp-proxy@server.service.d/"
                      "ip-access.conf").stdout
    # Derived: localhost, the on-link prefixes, the remote.
    assert "IPAddressAllow=localhost 10.126.10.2/24 10.126.11.2/24 127.0.0.1\n" in dropin
    # 4 MiB through both instances to a sink on the host, digest compared.
    relay = r"""
import hashlib, os, socket, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 25201)); srv.listen()
def sink():
    conn, _ = srv.accept(); digest = hashlib.sha256()
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            break
        digest.update(chunk)
    conn.sendall(digest.hexdigest().encode()); conn.close()
thread = threading.Thread(target=sink); thread.start()
data = os.urandom(4 << 20)
sock = socket.create_connection(("127.0.0.1", 25555), timeout=20)
sock.sendall(data); sock.shutdown(socket.SHUT_WR)
reply = b""
while True:
    chunk = sock.recv(100)
    if not chunk:
        break
    reply += chunk
thread.join()
print(reply.decode() == hashlib.sha256(data).hexdigest())
"""
    assert lc.dexec(NAME, "python3", "-c", relay).stdout.strip() == "True"


def test_systemd_security_exposure(converged, capsys):
    out = lc.dexec(NAME, "systemd-analyze", "security", "mptcp-proxy@server.service").stdout
    line = out.strip().splitlines()[-1]
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", line).group(1))
    with capsys.disabled():
        print("\n" + line)
    assert score <= 2.0, out


def test_ip_allow_drops_other_sources(host, converged):
    # The Docker host is 10.126.10.1, on the derived on-link prefix: it reaches the
    # server instance (whose backend does not exist: a reset, proof it got through).
    with pytest.raises(ConnectionResetError):
        with socket.create_connection(("10.126.10.2", 24444), timeout=10) as sock:
            sock.recv(1)
    out = run(host, [role_task(dict(SERVER, mptcp_proxy_ip_allow=["localhost", "10.126.10.3"]))],
              "allow")
    assert failures(out) == []
    try:
        sock = socket.socket()
        sock.settimeout(3)
        with pytest.raises(socket.timeout):  # SYN dropped by the unit's filter
            sock.connect(("10.126.10.2", 24444))
        sock.close()
    finally:
        out = run(host, [role_task(SERVER)], "allow-back")
        assert failures(out) == []


BAD = [
    # (case, role variables, text the error must hold)
    ("listen missing", {k: v for k, v in SERVER.items() if k != "mptcp_proxy_listen"},
     "mptcp_proxy_listen is required"),
    ("listen not local", dict(SERVER, mptcp_proxy_listen="10.9.9.9"),
     'mptcp_proxy_listen: ["10.9.9.9"] is not an address of this host'),
    ("listen host name", dict(SERVER, mptcp_proxy_listen="proxy.example"),
     'mptcp_proxy_listen: "proxy.example" is not an IP address'),
    ("listen twice", dict(SERVER, mptcp_proxy_listen=["10.126.10.2", "10.126.10.2"]),
     "lists an address twice"),
    ("listen empty list", dict(SERVER, mptcp_proxy_listen=[]), "non-empty list"),
    ("port used by sshd", dict(SERVER, mptcp_proxy_instance="fresh", mptcp_proxy_port=22),
     'mptcp_proxy_port=22 is in use by another program: [{"address": "0.0.0.0", '
     '"processes": ["sshd"]'),
    ("port used by another instance", dict(CLIENT, mptcp_proxy_instance="fresh",
                                           mptcp_proxy_listen="0.0.0.0",
                                           mptcp_proxy_port=24444),
     "mptcp_proxy_port=24444 is in use by another program"),
    ("unknown extra option", dict(SERVER, mptcp_proxy_extra_args=["--bogus"]),
     "mptcp-proxy rejects its arguments"),
    ("bad extra value", dict(SERVER, mptcp_proxy_extra_args=["--connect-timeout=abc"]),
     "argument --connect-timeout: 'abc' is not a number"),
    ("extra arg with a unit line", dict(SERVER, mptcp_proxy_extra_args=[
        "--verbose\nExecStartPre=/bin/sh -c 'id > /PWNED'"]), "holds a line break"),
    ("extra arg sets listen", dict(SERVER, mptcp_proxy_extra_args=["--listen=0.0.0.0"]),
     'mptcp_proxy_extra_args: "--listen=0.0.0.0" sets an option the role sets'),
    ("extra arg comment", dict(SERVER, mptcp_proxy_extra_args=["#x"]), "starts with '#'"),
    ("ip_allow prefix 33", dict(SERVER, mptcp_proxy_ip_allow=["10.0.0.0/33"]),
     'mptcp_proxy_ip_allow: "10.0.0.0/33" is not an IP address'),
    ("ip_allow unit line", dict(SERVER, mptcp_proxy_ip_allow=["any\nExecStartPre=/bin/true"]),
     "mptcp_proxy_ip_allow: \"any\\nExecStartPre=/bin/true\" is not"),
    ("max_connections 0", dict(SERVER, mptcp_proxy_max_connections=0),
     "mptcp_proxy_max_connections=0 is outside 1-1000000"),
    ("idle_timeout negative", dict(SERVER, mptcp_proxy_idle_timeout=-5),
     "mptcp_proxy_idle_timeout=-5"),
    ("remote IPv6 without brackets", dict(SERVER, mptcp_proxy_remote="::1:80"),
     'mptcp_proxy_remote="::1:80" is not host:port'),
    ("instance with a slash", dict(SERVER, mptcp_proxy_instance="a/b"),
     'mptcp_proxy_instance="a/b" may only contain'),
    ("bin_path with a space", dict(SERVER, mptcp_proxy_bin_path="/usr/local/bin/mptcp proxy"),
     '"/usr/local/bin/mptcp proxy" (mptcp_proxy_bin_path/mptcp_proxy_config_dir) must be'),
    ("port 70000", dict(SERVER, mptcp_proxy_port=70000), "mptcp_proxy_port=70000 is outside"),
    ("mode relay", dict(SERVER, mptcp_proxy_mode="relay"), "mptcp_proxy_mode"),
]


def test_bad_inputs_change_nothing(host, converged):
    """Every case in one ansible-playbook run; each in a block whose rescue records the
    error, then the host's state is read back after it."""
    before = snapshot()
    tasks = []
    for i, (case, vars_, _text) in enumerate(BAD):
        tasks.append({"name": "case %d: %s" % (i, case), "block": [
            role_task(vars_),
            {"name": "Record no error", "ansible.builtin.set_fact": {
                "pxy_errors": "{{ pxy_errors | default({}) | combine({'%d': 'NO ERROR'}) }}" % i}},
        ], "rescue": [
            {"name": "Record the error", "ansible.builtin.set_fact": {
                "pxy_errors": "{{ pxy_errors | default({}) | combine({'%d': "
                              "ansible_failed_result.msg}) }}" % i}},
        ], "always": [
            {"name": "Read the state back", "ansible.builtin.command": {
                "argv": ["python3", "-c", SNAPSHOT]}, "changed_when": False,
             "register": "pxy_state"},
            {"name": "Keep it", "ansible.builtin.set_fact": {
                "pxy_states": "{{ pxy_states | default({}) | combine({'%d': "
                              "pxy_state.stdout | from_json}) }}" % i}},
        ]})
    tasks.append({"name": "Report", "ansible.builtin.debug": {
        "msg": "{{ {'errors': pxy_errors, 'states': pxy_states} }}"}})
    out = run(host, tasks, "bad")
    report = out["plays"][0]["tasks"][-1]["hosts"][NAME]["msg"]
    problems = []
    for i, (case, _vars, text) in enumerate(BAD):
        message = report["errors"][str(i)]
        if text not in message:
            problems.append("%s: %r not in %r" % (case, text, message))
        if report["states"][str(i)] != before:
            problems.append("%s: state changed" % case)
    assert problems == [], "\n".join(problems)
    assert len(BAD) >= 10
    assert snapshot() == before


def test_start_failure_reports_the_journal(host, converged):
    """A unit that does not come up (here an ExecStartPre= that fails, planted by the
    test): the role fails, names the unit and shows the end of its journal."""
    dropin = "/etc/systemd/system/mptcp-proxy@broken.service.d"
    lc.dexec(NAME, "mkdir", "-p", dropin)
    lc.dexec(NAME, "sh", "-c", "printf '[Service]\\nExecStartPre=/bin/sh -c \"echo planted "
             "failure; exit 3\"\\n' > %s/zz-test.conf" % dropin)
    broken = dict(CLIENT, mptcp_proxy_instance="broken", mptcp_proxy_port=26666)
    try:
        out = run(host, [role_task(broken)], "broken")
        # The start fails; the module reads the journal and fails with it.
        failure = failures(out)[-1]
        assert failure[0].endswith("Install and start the instance (program, unit, arguments, address filter)"), \
            failures(out)
        assert "mptcp-proxy@broken.service did not start listening on 127.0.0.1 port 26666" \
            in failure[1]
        assert "planted failure" in failure[1]  # the journal tail
    finally:
        lc.dexec(NAME, "rm", "-rf", dropin + "/zz-test.conf")
        out = run(host, [role_task(dict(broken, mptcp_proxy_state="absent"))], "broken-absent")
        assert failures(out) == []
    assert "26666" not in " ".join(snapshot()["listening"])


def test_check_mode_changes_nothing(host, converged):
    """Check mode: a new instance and a changed one are reported, nothing is changed."""
    before = snapshot()
    tasks = [role_task(dict(SERVER, mptcp_proxy_max_connections=10), "Changed instance"),
             role_task(dict(CLIENT, mptcp_proxy_instance="dry", mptcp_proxy_port=27777),
                       "New instance")]
    out = run(host, tasks, "check", check=True)
    assert failures(out) == []
    changed = lc.changed_tasks(out["plays"][0], NAME)
    assert "Install and start the instance (program, unit, arguments, address filter)" in changed
    assert snapshot() == before
