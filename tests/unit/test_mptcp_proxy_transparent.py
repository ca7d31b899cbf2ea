"""Kernel tests of mptcp-proxy --transparent: connections redirected by netfilter.

Network namespaces joined by veth pairs (subnets 10.150.x.0/24 and
fd00:150:x::/64, no other test uses them), rules written with nft (iptables
when nft is missing; the direct REDIRECT and the TPROXY tests run with each of
the two that is installed), real MPTCP, nothing mocked:

- REDIRECT (the host's own connections, nat output hook): the application in
  namespace A connects to a server in namespace B by its own address; the rule
  hands the connection to the client proxy, which reads SO_ORIGINAL_DST and
  connects there over MPTCP (--mark keeps its own connection out of the rule),
  or sends the destination to a server proxy (--convert) in an RFC 8803 Connect
  TLV.  IPv4 and IPv6, concurrent connections, data identical; a destination
  the server proxy's --allow does not list is refused (the application sees a
  reset, nothing reaches the server); a server proxy that never answers gets
  the application reset within --convert-timeout.
- TPROXY (forwarded connections, prerouting hook): a LAN client routed through
  a gateway namespace reaches the server by its address; the gateway's proxy
  (IP_TRANSPARENT listener) relays it over MPTCP; the server sees the
  gateway's address, the client the server's.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from test_mptcp_proxy import Monitor, make_proxy, needs_mptcp, needs_root  # noqa: F401

NFT = shutil.which("nft")
IPTABLES = bool(shutil.which("iptables") and shutil.which("ip6tables"))
needs_netfilter = pytest.mark.skipif(not (NFT or IPTABLES),
                                     reason="neither nft nor iptables/ip6tables is installed")
# The rules are written with nft where it is installed, else with iptables; the
# tests marked with `tool` run once with each one that is installed.
DEFAULT_TOOL = "nft" if NFT else "iptables"


def tool_param():
    return pytest.mark.parametrize("tool", [
        pytest.param("nft", marks=pytest.mark.skipif(not NFT, reason="nft is not installed")),
        pytest.param("iptables", marks=pytest.mark.skipif(not IPTABLES,
                                                          reason="iptables is not installed"))])

PROXY_PORT = 15000     # the client proxy, in its namespace
SERVER_PROXY_PORT = 4444
MARK = 0x150


def sh(*cmd, ns=None, check=True):
    if ns:
        cmd = ("ip", "netns", "exec", ns) + cmd
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    if check and res.returncode:
        raise AssertionError("%s failed (rc=%d): %s" % (" ".join(cmd), res.returncode,
                                                        res.stderr.strip()))
    return res


class Namespaces:
    """Namespaces made for one test; every process in them is killed at the end."""

    def __init__(self):
        self.tag = "%d%s" % (os.getpid() % 10000, uuid.uuid4().hex[:4])
        self.names = []
        self.links = 0

    def add(self, role):
        name = "mpxtp-%s-%s" % (role, self.tag)
        res = sh("ip", "netns", "add", name, check=False)
        if res.returncode:
            pytest.skip("cannot create a network namespace: %s" % res.stderr.strip())
        self.names.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def link(self, ns1, addrs1, ns2, addrs2):
        """A veth pair between ns1 and ns2 with the given addresses (prefixes)."""
        self.links += 1
        left, right = "v%s%d" % (self.tag, self.links), "w%s%d" % (self.tag, self.links)
        sh("ip", "link", "add", left, "netns", ns1, "type", "veth", "peer", "name", right,
           "netns", ns2)
        for ns, dev, addrs in ((ns1, left, addrs1), (ns2, right, addrs2)):
            for addr in addrs:
                extra = ["nodad"] if ":" in addr else []
                sh("ip", "-n", ns, "addr", "add", addr, "dev", dev, *extra)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        return left, right

    def cleanup(self):
        for name in self.names:
            pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def namespaces():
    spaces = Namespaces()
    try:
        yield spaces
    finally:
        spaces.cleanup()


# A server in a namespace: an MPTCP listener on '::' (IPv4 too) per port.
# echo ports echo and half-close; silent ports accept and never answer.  Every
# accepted connection is written to LOG: port, peer address, MPTCP or not.
SERVE = r"""
import shutil, socket, sys, threading
log_path, echo_ports, silent_ports = sys.argv[1], sys.argv[2], sys.argv[3]
log = open(log_path, "a", buffering=1)
lock = threading.Lock()
def echo(conn):
    with conn, conn.makefile("rb", buffering=0) as src, conn.makefile("wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.flush()
        conn.shutdown(socket.SHUT_WR)
def serve(port, handler):
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, 262)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", port))
    srv.listen(64)
    def loop():
        held = []
        while True:
            conn, peer = srv.accept()
            try:
                mptcp = conn.getsockopt(socket.IPPROTO_TCP, 43)
            except OSError:
                mptcp = -1
            host = peer[0][7:] if peer[0].startswith("::ffff:") else peer[0]
            with lock:
                log.write("accept %d %s mptcp=%d\n" % (port, host, mptcp))
            if handler:
                threading.Thread(target=handler, args=(conn,), daemon=True).start()
            else:
                held.append(conn)
    threading.Thread(target=loop, daemon=True).start()
for p in filter(None, echo_ports.split(",")):
    serve(int(p), echo)
for p in filter(None, silent_ports.split(",")):
    serve(int(p), None)
print("ready", flush=True)
threading.Event().wait()
"""

# An application in a namespace: COUNT concurrent connections to HOST:PORT, each
# sends NBYTES random bytes, half-closes, reads to the end; prints one JSON list.
APP = r"""
import errno, hashlib, json, os, socket, sys, threading, time
host, port, nbytes, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
# The proxy's reset shows as ECONNRESET (send or recv), EPIPE (a send after it) or
# ENOTCONN (shutdown() after it): all three are a reset.
RESET = (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN)
results = [None] * count
def run(i):
    data = os.urandom(nbytes)
    start = time.monotonic()
    got, error = b"", None
    try:
        with socket.create_connection((host, port), timeout=15) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            with sock.makefile("rb") as stream:
                got = stream.read()   # to the end of the stream
    except OSError as exc:
        error = "reset" if exc.errno in RESET else repr(exc)
    results[i] = {"intact": hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
                  "received": len(got), "error": error,
                  "seconds": round(time.monotonic() - start, 3)}
threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"""


def start_server(ns, tmp_path, echo=(), silent=()):
    log_path = tmp_path / ("serve-%s.log" % ns)
    log_path.write_text("")
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVE,
                             str(log_path), ",".join(map(str, echo)),
                             ",".join(map(str, silent))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()   # bounded: the script prints or dies at once
    assert line.strip() == "ready", proc.stderr.read()
    return proc, log_path


def accepted(log_path):
    return [line.split() for line in log_path.read_text().splitlines()]


def app(ns, host, port, nbytes=100_000, count=1):
    res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", APP, host,
                          str(port), str(nbytes), str(count)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def nft_load(ns, lines):
    res = subprocess.run(["ip", "netns", "exec", ns, NFT, "-f", "-"], input="\n".join(lines),
                         capture_output=True, text=True, check=False, timeout=30)
    assert res.returncode == 0, res.stderr


def redirect_rules(ns, rules, tool=DEFAULT_TOOL):
    """nat output rules in ns: [(family, daddr, dport, to_port)]; the proxy's own
    connections (SO_MARK MARK) are left alone."""
    if tool == "nft":
        lines = ["table inet mpxtp {", " chain out {",
                 "  type nat hook output priority -100; policy accept;",
                 "  meta mark 0x%x return" % MARK]
        for family, daddr, dport, to_port in rules:
            lines.append("  %s daddr %s tcp dport %d redirect to :%d"
                         % ("ip" if family == 4 else "ip6", daddr, dport, to_port))
        nft_load(ns, lines + [" }", "}"])
        return
    for family, daddr, dport, to_port in rules:
        sh("iptables" if family == 4 else "ip6tables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp",
           "-d", daddr, "--dport", str(dport), "-m", "mark", "!", "--mark", hex(MARK),
           "-j", "REDIRECT", "--to-ports", str(to_port), ns=ns)


@pytest.fixture
def two_hosts(namespaces):
    """A (application, client proxy) -- veth -- B (server, server proxy)."""
    a, b = namespaces.add("a"), namespaces.add("b")
    namespaces.link(a, ["10.150.0.1/24", "fd00:150::1/64"], b, ["10.150.0.2/24", "fd00:150::2/64"])
    # MPTCP: a second subflow is not the point here; one path is enough.
    return a, b


pytestmark = [needs_root, needs_mptcp, needs_netfilter]


@tool_param()
def test_redirect_direct_over_mptcp_ipv4_and_ipv6(two_hosts, make_proxy, tmp_path, tool):
    """REDIRECT -> SO_ORIGINAL_DST -> MPTCP to the original destination."""
    a, b = two_hosts
    _server, served = start_server(b, tmp_path, echo=[80])
    redirect_rules(a, [(4, "10.150.0.2", 80, PROXY_PORT), (6, "fd00:150::2", 80, PROXY_PORT)],
                   tool)
    proxy = make_proxy("-m", "client", "-l", "::", "-p", PROXY_PORT, "--transparent",
                       "--mark", MARK, "--max-connections", 64, netns=a)
    results = app(a, "10.150.0.2", 80, count=4) + app(a, "fd00:150::2", 80, count=4)
    assert [r["intact"] for r in results] == [True] * 8, results
    lines = proxy.closed_lines(8)
    assert sorted(line["remote"] for line in lines) == (["10.150.0.2:80"] * 4
                                                        + ["[fd00:150::2]:80"] * 4)
    assert all(line["mptcp"].startswith("mptcp=yes") for line in lines), lines
    assert all(line["up"] == line["down"] == "100000" for line in lines), lines
    # The server saw 8 MPTCP connections from A's own address: the proxy's.
    got = accepted(served)
    assert sorted(entry[2] for entry in got) == ["10.150.0.1"] * 4 + ["fd00:150::1"] * 4, got
    assert {entry[3] for entry in got} == {"mptcp=1"}, got


@pytest.fixture
def monitors():
    """`ip mptcp monitor` per namespace, subscribed before the test goes on."""
    started = {}

    def start(ns):
        started[ns] = Monitor(ns)
        started[ns].wait_subscribed(ns)
        return started[ns]

    yield start
    for monitor in started.values():
        monitor.stop()


def connection_events(monitor, count, timeout=10.0):
    """{event: number} of the MPTCP connections' events, once CLOSED was seen count times."""
    kinds = ("CREATED", "ESTABLISHED", "CLOSED")
    monitor.wait(lambda ev: sum(e["event"] == "CLOSED" for e in ev) >= count, timeout,
                 what="%d CLOSED events" % count)
    events = [e["event"] for e in monitor.events() if e["event"] in kinds]
    return {kind: events.count(kind) for kind in kinds}


def test_redirect_with_convert_allow_list_and_refusal(two_hosts, make_proxy, tmp_path, monitors):
    """REDIRECT -> Connect TLV to the server proxy -> the allowed destination;
    a destination --allow does not list is refused, nothing reaches it; every
    MPTCP connection between the proxies, refused ones included, ends in order
    (exactly one CREATED, ESTABLISHED and CLOSED each on both ends)."""
    a, b = two_hosts
    _server, served = start_server(b, tmp_path, echo=[80, 81])
    monitor_a, monitor_b = monitors(a), monitors(b)
    redirect_rules(a, [(4, "10.150.0.2", 80, PROXY_PORT), (4, "10.150.0.2", 81, PROXY_PORT),
                       (6, "fd00:150::2", 80, PROXY_PORT)])
    server = make_proxy("-m", "server", "-l", "::", "-p", SERVER_PROXY_PORT, "--convert",
                        "--allow", "10.150.0.2/32:80", "--allow", "[fd00:150::2/128]:80",
                        netns=b)
    client = make_proxy("-m", "client", "-l", "::", "-p", PROXY_PORT, "--transparent",
                        "-r", "10.150.0.2:%d" % SERVER_PROXY_PORT, "--mark", MARK,
                        "--max-connections", 64, netns=a)
    results = app(a, "10.150.0.2", 80, nbytes=200_000, count=5)
    results += app(a, "fd00:150::2", 80, nbytes=200_000, count=3)
    assert [r["intact"] for r in results] == [True] * 8, results
    refused = app(a, "10.150.0.2", 81, nbytes=1000, count=2)
    assert [(r["received"], r["error"]) for r in refused] == [(0, "reset")] * 2, \
        refused
    server.wait_log(r"refused peer=\S+ destination=10\.150\.0\.2:81: not allowed by --allow "
                    r"\(10\.150\.0\.2/32:80 \[fd00:150::2/128\]:80\); answered RFC 8803 "
                    r"Error 32 Not Authorized", count=2)
    lines = client.closed_lines(10)
    good = [line for line in lines if line["remote"].endswith(":80")]
    assert sorted(line["remote"] for line in good) == (["10.150.0.2:80"] * 5
                                                       + ["[fd00:150::2]:80"] * 3), lines
    assert all(line["mptcp"].startswith("mptcp=yes") for line in lines), lines
    assert len(client.wait_log(r"remote=10\.150\.0\.2:81 .* via=10\.150\.0\.2:%d "
                               r"error='server proxy refused the destination: RFC 8803 Error "
                               r"32 Not Authorized'" % SERVER_PROXY_PORT, count=2)) == 2
    server_lines = server.closed_lines(8)
    assert sorted(line["remote"] for line in server_lines) == (["10.150.0.2:80"] * 5
                                                               + ["[fd00:150::2]:80"] * 3)
    # Port 81 never saw a connection; port 80 saw the server proxy's 8.
    got = accepted(served)
    assert sorted(entry[1] for entry in got) == ["80"] * 8, got
    expected = {"CREATED": 10, "ESTABLISHED": 10, "CLOSED": 10}
    assert connection_events(monitor_a, 10) == expected      # the client proxy's ends
    assert connection_events(monitor_b, 10) == expected      # the server proxy's ends


def test_redirect_with_convert_silent_server_proxy(two_hosts, make_proxy, tmp_path):
    """A 'server proxy' that accepts and never sends its Convert message: the
    application is reset within --convert-timeout (1 s)."""
    a, b = two_hosts
    start_server(b, tmp_path, silent=[4445])
    redirect_rules(a, [(4, "10.150.0.2", 80, PROXY_PORT)])
    client = make_proxy("-m", "client", "-l", "0.0.0.0", "-p", PROXY_PORT, "--transparent",
                        "-r", "10.150.0.2:4445", "--mark", MARK, "--convert-timeout", "1",
                        "--shutdown-timeout", "1", netns=a)
    [result] = app(a, "10.150.0.2", 80, nbytes=1000)
    assert result["error"] == "reset" and result["received"] == 0, result
    assert 0.9 <= result["seconds"] < 5, result
    client.wait_log(r"remote=10\.150\.0\.2:80 .* via=10\.150\.0\.2:4445 error='remote: no whole "
                    r"Convert message from the server proxy within 1s")


def tproxy_rules(ns, rules, tool=DEFAULT_TOOL):
    """prerouting tproxy rules in ns: [(family, daddr, dport, to_port)], mark 1,
    and the policy routing that delivers marked packets locally."""
    if tool == "nft":
        lines = ["table inet mpxtp {", " chain pre {",
                 "  type filter hook prerouting priority mangle; policy accept;"]
        for family, daddr, dport, to_port in rules:
            fam = "ip" if family == 4 else "ip6"
            lines.append("  %s daddr %s tcp dport %d tproxy %s to :%d meta mark set 1 accept"
                         % (fam, daddr, dport, fam, to_port))
        nft_load(ns, lines + [" }", "}"])
    else:
        for family, daddr, dport, to_port in rules:
            sh("iptables" if family == 4 else "ip6tables", "-t", "mangle", "-A", "PREROUTING",
               "-p", "tcp", "-d", daddr, "--dport", str(dport), "-j", "TPROXY", "--on-port",
               str(to_port), "--tproxy-mark", "1", ns=ns)
    for fam, local in (("-4", "0.0.0.0/0"), ("-6", "::/0")):
        sh("ip", fam, "-n", ns, "rule", "add", "fwmark", "1", "lookup", "150")
        sh("ip", fam, "-n", ns, "route", "add", "local", local, "dev", "lo", "table", "150")


@tool_param()
def test_tproxy_forwarded_connections_over_mptcp(namespaces, make_proxy, tmp_path, tool):
    """LAN client -> gateway (TPROXY, --transparent) -> server, IPv4 and IPv6."""
    lan, gw, srv = namespaces.add("lan"), namespaces.add("gw"), namespaces.add("srv")
    namespaces.link(lan, ["10.150.1.1/24", "fd00:150:1::1/64"],
                    gw, ["10.150.1.2/24", "fd00:150:1::2/64"])
    namespaces.link(gw, ["10.150.2.1/24", "fd00:150:2::1/64"],
                    srv, ["10.150.2.2/24", "fd00:150:2::2/64"])
    sh("ip", "-n", lan, "route", "add", "default", "via", "10.150.1.2")
    sh("ip", "-6", "-n", lan, "route", "add", "default", "via", "fd00:150:1::2")
    sh("ip", "-n", srv, "route", "add", "default", "via", "10.150.2.1")
    sh("ip", "-6", "-n", srv, "route", "add", "default", "via", "fd00:150:2::1")
    for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"):
        sh("sysctl", "-qw", key, ns=gw)
    _server, served = start_server(srv, tmp_path, echo=[80])
    tproxy_rules(gw, [(4, "10.150.2.2", 80, PROXY_PORT), (6, "fd00:150:2::2", 80, PROXY_PORT)],
                 tool)
    proxy = make_proxy("-m", "client", "-l", "::", "-p", PROXY_PORT, "--transparent", netns=gw)
    assert "IP_TRANSPARENT not set" not in proxy.log()
    results = app(lan, "10.150.2.2", 80, count=3) + app(lan, "fd00:150:2::2", 80, count=3)
    assert [r["intact"] for r in results] == [True] * 6, results
    lines = proxy.closed_lines(6)
    assert sorted(line["remote"] for line in lines) == (["10.150.2.2:80"] * 3
                                                        + ["[fd00:150:2::2]:80"] * 3), lines
    assert sorted(line["peer"].rsplit(":", 1)[0] for line in lines) == (
        ["10.150.1.1"] * 3 + ["[fd00:150:1::1]"] * 3), lines
    assert all(line["mptcp"].startswith("mptcp=yes") for line in lines), lines
    # The server saw the gateway (the proxy's MPTCP connections), not the LAN client.
    got = accepted(served)
    assert sorted(entry[2] for entry in got) == ["10.150.2.1"] * 3 + ["fd00:150:2::1"] * 3, got
    assert {entry[3] for entry in got} == {"mptcp=1"}, got
