# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of role multipath.mptcp.router: tc rates, sizes and times parsed as tc parses them,
the tbf bounds of the kernel and of tc checked before anything changes, the tc command of each
link worked out from the qdiscs read before the run, and the checks of router_routes that need no
kernel (validity, duplicates, reserved tables, devices that exist)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: router_links
short_description: Validate router_rate_limits and work out the tc command of every link
version_added: 0.2.0
description:
  - Parses rate, burst and latency as tc does (units of iproute2 tc_util.c, case-insensitive) and
    checks them against what tbf can hold - a rate of at least 8 bit/s (tc keeps whole bytes/s), a
    burst of at least the link's MTU plus its link-layer header (the kernel drops every larger
    packet otherwise) and at most what tc can express in its 32-bit time ticks, a latency whose
    queue limit fits 32 bits.
  - Compares the wanted tbf with the link's root qdisc as C(tc -j qdisc show) printed it, within
    the kernel's rounding, and returns the one C(tc) command to run per link, or none.
  - Also provides C(router_route_problems), C(tc_rate), C(tc_size) and C(tc_time).
positional: _input, qdiscs, links
options:
  _input:
    description: O(router_rate_limits) of the role (a list of dicts).
    type: list
    elements: dict
    required: true
  qdiscs:
    description: C(tc -j qdisc show) output, parsed.
    type: list
    elements: dict
    required: true
  links:
    description: C(ip -j link show) output, parsed.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
__router_links_plan: "{{ router_rate_limits | multipath.mptcp.router_links(__router_tc.stdout | from_json,
                                                                         __router_links.stdout | from_json) }}"
"""

RETURN = r"""
_value:
  description:
    - C(problems) - every problem found (each names the entry's dev and the bad value); C(links) - dev ->
      C(state), C(netem) (bool), C(tbf_argv), C(netem_argv), C(action) (the tc argv to run, [] when the
      link is as wanted), C(root) (the root qdisc before the run); C(netem_requests) - text naming
      the links that ask for delay or loss ("" when none).
  type: dict
"""

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import MptcpError, ifname_problem, validate_table
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp_host import check_path

# Units of tc (iproute2 tc/tc_util.c get_rate, get_size, get_time), compared without regard to case.
RATE_UNITS = {  # bit/s
    "bit": 1, "kbit": 1000, "mbit": 10 ** 6, "gbit": 10 ** 9, "tbit": 10 ** 12,
    "kibit": 1024, "mibit": 1024 ** 2, "gibit": 1024 ** 3, "tibit": 1024 ** 4,
    "bps": 8, "kbps": 8000, "mbps": 8 * 10 ** 6, "gbps": 8 * 10 ** 9, "tbps": 8 * 10 ** 12,
    "kibps": 8 * 1024, "mibps": 8 * 1024 ** 2, "gibps": 8 * 1024 ** 3, "tibps": 8 * 1024 ** 4,
}
SIZE_UNITS = {  # bytes
    "": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024 ** 2, "mb": 1024 ** 2, "g": 1024 ** 3, "gb": 1024 ** 3,
    "kbit": 128, "mbit": 128 * 1024, "gbit": 128 * 1024 ** 2,
}
TIME_UNITS = {  # microseconds
    "s": 10 ** 6, "sec": 10 ** 6, "secs": 10 ** 6, "ms": 1000, "msec": 1000, "msecs": 1000,
    "us": 1, "usec": 1, "usecs": 1, "": 1,
}
U32 = 2 ** 32 - 1
# tc keeps a tbf bucket as a 32-bit count of psched ticks (64 ns; /proc/net/psched 000003e8 00000040):
# 15.625 ticks per microsecond, so a bucket holds at most 2**32 / 15.625e6 s = 274.9 s of the rate.
TICKS_PER_US = 15.625
MAX_BUCKET_SECONDS = U32 / (TICKS_PER_US * 10 ** 6)
DEFAULT_LATENCY = "50ms"
_NUMBER = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$")


class TcValueError(ValueError):
    pass


def _parse(value, units, what, examples, unit_required=True):
    text = str(value).strip()
    match = _NUMBER.match(text)
    unit = match.group(2).lower() if match else None
    if not match or unit not in units or (unit_required and not match.group(2)):
        raise TcValueError("%s %s is not a tc %s (%s)" % (what, value, examples[0], examples[1]))
    return float(match.group(1)) * units[unit]


def tc_rate(value):
    """A tc rate in bit/s (float), e.g. '50mbit' -> 50000000.0."""
    return _parse(value, RATE_UNITS, "rate", ("rate", "a number and a unit: bit, kbit, mbit, gbit, kibit, mibit, "
                                                      "bps, kbps, mbps, ..."))


def tc_size(value):
    """A tc size in bytes (int), e.g. '32k' -> 32768, '1514' -> 1514."""
    return int(_parse(value, SIZE_UNITS, "burst", ("size", "bytes, or a number and b, k, kb, m, mb, g, kbit, mbit"),
                      unit_required=False))


def tc_time(value, what="latency"):
    """A tc time in microseconds (int), e.g. '50ms' -> 50000."""
    return int(_parse(value, TIME_UNITS, what, ("time", "a number and s, ms or us")))


def _text(entry, key, default=""):
    value = entry.get(key)
    return default if value is None or str(value).strip() == "" else str(value).strip()


def min_burst(link):
    """The smallest bucket that passes a full-size frame: MTU plus the link-layer header (what the
    kernel calls psched_mtu; Ethernet 14 bytes). A smaller burst makes tbf drop every such frame."""
    header = 0 if link.get("link_type") == "none" else 14
    return int(link.get("mtu", 1500)) + header


def tbf_same(root, rate_bytes, burst, latency_us):
    """True when the root qdisc is a tbf with this rate, burst and latency within the rounding of the
    kernel (rates in whole bytes/s, the bucket in 64 ns ticks, the latency derived from the limit)."""
    if root.get("kind") != "tbf":
        return False
    options = root.get("options") or {}
    return (abs(int(options.get("rate", 0)) - rate_bytes) <= rate_bytes * 0.01
            and abs(int(options.get("burst", 0)) - burst) <= burst * 0.02 + 16 + rate_bytes / 500000.0
            and abs(int(options.get("lat", 0)) - latency_us) <= latency_us * 0.05 + 1000)


def link_plan(entry, root, link):
    """Problems and the tc commands of one entry of router_rate_limits."""
    dev = entry.get("dev")
    problems = []
    state = _text(entry, "state", "present")
    if state not in ("present", "absent"):
        problems.append("state %s is not present or absent" % state)
    rate, burst, latency, delay, loss = (_text(entry, k) for k in ("rate", "burst", "latency", "delay", "loss"))
    latency = latency or DEFAULT_LATENCY
    loss = loss[:-1].strip() if loss.endswith("%") else loss
    netem = state == "present" and bool(delay or loss)
    rate_bytes = burst_bytes = latency_us = None
    if state == "present" and not rate and not netem:
        problems.append("rate is required (e.g. rate: 50mbit)")
    if rate:
        try:
            rate_bytes = int(tc_rate(rate) // 8)
            if rate_bytes < 1:
                problems.append("rate %s is below 8bit (1 byte/s), the smallest rate tc can set" % rate)
                rate_bytes = None
        except TcValueError as e:
            problems.append(str(e))
    if _text(entry, "burst"):
        try:
            burst_bytes = tc_size(burst)
        except TcValueError as e:
            problems.append(str(e))
    try:
        latency_us = tc_time(latency)
        if not 1 <= latency_us <= U32:
            problems.append("latency %s is outside 1us-%ds" % (latency, U32 // 10 ** 6))
            latency_us = None
    except TcValueError as e:
        problems.append(str(e))
    if delay:
        try:
            tc_time(delay, "delay")
        except TcValueError as e:
            problems.append(str(e))
    if loss and (not re.match(r"^[0-9]+(\.[0-9]+)?$", loss) or float(loss) > 100):
        problems.append("loss %s is not a percentage (0-100, e.g. 1%%)" % entry.get("loss"))

    smallest = min_burst(link) if link else None
    if state == "present" and not netem and rate_bytes and link:
        largest = int(rate_bytes * MAX_BUCKET_SECONDS)
        if burst_bytes is None and not _text(entry, "burst"):
            if smallest > largest:
                problems.append("rate %s is too low for dev %s: its smallest burst (%d bytes, MTU %s + header) takes "
                                "%.0f s to fill at that rate and tc holds at most %.0f s; use a rate of at least %dbit"
                                % (rate, dev, smallest, link.get("mtu"), smallest / float(rate_bytes),
                                   MAX_BUCKET_SECONDS, int(smallest / MAX_BUCKET_SECONDS + 1) * 8))
            else:  # 10 ms of the rate, at least 16 KiB and a full frame, at most what tc can hold
                burst_bytes = max(smallest, min(max(rate_bytes // 100, 16384), largest))
        elif burst_bytes is not None:
            if burst_bytes < smallest:
                problems.append("burst %s (%d bytes) is smaller than a full frame of dev %s (MTU %s + header = %d "
                                "bytes): tbf would drop every such packet; give at least %d"
                                % (burst, burst_bytes, dev, link.get("mtu"), smallest, smallest))
            elif burst_bytes > min(largest, U32):
                problems.append("burst %s (%d bytes) takes %.0f s to fill at rate %s; tc holds at most %.0f s of the "
                                "rate (%d bytes): give a smaller burst or a higher rate"
                                % (burst, burst_bytes, burst_bytes / float(rate_bytes), rate, MAX_BUCKET_SECONDS,
                                   min(largest, U32)))
        if burst_bytes is not None and latency_us is not None and not problems:
            limit = rate_bytes * latency_us / 10.0 ** 6 + burst_bytes
            if limit > U32:
                problems.append("latency %s at rate %s makes a queue of %d bytes, more than tc can set (%d)"
                                % (latency, rate, limit, U32))

    plan = dict(dev=dev, state=state, netem=netem, root=root or {}, rate_bytes=rate_bytes,
                burst_bytes=burst_bytes, latency_us=latency_us, min_burst=smallest, tbf_argv=[], netem_argv=[],
                action=[])
    if problems:
        return problems, plan
    if rate_bytes and burst_bytes is not None:
        plan["tbf_argv"] = ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", "%dbit" % (rate_bytes * 8),
                            "burst", str(burst_bytes), "latency", "%dus" % latency_us]
    plan["netem_argv"] = (["tc", "qdisc", "replace", "dev", dev, "root", "netem"]
                          + (["delay", delay] if delay else []) + (["loss", loss + "%"] if loss else [])
                          + (["rate", rate] if rate else []))
    shaped = (root or {}).get("kind") in ("tbf", "netem")
    if state == "absent" and shaped:
        plan["action"] = ["tc", "qdisc", "del", "dev", dev, "root"]
    elif state == "present" and not netem and not tbf_same(root or {}, rate_bytes, burst_bytes, latency_us):
        plan["action"] = plan["tbf_argv"]
    return problems, plan


def router_links(rate_limits, qdiscs, links):
    """Validate every entry of router_rate_limits against the links and give each link's plan."""
    if not isinstance(rate_limits, list):
        raise AnsibleFilterError("router_links: router_rate_limits must be a list, got %r" % (rate_limits,))
    by_name = dict((link.get("ifname"), link) for link in links or [])
    roots = dict((q.get("dev"), q) for q in qdiscs or [] if q.get("root"))
    problems, plans, seen = [], {}, {}
    for index, entry in enumerate(rate_limits):
        entry = entry or {}
        dev = entry.get("dev")
        where = "router_rate_limits[%d] (dev %s)" % (index, dev)
        mine = []
        name_problem = ifname_problem(dev, "dev")
        if name_problem:
            mine.append(name_problem)
        elif dev not in by_name:
            mine.append("dev %s does not exist (devices: %s)" % (dev, ", ".join(sorted(by_name))))
        if dev in seen:
            mine.append("dev %s is listed more than once in router_rate_limits (also entry %d)" % (dev, seen[dev]))
        seen.setdefault(dev, index)
        found, plan = link_plan(entry, roots.get(dev), by_name.get(dev) if not name_problem else None)
        problems += ["%s: %s" % (where, p) for p in mine + found]
        plans[str(dev)] = plan
    requests = []
    for entry in rate_limits:
        entry = entry or {}
        if _text(entry, "state", "present") == "present" and (_text(entry, "delay") or _text(entry, "loss")):
            wanted = ["delay " + _text(entry, "delay")] if _text(entry, "delay") else []
            wanted += ["loss " + _text(entry, "loss")] if _text(entry, "loss") else []
            requests.append("%s (%s)" % (entry.get("dev"), ", ".join(wanted)))
    return dict(problems=problems, links=plans, netem_requests=", ".join(requests))


class _AnyTableName(dict):
    """Table names are the target's (its rt_tables): the modules check them there."""

    def __contains__(self, name):
        return True


def router_route_problems(routes, links):
    """Problems of router_routes that need no kernel: each route as ip_route validates it, tables
    the role does not manage (0/unspec, 255/local), devices that do not exist, the same route twice."""
    from ansible_collections.multipath.mptcp.plugins.modules.ip_route import DEFAULT_METRIC, validate_route

    if not isinstance(routes, list):
        raise AnsibleFilterError("router_route_problems: router_routes must be a list, got %r" % (routes,))
    names = set(link.get("ifname") for link in links or [])
    problems, seen = [], {}
    for index, route in enumerate(routes):
        route = route or {}
        where = "router_routes[%d] (dest %s)" % (index, route.get("dest"))
        state = route.get("state") or "present"
        mine = []
        table = route.get("table")
        try:
            if table is not None and validate_table(table, _AnyTableName()) == "local":
                mine.append("table %s is the kernel's local table (addresses of this host, managed by the kernel): "
                            "give main or a table of your own" % table)
        except MptcpError:
            pass  # validate_route names it
        try:
            want = validate_route(route.get("dest"), route.get("via"), route.get("dev"), route.get("nexthops"),
                                  route.get("metric"), "main" if table is None else table, state,
                                  table_names=_AnyTableName())
        except MptcpError as e:
            mine.append(e.msg)
            want = None
        if want is not None and state == "present":
            for dev in sorted(set(h["dev"] for h in want["nexthops"] if h.get("dev"))):
                if dev not in names:
                    mine.append("dev %s does not exist (devices: %s)" % (dev, ", ".join(sorted(names))))
        if want is not None:
            metric = want["metric"] if want["metric"] is not None else DEFAULT_METRIC[int(want["family"][-1])]
            key = (want["dest"], want["family"], want["table"], metric)
            if key in seen:
                mine.append("the same route as router_routes[%d] (dest %s, table %s, metric %d): list each route once"
                            % (seen[key], want["dest"], want["table"], metric))
            seen.setdefault(key, index)
        problems += ["%s: %s" % (where, p) for p in mine]
    return problems


def router_gateways_from_run(routes):
    """Indexes of router_routes with a gateway that only a route listed before it in the same run
    makes reachable (a present route with a dev and no gateway covering it, in the same table or
    main): for those the check pass cannot ask the kernel in advance (ip_route check_gateways=false)."""
    from ansible_collections.multipath.mptcp.plugins.modules.ip_route import validate_route

    device_routes, found = [], []
    for index, route in enumerate(routes or []):
        route = route or {}
        state = route.get("state") or "present"
        try:
            want = validate_route(route.get("dest"), route.get("via"), route.get("dev"), route.get("nexthops"),
                                  route.get("metric"), route.get("table") or "main", state, table_names=_AnyTableName())
        except MptcpError:
            continue
        if state != "present":
            continue
        hops = want["nexthops"]
        if any(hop.get("via") and any(ipaddress.ip_address(hop["via"]) in network and table in (want["table"], "main")
                                      and (not hop.get("dev") or hop["dev"] == dev)
                                      for network, dev, table in device_routes) for hop in hops):
            found.append(index)
        if len(hops) == 1 and not hops[0]["via"] and hops[0]["dev"]:
            dest = {"default": "0.0.0.0/0"}.get(want["dest"], want["dest"])
            if want["dest"] == "default" and want["family"] == "ipv6":
                dest = "::/0"
            device_routes.append((ipaddress.ip_network(dest), hops[0]["dev"], want["table"]))
    return found


def router_path_problems(values):
    """Paths the role writes (name -> value), by the rule of mptcp_host and boot_restore (which
    writes them into a unit file): absolute, letters, digits and . _ @ + - / only, no '..'."""
    problems = []
    for name, value in sorted((values or {}).items()):
        check_path(value, name, problems)
    return problems


class FilterModule(object):
    def filters(self):
        return {
            "router_links": router_links,
            "router_route_problems": router_route_problems,
            "router_path_problems": router_path_problems,
            "router_gateways_from_run": router_gateways_from_run,
            "tc_rate": tc_rate,
            "tc_size": tc_size,
            "tc_time": tc_time,
        }
