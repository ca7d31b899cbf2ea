"""The mptcp_proxy role on a systemd lab container of its own (pxy-role, Docker networks
pxy-net-a 10.126.10.0/24 and pxy-net-b 10.126.11.0/24): converge and relay, idempotence,
the listeners on exactly the given addresses, the address filter (IPAddressAllow=),
`systemd-analyze security`, and bad inputs, each with the host's state read back after it
(unit files, argument files, units, listening sockets, nftables ruleset, policy rules and routes)
and compared with the state before. The gateway modes (transparent client, Convert server) are
tested at the end of the file on the same container, with real traffic.

The container holds the lock of lab pxy-role (tests/lablock.py) while it exists."""
import json
import os
import re
import socket
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lab_container as lc  # noqa: E402
from lablock import lab_lock  # noqa: E402

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
kernel = {"nft": run("nft", "list", "ruleset") if os.path.exists("/usr/sbin/nft") else None,
          "rules": run("ip", "rule") + run("ip", "-6", "rule"),
          "routes": run("ip", "route", "show", "table", "all") + run("ip", "-6", "route", "show", "table", "all")}
print(json.dumps({"files": files, "units": sorted(units.split("\n")), "listening": listening,
                  "kernel": kernel}))
"""


def role_task(vars_, name="Include the role"):
    return {"name": name, "ansible.builtin.include_role": {"name": ROLE}, "vars": vars_}


def play(tasks):
    return [{"name": "mptcp_proxy", "hosts": NAME, "gather_facts": False, "tasks": tasks}]


def snapshot():
    return json.loads(lc.dexec(NAME, "python3", "-c", SNAPSHOT).stdout)


# nft for the transparent mode's rules: the lab image has no nftables, and the role would fetch
# it with apt. The host's own copy (scripts/bootstrap.sh installs nftables; host and image are
# the same Debian release) is copied in, so the role finds it installed and no network is used.
NFT_FILES = ("/usr/sbin/nft", "/usr/lib/x86_64-linux-gnu/libnftables.so.1",
             "/usr/lib/x86_64-linux-gnu/libjansson.so.4")


def install_nft(name):
    files = [f for f in NFT_FILES if os.path.exists(f)]
    assert len(files) == len(NFT_FILES), "the host lacks %s (apt-get install nftables)" % (set(NFT_FILES) - set(files))
    real = [os.path.realpath(f) for f in files]
    tar = subprocess.run(["tar", "-c", "-f", "-", "-C", "/"] + [f.lstrip("/") for f in files + real],
                         capture_output=True, check=True).stdout
    subprocess.run(["docker", "exec", "-i", name, "tar", "-x", "-f", "-", "-C", "/"], input=tar, check=True)
    lc.dexec(name, "ldconfig")
    assert lc.dexec(name, "nft", "--version").stdout.startswith("nftables")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    with lab_lock("pxy-role"):
        lc.start(NAME, NETWORKS)
        path = tmp_path_factory.mktemp("pxy")
        inventory = lc.inventory(path / "inventory.json", NAME)
        try:
            install_nft(NAME)
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
    result = traffic("", "", ("127.0.0.1", 25201), ("127.0.0.1", 25555))
    assert result.get("received") == result["sent"] and result["bytes"] == 4 << 20, result


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
    # The gateway modes.
    ("transparent in server mode", dict(SERVER, mptcp_proxy_transparent={"ports": [80]}),
     'mptcp_proxy_transparent needs mptcp_proxy_mode=client (it is "server")'),
    ("convert with a remote", dict(SERVER, mptcp_proxy_convert=True),
     'mptcp_proxy_remote="127.0.0.1:25201" may not be set with mptcp_proxy_convert'),
    ("allow without convert", dict(SERVER, mptcp_proxy_allow=["10.0.0.0/8:80"]),
     'mptcp_proxy_allow=["10.0.0.0/8:80"] is only used with mptcp_proxy_convert: true'),
    ("allow without a port", dict({k: v for k, v in SERVER.items() if k != "mptcp_proxy_remote"},
                                  mptcp_proxy_convert=True, mptcp_proxy_allow=["10.0.0.0/8"]),
     "argument --allow: '10.0.0.0/8'"),
    ("no remote, no gateway mode", {k: v for k, v in CLIENT.items() if k != "mptcp_proxy_remote"},
     "mptcp_proxy_remote is required (host:port) unless mptcp_proxy_transparent"),
    ("destination with nft text", dict(CLIENT, mptcp_proxy_transparent={
        "destinations": ["10.0.0.0/8 } ; flush ruleset ; {"]}),
     'mptcp_proxy_transparent.destinations: "10.0.0.0/8 } ; flush ruleset ; {" is not an IP prefix'),
    ("port range reversed", dict(CLIENT, mptcp_proxy_transparent={
        "destinations": ["10.126.11.0/24"], "ports": [80, "25302-25301"]}),
     'mptcp_proxy_transparent.ports: "25302-25301" is not a port 1-65535 or a range'),
    ("tproxy without sources", dict(CLIENT, mptcp_proxy_listen="0.0.0.0", mptcp_proxy_transparent={
        "mode": "tproxy", "destinations": ["10.126.11.0/24"]}),
     "mptcp_proxy_transparent.sources is empty: tproxy carries"),
    ("IPv6 carried, IPv4 listener", dict(CLIENT, mptcp_proxy_transparent={"ports": [80]}),
     'mptcp_proxy_listen=["127.0.0.1"] cannot take the IPv6 connections'),
    ("tproxy into the main table", dict(CLIENT, mptcp_proxy_listen="0.0.0.0", mptcp_proxy_transparent={
        "mode": "tproxy", "sources": ["192.168.150.0/24"], "destinations": ["10.126.11.0/24"],
        "tproxy_table": 254}), "mptcp_proxy_transparent.tproxy_table=254 is a table of the system"),
    ("mark above 32 bits", dict(CLIENT, mptcp_proxy_mark=4294967296),
     "mptcp_proxy_mark=4294967296 is not an integer in 0-4294967295"),
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


# The gateway modes. A server proxy with Convert and an allow-list, and a transparent client
# proxy, first in redirect mode (the host's own connections to 10.126.11.0/24 ports
# 25301-25302), then in tproxy mode (forwarded connections of a LAN namespace inside the
# container, 192.168.150.0/24, to a namespace behind it, 192.168.151.0/24). Every connection
# goes app -> client proxy =MPTCP=> server proxy -> destination; the second port of each pair
# is not in the allow-list and must be refused.
GW_SERVER = {"mptcp_proxy_mode": "server", "mptcp_proxy_instance": "gw-server",
             "mptcp_proxy_port": 24446, "mptcp_proxy_listen": ["10.126.10.2", "10.126.11.2"],
             "mptcp_proxy_convert": True, "mptcp_proxy_mark": 0x150,
             "mptcp_proxy_allow": ["10.126.11.2/32:25301", "192.168.151.0/24:25401"]}
GW_REDIRECT = {"mptcp_proxy_mode": "client", "mptcp_proxy_instance": "gw-client",
               "mptcp_proxy_port": 25556, "mptcp_proxy_listen": "0.0.0.0",
               "mptcp_proxy_remote": "10.126.10.2:24446",
               "mptcp_proxy_transparent": {"destinations": ["10.126.11.0/24"], "ports": ["25301-25302"]}}
GW_TPROXY = dict(GW_REDIRECT, mptcp_proxy_transparent={
    "mode": "tproxy", "sources": ["192.168.150.0/24"], "destinations": ["192.168.151.0/24"],
    "ports": [25401, 25402]})
GW_TABLE = "multipath_mptcp_gw-client"
GW_MODULE_TASK = "Install and start the instance (program, unit, arguments, address filter)"

# Two namespaces inside the container, routed through it: lan (the LAN host) and far (the
# destination). They are gone after a restart of the container and made again.
GW_NAMESPACES = """
set -e
ip netns add lan; ip netns add far
ip link add gw-lan type veth peer name eth0 netns lan
ip link add gw-far type veth peer name eth0 netns far
ip addr add 192.168.150.1/24 dev gw-lan; ip link set gw-lan up
ip addr add 192.168.151.1/24 dev gw-far; ip link set gw-far up
for ns in lan far; do ip -n $ns link set lo up; ip -n $ns link set eth0 up; done
ip -n lan addr add 192.168.150.2/24 dev eth0; ip -n lan route add default via 192.168.150.1
ip -n far addr add 192.168.151.2/24 dev eth0; ip -n far route add default via 192.168.151.1
sysctl -qw net.ipv4.ip_forward=1
"""

# Run in the container: a sink (in namespace SINK_NS, "" for none) on SINK_ADDR:SINK_PORT that
# answers the sha256, byte count and peer address of what it received; a client (in CLIENT_NS)
# that sends SIZE random bytes to ADDR:PORT, then (REFUSED_PORT not 0) connects to
# ADDR:REFUSED_PORT (no listener there: only the server proxy's refusal can answer). Prints JSON.
TRAFFIC = r"""
import hashlib, json, os, socket, subprocess, sys
sink_ns, client_ns, sink_addr, sink_port, addr, port, refused_port, size = sys.argv[1:9]
SINK = '''
import hashlib, socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen(); srv.settimeout(30)
print("ready", flush=True)
conn, peer = srv.accept(); conn.settimeout(30); digest = hashlib.sha256(); n = 0
while True:
    chunk = conn.recv(1 << 16)
    if not chunk:
        break
    digest.update(chunk); n += len(chunk)
conn.sendall(("%s %d %s" % (digest.hexdigest(), n, peer[0])).encode()); conn.close()
'''
CLIENT = '''
import hashlib, json, os, socket, sys
addr, port, refused_port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = os.urandom(size)
sock = socket.create_connection((addr, port), timeout=30)
sock.sendall(data); sock.shutdown(socket.SHUT_WR)
reply = b""
while True:
    chunk = sock.recv(256)
    if not chunk:
        break
    reply += chunk
sha, count, peer = reply.decode().split()
refused = None
if int(refused_port):
    try:
        other = socket.create_connection((addr, int(refused_port)), timeout=10)
        other.sendall(b"x")
        refused = "answered %r" % other.recv(10)
    except OSError as exc:
        refused = type(exc).__name__
print(json.dumps({"sent": hashlib.sha256(data).hexdigest(), "received": sha, "bytes": int(count),
                  "sink_peer": peer, "refused": refused}))
'''
def inside(ns):
    return ["ip", "netns", "exec", ns] if ns else []
sink = subprocess.Popen(inside(sink_ns) + ["python3", "-c", SINK, sink_addr, sink_port], stdout=subprocess.PIPE,
                        text=True)
assert sink.stdout.readline().strip() == "ready"
client = subprocess.run(inside(client_ns) + ["python3", "-c", CLIENT, addr, port, refused_port, size],
                        capture_output=True, text=True, timeout=60)
sink.wait(timeout=30)
print(client.stdout.strip() or json.dumps({"error": client.stderr}))
"""


def traffic(sink_ns, client_ns, sink, dest, refused_port=0, size=4 << 20):
    out = lc.dexec(NAME, "python3", "-c", TRAFFIC, sink_ns, client_ns, sink[0], str(sink[1]), dest[0], str(dest[1]),
                   str(refused_port), str(size)).stdout
    return json.loads(out)


def gw_traffic(sink_ns, client_ns, addr, port, refused_port, size=4 << 20):
    """The sink on the destination the client connects to."""
    return traffic(sink_ns, client_ns, (addr, port), (addr, port), refused_port, size)


def journal(instance):
    return lc.dexec(NAME, "journalctl", "--no-pager", "-o", "cat", "-u",
                    "mptcp-proxy@%s.service" % instance).stdout


def gw_kernel():
    """The instance's nftables table (None when missing), the tproxy rule and route."""
    table = lc.dexec(NAME, "nft", "list", "table", "inet", GW_TABLE, check=False)
    return {"table": table.stdout if table.returncode == 0 else None,
            "rules": [line for line in lc.dexec(NAME, "ip", "rule").stdout.splitlines() if "fwmark" in line],
            # (ip fails when the table does not exist: no route either)
            "route": lc.dexec(NAME, "ip", "route", "show", "table", "150", check=False).stdout.strip()}


def assert_relayed(result, size, sink_peer, allowed, refused):
    """Data identical through both proxies, the sink saw the server proxy's connection, the
    destination outside the allow-list was refused by the server proxy and logged."""
    assert result.get("received") == result["sent"] and result["bytes"] == size, result
    assert result["sink_peer"] == sink_peer, result
    # reset by the client proxy when the server proxy refused (a reset that beats the send: EPIPE)
    assert result["refused"] in ("ConnectionResetError", "BrokenPipeError"), result
    server_log, client_log = journal("gw-server"), journal("gw-client")
    assert re.search(r"closed peer=10\.126\.10\.2:\d+ remote=%s up=%d " % (re.escape(allowed), size), server_log), \
        server_log
    assert re.search(r"closed peer=\S+ remote=%s up=%d .*mptcp=yes .*via=10\.126\.10\.2:24446" % (
        re.escape(allowed), size), client_log), client_log
    assert re.search(r"refused peer=10\.126\.10\.2:\d+ destination=%s: not allowed by --allow" % re.escape(refused),
                     server_log), server_log


@pytest.fixture(scope="module")
def gateway(host):
    """The LAN namespaces, then both gateway instances converged in redirect mode."""
    lc.dexec(NAME, "sh", "-c", GW_NAMESPACES)
    out = run(host, [role_task(GW_SERVER, "Server proxy"), role_task(GW_REDIRECT, "Client proxy")], "gw-redirect")
    assert failures(out) == []
    return host


def test_gateway_redirect_through_both_proxies(gateway):
    kernel = gw_kernel()
    assert "ip daddr 10.126.11.0/24 tcp dport 25301-25302 redirect to :25556" in kernel["table"]
    assert "meta mark 0x00000150 return" in kernel["table"]
    assert kernel["rules"] == [] and kernel["route"] == ""  # redirect needs no policy routing
    # The host's own connection to 10.126.11.2:25301: redirected to the client proxy, relayed over
    # MPTCP with a Convert message to the server proxy, which connects to the destination.
    result = gw_traffic("", "", "10.126.11.2", 25301, 25302)
    assert_relayed(result, 4 << 20, "10.126.11.2", "10.126.11.2:25301", "10.126.11.2:25302")
    unit = lc.dexec(NAME, "systemctl", "show", "-p", "AmbientCapabilities", "-p", "IPAddressAllow",
                    "mptcp-proxy@gw-client.service").stdout
    assert "cap_net_admin" in unit.lower(), unit


def test_gateway_tproxy_check_mode_then_converge_idempotent(gateway):
    """One ansible-playbook run, three plays. 1: redirect -> tproxy in check mode, reported with
    the ruleset's diff, the host's state read before and after (equal). 2: the change: the
    running client proxy's old table goes (the instance is stopped with the old unit first),
    the new one and its policy routing come. 3: both instances again: nothing changes."""
    snap = {"name": "Read the state", "ansible.builtin.command": {"argv": ["python3", "-c", SNAPSHOT]},
            "changed_when": False, "check_mode": False}
    dry = play([dict(snap, register="before"), role_task(GW_TPROXY, "Client proxy"),
                dict(snap, register="after"),
                {"name": "Same state", "ansible.builtin.assert": {
                    "that": "(before.stdout | from_json) == (after.stdout | from_json)"}}])[0]
    dry.update(check_mode=True, diff=True)
    plays = [dry, play([role_task(GW_TPROXY, "Client proxy")])[0],
             play([role_task(GW_SERVER, "Server proxy"), role_task(GW_TPROXY, "Client proxy")])[0]]
    path, inventory = gateway
    out = lc.run_plays(plays, path / "gw-tproxy.json", inventory)
    assert lc.failures(out) == []
    assert GW_MODULE_TASK in lc.changed_tasks(out["plays"][0], NAME)
    diffs = json.dumps([t["hosts"][NAME].get("diff") for t in out["plays"][0]["tasks"]
                        if t["task"]["name"].endswith(GW_MODULE_TASK)])
    assert "/etc/mptcp-proxy/gw-client.nft" in diffs and "tproxy ip to :25556" in diffs
    assert GW_MODULE_TASK in lc.changed_tasks(out["plays"][1], NAME)
    assert lc.changed_tasks(out["plays"][2], NAME) == []
    check_tproxy()


def check_tproxy():
    kernel = gw_kernel()
    assert "redirect" not in kernel["table"], kernel
    assert ("ip saddr 192.168.150.0/24 ip daddr 192.168.151.0/24 tcp dport { 25401, 25402 } "
            "tproxy ip to :25556 meta mark set 0x00000151 accept") in kernel["table"], kernel
    assert [r.split(":", 1)[1].split() for r in kernel["rules"]] == [
        ["from", "all", "fwmark", "0x151", "lookup", "150"]], kernel
    assert kernel["route"] == "local default dev lo scope host", kernel
    # A LAN host's connection to 192.168.151.2:25401, forwarded through the container.
    result = gw_traffic("far", "lan", "192.168.151.2", 25401, 25402, 2 << 20)
    assert_relayed(result, 2 << 20, "192.168.151.1", "192.168.151.2:25401", "192.168.151.2:25402")


def test_gateway_restored_at_boot(gateway):
    """After a restart of the container the enabled instance loads its table and policy routing
    again (ExecStartPre=) and relays as before."""
    subprocess.run(["docker", "restart", "-t", "5", NAME], check=True, capture_output=True)
    lc.wait_booted(NAME)
    assert lc.dexec(NAME, "systemctl", "is-active", "mptcp-proxy@gw-client.service",
                    "mptcp-proxy@gw-server.service").stdout.split() == ["active", "active"]
    lc.dexec(NAME, "sh", "-c", GW_NAMESPACES)
    check_tproxy()


def test_gateway_absent_removes_everything(gateway):
    out = run(gateway, [role_task(dict(GW_TPROXY, mptcp_proxy_state="absent"), "Client proxy"),
                        role_task(dict(GW_SERVER, mptcp_proxy_state="absent"), "Server proxy")], "gw-absent")
    assert failures(out) == []
    assert gw_kernel() == {"table": None, "rules": [], "route": ""}
    state = snapshot()
    assert not [f for f in state["files"] if "gw-" in f], state["files"]
    assert not [u for u in state["units"] if "gw-" in u], state["units"]
    assert "multipath_mptcp" not in state["kernel"]["nft"]
    # Nothing redirects any more: the LAN host reaches the destination itself.
    result = gw_traffic("far", "lan", "192.168.151.2", 25401, 25402, 1 << 20)
    assert result["received"] == result["sent"] and result["sink_peer"] == "192.168.150.2", result
    assert result["refused"] == "ConnectionRefusedError", result
