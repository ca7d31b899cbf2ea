# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn mptcp_monitor results into the rows and text table of role mptcp_check."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: mptcp_count_rows
short_description: Compare mptcp_monitor counts with the expected counts
version_added: 0.1.0
description:
  - One row per expected event (C(event), C(expected), C(seen), C(ok)), then one per other event
    that was seen (C(expected) null, C(ok) true).
positional: expected
options:
  _input:
    description: The C(counts) returned by M(multipath.mptcp.mptcp_monitor).
    type: dict
    required: true
  expected:
    description: Event name -> exact count.
    type: dict
    required: true
"""

EXAMPLES = r"""
rows: "{{ capture.counts | multipath.mptcp.mptcp_count_rows({'CREATED': 2, 'CLOSED': 2}) }}"
table: "{{ rows | multipath.mptcp.mptcp_table(capture.events, 'simple-client') }}"
"""

RETURN = r"""
_value:
  description: The rows.
  type: list
  elements: dict
"""


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
        lines.append("  %-*s  %8s  %4d  %s" % (width, r["event"], expected, r["seen"], "ok" if r["ok"] else "MISMATCH"))
    flows = [e for e in events if e["event"] in ("ESTABLISHED", "SF_ESTABLISHED")]
    lines.append("Subflows (%d):" % len(flows))
    lines.extend(subflow_line(e) for e in flows)
    return lines


class FilterModule(object):
    def filters(self):
        return {"mptcp_count_rows": mptcp_count_rows, "mptcp_table": mptcp_table}
