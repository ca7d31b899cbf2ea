# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn mptcp_monitor results into the rows, tables and summary of role mptcp_check.

The file holds five filters: each is documented in the YAML file of its name beside this one
(mptcp_count_rows.yml, mptcp_table.yml, mptcp_path_bytes.yml, mptcp_path_lines.yml,
mptcp_summary.yml), which is what ansible-doc reads for a filter of a file without DOCUMENTATION.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def mptcp_count_rows(counts, expected):
    rows = []
    for name, want in expected.items():
        seen = int(counts.get(name, 0))
        rows.append({"event": name, "expected": int(want), "seen": seen, "ok": seen == int(want)})
    for name, seen in counts.items():
        if name not in expected and seen:
            rows.append({"event": name, "expected": None, "seen": int(seen), "ok": True})
    return rows


def subflow_line(event):
    kind = "initial" if event["event"] == "ESTABLISHED" else "subflow"
    backup = " backup" if event.get("backup") else ""
    return "  %-8s %s:%s -> %s:%s token %s%s" % (
        kind, event.get("saddr", "?"), event.get("sport", "?"), event.get("daddr", "?"),
        event.get("dport", "?"), event.get("token", "?"), backup)


def mptcp_table(rows, events, host):
    """Readable lines: the counts table (expected vs seen) and the subflows with their addresses."""
    width = max([len(r["event"]) for r in rows] + [5])
    lines = ["MPTCP events on %s" % host, "  %-*s  expected  seen" % (width, "event")]
    for r in rows:
        expected = "-" if r["expected"] is None else str(r["expected"])
        lines.append("  %s  %8s  %4d  %s" % (str(r["event"]).ljust(width), expected, r["seen"], "ok" if r["ok"] else "MISMATCH"))
    flows = [e for e in events if e["event"] in ("ESTABLISHED", "SF_ESTABLISHED")]
    lines.append("Subflows (%d):" % len(flows))
    lines.extend(subflow_line(e) for e in flows)
    return lines


def mptcp_path_bytes(before, after, interfaces, backup=None, max_share=0.01):
    """Bytes each interface moved (received + sent) between two readings of its counters.

    before/after: the lines of `cat /sys/class/net/IF/statistics/rx_bytes .../tx_bytes` for
    each IF in interfaces, in that order (two lines per interface).
    backup: the interfaces of backup (standby) paths: each must move less than max_share of the
    bytes of the other interfaces together (its `share`); every interface must move some bytes.
    """
    backup = list(backup or [])
    want = 2 * len(interfaces)
    if len(before) != want or len(after) != want:
        raise ValueError("expected %d counter lines for %s, got %d and %d"
                         % (want, ", ".join(interfaces), len(before), len(after)))
    unknown = [name for name in backup if name not in interfaces]
    if unknown:
        raise ValueError("backup interfaces %s are not among the interfaces read (%s)"
                         % (", ".join(unknown), ", ".join(interfaces)))
    paths = []
    for k, name in enumerate(interfaces):
        rx = int(after[2 * k]) - int(before[2 * k])
        tx = int(after[2 * k + 1]) - int(before[2 * k + 1])
        paths.append({"interface": name, "rx_bytes": rx, "tx_bytes": tx, "bytes": rx + tx,
                      "backup": name in backup, "ok": rx + tx > 0})
    active = sum(p["bytes"] for p in paths if not p["backup"])
    for p in paths:
        if p["backup"]:
            p["share"] = float(p["bytes"]) / active if active else None
            p["max_share"] = float(max_share)
            p["ok"] = p["ok"] and p["share"] is not None and p["share"] < max_share
    return paths


def path_note(path):
    if path["bytes"] <= 0:
        return "  NO TRAFFIC"
    if not path.get("backup"):
        return ""
    if path["share"] is None:
        return "  backup, NO ACTIVE PATH MOVED ANYTHING"
    return "  backup: %.4f %% of the active paths' bytes (max %g %%)%s" % (
        100 * path["share"], 100 * path["max_share"], "" if path["ok"] else "  TOO MUCH")


def mptcp_path_lines(paths):
    """Readable lines for the result of mptcp_path_bytes (none for no paths)."""
    if not paths:
        return []
    return ["Paths (bytes moved during the check):"] + [
        "  %-8s %12d received  %12d sent%s" % (p["interface"], p["rx_bytes"], p["tx_bytes"], path_note(p))
        for p in paths]


def mptcp_summary(results, nodes):
    """The lines a person reads at the end of a scenario.

    results: the mptcp_check_result facts of the checked hosts;
    nodes: dicts {name, addresses: [text]} for every host of the scenario.
    """
    lines = ["Nodes:"]
    width = max([len(n["name"]) for n in nodes] + [4])
    for node in nodes:
        lines.append("  %-*s  %s" % (width, node["name"], ", ".join(node["addresses"]) or "-"))
    for res in results:
        counts = ", ".join("%s %d/%d" % (r["event"], r["seen"], r["expected"])
                           for r in res["rows"] if r["expected"] is not None)
        lines.append("%s on %s: %s (seen/expected)" % (
            "PASSED" if res["passed"] else "FAILED", res["host"], counts))
        flows = [e for e in res["events"] if e["event"] in ("ESTABLISHED", "SF_ESTABLISHED")]
        lines.append("Subflows (%d):" % len(flows))
        lines.extend(subflow_line(e) for e in flows)
        if res.get("paths"):
            lines.extend(mptcp_path_lines(res["paths"]))
        if res.get("iperf3"):
            lines.append("iperf3: %d bytes received, %.1f Mbit/s" % (
                res["iperf3"]["bytes"], res["iperf3"]["bits_per_second"] / 1e6))
        if res.get("ping_received") is not None:
            lines.append("ping %s from %s: %d/%d replies" % (
                res["ping_target"], res["ping_host"], res["ping_received"], res["ping_count"]))
    return lines


class FilterModule(object):
    def filters(self):
        return {"mptcp_count_rows": mptcp_count_rows, "mptcp_table": mptcp_table,
                "mptcp_path_bytes": mptcp_path_bytes, "mptcp_path_lines": mptcp_path_lines,
                "mptcp_summary": mptcp_summary}
