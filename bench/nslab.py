"""A two-path MPTCP lab in network namespaces, for the benchmark and the fault tests.

    client ns                                          server ns
      pa (10.126.1.1/24) <==== veth, path A ====> pa (10.126.1.2/24)
      pb (10.126.2.1/24) <==== veth, path B ====> pb (10.126.2.2/24)

Like seed 000/002's simple case: the client connects to the server's path-A address
(initial subflow on A); the server has a `signal` endpoint on its path-B address, so
it announces it (ADD_ADDR) and the client's in-kernel path manager opens a second
subflow over B.  Limits: client subflows 2 / add_addr_accepted 1, server subflows 2.

Everything here is made with ip(8), tc(8) and iptables(8) inside namespaces this
module creates; `NsLab.close()` (or leaving the `with` block, also on exceptions)
kills every process left in them and deletes them.  Names start with `mpbench-` and
carry the creating process id, so `sweep_stale()` removes what a killed run left.

Helpers for the experiments: tbf shaping per path, cutting a path (link down, or
an iptables DROP as seed 002 does on its routers), the mptcp-proxy pair, a file
transfer with a receiver that hashes and time-stamps what arrives, `ip mptcp
monitor` capture, subflow listing with ss, and nstat counters.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_throughput  # noqa: E402  (bench/proxy_throughput.py: stop)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROXY = os.path.join(ROOT, "roles", "mptcp_proxy", "files", "mptcp-proxy")
PREFIX = "mpbench-"

PATHS = {
    # path: (client address, server address, prefix length)
    "A": ("10.126.1.1", "10.126.1.2", 24),
    "B": ("10.126.2.1", "10.126.2.2", 24),
}
DEV = {"A": "pa", "B": "pb"}   # interface name of each path, the same in both namespaces
SIGNAL_ENDPOINT_ID = 1         # id of the server's signal endpoint (path B)


def run(cmd, check=True, **kwargs):
    """subprocess.run with text output; on failure the error names the command and stderr."""
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if check and res.returncode != 0:
        raise RuntimeError("%s failed (rc=%d): %s" % (" ".join(cmd), res.returncode,
                                                      (res.stderr or res.stdout).strip()))
    return res


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_netns_pids(name):
    out = run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in out:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _delete_netns(name):
    _kill_netns_pids(name)
    run(["ip", "netns", "del", name], check=False)


def sweep_stale():
    """Delete mpbench-<pid>-* namespaces whose creating process is gone."""
    for line in run(["ip", "netns", "list"], check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.match(re.escape(PREFIX) + r"(\d+)-", name)
        if match and not _pid_alive(int(match.group(1))):
            _delete_netns(name)


class NsLab:
    """Client and server namespaces joined by two veth pairs (paths A and B)."""

    def __init__(self, tag="lab", add_addr_accepted=1):
        """add_addr_accepted: the client's limit; 1 is enough for one connection, but a
        re-announced address is only accepted with 2 (see readd_signal_endpoint)."""
        self.add_addr_accepted = add_addr_accepted
        self.cli = "%s%d-%s-c" % (PREFIX, os.getpid(), tag)
        self.srv = "%s%d-%s-s" % (PREFIX, os.getpid(), tag)
        self.procs = []
        self.dropped = set()
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- set-up and tear-down -------------------------------------------------

    def _build(self):
        for ns in (self.cli, self.srv):
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.mptcp.enabled=1"])
        for path, (caddr, saddr, plen) in PATHS.items():
            dev = DEV[path]
            tmp = "mpbtmp%d%s" % (os.getpid() % 100000, path)
            run(["ip", "link", "add", tmp, "netns", self.cli, "type", "veth",
                 "peer", "name", dev, "netns", self.srv])
            run(["ip", "-n", self.cli, "link", "set", tmp, "name", dev])
            for ns, addr in ((self.cli, caddr), (self.srv, saddr)):
                run(["ip", "-n", ns, "addr", "add", "%s/%d" % (addr, plen), "dev", dev])
                run(["ip", "-n", ns, "link", "set", dev, "up"])
        run(["ip", "-n", self.cli, "mptcp", "limits", "set", "subflows", "2",
             "add_addr_accepted", str(self.add_addr_accepted)])
        run(["ip", "-n", self.srv, "mptcp", "limits", "set", "subflows", "2",
             "add_addr_accepted", "0"])
        self.add_signal_endpoint()

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for ns in (self.cli, self.srv):
            _delete_netns(ns)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- commands in the namespaces ----------------------------------------------

    def ns(self, side):
        return self.cli if side == "client" else self.srv

    def exec_cmd(self, side, cmd):
        return ["ip", "netns", "exec", self.ns(side)] + list(cmd)

    def run(self, side, cmd, **kwargs):
        return run(self.exec_cmd(side, cmd), **kwargs)

    def popen(self, side, cmd, **kwargs):
        proc = subprocess.Popen(self.exec_cmd(side, cmd), **kwargs)
        self.procs.append(proc)
        return proc

    # -- MPTCP path manager ---------------------------------------------------------

    def add_signal_endpoint(self):
        addr = PATHS["B"][1]
        run(["ip", "-n", self.srv, "mptcp", "endpoint", "add", addr, "dev", DEV["B"],
             "id", str(SIGNAL_ENDPOINT_ID), "signal"])

    def readd_signal_endpoint(self):
        """Delete and add the server's signal endpoint again.

        Deleting it sends REMOVE_ADDR on every connection (their subflows on that
        address close); adding it announces the address again (ADD_ADDR), and the
        client's path manager opens a new subflow to it.  This is the way to get
        back a subflow the kernel closed: the in-kernel path manager does not
        re-create a closed subflow by itself.  Measured on Linux 6.18: the client
        only accepts the new announcement when its add_addr_accepted limit has room
        for it (2 here): the REMOVE_ADDR of an address whose subflow was already
        closed does not give the accepted slot back.
        """
        run(["ip", "-n", self.srv, "mptcp", "endpoint", "del", "id", str(SIGNAL_ENDPOINT_ID)])
        self.add_signal_endpoint()

    def sysctl(self, setting):
        for side in ("client", "server"):
            self.run(side, ["sysctl", "-qw", setting])

    # -- shaping and cutting paths ---------------------------------------------------

    def shape(self, rates_mbit):
        """tbf on both ends of each path: {'A': 100, 'B': 100}; None removes the qdisc."""
        for path, rate in rates_mbit.items():
            for ns in (self.cli, self.srv):
                if rate is None:
                    run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", DEV[path],
                         "root"], check=False)
                    continue
                # burst: >= rate x 4 ms (and >= 64 KiB) so tbf does not throttle below the
                # rate on a 250 Hz kernel; queue bounded to 50 ms at the rate.
                burst = max(64 * 1024, int(rate * 1e6 / 8 * 0.004))
                run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", DEV[path],
                     "root", "tbf", "rate", "%dmbit" % rate, "burst", str(burst),
                     "latency", "50ms"])

    def cut(self, path, how):
        """Cut a path on the client side: 'link' (ip link set down) or 'drop' (iptables DROP)."""
        dev = DEV[path]
        if how == "link":
            run(["ip", "-n", self.cli, "link", "set", dev, "down"])
        elif how == "drop":
            for chain, opt in (("INPUT", "-i"), ("OUTPUT", "-o")):
                self.run("client", ["iptables", "-w", "-I", chain, opt, dev, "-j", "DROP"])
            self.dropped.add(path)
        else:
            raise ValueError("cut: how is 'link' or 'drop', not %r" % how)

    def restore(self, path, how):
        dev = DEV[path]
        if how == "link":
            run(["ip", "-n", self.cli, "link", "set", dev, "up"])
        else:
            for chain, opt in (("INPUT", "-i"), ("OUTPUT", "-o")):
                self.run("client", ["iptables", "-w", "-D", chain, opt, dev, "-j", "DROP"])
            self.dropped.discard(path)

    # -- observation ---------------------------------------------------------------------

    def subflows(self, side="client"):
        """Established TCP subflows of MPTCP connections: list of (local, peer) addresses."""
        out = self.run(side, ["ss", "-Htni", "state", "established"]).stdout
        result = []
        lines = out.splitlines()
        for i, line in enumerate(lines):
            fields = line.split()
            if len(fields) >= 4 and not line.startswith((" ", "\t")):
                info = lines[i + 1] if i + 1 < len(lines) else ""
                if "tcp-ulp-mptcp" in info:
                    result.append((fields[2].rsplit(":", 1)[0], fields[3].rsplit(":", 1)[0]))
        return result

    def nstat(self, side="client"):
        """Absolute kernel counters of the namespace (nstat -as), as a dict."""
        out = self.run(side, ["nstat", "-asz", "--json"]).stdout
        data = json.loads(out)
        return data.get("kernel", data)

    def monitor(self, side="client"):
        return Monitor(self, side)

    # -- the proxy pair ---------------------------------------------------------------------

    def start_proxy(self, side, args):
        """Start mptcp-proxy in a namespace; return it once it logged 'listening on'."""
        proc = self.popen(side, [sys.executable, PROXY] + [str(a) for a in args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()
        if "listening on" not in line:
            proc.kill()
            raise RuntimeError("proxy did not start: %s" % line.strip())
        proc.log = []
        threading.Thread(target=lambda: proc.log.extend(proc.stderr), daemon=True).start()
        return proc

    def proxy_pair(self, backend_port, client_port=5555, server_port=4444, extra=()):
        """Server proxy (MPTCP :server_port -> 127.0.0.1:backend_port in the server ns) and
        client proxy (TCP 127.0.0.1:client_port in the client ns -> MPTCP to path A)."""
        server = self.start_proxy("server", ["-m", "server", "-l", "0.0.0.0", "-p", server_port,
                                             "-r", "127.0.0.1:%d" % backend_port] + list(extra))
        client = self.start_proxy("client", ["-m", "client", "-l", "127.0.0.1",
                                             "-p", client_port,
                                             "-r", "%s:%d" % (PATHS["A"][1], server_port)]
                                  + list(extra))
        return client, server

    def stop(self, *procs):
        """SIGTERM, then SIGKILL after 10 s (proxy_throughput.stop)."""
        proxy_throughput.stop(procs)

    def wait_listening(self, side, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run(side, ["ss", "-Htln", "sport = :%d" % port]).stdout.strip():
                return
            time.sleep(0.05)
        raise RuntimeError("nothing listens on port %d in the %s namespace" % (port, side))


class Monitor:
    """`ip mptcp monitor` in one namespace; events as (monotonic time, name, fields)."""

    LINE = re.compile(r"^\[\s*(?P<name>[A-Z_]+(?: \d+)?)\]\s*(?P<rest>.*)$")

    def __init__(self, lab, side):
        self.events = []
        self.proc = lab.popen(side, ["ip", "mptcp", "monitor"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.2)  # the monitor subscribes to the netlink group

    def _read(self):
        for line in self.proc.stdout:
            match = self.LINE.match(line.strip())
            if match:
                fields = dict(kv.split("=", 1) for kv in match.group("rest").replace(",", " ")
                              .split() if "=" in kv)
                self.events.append((time.monotonic(), match.group("name"), fields))

    def find(self, name, since=0.0, **fields):
        return [e for e in list(self.events) if e[1] == name and e[0] >= since
                and all(e[2].get(k) == v for k, v in fields.items())]

    def wait(self, name, since=0.0, timeout=10.0, **fields):
        """Time of the first matching event at or after `since`, or None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(name, since, **fields)
            if found:
                return found[0][0]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


# ---------------------------------------------------------------------------------------------
# File transfer through the proxies: a sender in the client ns, a receiver in the server ns
# ---------------------------------------------------------------------------------------------

# Receiver: accept one connection, read to EOF, hash; prints "listening", then "P <bytes> <t>"
# progress lines (at most every 50 ms while data arrives, and when it stops arriving), then one
# JSON line with the result (gaps: every (start, end) of more than 20 ms without data).
# stall_s: the longest time the receiver took to get `step` more bytes (64 KiB: a trickle of
# single retransmitted segments is no progress); read_gap_s: the longest time between two reads.
# Times are CLOCK_MONOTONIC,
# shared by all namespaces.  stall_s is the longest time between two reads that returned data.
RECEIVER = r"""
import hashlib, json, socket, sys, time
port, step = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept()
crossed, crossed_at, slow = 0, time.monotonic(), 0.0
h = hashlib.sha256(); n = 0; first = last = None; stall = 0.0; stall_at = 0.0; gaps = []
next_report = 0.0; reported = -1; buf = bytearray(1 << 20)
conn.settimeout(0.05)
while True:
    try:
        k = conn.recv_into(buf)
    except socket.timeout:
        if n and n != reported:  # nothing arrives now: report where we are
            print("P %d %.6f" % (n, last), flush=True); reported = n
        continue
    now = time.monotonic()
    if not k:
        break
    if first is None:
        first = now
    else:
        if now - last > 0.02:
            gaps.append((last, now))
        if now - last > stall:
            stall, stall_at = now - last, last
    last = now
    h.update(memoryview(buf)[:k]); n += k
    if n // step > crossed:  # crossed one more multiple of `step` bytes
        slow = max(slow, now - crossed_at); crossed, crossed_at = n // step, now
    if now >= next_report:
        print("P %d %.6f" % (n, now), flush=True); next_report = now + 0.05; reported = n
print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "first": first, "last": last,
                  "end": time.monotonic(), "read_gap_s": stall, "stall_at": stall_at, "gaps": gaps,
                  "stall_s": max(slow, time.monotonic() - crossed_at)}), flush=True)
"""

# Sender: connect, send the file; with a pause offset, send that much, print "paused",
# wait for a line on stdin, send the rest.  Prints one JSON line.
SENDER = r"""
import json, socket, sys, time
path, port, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
t0 = time.monotonic()
s = socket.create_connection(("127.0.0.1", port))
if pause > 0:
    s.sendall(data[:pause]); print("paused", flush=True); sys.stdin.readline()
    s.sendall(data[pause:])
else:
    s.sendall(data)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
print(json.dumps({"start": t0, "end": time.monotonic(), "bytes": len(data)}), flush=True)
"""


def make_file(path, size):
    """A file of random bytes (incompressible); returns its sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            fh.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


class Transfer:
    """One file sent client -> client proxy -> MPTCP -> server proxy -> receiver."""

    def __init__(self, lab, path, backend_port, client_port, pause_at=0, step=64 << 10):
        self.lab = lab
        self.progress = []  # (monotonic, bytes) from the receiver
        self.result = None
        self.receiver = lab.popen("server", [sys.executable, "-c", RECEIVER, str(backend_port),
                                            str(step)],
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        if self.receiver.stdout.readline().strip() != "listening":
            raise RuntimeError("receiver did not start")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.sender = lab.popen("client", [sys.executable, "-c", SENDER, path, str(client_port),
                                           str(pause_at)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                bufsize=1)
        if pause_at:
            line = self.sender.stdout.readline().strip()
            if line != "paused":
                raise RuntimeError("sender did not pause: %r" % line)

    def _read(self):
        for line in self.receiver.stdout:
            if line.startswith("P "):
                _p, nbytes, stamp = line.split()
                self.progress.append((float(stamp), int(nbytes)))
            elif line.startswith("{"):
                self.result = json.loads(line)

    def resume(self):
        self.sender.stdin.write("go\n")
        self.sender.stdin.flush()

    def received(self):
        return self.progress[-1][1] if self.progress else 0

    def wait_bytes(self, nbytes, timeout=60.0):
        deadline = time.monotonic() + timeout
        while self.received() < nbytes:
            if time.monotonic() > deadline or self.receiver.poll() is not None:
                return False
            time.sleep(0.005)
        return True

    def finish(self, timeout=120.0):
        """Wait for both ends; return sender and receiver results merged."""
        try:
            out, _err = self.sender.communicate(timeout=timeout)
            self.receiver.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.sender.kill()
            self.receiver.kill()
            raise RuntimeError("transfer did not finish within %.0f s (received %d bytes)"
                               % (timeout, self.received()))
        self.reader.join(timeout=5)
        sent = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        if self.result is None:
            raise RuntimeError("receiver gave no result (rc=%s)" % self.receiver.returncode)
        res = dict(self.result)
        res["start"] = sent.get("start")
        res["transfer_s"] = (res["end"] - sent["start"]) if sent.get("start") else None
        return res


def wait_for(predicate, timeout, step=0.05):
    """Poll predicate() until true; return the seconds it took, or None on timeout."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(step)
