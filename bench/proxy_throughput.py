#!/usr/bin/env python3
"""Throughput of the mptcp-proxy pair on loopback, side by side with iperf3 direct.

Not a test: prints Gbit/s per configuration, the ratio to the direct run and
the CPU time both proxy processes used per GiB relayed (user + system, from
/proc/PID/stat; this figure is much less sensitive to other load on the
machine than Gbit/s).  Configurations are interleaved and repeated; medians.

    python3 bench/proxy_throughput.py [--seconds 5] [--repeat 3] [--reverse] [--json FILE]
                                      [--compare OTHER_PROGRAM] [--idle N]

--compare runs the default configuration of another mptcp-proxy program (e.g. an
older version: git show REV:roles/mptcp_proxy/files/mptcp-proxy > /tmp/old) in
the same run.  --idle N instead opens N idle connections through both proxies
(each relays one byte both ways) and prints the RSS, threads and descriptors the
proxies added, for this program and the --compare one.

Chain measured: iperf3 -c -> client proxy (TCP in, MPTCP out) -> server proxy
(MPTCP in, TCP out) -> iperf3 -s, all on 127.0.0.1, with and without splice(2).
Every process started here is stopped again, also on errors.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "..", "roles", "mptcp_proxy", "files", "mptcp-proxy")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port, timeout=5.0):
    """Wait until something listens on the port (asks ss; does not connect)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-Htln", "sport = :%d" % port], capture_output=True,
                             text=True, check=False).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def start(cmd):
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_proxy(cmd):
    """Start a proxy and wait for its 'listening on' line.

    Probing the port with a connection instead would reach the iperf3 server
    through the proxies and confuse it (it takes any connection for a test).
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stderr.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError("proxy did not start: %s" % line.strip())
    # Keep reading stderr so the proxy never blocks on a full pipe.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc


def stop(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid, encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def iperf(port, seconds, reverse, host="127.0.0.1", prefix=(), extra=()):
    """Run an iperf3 client; (Gbit/s, bytes) received.  prefix: e.g. ip netns exec NS."""
    cmd = list(prefix) + ["iperf3", "-c", host, "-p", str(port), "-t", str(seconds), "-J"]
    cmd += list(extra)
    if reverse:
        cmd.append("-R")
    for attempt in range(3):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30,
                             check=False).stdout
        report = json.loads(out)
        if "error" not in report:
            end = report["end"]["sum_received"]
            return end["bits_per_second"] / 1e9, end["bytes"]
        # e.g. "the server is busy running a test" right after the previous run
        print("iperf3 error (attempt %d): %s" % (attempt + 1, report["error"]),
              file=sys.stderr)
        time.sleep(2)
    raise RuntimeError("iperf3 failed: %s" % report["error"])


def proxy_pair(backend_port, extra, program=PROXY):
    """Start server and client proxy on loopback; ([procs], client port)."""
    server_port, client_port = free_port(), free_port()
    procs = []
    try:
        procs.append(start_proxy([sys.executable, program, "-m", "server", "-l", "127.0.0.1",
                                  "-p", str(server_port), "-r", "127.0.0.1:%d" % backend_port]
                                 + extra))
        procs.append(start_proxy([sys.executable, program, "-m", "client", "-l", "127.0.0.1",
                                  "-p", str(client_port), "-r", "127.0.0.1:%d" % server_port]
                                 + extra))
    except Exception:
        stop(procs)
        raise
    return procs, client_port


def through_proxies(iperf_port, seconds, reverse, extra, program=PROXY):
    procs, client_port = proxy_pair(iperf_port, extra, program)
    try:
        before = sum(cpu_seconds(p.pid) for p in procs)
        gbps, nbytes = iperf(client_port, seconds, reverse)
        time.sleep(0.3)  # let the proxies finish the connection
        cpu = sum(cpu_seconds(p.pid) for p in procs) - before
        return gbps, cpu / (nbytes / 2**30)
    finally:
        stop(procs)


def proc_status(pid):
    """(VmRSS KiB, threads, open descriptors) of a process."""
    fields = {}
    with open("/proc/%d/status" % pid, encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return (int(fields["VmRSS"][0]), int(fields["Threads"][0]),
            len(os.listdir("/proc/%d/fd" % pid)))


def idle_cost(count, program):
    """Open count idle connections through both proxies; what they cost."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * count + 100)), hard))
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(1024)
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = echo.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.sendall(conn.recv(1))

    threading.Thread(target=serve, daemon=True).start()
    procs, client_port = proxy_pair(echo.getsockname()[1], [], program)
    socks = []
    try:
        before = [proc_status(p.pid) for p in procs]
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", client_port), timeout=30)
            sock.sendall(b"x")
            socks.append(sock)
        for sock in socks:
            assert sock.recv(1) == b"x"
        after = [proc_status(p.pid) for p in procs]
    finally:
        for sock in socks:
            sock.close()
        stop(procs)
        echo.close()
        for conn in accepted:
            conn.close()
    rss = sum(a[0] - b[0] for a, b in zip(after, before))
    return {"program": program, "connections": count,
            "rss_kib_before": [b[0] for b in before], "rss_kib_after": [a[0] for a in after],
            "rss_kib_per_connection": round(rss / count, 2),
            "threads_after": [a[1] for a in after], "fds_after": [a[2] for a in after]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reverse", action="store_true", help="iperf3 -R (download)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--compare", metavar="PROGRAM",
                        help="another mptcp-proxy program to measure in the same run")
    parser.add_argument("--idle", type=int, metavar="N",
                        help="measure N idle connections instead of throughput")
    args = parser.parse_args()

    if args.idle:
        rows = [idle_cost(args.idle, prog) for prog in [PROXY] + ([args.compare]
                                                                 if args.compare else [])]
        for row in rows:
            print("%s: %d idle connections: RSS (server, client) %s -> %s KiB, +%.1f KiB per "
                  "connection (both proxies), threads %s, fds %s" % (
                      row["program"], row["connections"], row["rss_kib_before"],
                      row["rss_kib_after"], row["rss_kib_per_connection"],
                      row["threads_after"], row["fds_after"]))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump({"idle": rows}, fh, indent=2)
        return 0

    configs = [
        ("direct TCP (no proxy)", None),
        ("proxies, MPTCP, --splice=auto (default)", []),
        ("proxies, MPTCP, --splice=always", ["--splice=always"]),
        ("proxies, MPTCP, --splice=never (recv/send)", ["--splice=never"]),
        ("proxies, TCP (--disable-mptcp), splice", ["--disable-mptcp", "--splice=always"]),
        ("proxies, TCP (--disable-mptcp), recv/send", ["--disable-mptcp", "--splice=never"]),
    ]
    programs = {}
    if args.compare:
        name = "%s, MPTCP, --splice=auto" % os.path.basename(args.compare)
        configs.insert(2, (name, []))
        programs[name] = args.compare
    iperf_port = free_port()
    server = start(["iperf3", "-s", "-p", str(iperf_port)])
    runs = {name: {"gbit_s": [], "cpu_s_per_gib": []} for name, _ in configs}
    try:
        wait_listening(iperf_port)
        for _ in range(args.repeat):
            for name, extra in configs:
                if extra is None:
                    gbps, _nbytes = iperf(iperf_port, args.seconds, args.reverse)
                else:
                    gbps, cpu = through_proxies(iperf_port, args.seconds, args.reverse,
                                                extra, programs.get(name, PROXY))
                    runs[name]["cpu_s_per_gib"].append(cpu)
                runs[name]["gbit_s"].append(gbps)
                time.sleep(0.5)  # let the iperf3 server return to listening
    finally:
        stop([server])

    results = []
    for name, _ in configs:
        row = {"config": name,
               "gbit_s": round(statistics.median(runs[name]["gbit_s"]), 2),
               "gbit_s_runs": [round(x, 2) for x in runs[name]["gbit_s"]]}
        if runs[name]["cpu_s_per_gib"]:
            row["proxy_cpu_s_per_gib"] = round(statistics.median(runs[name]["cpu_s_per_gib"]), 3)
        results.append(row)
    base = results[0]["gbit_s"]
    print("loopback, iperf3 %d s%s x %d runs (medians), %d CPUs, kernel %s" % (
        args.seconds, " -R" if args.reverse else "", args.repeat, os.cpu_count(),
        os.uname().release))
    for row in results:
        row["ratio_to_direct"] = round(row["gbit_s"] / base, 3) if base else None
        cpu = row.get("proxy_cpu_s_per_gib")
        print("  %-46s %6.2f Gbit/s %7.1f MB/s  x%.2f  %s" % (
            row["config"], row["gbit_s"], row["gbit_s"] * 1e3 / 8, row["ratio_to_direct"],
            "proxy CPU %.3f s/GiB" % cpu if cpu is not None else ""))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"seconds": args.seconds, "reverse": args.reverse,
                       "kernel": os.uname().release, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
