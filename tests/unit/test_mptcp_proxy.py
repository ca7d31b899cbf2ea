"""Tests of roles/mptcp_proxy/files/mptcp-proxy with real sockets on loopback.

The proxy runs as a subprocess: client mode -> server mode -> a TCP backend run
by the test in a thread.  Nothing of the kernel is mocked: MPTCP is checked with
ss -M and getsockopt(SOL_MPTCP, MPTCP_INFO), the "MPTCP disabled" and
"unreachable remote" cases run in network namespaces made (and removed) here.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROXY = os.path.join(ROOT, "roles", "mptcp_proxy", "files", "mptcp-proxy")
# Run the program directly (its #!/usr/bin/python3), or with MPTCP_PROXY_PYTHON.
PROXY_CMD = ([os.environ["MPTCP_PROXY_PYTHON"], PROXY] if os.environ.get("MPTCP_PROXY_PYTHON")
             else [PROXY])

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO = 1
TCP_IS_MPTCP = 43

CLOSE_RE = re.compile(
    r"conn=(?P<id>\d+) closed peer=(?P<peer>\S+) remote=(?P<remote>\S+) "
    r"up=(?P<up>\d+) down=(?P<down>\d+) duration=(?P<duration>[0-9.]+)s "
    r"(?P<mptcp>mptcp=.*?) relay=(?P<relay>\S+)")


def mptcp_usable():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP).close()
        return True
    except OSError:
        return False


needs_mptcp = pytest.mark.skipif(not mptcp_usable(), reason="no MPTCP in this kernel")
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                reason="network namespaces need root and ip(8)")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sha(data):
    return hashlib.sha256(data).hexdigest()


def recv_all(sock, limit=1 << 30):
    chunks = []
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        if sum(map(len, chunks)) > limit:
            raise AssertionError("more data than expected")


# --------------------------------------------------------------------------
# Processes and servers, always cleaned up
# --------------------------------------------------------------------------

class ProxyProcess:
    """mptcp-proxy as a subprocess; stderr goes to a file the test reads."""

    def __init__(self, tmp_path, args, netns=None):
        self.log_path = tmp_path / ("proxy-%s.log" % uuid.uuid4().hex[:8])
        self.log_file = open(self.log_path, "w", encoding="utf-8")
        cmd = PROXY_CMD + args
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log_file)
        self.wait_log(r"listening on", timeout=10)

    def log(self):
        return self.log_path.read_text(encoding="utf-8")

    def wait_log(self, pattern, count=1, timeout=10.0):
        """Wait until pattern matches count times in the log; return the matches."""
        deadline = time.monotonic() + timeout
        while True:
            matches = list(re.finditer(pattern, self.log()))
            if len(matches) >= count:
                return matches
            if self.proc.poll() is not None and pattern != r"exiting":
                raise AssertionError("proxy exited (rc=%s) before logging %r:\n%s"
                                     % (self.proc.returncode, pattern, self.log()))
            if time.monotonic() > deadline:
                raise AssertionError("%d x %r not in the proxy log within %.0f s:\n%s"
                                     % (count, pattern, timeout, self.log()))
            time.sleep(0.02)

    def closed_lines(self, count, timeout=10.0):
        self.wait_log(CLOSE_RE.pattern, count, timeout)
        return [m.groupdict() for m in CLOSE_RE.finditer(self.log())]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


class Backend:
    """A TCP (or MPTCP) server in threads; handler(conn, backend) per connection."""

    def __init__(self, handler, proto=0, port=0):
        self.handler = handler
        self.results = []
        self.sockets = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return  # listener shut down
            self.sockets.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.handler(conn, self)
        except OSError as exc:
            self.results.append(("error", str(exc)))
        finally:
            conn.close()

    def wait_results(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.results) < count:
            assert time.monotonic() < deadline, "backend got %d results, wanted %d" % (
                len(self.results), count)
            time.sleep(0.02)
        return self.results

    def close(self):
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def make_proxy(tmp_path):
    procs = []

    def start(*args, netns=None):
        proc = ProxyProcess(tmp_path, [str(a) for a in args], netns=netns)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


@pytest.fixture
def make_backend():
    servers = []

    def start(handler, **kwargs):
        server = Backend(handler, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def chain(make_proxy):
    """client proxy -> server proxy -> backend; returns a function taking the backend."""

    def build(backend_port, *extra):
        server_port, client_port = free_port(), free_port()
        server = make_proxy("-m", "server", "-l", "127.0.0.1", "-p", server_port,
                            "-r", "127.0.0.1:%d" % backend_port, *extra)
        client = make_proxy("--mode", "client", "--listen", "127.0.0.1", "--port", client_port,
                            "--remote", "127.0.0.1:%d" % server_port, *extra)
        return client, server, client_port, server_port

    return build


@pytest.fixture
def netns():
    """A fresh network namespace with lo up; removed with everything in it."""
    name = "mptcpproxy-test-%d-%s" % (os.getpid(), uuid.uuid4().hex[:6])
    if subprocess.run(["ip", "netns", "add", name], capture_output=True,
                      check=False).returncode:
        pytest.skip("cannot create a network namespace")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                              text=True, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", name], check=False)


# A client run inside a namespace (the test process itself stays outside): it
# optionally starts an echo server on ECHO_PORT, connects to the proxy on PORT,
# sends DATA_LEN bytes, half-closes and reports what came back as JSON.
NETNS_CLIENT = r"""
import hashlib, json, os, socket, sys, threading, time
port, echo_port, data_len = (int(x) for x in sys.argv[1:4])
if echo_port:
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", echo_port)); srv.listen(8)
    def echo():
        conn, _ = srv.accept()
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)
    threading.Thread(target=echo, daemon=True).start()
data = os.urandom(data_len)
start = time.monotonic()
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
result = {"error": None}
try:
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
except OSError as exc:  # reset, or EPIPE when the proxy closed before we sent
    got = b""
    result["error"] = exc.strerror
result.update(received=len(got), intact=got == data, elapsed=time.monotonic() - start)
print(json.dumps(result))
"""


def netns_client(ns, port, echo_port=0, data_len=1000):
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", NETNS_CLIENT,
                          str(port), str(echo_port), str(data_len)],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# --------------------------------------------------------------------------
# Backend handlers
# --------------------------------------------------------------------------

def sink_then_reply(payload):
    """Read to EOF, record (length, sha256), reply with the digest and payload."""

    def handler(conn, backend):
        data = recv_all(conn)
        backend.results.append((len(data), sha(data)))
        conn.sendall(sha(data).encode() + payload)

    return handler


def echo(conn, backend):
    total = 0
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            break
        total += len(chunk)
        conn.sendall(chunk)
    conn.shutdown(socket.SHUT_WR)
    backend.results.append(total)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

@needs_mptcp
def test_bytes_intact_and_log_counts(chain, make_backend):
    """8 MiB up and 4 MiB down arrive intact; the client half-closes first."""
    up = os.urandom(8 << 20)
    payload = os.urandom(4 << 20)
    backend = make_backend(sink_then_reply(payload))
    client, server, client_port, _ = chain(backend.port)

    with socket.create_connection(("127.0.0.1", client_port), timeout=30) as sock:
        sock.sendall(up)
        sock.shutdown(socket.SHUT_WR)  # half-close: the reply must still arrive
        reply = recv_all(sock)
    assert backend.wait_results(1) == [(len(up), sha(up))]
    assert reply[:64].decode() == sha(up)
    assert sha(reply[64:]) == sha(payload)

    for proxy in (client, server):
        (line,) = proxy.closed_lines(1)
        assert int(line["up"]) == len(up)
        assert int(line["down"]) == 64 + len(payload)
        assert float(line["duration"]) > 0
        assert line["mptcp"].startswith("mptcp=yes token=")
    # Default --splice=auto: splice where the data comes from plain TCP.
    assert client.closed_lines(1)[0]["relay"] == "up:splice,down:copy"
    assert server.closed_lines(1)[0]["relay"] == "up:copy,down:splice"


@needs_mptcp
@pytest.mark.parametrize("splice", ["always", "never"])
def test_bytes_intact_splice_modes(chain, make_backend, splice):
    data = os.urandom(3 << 20)
    backend = make_backend(echo)
    client, _server, client_port, _ = chain(backend.port, "--splice", splice)
    with socket.create_connection(("127.0.0.1", client_port), timeout=30) as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(data),
                                                  sock.shutdown(socket.SHUT_WR)))
        sender.start()
        got = recv_all(sock)
        sender.join()
    assert sha(got) == sha(data)
    kind = "splice" if splice == "always" else "copy"
    assert client.closed_lines(1)[0]["relay"] == "up:%s,down:%s" % (kind, kind)


@needs_mptcp
def test_half_close_server_first(chain, make_backend):
    """The server sends and closes its side first; the client can still send."""
    greeting = os.urandom(100_000)
    late = os.urandom(2 << 20)

    def server_first(conn, backend):
        conn.sendall(greeting)
        conn.shutdown(socket.SHUT_WR)
        data = recv_all(conn)
        backend.results.append((len(data), sha(data)))

    backend = make_backend(server_first)
    client, server, client_port, _ = chain(backend.port)
    with socket.create_connection(("127.0.0.1", client_port), timeout=30) as sock:
        assert sha(recv_all(sock)) == sha(greeting)  # EOF seen: server side is done
        time.sleep(0.2)  # the relay must not tear the connection down now
        sock.sendall(late)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(10) == b""
    assert backend.wait_results(1) == [(len(late), sha(late))]
    for proxy in (client, server):
        (line,) = proxy.closed_lines(1)
        assert (int(line["up"]), int(line["down"])) == (len(late), len(greeting))
        assert "error=" not in proxy.log()


@needs_mptcp
def test_fifty_concurrent_connections(chain, make_backend):
    backend = make_backend(echo)
    client, server, client_port, _ = chain(backend.port)
    blobs = [os.urandom(200_000 + i) for i in range(50)]
    socks = [socket.create_connection(("127.0.0.1", client_port), timeout=30)
             for _ in blobs]  # all 50 are open at the same time
    results = [None] * len(blobs)

    def talk(i):
        sock = socks[i]
        sender = threading.Thread(target=lambda: (sock.sendall(blobs[i]),
                                                  sock.shutdown(socket.SHUT_WR)))
        sender.start()
        results[i] = recv_all(sock)
        sender.join()
        sock.close()

    threads = [threading.Thread(target=talk, args=(i,)) for i in range(len(blobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [sha(r) for r in results] == [sha(b) for b in blobs]
    for proxy in (client, server):
        lines = proxy.closed_lines(50)
        assert len(lines) == 50
        assert sorted(int(line["up"]) for line in lines) == sorted(len(b) for b in blobs)
        assert sorted(int(line["down"]) for line in lines) == sorted(len(b) for b in blobs)
        assert len({line["id"] for line in lines}) == 50


@needs_mptcp
def test_refused_remote_then_serves_next(make_proxy, make_backend):
    remote_port = free_port()  # nothing listens there yet
    port = free_port()
    proxy = make_proxy("-m", "client", "-l", "127.0.0.1", "-p", port,
                       "-r", "127.0.0.1:%d" % remote_port)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            assert sock.recv(10) == b""  # the proxy closed the client connection
        except ConnectionResetError:
            pass
    proxy.wait_log(r"conn=1 failed peer=127\.0\.0\.1:\d+ remote=127\.0\.0\.1:%d: cannot "
                   r"connect to 127\.0\.0\.1:%d: Connection refused; client connection "
                   r"closed" % (remote_port, remote_port))

    # The proxy keeps serving: once the remote exists the next connection works.
    backend = make_backend(echo, proto=IPPROTO_MPTCP, port=remote_port)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"hello")
        sock.shutdown(socket.SHUT_WR)
        assert recv_all(sock) == b"hello"
    (line,) = proxy.closed_lines(1)
    assert line["id"] == "2" and line["up"] == "5" and line["down"] == "5"
    assert proxy.proc.poll() is None


@needs_mptcp
def test_fallback_to_tcp_is_reported(make_proxy, make_backend):
    """Client mode towards a plain TCP server: works, and the log says so."""
    backend = make_backend(echo)  # plain TCP: no MP_CAPABLE in its SYN/ACK
    port = free_port()
    proxy = make_proxy("-m", "client", "-l", "127.0.0.1", "-p", port,
                       "-r", "127.0.0.1:%d" % backend.port)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"x" * 1000)
        sock.shutdown(socket.SHUT_WR)
        assert len(recv_all(sock)) == 1000
    (line,) = proxy.closed_lines(1)
    assert line["mptcp"] == "mptcp=no (fallback to TCP: the peer did not speak MPTCP)"


@needs_mptcp
def test_server_listener_and_client_connections_are_mptcp(make_proxy, make_backend):
    # Server mode: the listener is an MPTCP socket (ss -M lists it) ...
    backend = make_backend(echo)
    port = free_port()
    server = make_proxy("-m", "server", "-l", "127.0.0.1", "-p", port,
                        "-r", "127.0.0.1:%d" % backend.port)
    listed = subprocess.run(["ss", "-HMln", "sport = :%d" % port], capture_output=True,
                            text=True, check=True).stdout
    assert "127.0.0.1:%d" % port in listed
    # ... and an MPTCP client really gets MPTCP: MPTCP_INFO answers (it fails with
    # EOPNOTSUPP after a fallback) and TCP_IS_MPTCP says 1.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP) as sock:
        sock.connect(("127.0.0.1", port))
        assert sock.getsockopt(socket.IPPROTO_TCP, TCP_IS_MPTCP) == 1
        info = sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 96)
        assert len(info) >= 16 and int.from_bytes(info[12:16], sys.byteorder) != 0
        sock.sendall(b"ping")
        sock.shutdown(socket.SHUT_WR)
        assert recv_all(sock) == b"ping"
    assert server.closed_lines(1)[0]["mptcp"].startswith("mptcp=yes token=")

    # Client mode: the connection it makes to the remote is MPTCP (checked on the
    # remote's accepted socket), and the token it logs is its real MPTCP token.
    seen = []

    def inspect(conn, backend):
        seen.append(conn.getsockopt(socket.IPPROTO_TCP, TCP_IS_MPTCP))
        info = conn.getsockopt(SOL_MPTCP, MPTCP_INFO, 96)
        seen.append(len(info))
        echo(conn, backend)

    remote = make_backend(inspect, proto=IPPROTO_MPTCP)
    cport = free_port()
    client = make_proxy("-m", "client", "-l", "127.0.0.1", "-p", cport,
                        "-r", "127.0.0.1:%d" % remote.port)
    with socket.create_connection(("127.0.0.1", cport), timeout=10) as sock:
        sock.sendall(b"pong")
        sock.shutdown(socket.SHUT_WR)
        assert recv_all(sock) == b"pong"
    assert seen[0] == 1 and seen[1] >= 16
    assert re.fullmatch(r"mptcp=yes token=[0-9a-f]{8}", client.closed_lines(1)[0]["mptcp"])


def test_disable_mptcp(chain, make_backend):
    data = os.urandom(1 << 20)
    backend = make_backend(sink_then_reply(b""))
    client, server, client_port, server_port = chain(backend.port, "--disable-mptcp")
    listed = subprocess.run(["ss", "-HMln", "sport = :%d" % server_port],
                            capture_output=True, text=True, check=False).stdout
    assert "127.0.0.1:%d" % server_port not in listed  # plain TCP listener
    assert "(TCP), relaying to 127.0.0.1:%d (TCP)" % server_port in client.log()
    with socket.create_connection(("127.0.0.1", client_port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        assert recv_all(sock).decode() == sha(data)
    for proxy in (client, server):
        (line,) = proxy.closed_lines(1)
        assert line["mptcp"] == "mptcp=disabled"
        assert int(line["up"]) == len(data)


def test_sigterm_exits_zero_promptly(make_proxy, make_backend):
    backend = make_backend(echo)
    port = free_port()
    proxy = make_proxy("-m", "client", "-l", "127.0.0.1", "-p", port, "--disable-mptcp",
                       "-r", "127.0.0.1:%d" % backend.port, "--shutdown-timeout", "1")
    # One idle connection stays open: the proxy waits 1 s for it, then closes it.
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"a")
    assert sock.recv(1) == b"a"
    start = time.monotonic()
    proxy.proc.send_signal(signal.SIGTERM)
    assert proxy.proc.wait(timeout=5) == 0
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 4, elapsed
    try:
        assert sock.recv(10) == b""
    except ConnectionResetError:
        pass
    sock.close()
    log = proxy.log()
    assert "SIGTERM: stopped listening, 1 connection(s) open" in log
    assert "error='proxy shutting down'" in log
    with pytest.raises(ConnectionRefusedError):  # listener closed
        socket.create_connection(("127.0.0.1", port), timeout=2)

    # Without connections: exit at once, on SIGINT too.
    idle = make_proxy("-m", "server", "-l", "127.0.0.1", "-p", free_port(),
                      "-r", "127.0.0.1:9")
    start = time.monotonic()
    idle.proc.send_signal(signal.SIGINT)
    assert idle.proc.wait(timeout=5) == 0
    assert time.monotonic() - start < 1.5


@needs_root
@needs_mptcp
def test_mptcp_disabled_in_namespace(make_proxy, netns):
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.mptcp.enabled=0"],
                   check=True)
    port, remote_port = free_port(), free_port()
    client = make_proxy("-m", "client", "-l", "127.0.0.1", "-p", port,
                        "-r", "127.0.0.1:%d" % remote_port, netns=netns)
    assert "MPTCP is not available on this host" in client.log()  # warned at start
    for _ in range(2):  # the client connection is closed, the proxy keeps serving
        result = netns_client(netns, port, echo_port=remote_port)
        assert result["received"] == 0
    lines = client.wait_log(
        r"conn=(\d) failed peer=127\.0\.0\.1:\d+ remote=127\.0\.0\.1:%d: MPTCP is not "
        r"available on this host \(socket\(IPPROTO_MPTCP\): Protocol not available\); "
        r"check sysctl net\.mptcp\.enabled=1 and a kernel with CONFIG_MPTCP; client "
        r"connection closed" % remote_port, count=2)
    assert [m.group(1) for m in lines] == ["1", "2"]
    assert client.proc.poll() is None

    # Server mode keeps the service up with plain TCP and says why.
    sport, secho = free_port(), free_port()
    server = make_proxy("-m", "server", "-l", "127.0.0.1", "-p", sport,
                        "-r", "127.0.0.1:%d" % secho, netns=netns)
    assert "listening with plain TCP instead" in server.log()
    assert "listening on 127.0.0.1:%d (TCP)" % sport in server.log()
    result = netns_client(netns, sport, echo_port=secho, data_len=50_000)
    assert result["intact"] and result["received"] == 50_000
    assert server.closed_lines(1)[0]["mptcp"] == "mptcp=disabled"


@needs_root
@needs_mptcp
def test_unreachable_remote_in_namespace(make_proxy, netns):
    # v0 has 10.254.0.1/24, nothing answers ARP for 10.254.0.2: SYNs go nowhere.
    for cmd in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                ["addr", "add", "10.254.0.1/24", "dev", "v0"],
                ["link", "set", "v0", "up"], ["link", "set", "v1", "up"]):
        subprocess.run(["ip", "-n", netns] + cmd, check=True)
    silent, noroute = free_port(), free_port()
    p1 = make_proxy("-m", "client", "-l", "127.0.0.1", "-p", silent,
                    "-r", "10.254.0.2:80", "--connect-timeout", "1", netns=netns)
    p2 = make_proxy("-m", "client", "-l", "127.0.0.1", "-p", noroute,
                    "-r", "10.253.0.2:80", netns=netns)

    result = netns_client(netns, silent)
    assert result["received"] == 0 and 0.9 < result["elapsed"] < 5
    p1.wait_log(r"conn=1 failed .*cannot connect to 10\.254\.0\.2:80: timed out; "
                r"client connection closed")
    result = netns_client(netns, noroute)
    assert result["received"] == 0 and result["elapsed"] < 2
    p2.wait_log(r"conn=1 failed .*cannot connect to 10\.253\.0\.2:80: Network is "
                r"unreachable; client connection closed")
    # still serving
    netns_client(netns, noroute)
    p2.wait_log(r"conn=2 failed .*Network is unreachable")
    assert p1.proc.poll() is None and p2.proc.poll() is None


def test_command_line():
    out = subprocess.run(PROXY_CMD + ["--help"], capture_output=True, text=True, check=True)
    for text in ("--mode", "--port", "--remote", "--listen", "--disable-mptcp",
                 "examples:", "mptcp-proxy -m client -p 5555 -r 10.123.200.2:4444"):
        assert text in out.stdout
    out = subprocess.run(PROXY_CMD + ["--version"], capture_output=True, text=True, check=True)
    assert re.fullmatch(r"mptcp-proxy \d+\.\d+\.\d+\n", out.stdout)
    for bad, message in (("::1:80", "put IPv6 addresses in brackets"),
                         ("host", "is not host:port"),
                         ("[::1]:0", "port 0 is outside 1-65535")):
        res = subprocess.run(PROXY_CMD + ["-m", "client", "-p", "5555", "-r", bad],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 2 and message in res.stderr, res.stderr
    res = subprocess.run(PROXY_CMD + ["-m", "relay", "-p", "1", "-r", "a:1"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "invalid choice: 'relay'" in res.stderr


@needs_mptcp
def test_ipv6_listen_and_remote(make_proxy, make_backend):
    """'-l ::' accepts IPv4 and IPv6 clients; '[::1]:port' remotes work."""
    if not socket.has_ipv6 or not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("no IPv6")
    backend6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        backend6.bind(("::1", 0))
    except OSError:
        backend6.close()
        pytest.skip("no ::1")
    backend6.listen(8)
    port6 = backend6.getsockname()[1]

    def serve():
        for _ in range(2):
            conn, _ = backend6.accept()
            with conn:
                conn.sendall(recv_all(conn)[::-1])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = free_port()
    proxy = make_proxy("-m", "client", "-l", "::", "-p", port, "-r", "[::1]:%d" % port6)
    try:
        for host in ("127.0.0.1", "::1"):
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.sendall(b"abc")
                sock.shutdown(socket.SHUT_WR)
                assert recv_all(sock) == b"cba"
        lines = proxy.closed_lines(2)
        assert {line["remote"] for line in lines} == {"[::1]:%d" % port6}
        assert sorted(line["peer"].rsplit(":", 1)[0] for line in lines) == ["127.0.0.1", "[::1]"]
    finally:
        backend6.close()
        thread.join(timeout=5)


# A TCP backend that resets its connection with data still unread (as iperf3's
# server does at the end of a test), run inside a namespace.
RESET_BACKEND = r"""
import socket, struct, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
conn.recv(1000)
conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close()
"""


@needs_root
@needs_mptcp
def test_backend_reset_closes_mptcp_in_order(make_proxy, netns):
    """A reset from the TCP backend: the MPTCP connection between the proxies still
    ends with a CLOSED event on both ends (DATA_FIN, not MP_FASTCLOSE).  The reset does
    not cross the MPTCP hop: the client sees an orderly end with no data back."""
    backend_port, server_port, client_port = free_port(), free_port(), free_port()
    backend = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c",
                                RESET_BACKEND, str(backend_port)],
                               stdout=subprocess.PIPE, text=True)
    assert backend.stdout.readline().strip() == "ready"
    server = make_proxy("-m", "server", "-l", "127.0.0.1", "-p", server_port,
                        "-r", "127.0.0.1:%d" % backend_port, netns=netns)
    client = make_proxy("-m", "client", "-l", "127.0.0.1", "-p", client_port,
                        "-r", "127.0.0.1:%d" % server_port, netns=netns)
    # Started after the listeners, so that it sees only the connection's events.
    monitor = subprocess.Popen(["ip", "-n", netns, "mptcp", "monitor"],
                               stdout=subprocess.PIPE, text=True)
    events = []
    reader = threading.Thread(
        target=lambda: events.extend(line.split("]")[0].strip("[ ") for line in monitor.stdout),
        daemon=True)
    reader.start()
    try:
        time.sleep(0.3)  # the monitor subscribes to the MPTCP netlink events
        result = netns_client(netns, client_port, data_len=4 << 20)
        assert result["error"] is None and result["received"] == 0
        (line,) = server.closed_lines(1)
        assert line["mptcp"].startswith("mptcp=yes")
        # Which direction meets the reset first is a race.
        assert re.search(r"error='(peer->remote|remote->peer): Connection reset by peer'",
                         server.log())
        client.closed_lines(1)
        deadline = time.monotonic() + 5
        while events.count("CLOSED") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        monitor.terminate()
        monitor.wait(timeout=5)
        reader.join(timeout=5)
        backend.kill()
        backend.wait()
    counts = {name: events.count(name) for name in set(events)}
    # One MPTCP connection, seen from both of its ends (both proxies share the namespace).
    assert counts == {"CREATED": 2, "ESTABLISHED": 2, "CLOSED": 2}, events
