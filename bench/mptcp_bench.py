"""make bench: aggregation, proxy cost, failover, file sizes and provisioning, in one run.

    sudo .venv/bin/python bench/mptcp_bench.py [--quick] [--skip-provision] [--only provisioning]
                                              [--out bench/results]

Traffic runs only between two network namespaces made here (bench/nslab.py: client and
server joined by two veth paths A and B, the server announcing B); they are removed at the
end, also on errors or Ctrl-C.  Each comparison is measured side by side in the same run,
configurations interleaved and repeated (medians).  Writes <out>/summary.json and
<out>/summary.png and prints a table.

1. aggregation: both paths shaped with tbf (100+100 and an unbalanced 150+50 Mbit/s);
   iperf3 through the client and server mptcp-proxy vs kernel MPTCP without proxies
   (mptcpize run iperf3) vs single-path TCP.  aggregation_ratio = goodput through the
   proxies / sum of the path rates (goodput counts payload only; tbf counts whole frames).
2. proxy cost, unshaped: through both proxies vs kernel MPTCP direct; proxy_ratio =
   with / without; CPU seconds (user+system, /proc/PID/stat) of both proxies per GB.
3. failover: a 64 MB file through the proxies, one path cut at 25 % (link down on the
   client, or an iptables DROP there, as seed 002 drops on its routers), restored 3 s later:
   bytes_identical (sha256 at both ends), stall_s (longest time the receiver took to get 64 KiB
   more: a trickle of single reinjected segments is not progress; read_gap_s: longest time
   between two reads),
   whether the subflow on the cut path survived and carries data again.  Then a long outage
   (tcp_retries2=3 in the namespaces so the subflow times out in seconds): is a closed subflow
   re-created on the restored path by itself, and after re-adding the server's signal endpoint
   (with the client's add_addr_accepted at 1 and at 2)?
4. file sizes (seed 003, 64 KB .. 32 MB) through the proxies: transfer time and
   retransmissions (nstat deltas), without a cut and with path A cut half-way.
5. provisioning (bench/provisioning.py), for simple and sevpn side by side: the hand-written
   baseline (bench/baseline.py), the scenario playbook from no lab, again (changed=0),
   configure.yml again and check.yml alone, with ratios to the baseline and the ten slowest tasks
   of each run; then N = 1, 2, 4, 8 pairs of simple (bench/scale_inventory.py) brought up,
   configured and checked over the Docker connection and over SSH.
   `--only provisioning` (make bench BENCH=provisioning) runs this part alone.
"""

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nslab  # noqa: E402  (bench/nslab.py)
import provisioning  # noqa: E402  (bench/provisioning.py)
import proxy_throughput as pt  # noqa: E402  (bench/proxy_throughput.py: iperf, cpu_seconds)

ROOT = nslab.ROOT
IPERF_TCP, IPERF_MPTCP, BACKEND = 5201, 5202, 6000
CLIENT_PROXY, SERVER_PROXY = 5555, 4444
SIZES = [64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 32 << 20]  # seed 003
COUNTERS = {"client": ["TcpRetransSegs", "MPTcpExtMPTCPRetrans", "MPTcpExtSubflowStale",
                       "MPTcpExtSubflowRecover"],
            "server": ["MPTcpExtDuplicateData", "MPTcpExtOFOQueue"]}


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def med(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


# ---------------------------------------------------------------------------------------------
# iperf3 in the namespaces
# ---------------------------------------------------------------------------------------------

class Iperf:
    """iperf3 servers in the server ns (plain TCP and mptcpize'd) and the three ways to reach them."""

    def __init__(self, lab):
        self.lab = lab
        lab.popen("server", ["iperf3", "-s", "-p", str(IPERF_TCP)],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.popen("server", ["mptcpize", "run", "iperf3", "-s", "-p", str(IPERF_MPTCP)],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.wait_listening("server", IPERF_TCP)
        lab.wait_listening("server", IPERF_MPTCP)
        self.proxies = lab.proxy_pair(IPERF_TCP, CLIENT_PROXY, SERVER_PROXY)

    def measure(self, mode, seconds, omit=0):
        """(Mbit/s received, bytes received, proxy CPU s or None) for one iperf3 run."""
        prefix = ["ip", "netns", "exec", self.lab.cli]
        extra = ["-O", str(omit)] if omit else []
        server_addr = nslab.PATHS["A"][1]
        cpu_before = sum(pt.cpu_seconds(p.pid) for p in self.proxies)
        if mode == "proxies":
            gbps, nbytes = pt.iperf(CLIENT_PROXY, seconds, False, "127.0.0.1", prefix, extra)
        elif mode == "mptcp":
            gbps, nbytes = pt.iperf(IPERF_MPTCP, seconds, False, server_addr,
                                    prefix + ["mptcpize", "run"], extra)
        else:  # single-path TCP over path A
            gbps, nbytes = pt.iperf(IPERF_TCP, seconds, False, server_addr, prefix, extra)
        time.sleep(0.5)  # the proxies close the relayed connection, iperf3 -s listens again
        cpu = sum(pt.cpu_seconds(p.pid) for p in self.proxies) - cpu_before
        return gbps * 1000, nbytes, (cpu if mode == "proxies" else None)


def bench_aggregation(lab, iperf, pairs, seconds, repeat):
    results = []
    for rates in pairs:
        lab.shape({"A": rates[0], "B": rates[1]})
        runs = {m: [] for m in ("proxies", "mptcp", "tcp")}
        for _ in range(repeat):
            for mode in runs:
                mbps, _n, _cpu = iperf.measure(mode, seconds, omit=1)
                runs[mode].append(mbps)
                log("aggregation %s+%s Mbit/s %-7s %.1f Mbit/s" % (rates + (mode, mbps)))
        total = sum(rates)
        row = {"rates_mbit": list(rates), "sum_mbit": total}
        for mode, vals in runs.items():
            row[mode + "_mbit"] = med(vals)
            row[mode + "_mbit_runs"] = [round(v, 1) for v in vals]
            row[mode + "_ratio"] = round(med(vals) / total, 3)
        row["proxies_vs_mptcp"] = round(row["proxies_mbit"] / row["mptcp_mbit"], 3)
        results.append(row)
    lab.shape({"A": None, "B": None})
    return results


def bench_proxy_cost(lab, iperf, seconds, repeat):
    runs = {"proxies": [], "mptcp": []}
    cpu_per_gb = []
    for _ in range(repeat):
        for mode in runs:
            mbps, nbytes, cpu = iperf.measure(mode, seconds)
            runs[mode].append(mbps)
            if cpu is not None:
                cpu_per_gb.append(cpu / (nbytes / 1e9))
            log("unshaped %-7s %.0f Mbit/s%s" % (mode, mbps, "" if cpu is None else
                                                 "  proxy CPU %.2f s/GB" % cpu_per_gb[-1]))
    with_p, without = med(runs["proxies"]), med(runs["mptcp"])
    return {"proxies_mbit": with_p, "mptcp_direct_mbit": without,
            "proxies_mbit_runs": [round(v) for v in runs["proxies"]],
            "mptcp_direct_mbit_runs": [round(v) for v in runs["mptcp"]],
            "proxy_ratio": round(with_p / without, 3),
            "proxy_cpu_s_per_gb": med(cpu_per_gb)}


# ---------------------------------------------------------------------------------------------
# Failover and file sizes (through the proxies, with the transfer helper of nslab)
# ---------------------------------------------------------------------------------------------

def counters(lab):
    return {side: {k: lab.nstat(side).get(k, 0) for k in keys} for side, keys in COUNTERS.items()}


def counter_delta(before, after):
    return {k: after[s][k] - before[s][k] for s in before for k in before[s]}


def subflow_bytes_acked(lab, path):
    """bytes_acked of the client's established subflows on a path (sum), or None if none."""
    out = lab.run("client", ["ss", "-Htni", "state", "established", "src",
                             nslab.PATHS[path][0]]).stdout
    values = [int(v) for v in re.findall(r"bytes_acked:(\d+)", out)]
    return sum(values) if values else None


def failover_run(lab, mon, fname, digest, size, path, how, outage_s):
    """One transfer with `path` cut at 25 % and restored outage_s later."""
    transfer = nslab.Transfer(lab, fname, BACKEND, CLIENT_PROXY)
    if not transfer.wait_bytes(size // 4):
        raise RuntimeError("transfer did not reach 25 %")
    base = counters(lab)
    t_cut = time.monotonic()
    lab.cut(path, how)
    time.sleep(outage_s)
    acked_at_restore = subflow_bytes_acked(lab, path)
    lab.restore(path, how)
    t_restore = time.monotonic()
    resume_s = None
    while transfer.receiver.poll() is None:
        acked = subflow_bytes_acked(lab, path)
        if acked is not None and acked_at_restore is not None and acked > acked_at_restore:
            resume_s = round(time.monotonic() - t_restore, 3)
            break
        time.sleep(0.05)
    res = transfer.finish()
    closed = mon.find("SF_CLOSED", since=t_cut, saddr4=nslab.PATHS[path][0])
    return {
        "path": path, "how": how, "outage_s": outage_s, "bytes": res["bytes"],
        "bytes_identical": res["sha256"] == digest and res["bytes"] == size,
        "stall_s": round(res["stall_s"], 3),
        "read_gap_s": round(res["read_gap_s"], 3),
        "transfer_s": round(res["transfer_s"], 3),
        "subflow_closed": bool(closed),
        "subflow_carries_data_again_s": resume_s,
        "progress": [(round(t - res["start"], 3), n) for t, n in transfer.progress],
        "cut_at_s": round(t_cut - res["start"], 3),
        "restored_at_s": round(t_restore - res["start"], 3),
        "counters": counter_delta(base, counters(lab)),
    }


def recovery_run(tmp, add_addr_accepted, fname, digest, size):
    """Long outage on path B until the kernel closes its subflow; then restore and see
    whether a subflow comes back by itself, and after re-adding the signal endpoint."""
    with nslab.NsLab("rec%d" % add_addr_accepted, add_addr_accepted=add_addr_accepted) as lab:
        lab.sysctl("net.ipv4.tcp_retries2=3")
        lab.shape({"A": 20, "B": 20})
        mon = lab.monitor("client")
        lab.proxy_pair(BACKEND, CLIENT_PROXY, SERVER_PROXY)
        transfer = nslab.Transfer(lab, fname, BACKEND, CLIENT_PROXY)
        transfer.wait_bytes(2 << 20)
        t_cut = time.monotonic()
        lab.cut("B", "drop")
        caddr = nslab.PATHS["B"][0]
        closed_s = nslab.wait_for(lambda: mon.find("SF_CLOSED", since=t_cut, saddr4=caddr), 30)
        lab.restore("B", "drop")
        t_restore = time.monotonic()
        on_b = lambda: any(local == caddr for local, _peer in lab.subflows())  # noqa: E731
        by_itself = nslab.wait_for(on_b, 3.0)
        after_readd = None
        if by_itself is None:
            lab.readd_signal_endpoint()
            after_readd = nslab.wait_for(on_b, 5.0)
        new_sf = mon.find("SF_ESTABLISHED", since=t_restore, saddr4=caddr)
        lab.shape({"A": None, "B": None})  # let the rest go fast
        res = transfer.finish()
        mon.stop()
        return {"add_addr_accepted": add_addr_accepted,
                "subflow_closed_after_s": None if closed_s is None else round(closed_s, 2),
                "back_by_itself_within_3s": by_itself is not None,
                "back_after_endpoint_readd_s": None if after_readd is None
                else round(after_readd, 3),
                "sf_established_events_after_restore": len(new_sf),
                "bytes_identical": res["sha256"] == digest and res["bytes"] == size,
                "stall_s": round(res["stall_s"], 3)}


def size_run(lab, fname, digest, size, cut):
    base = counters(lab)
    if cut:
        transfer = nslab.Transfer(lab, fname, BACKEND, CLIENT_PROXY, pause_at=size // 2)
        # Cut once the first half arrived and both subflows are up: cut earlier, the
        # server's ADD_ADDR (sent over path A) may not have arrived, and the client then
        # knows no other path (the transfer waits for path A to come back).
        transfer.wait_bytes(size // 2, timeout=10)
        nslab.wait_for(lambda: len(lab.subflows()) >= 2, 2.0)
        subflows_at_cut = len(lab.subflows())
        lab.cut("A", "link")
        t_resume = time.monotonic()
        transfer.resume()
        nslab.wait_for(lambda: transfer.result is not None, 2.0)
        lab.restore("A", "link")
        res = transfer.finish()
        seconds = res["end"] - t_resume
        # The pause before the cut is not a stall: here stall_s is the longest time without
        # any data (read gap) after the pause.
        res["stall_s"] = max([end - max(start, t_resume) for start, end in res["gaps"]
                              if end > t_resume] or [0.0])
    else:
        transfer = nslab.Transfer(lab, fname, BACKEND, CLIENT_PROXY)
        res = transfer.finish()
        seconds = res["transfer_s"]
        subflows_at_cut = None
    time.sleep(0.2)
    delta = counter_delta(base, counters(lab))
    return {"bytes_identical": res["sha256"] == digest and res["bytes"] == size,
            ("second_half_s" if cut else "transfer_s"): round(seconds, 4),
            "stall_s": round(res["stall_s"], 4),
            "retrans_segs": delta["TcpRetransSegs"], "counters": delta,
            **({"subflows_at_cut": subflows_at_cut} if cut else {})}


def bench_failover_and_sizes(args, tmp):
    big = 64 << 20
    fname = os.path.join(tmp, "64M.bin")
    digest = nslab.make_file(fname, big)
    out = {"file_bytes": big, "rate_mbit_per_path": args.failover_rate, "runs": []}
    with nslab.NsLab("fo") as lab:
        lab.shape({"A": args.failover_rate, "B": args.failover_rate})
        mon = lab.monitor("client")
        lab.proxy_pair(BACKEND, CLIENT_PROXY, SERVER_PROXY)
        for how in ("link", "drop"):
            for path in ("A", "B"):
                run = failover_run(lab, mon, fname, digest, big, path, how, args.outage)
                log("failover cut %s by %-4s identical=%s stall %.2f s transfer %.2f s "
                    "subflow closed=%s, carries data again after %s s" % (
                        path, how, run["bytes_identical"], run["stall_s"], run["transfer_s"],
                        run["subflow_closed"], run["subflow_carries_data_again_s"]))
                out["runs"].append(run)
        # seed 003: per file size, same lab (paths at the failover rate)
        sizes = []
        for size in args.sizes:
            sname = os.path.join(tmp, "%d.bin" % size)
            sdigest = nslab.make_file(sname, size)
            row = {"bytes": size, "rate_mbit_per_path": args.failover_rate}
            row["normal"] = size_run(lab, sname, sdigest, size, cut=False)
            row["cut_A_half_way"] = size_run(lab, sname, sdigest, size, cut=True)
            log("size %8d: %.3f s, %d retrans; cut half-way: 2nd half %.3f s, %d retrans, "
                "identical=%s" % (size, row["normal"]["transfer_s"], row["normal"]["retrans_segs"],
                                  row["cut_A_half_way"]["second_half_s"],
                                  row["cut_A_half_way"]["retrans_segs"],
                                  row["cut_A_half_way"]["bytes_identical"]))
            sizes.append(row)
        mon.stop()
    out["bytes_identical"] = all(r["bytes_identical"] for r in out["runs"])
    out["stall_s"] = max(r["stall_s"] for r in out["runs"])
    out["recovery"] = []
    for aaa in (1, 2):
        rec = recovery_run(tmp, aaa, fname, digest, big)
        log("long outage, add_addr_accepted=%d: %s" % (aaa, rec))
        out["recovery"].append(rec)
    out["bytes_identical"] = out["bytes_identical"] and all(
        r["bytes_identical"] for r in out["recovery"])
    out["subflow_back_by_itself"] = any(r["back_by_itself_within_3s"] for r in out["recovery"])
    out["subflow_back_after_endpoint_readd"] = any(
        r["back_after_endpoint_readd_s"] is not None for r in out["recovery"])
    return out, sizes


# ---------------------------------------------------------------------------------------------
# Report: table and plot
# ---------------------------------------------------------------------------------------------

def fmt(value, spec="%.3f"):
    return "-" if value is None else spec % value


def table(summary):
    lines = ["multipath.mptcp bench, %s, kernel %s, %d CPUs (shared with other jobs: absolute "
             "rates vary, ratios are side by side)" % (summary["date"], summary["kernel"],
                                                       summary["cpus"])]
    lines.append("")
    lines.append("Aggregation (iperf3 %d s, goodput Mbit/s, median of %d)" % (
        summary["params"]["seconds"], summary["params"]["repeat"]))
    lines.append("  %-10s %10s %10s %10s %9s %9s %9s" % ("paths", "proxies", "mptcp", "tcp 1path",
                                                         "prox/sum", "mptcp/sum", "tcp/sum"))
    for row in summary["aggregation"]:
        lines.append("  %-10s %10.1f %10.1f %10.1f %9.3f %9.3f %9.3f" % (
            "+".join(map(str, row["rates_mbit"])), row["proxies_mbit"], row["mptcp_mbit"],
            row["tcp_mbit"], row["proxies_ratio"], row["mptcp_ratio"], row["tcp_ratio"]))
    lines.append("  aggregation_ratio (balanced pair) = %s   (target >= 0.95)"
                 % fmt(summary["aggregation_ratio"]))
    cost = summary["proxy_cost"]
    lines.append("")
    lines.append("Proxy cost, unshaped: proxies %.0f Mbit/s vs kernel MPTCP direct %.0f Mbit/s: "
                 "proxy_ratio = %.3f; proxy CPU %s s/GB" % (
                     cost["proxies_mbit"], cost["mptcp_direct_mbit"], cost["proxy_ratio"],
                     fmt(cost["proxy_cpu_s_per_gb"], "%.2f")))
    fo = summary["failover"]
    lines.append("")
    lines.append("Failover, 64 MB through the proxies, paths %d Mbit/s each, cut at 25 %% for %s s"
                 % (fo["rate_mbit_per_path"], summary["params"]["outage_s"]))
    lines.append("  %-5s %-5s %-9s %8s %10s %14s %18s %8s" % (
        "path", "cut", "identical", "stall_s", "transfer_s", "subflow closed",
        "data again after s", "retrans"))
    for run in fo["runs"]:
        lines.append("  %-5s %-5s %-9s %8.3f %10.3f %14s %18s %8d" % (
            run["path"], run["how"], run["bytes_identical"], run["stall_s"], run["transfer_s"],
            run["subflow_closed"], fmt(run["subflow_carries_data_again_s"]),
            run["counters"]["TcpRetransSegs"]))
    for rec in fo["recovery"]:
        lines.append("  long outage on B, client add_addr_accepted=%d: subflow closed after %s s; "
                     "back by itself: %s; after endpoint del/add: %s" % (
                         rec["add_addr_accepted"], fmt(rec["subflow_closed_after_s"], "%.1f"),
                         rec["back_by_itself_within_3s"],
                         "no" if rec["back_after_endpoint_readd_s"] is None
                         else "yes, %.3f s" % rec["back_after_endpoint_readd_s"]))
    lines.append("  failover.bytes_identical = %s, failover.stall_s = %.3f"
                 % (fo["bytes_identical"], fo["stall_s"]))
    lines.append("")
    lines.append("File sizes (seed 003), through the proxies, %d Mbit/s per path"
                 % fo["rate_mbit_per_path"])
    lines.append("  %10s %11s %8s | %14s %8s %8s %9s" % (
        "bytes", "transfer_s", "retrans", "cut A: 2nd half", "stall_s", "retrans", "identical"))
    for row in summary["sizes"]:
        n, c = row["normal"], row["cut_A_half_way"]
        lines.append("  %10d %11.4f %8d | %14.4f %8.3f %8d %9s" % (
            row["bytes"], n["transfer_s"], n["retrans_segs"], c["second_half_s"], c["stall_s"],
            c["retrans_segs"], n["bytes_identical"] and c["bytes_identical"]))
    lines.append("")
    prov = summary["provision"]
    if "skipped" in prov:
        lines.append("Provisioning: %s" % prov["skipped"])
    else:
        lines.append(provisioning.table(prov["provision"], prov["scale"]))
    return "\n".join(lines)


def plot(summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0][0]
    rows = summary["aggregation"]
    width = 0.25
    for i, (mode, label) in enumerate((("proxies", "through the proxies"),
                                       ("mptcp", "kernel MPTCP direct"),
                                       ("tcp", "single-path TCP"))):
        xs = [j + (i - 1) * width for j in range(len(rows))]
        ax.bar(xs, [r[mode + "_mbit"] for r in rows], width, label=label)
    for j, row in enumerate(rows):
        ax.hlines(row["sum_mbit"], j - 0.4, j + 0.4, colors="black", linestyles="dashed")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(["paths %s Mbit/s" % "+".join(map(str, r["rates_mbit"])) for r in rows])
    ax.set_ylabel("goodput, Mbit/s (dashed: sum of path rates)")
    ax.set_title("Aggregation (aggregation_ratio %.3f)" % summary["aggregation_ratio"])
    ax.legend(loc="lower right", fontsize=8)

    ax = axes[0][1]
    cost = summary["proxy_cost"]
    ax.bar(["kernel MPTCP\ndirect", "through both\nproxies"],
           [cost["mptcp_direct_mbit"] / 1000, cost["proxies_mbit"] / 1000],
           color=["tab:orange", "tab:blue"])
    ax.set_ylabel("Gbit/s, unshaped veth (2 shared CPUs)")
    ax.set_title("Proxy cost: proxy_ratio %.3f, proxy CPU %.2f s/GB"
                 % (cost["proxy_ratio"], cost["proxy_cpu_s_per_gb"] or 0))

    ax = axes[1][0]
    for run in summary["failover"]["runs"]:
        xs = [p[0] for p in run["progress"]]
        ys = [p[1] / 2**20 for p in run["progress"]]
        line, = ax.plot(xs, ys, label="cut %s by %s (stall %.2f s)"
                        % (run["path"], run["how"], run["stall_s"]))
        ax.axvspan(run["cut_at_s"], run["restored_at_s"], color=line.get_color(), alpha=0.08)
    ax.set_xlabel("s since the sender connected (shaded: path cut)")
    ax.set_ylabel("MiB received")
    ax.set_title("Failover: 64 MB, %d Mbit/s per path" % summary["failover"]["rate_mbit_per_path"])
    ax.legend(fontsize=8)

    ax = axes[1][1]
    sizes = summary["sizes"]
    xs = [s["bytes"] / 1024 for s in sizes]
    ax.plot(xs, [s["normal"]["transfer_s"] for s in sizes], "o-", label="both paths")
    ax.plot(xs, [s["cut_A_half_way"]["second_half_s"] for s in sizes], "s-",
            label="2nd half after path A cut")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("file size, KiB")
    ax.set_ylabel("seconds")
    ax.set_title("Seed 003 file sizes through the proxies")
    ax.legend(fontsize=8)

    fig.suptitle("multipath.mptcp bench %s, Linux %s, %d shared CPUs"
                 % (summary["date"], summary["kernel"], summary["cpus"]))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------

def only_provisioning(args, summary, started):
    """--only provisioning: that part alone, merged into the summary.json of an earlier run."""
    path = os.path.join(args.out, "summary.json")
    try:
        with open(path, encoding="utf-8") as fh:
            merged = json.load(fh)
    except (OSError, ValueError):
        merged = {}
    merged["provision"] = provisioning.run_all(args.out, ["simple", "sevpn"], args.scale, True,
                                               args.lock_wait)
    merged["provision"].update(date=summary["date"], cpus=summary["cpus"],
                               load_avg_at_start=summary["load_avg_at_start"],
                               load_avg_at_end=[round(x, 2) for x in os.getloadavg()],
                               duration_s=round(time.monotonic() - started, 1))
    merged.setdefault("date", summary["date"])
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(merged, fh, indent=2)
    text = provisioning.table(merged["provision"]["provision"], merged["provision"]["scale"])
    with open(os.path.join(args.out, "provisioning.txt"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    print(text)
    print("\nwritten: %s (key provision), provisioning.txt (%.0f s)"
          % (path, merged["provision"]["duration_s"]))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--seconds", type=int, default=8, help="iperf3 run length")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rate", type=int, default=100, help="R, Mbit/s per balanced path")
    parser.add_argument("--failover-rate", type=int, default=40, help="Mbit/s per path")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds a path stays cut")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 repeat, fewer sizes")
    parser.add_argument("--skip-provision", action="store_true")
    parser.add_argument("--only", choices=["provisioning"],
                        help="run only this part (the others of an earlier summary.json are kept)")
    parser.add_argument("--scale", nargs="*", type=int, default=[1, 2, 4, 8],
                        help="pairs of the scale runs (none: no scale runs)")
    parser.add_argument("--lock-wait", type=int, default=600,
                        help="seconds to wait for a lab's lock before skipping that lab")
    args = parser.parse_args()
    if args.only and args.skip_provision:
        parser.error("--only provisioning and --skip-provision exclude each other")
    if args.quick:
        args.seconds, args.repeat = 3, 1
    args.sizes = SIZES if not args.quick else SIZES[::2]
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces, tc, iptables)")
    os.makedirs(args.out, exist_ok=True)
    started = time.monotonic()
    nslab.sweep_stale()
    rate = args.rate
    pairs = [(rate, rate), (rate * 3 // 2, rate // 2)]
    summary = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
               "kernel": os.uname().release, "cpus": os.cpu_count(),
               "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
               "params": {"seconds": args.seconds, "repeat": args.repeat, "rate_mbit": rate,
                          "failover_rate_mbit": args.failover_rate, "outage_s": args.outage},
               "notes": ["CPU shared with other jobs on this machine: absolute rates vary "
                         "between runs; compare the ratios measured side by side",
                         "goodput is payload; tbf counts whole Ethernet frames (a 1448-byte "
                         "TCP payload travels in a 1514-byte frame: TCP's ceiling is ~0.956 "
                         "of the rate, MPTCP's a little lower because of its DSS option)"]}
    if args.only == "provisioning":
        return only_provisioning(args, summary, started)
    with tempfile.TemporaryDirectory(prefix="mptcp-bench-") as tmp:
        with nslab.NsLab("agg") as lab:
            iperf = Iperf(lab)
            summary["aggregation"] = bench_aggregation(lab, iperf, pairs, args.seconds,
                                                       args.repeat)
            summary["proxy_cost"] = bench_proxy_cost(lab, iperf, args.seconds, args.repeat)
        summary["aggregation_ratio"] = summary["aggregation"][0]["proxies_ratio"]
        summary["aggregation_ratio_unbalanced"] = summary["aggregation"][1]["proxies_ratio"]
        summary["proxy_ratio"] = summary["proxy_cost"]["proxy_ratio"]
        summary["failover"], summary["sizes"] = bench_failover_and_sizes(args, tmp)
    if args.skip_provision:
        summary["provision"] = {"skipped": "--skip-provision"}
    else:
        summary["provision"] = provisioning.run_all(args.out, ["simple", "sevpn"], args.scale,
                                                    True, args.lock_wait)
    summary["duration_s"] = round(time.monotonic() - started, 1)
    summary["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    text = table(summary)
    with open(os.path.join(args.out, "summary.txt"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    try:
        plot(summary, os.path.join(args.out, "summary.png"))
    except ImportError as exc:
        log("no plot (%s): pip install -r requirements.txt" % exc)
    print(text)
    print("\nwritten: %s/summary.json, summary.txt, summary.png (%.0f s)"
          % (args.out, summary["duration_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
