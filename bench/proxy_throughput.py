#!/usr/bin/env python3
"""Throughput of the mptcp-proxy pair on loopback, side by side with iperf3 direct.

Not a test: prints Gbit/s per configuration and the ratio to the direct run.

    python3 bench/proxy_throughput.py [--seconds 5] [--reverse] [--json FILE]

Chain measured: iperf3 -c -> client proxy (TCP in, MPTCP out) -> server proxy
(MPTCP in, TCP out) -> iperf3 -s, all on 127.0.0.1, with and without splice(2).
Every process started here is stopped again, also on errors.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "..", "roles", "mptcp_proxy", "files", "mptcp-proxy")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def start(cmd):
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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


def iperf(port, seconds, reverse):
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"]
    if reverse:
        cmd.append("-R")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30,
                         check=True).stdout
    end = json.loads(out)["end"]
    return end["sum_received"]["bits_per_second"] / 1e9


def through_proxies(iperf_port, seconds, reverse, extra):
    server_port, client_port = free_port(), free_port()
    procs = []
    try:
        procs.append(start([sys.executable, PROXY, "-m", "server", "-l", "127.0.0.1",
                            "-p", str(server_port), "-r", "127.0.0.1:%d" % iperf_port]
                           + extra))
        procs.append(start([sys.executable, PROXY, "-m", "client", "-l", "127.0.0.1",
                            "-p", str(client_port), "-r", "127.0.0.1:%d" % server_port]
                           + extra))
        wait_listening(server_port)
        wait_listening(client_port)
        return iperf(client_port, seconds, reverse)
    finally:
        stop(procs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--reverse", action="store_true", help="iperf3 -R (download)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    configs = [
        ("direct TCP (no proxy)", None),
        ("proxies, MPTCP, splice", []),
        ("proxies, MPTCP, recv/send", ["--no-splice"]),
        ("proxies, TCP (--disable-mptcp), splice", ["--disable-mptcp"]),
        ("proxies, TCP (--disable-mptcp), recv/send", ["--disable-mptcp", "--no-splice"]),
    ]
    iperf_port = free_port()
    server = start(["iperf3", "-s", "-p", str(iperf_port)])
    results = []
    try:
        wait_listening(iperf_port)
        for name, extra in configs:
            if extra is None:
                gbps = iperf(iperf_port, args.seconds, args.reverse)
            else:
                gbps = through_proxies(iperf_port, args.seconds, args.reverse, extra)
            results.append({"config": name, "gbit_s": round(gbps, 2)})
            time.sleep(0.5)  # let the iperf3 server return to listening
    finally:
        stop([server])

    base = results[0]["gbit_s"]
    print("loopback, iperf3 %d s%s, %d CPUs, kernel %s" % (
        args.seconds, " -R" if args.reverse else "", os.cpu_count(), os.uname().release))
    for row in results:
        row["ratio_to_direct"] = round(row["gbit_s"] / base, 3) if base else None
        print("  %-44s %7.2f Gbit/s  %6.1f MB/s  x%.2f" % (
            row["config"], row["gbit_s"], row["gbit_s"] * 1e3 / 8, row["ratio_to_direct"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"seconds": args.seconds, "reverse": args.reverse,
                       "kernel": os.uname().release, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
