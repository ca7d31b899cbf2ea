"""The backup lab (the simple topology; the server signals its path-B address with the `backup`
flag, so path B is a standby path): `playbooks/backup.yml` from nothing (lab up, configure, check:
exact counts, the subflow on B flagged backup, B moves < 1 % of A's bytes), then on that lab a file
sent through the proxies while path A is cut and restored: B carries the transfer within 1.5 s of
the cut, the file arrives identical, and after A returns the traffic is back on A; molecule's
destroy of the `backup` scenario removes the lab. (The second run of configure.yml, changed=0, is
test_simple's: same roles and playbooks; the `backup` flag's idempotence is the module tests'.)"""
import json
import os
import re
import subprocess

import pytest

from lablock import lab_lock
from molecule_helpers import BIN, EXPECTED, counts_seen, leftovers, molecule, run

CLIENT, SERVER = "backup-client", "backup-server"
SERVER_B = "10.123.231.2"   # the server's path-B address (signal, backup)
BACKEND_PORT = 5201         # where the server proxy relays to (host_vars/backup-server.yml)
SWITCH_BOUND = 1.5          # seconds from the cut until B carries the transfer

# Receiver in the server container, behind the server proxy: prints "listening", reads one
# connection to EOF, prints one JSON line: bytes, sha256, stall_s (the longest time it took to get
# 64 KiB more: the failover stall the application sees).
RECEIVER = r"""
import hashlib, json, socket, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(1)
print("listening", flush=True)
srv.settimeout(60); conn, _ = srv.accept(); conn.settimeout(60)
h, n, step, crossed, crossed_at, stall = hashlib.sha256(), 0, 1 << 16, 0, time.monotonic(), 0.0  # from accept
buf = bytearray(1 << 20)
while True:
    k = conn.recv_into(buf)
    if not k:
        break
    h.update(memoryview(buf)[:k]); n += k
    if n // step > crossed:
        now = time.monotonic(); stall = max(stall, now - crossed_at); crossed, crossed_at = n // step, now
conn.close()
print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "stall_s": stall}), flush=True)
"""

# Sender in the client container: a random file of SIZE bytes sent through the client proxy
# (127.0.0.1:5555) at RATE bytes/s, while it reads the byte counters (received + sent) of eth0
# (path A) and eth1 (path B) every 5 ms:
#   steady  - once the subflow on B is established: PHASE bytes with A up;
#   cut     - path A cut on this host (iptables DROP in and out of eth0); the switch time is the
#             time until B moved 256 KiB more; A stays cut until B moved PHASE bytes;
#   back    - A restored; "back" is the time until A moved 1 MiB again ("after": PHASE bytes more);
#   rest    - the rest of the file at full speed, until the receiver has closed.
# Every wait is bounded (TIMEOUT s). One JSON line out: per phase the bytes on A and B and seconds.
SENDER = r"""
import hashlib, json, os, select, socket, subprocess, sys, time
SIZE, RATE, PHASE, TIMEOUT, SERVER_B = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
data = os.urandom(SIZE)
out = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": SIZE}

def counters():
    vals = []
    for dev in ("eth0", "eth1"):
        vals.append(sum(int(open("/sys/class/net/%s/statistics/%s" % (dev, f)).read()) for f in ("rx_bytes", "tx_bytes")))
    return vals

def b_established():
    want = "%s:%04X" % ("".join("%02X" % int(x) for x in reversed(SERVER_B.split("."))), 4444)
    with open("/proc/net/tcp") as f:
        return any(l.split()[2] == want and l.split()[3] == "01" for l in f.readlines()[1:])

def cut(op):
    for chain, opt in (("INPUT", "-i"), ("OUTPUT", "-o")):
        subprocess.run(["iptables", "-w", op, chain, opt, "eth0", "-j", "DROP"], check=True)

s = socket.create_connection(("127.0.0.1", 5555), timeout=10)
s.setblocking(False)
sent, t0 = 0, time.monotonic()

def pump(until, what, paced=True):
    # send (paced) until until(a, b) holds for the counters' rise since the call; return (a, b, seconds)
    global sent
    start, base = time.monotonic(), counters()
    while True:
        now = time.monotonic()
        a, b = [x - y for x, y in zip(counters(), base)]
        if until(a, b):
            return a, b, now - start
        if now - start > TIMEOUT:
            out["error"] = "%s: not within %.0f s (A %d, B %d bytes, %d of %d sent)" % (what, TIMEOUT, a, b, sent, SIZE)
            print(json.dumps(out), flush=True); sys.exit(1)
        allowed = SIZE if not paced else min(SIZE, int((now - t0) * RATE))
        if sent < allowed:
            _, w, _ = select.select([], [s], [], 0.005)
            if w:
                try:
                    sent += s.send(memoryview(data)[sent:allowed])
                except BlockingIOError:
                    pass
        elif sent >= SIZE:
            out["error"] = "%s: the file was all sent before (A %d, B %d)" % (what, a, b)
            print(json.dumps(out), flush=True); sys.exit(1)
        else:
            time.sleep(0.005)

pump(lambda a, b: b_established(), "subflow on B established")
out["steady"] = dict(zip(("a", "b", "s"), pump(lambda a, b: a >= PHASE, "A carries the data")))
cut("-I")
try:
    out["switch"] = dict(zip(("a", "b", "s"), pump(lambda a, b: b >= 1 << 18, "B carries the data")))
    out["cut"] = dict(zip(("a", "b", "s"), pump(lambda a, b: b >= PHASE, "B carries PHASE bytes")))
finally:
    cut("-D")
out["back"] = dict(zip(("a", "b", "s"), pump(lambda a, b: a >= 1 << 20, "A carries the data again")))
out["after"] = dict(zip(("a", "b", "s"), pump(lambda a, b: a >= PHASE, "A carries PHASE bytes again")))
base = counters()
s.setblocking(True)
s.sendall(memoryview(data)[sent:])
s.shutdown(socket.SHUT_WR)
s.settimeout(TIMEOUT)
while s.recv(65536):
    pass
out["rest"] = dict(zip(("a", "b"), [x - y for x, y in zip(counters(), base)]), sent=SIZE - sent)
out["seconds"] = time.monotonic() - t0
print(json.dumps(out), flush=True)
"""


def transfer_with_path_a_cut(size=64 << 20, rate=8 << 20, phase=4 << 20, timeout=20):
    """Run RECEIVER on the server and SENDER on the client; (sender result, receiver result)."""
    receiver = subprocess.Popen(["docker", "exec", SERVER, "python3", "-c", RECEIVER, str(BACKEND_PORT)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline().strip() == "listening", receiver.stderr.read()
        sender = subprocess.run(["docker", "exec", CLIENT, "python3", "-c", SENDER, str(size), str(rate),
                                 str(phase), str(timeout), SERVER_B],
                                capture_output=True, text=True, timeout=120)
        sent = json.loads(sender.stdout.strip().splitlines()[-1]) if sender.stdout.strip() else {}
        assert sender.returncode == 0 and "error" not in sent, (sender.returncode, sent, sender.stderr[-3000:])
        got = receiver.communicate(timeout=30)[0]
        return sent, json.loads(got.strip().splitlines()[-1])
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()


def lab_down():
    return run([os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab", "playbooks/lab_down.yml",
                "-e", "lab_group=backup"], timeout=600)


@pytest.fixture(scope="module")
def backup_lab():
    """`ansible-playbook playbooks/backup.yml` from nothing (lab up, configure, check), held under the
    lab's lock for the tests of this file: (rc, output). Then molecule's destroy of the scenario."""
    with lab_lock("backup"):
        try:
            if leftovers("backup"):  # left by an interrupted run
                assert lab_down()[0] == 0
            yield run([os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab", "playbooks/backup.yml"])
        finally:
            destroy_rc, destroy_out = molecule("destroy", "-s", "backup")
            assert destroy_rc == 0, destroy_out[-3000:]
            assert leftovers("backup") == []


def test_backup_counts_and_b_idle_while_a_is_up(backup_lab):
    rc, out = backup_lab
    assert rc == 0, out[-6000:]
    assert "MPTCP check passed on backup-client" in out, out[-6000:]
    assert counts_seen(out) == {e: (n, n, "ok") for e, n in EXPECTED["backup"].items()}, out[-6000:]
    # the kernel flagged the joined subflow (on B) backup, and B moved < 1 % of A's bytes
    # (\s+: the callback may wrap a long line at a space)
    flows = re.findall(r"'  (initial|subflow)\s+(\S+):\d+\s+->\s+(\S+):4444\s+token\s+\w+(\s+backup)?'", out)
    assert sorted(set((kind, src, dst, bool(bk)) for kind, src, dst, bk in flows)) == [
        ("initial", "10.123.230.3", "10.123.230.2", False),
        ("subflow", "10.123.231.3", "10.123.231.2", True)], out[-6000:]
    share = re.findall(r"'  eth1\s+\d+ received\s+\d+ sent\s+backup: ([\d.]+) %", out)
    assert share and float(share[-1]) < 1, out[-6000:]


def test_path_a_cut_mid_transfer_b_takes_over_then_a_again(backup_lab):
    assert backup_lab[0] == 0, "the scenario did not pass: see test_backup_counts_and_b_idle_while_a_is_up"
    sent, got = transfer_with_path_a_cut()
    report = json.dumps({"sent": sent, "received": got})
    print("backup failover: " + report)  # the figures (pytest -rP shows them)
    # the file arrived whole and identical
    assert got["bytes"] == sent["bytes"] and got["sha256"] == sent["sha256"], report
    # A up: B is idle (< 1 % of A's bytes)
    assert sent["steady"]["b"] < 0.01 * sent["steady"]["a"], report
    # A cut: B carries the transfer within the bound, and the receiver never waited longer
    assert sent["switch"]["s"] < SWITCH_BOUND and got["stall_s"] < SWITCH_BOUND, report
    assert sent["cut"]["a"] < 0.01 * sent["cut"]["b"], report
    # A back: the traffic goes back to A, B is idle again (also for the rest of the file)
    assert sent["after"]["b"] < 0.01 * sent["after"]["a"], report
    assert sent["rest"]["sent"] > 8 << 20 and sent["rest"]["b"] < 0.01 * sent["rest"]["a"], report
