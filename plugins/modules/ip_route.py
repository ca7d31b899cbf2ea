#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ip_route
short_description: Manage static and ECMP multipath routes (C(ip route))
version_added: 0.1.0
description:
  - Adds, replaces or removes one IPv4 or IPv6 route of a routing table, as C(ip route) of iproute2
    does, including multipath (ECMP) routes with weighted next hops
    (C(ip route add DEST nexthop via GW weight N nexthop via GW weight N)).
  - Reads the routes of exactly O(dest) in O(table) first (C(ip -j route show exact DEST table T),
    C(ip -j -6 ...) for IPv6) and acts only on a difference, with C(ip route replace) or
    C(ip route del). Unchanged routes are never rewritten.
  - A route is identified by O(dest), O(table) and O(metric) (what the kernel uses as the key of a
    route). Next hops are compared as a set of (gateway, device, weight); a device is compared only
    where one is given. A single next hop is an ordinary route, its weight is not compared.
  - Everything is validated before any change; a bad value fails with a message that names it.
author:
  - multipath.mptcp contributors (!UNKNOWN)
requirements:
  - Linux, iproute2 with JSON output (C(ip -j), 4.13 or newer).
  - CAP_NET_ADMIN (root) on the target for changes.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  dest:
    description:
      - Destination prefix in CIDR notation (V(10.123.202.0/24), V(2001:db8::/64)), a single address
        (a host route, V(/32) or V(/128)) or V(default).
      - V(default) is the IPv4 default route unless the gateways are IPv6 addresses; V(::/0) is
        always the IPv6 default route.
      - Host bits must be zero (V(10.123.202.5/24) is refused, as it is ambiguous).
    type: str
    required: true
  via:
    description:
      - Gateway address (the next hop) of a single-path route. Same address family as O(dest).
      - Mutually exclusive with O(nexthops).
    type: str
  dev:
    description:
      - Output device of a single-path route. Must exist on the target.
      - Without O(via) the route is a directly connected (scope link) route on that device.
      - When omitted, the kernel picks the device from the gateway and any device is accepted as
        matching.
      - Mutually exclusive with O(nexthops).
    type: str
  nexthops:
    description:
      - Next hops of a multipath (ECMP) route; the kernel spreads flows over them by hash,
        in proportion to their weights.
      - Mutually exclusive with O(via) and O(dev).
    type: list
    elements: dict
    suboptions:
      via:
        description: Gateway address of this next hop, same address family as O(dest).
        type: str
        required: true
      dev:
        description: Output device of this next hop; must exist. When omitted, not compared.
        type: str
      weight:
        description: Relative weight of this next hop, 1-256.
        type: int
        default: 1
  metric:
    description:
      - Route metric (priority), 0-4294967295; part of the identity of a route.
      - When omitted, O(state=present) manages the route with the kernel's default metric
        (0 for IPv4, 1024 for IPv6, what C(ip route replace) without C(metric) makes), and
        O(state=absent) removes matching routes of any metric.
    type: int
  table:
    description:
      - Routing table, a name known to iproute2 (C(/etc/iproute2/rt_tables)) or a number 1-4294967295.
      - V(253), V(254) and V(255) are the tables V(default), V(main) and V(local) and are reported by name.
      - V(0) (and V(unspec)) is refused - the kernel would put the route in V(main).
    type: str
    default: main
  state:
    description:
      - Whether the route must exist.
      - With V(absent), O(via), O(dev) and O(nexthops) (when given) restrict which routes of O(dest)
        are removed (O(dev) alone, any route leaving by that device); without them every route of
        exactly O(dest) in O(table) (and O(metric), if given) is removed.
    type: str
    choices: [present, absent]
    default: present
  check_gateways:
    description:
      - With O(state=present), check every gateway against the kernel's routes before any change
        (see the notes). V(false) skips that check, for a gateway reached through a route that
        an earlier task of the same run adds (in check mode that route does not exist yet); the
        kernel still refuses an unreachable gateway when the route is added.
    type: bool
    default: true
extends_documentation_fragment:
  - multipath.mptcp.attributes
  - multipath.mptcp.attributes.netns_group
  - multipath.mptcp.netns
notes:
  - Only unicast routes are managed. Route attributes this module has no option for (C(proto),
    C(scope), C(src), C(onlink), MTU, ...) are not compared; when a route is rewritten because it
    differed, such attributes are not kept.
  - Errors raised before anything changes - O(dest) or a gateway that is not an IP address or
    prefix, host bits set in O(dest), a gateway of the other address family, a weight outside
    1-256, O(via) or O(dev) together with O(nexthops), O(state=present) without O(via), O(dev) or
    O(nexthops), a metric outside 0-4294967295, a table 0 or one iproute2 does not know, a device
    name the kernel would not allow or a missing device, an IPv6 scope id (C(fe80::1%eth0) - give
    the interface as O(dev)), a O(netns) given as a path or missing.
  - With O(state=present), every gateway is checked against the kernel's routes first (check mode
    too) - it must lie in a directly connected route (an address's subnet, or a route with a device
    and no gateway) of O(table), V(main) or V(local), on the hop's device when one is given, as the
    kernel requires (otherwise C(Nexthop has invalid gateway)); an IPv6 link-local gateway needs
    a device. Every unreachable next hop is named.
  - On a failing C(ip) call the result holds C(cmd), C(rc), C(stdout) and C(stderr).
  - A numeric table that does not exist yet counts as empty; the kernel creates it with the first route.
seealso:
  - module: multipath.mptcp.mptcp_endpoint
  - name: ip-route(8)
    description: The iproute2 manual page of C(ip route).
    link: https://man7.org/linux/man-pages/man8/ip-route.8.html
"""

EXAMPLES = r"""
# Seed 001, routing test: the server reaches the client's network over both router links (ECMP)
- name: ECMP route over the two router links
  multipath.mptcp.ip_route:
    dest: 10.123.202.0/24
    nexthops:
      - via: 10.123.200.3
        weight: 1
      - via: 10.123.201.3
        weight: 1

# ... and the client reaches the server's two networks through the router
- name: Static routes on the client
  multipath.mptcp.ip_route:
    dest: "{{ item }}"
    via: 10.123.202.2
  loop:
    - 10.123.200.0/24
    - 10.123.201.0/24

- name: Send three quarters of the flows over the first link, in table 100 with metric 50
  multipath.mptcp.ip_route:
    dest: 10.123.203.0/24
    nexthops:
      - via: 10.123.200.3
        dev: eth0
        weight: 3
      - via: 10.123.201.3
        dev: eth1
    table: "100"
    metric: 50

- name: IPv6 default route inside a network namespace
  multipath.mptcp.ip_route:
    dest: default
    via: 2001:db8:a::1
    netns: mptcp-client

- name: Remove the route
  multipath.mptcp.ip_route:
    dest: 10.123.202.0/24
    state: absent
"""

RETURN = r"""
route:
  description:
    - The managed route as the kernel has it after the task (predicted in check mode), C(null) when
      absent. C(nexthops) holds one entry for a single-path route.
  returned: always
  type: dict
  sample:
    dest: 10.123.202.0/24
    family: ipv4
    table: main
    metric: 0
    type: unicast
    nexthops:
      - {"via": "10.123.200.3", "dev": "eth0", "weight": 1}
      - {"via": "10.123.201.3", "dev": "eth1", "weight": 1}
routes:
  description: Every route of exactly O(dest) in O(table) after the task (any metric), same form as RV(route).
  returned: always
  type: list
  elements: dict
commands:
  description: The C(ip) commands run (or, in check mode, that would run).
  returned: always
  type: list
  elements: list
  sample:
    - ["ip", "-4", "route", "replace", "10.123.202.0/24", "table", "main", "metric", "0",
       "nexthop", "via", "10.123.200.3", "weight", "1", "nexthop", "via", "10.123.201.3", "weight", "1"]
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import (
    IpMptcp,
    MptcpError,
    fail_from,
    ifname_problem,
    load_ip_json,
    parse_ip,
    parse_prefix,
    validate_table,
)

WEIGHT_MIN = 1
WEIGHT_MAX = 256
METRIC_MAX = 2 ** 32 - 1
DEFAULT_METRIC = {4: 0, 6: 1024}  # what the kernel gives a route added without a metric
FAMILY_NAME = {4: "ipv4", 6: "ipv6"}


# ---------------------------------------------------------------------------------------------
# Parsing (pure)
# ---------------------------------------------------------------------------------------------
def dest_text(network):
    """A prefix as results and diffs show it: `default` for /0, CIDR otherwise."""
    return "default" if network.prefixlen == 0 else network.with_prefixlen


def _gateway(item):
    """The gateway of a route or next hop in `ip -j` output (`via` is used for RFC 5549 routes)."""
    if item.get("gateway"):
        return str(ipaddress.ip_address(item["gateway"]))
    via = item.get("via")
    if isinstance(via, dict) and via.get("host"):
        return str(ipaddress.ip_address(via["host"]))
    return None


def parse_routes(text, family, table="main"):
    """Parse `ip -j [-6] route show ...` into normalised route dicts.

    Each dict: dest (`default` or CIDR), family (`ipv4`/`ipv6`), table, metric (int, the kernel's
    default when not printed), type (`unicast` unless printed), nexthops (list of {via, dev, weight},
    one entry for a single-path route, sorted).
    """
    raw = load_ip_json(text, "ip -j route show")
    routes = []
    for item in raw:
        dst = item.get("dst", "")
        if dst == "default":
            network = ipaddress.ip_network("0.0.0.0/0" if family == 4 else "::/0")
        else:
            network = ipaddress.ip_network(dst, strict=False)
        if "nexthops" in item:
            hops = [dict(via=_gateway(nh), dev=nh.get("dev"), weight=int(nh.get("weight", 1)))
                    for nh in item["nexthops"]]
        else:
            hops = [dict(via=_gateway(item), dev=item.get("dev"), weight=1)]
        routes.append(dict(
            dest=dest_text(network),
            family=FAMILY_NAME[family],
            table=str(item.get("table", table)),
            metric=int(item.get("metric", DEFAULT_METRIC[4] if family == 4 else DEFAULT_METRIC[6])),
            type=item.get("type", "unicast"),
            nexthops=sort_hops(hops),
        ))
    return sorted(routes, key=lambda r: r["metric"])


def sort_hops(hops):
    return sorted(hops, key=lambda h: (h.get("via") or "", h.get("dev") or "", h.get("weight") or 0))


# ---------------------------------------------------------------------------------------------
# Validation (pure): the wanted route from the module's parameters
# ---------------------------------------------------------------------------------------------
def _address(value, what, errors):
    try:
        return parse_ip(value, what)
    except MptcpError as e:
        errors.append(e.msg)
        return None


def _dev(value, what, errors):
    problem = ifname_problem(value, what) if value not in (None, "") else None
    if problem:
        errors.append(problem)
    return value or None


def validate_route(dest, via=None, dev=None, nexthops=None, metric=None, table="main", state="present", table_names=None):
    """Check a route request before anything runs; return the wanted route (a normalised dict).

    `metric` is None in the result when it was not given (the caller decides what that means).
    Raises MptcpError with every problem found, each naming the bad value.
    """
    errors = []
    if nexthops and (via is not None or dev is not None):
        errors.append("nexthops cannot be combined with via or dev (a route has either one gateway or several next hops)")

    hops = []
    if nexthops:
        for index, hop in enumerate(nexthops):
            hop = hop or {}
            weight = hop.get("weight")
            weight = 1 if weight is None else weight
            where = "nexthops[%d]" % index
            gateway = None
            if hop.get("via") in (None, ""):
                errors.append("%s has no via (gateway)" % where)
            else:
                gateway = _address(hop["via"], "%s via" % where, errors)
            if not isinstance(weight, int) or isinstance(weight, bool) or not WEIGHT_MIN <= weight <= WEIGHT_MAX:
                errors.append("%s weight %r is outside %d-%d" % (where, weight, WEIGHT_MIN, WEIGHT_MAX))
            hops.append(dict(via=gateway, dev=_dev(hop.get("dev"), "%s dev" % where, errors), weight=weight))
    elif via is not None or dev is not None:
        gateway = _address(via, "via", errors) if via is not None else None
        hops.append(dict(via=gateway, dev=_dev(dev, "dev", errors), weight=1))

    gateways = [h["via"] for h in hops if h["via"] is not None]
    network = None
    text = str(dest).strip()
    if text.lower() == "default":
        family = gateways[0].version if gateways else 4
        network = ipaddress.ip_network("0.0.0.0/0" if family == 4 else "::/0")
    else:
        try:
            network = parse_prefix(text, "dest")
        except MptcpError as e:
            errors.append(e.msg if "host bits" in e.msg or "scope id" in e.msg
                          else "dest %r is not an IPv4/IPv6 prefix (CIDR), address or 'default'" % (dest,))

    if network is not None:
        for index, gateway in enumerate(h["via"] for h in hops):
            if gateway is not None and gateway.version != network.version:
                where = "via" if not nexthops else "nexthops[%d] via" % index
                errors.append("%s %s is IPv%d but dest %s is IPv%d"
                              % (where, gateway, gateway.version, dest, network.version))

    if metric is not None and not 0 <= metric <= METRIC_MAX:
        errors.append("metric %r is outside 0-%d" % (metric, METRIC_MAX))
    try:
        table = validate_table("main" if table is None else table, table_names)
    except MptcpError as e:
        errors.append(e.msg)
    if state == "present" and not hops and not errors:
        errors.append("state=present needs via, dev or nexthops for dest %s" % (dest,))
    if errors:
        raise MptcpError("; ".join(errors))

    if len(hops) == 1:
        hops[0]["weight"] = 1  # a single next hop is a plain route: the kernel keeps no weight
    return dict(
        dest=dest_text(network),
        family=FAMILY_NAME[network.version],
        table=table,
        metric=metric,
        type="unicast",
        nexthops=sort_hops([dict(h, via=str(h["via"]) if h["via"] is not None else None) for h in hops]),
    )


# ---------------------------------------------------------------------------------------------
# Gateways the kernel accepts (pure)
# ---------------------------------------------------------------------------------------------
def parse_connected(text, family):
    """Routes without a gateway of `ip -j [-6] route show table T` that a gateway lookup of the
    kernel can land on (IPv4: scope link or host): a list of (network, dev, type)."""
    connected = []
    for item in load_ip_json(text, "ip -j route show"):
        if item.get("gateway") or item.get("via") or item.get("nexthops"):
            continue
        if family == 4 and item.get("scope") not in ("link", "host"):
            continue
        dst = item.get("dst", "")
        if dst == "default":
            dst = "0.0.0.0/0" if family == 4 else "::/0"
        try:
            connected.append((ipaddress.ip_network(dst, strict=False), item.get("dev"), item.get("type", "unicast")))
        except ValueError:
            continue
    return connected


def gateway_problems(want, connected):
    """Next hops of `want` whose gateway the kernel would refuse, as the kernel decides it: the
    most specific route without a gateway (of the route's table, main or local) that covers the
    gateway, on the hop's dev when one is given, must be a unicast (directly connected) route, or
    for IPv4 a local address; an IPv6 link-local gateway needs a dev. Returns messages."""
    problems = []
    many = len(want["nexthops"]) > 1
    refused = "(the kernel would refuse it: Nexthop has invalid gateway)"
    for hop in want["nexthops"]:
        if not hop.get("via"):
            continue
        gateway = ipaddress.ip_address(hop["via"])
        where = "nexthop via %s" % gateway if many else "via %s" % gateway
        if gateway.version == 6 and gateway.is_link_local:
            if not hop.get("dev"):
                problems.append("%s is an IPv6 link-local gateway: give its dev" % where)
            continue
        covering = [(network.prefixlen, kind) for network, dev, kind in connected
                    if gateway in network and (not hop.get("dev") or dev == hop["dev"])]
        on = " on dev %s" % hop["dev"] if hop.get("dev") else ""
        if not covering:
            problems.append("%s is not reachable%s: no directly connected route (an address's subnet, or a "
                            "route with a dev and no gateway) covers it in table %s %s"
                            % (where, on, "main or local" if want["table"] in ("main", "local")
                               else want["table"] + ", main or local", refused))
            continue
        kind = max(covering)[1]
        if kind == "local" and gateway.version == 6:
            problems.append("%s is a local address of this host (the kernel refuses it: Gateway can not be "
                            "a local address)" % where)
        elif kind not in ("unicast", "local"):
            problems.append("%s is a %s address%s %s" % (where, kind, on, refused))
    return problems


# ---------------------------------------------------------------------------------------------
# Comparing and planning (pure)
# ---------------------------------------------------------------------------------------------
def hops_match(current, wanted, any_via=False):
    """True when the next hops are the same multiset; a wanted hop without dev matches any dev
    (and, with `any_via`, as used for removal, one without via matches any gateway)."""
    if len(current) != len(wanted):
        return False
    left = list(current)
    # hops that name a device first, so that a hop without one cannot take their partner
    for hop in sorted(wanted, key=lambda h: (h.get("dev") is None, h.get("via") is None)):
        for index, have in enumerate(left):
            if ((have.get("via") == hop.get("via") or (any_via and hop.get("via") is None))
                    and have.get("weight", 1) == hop.get("weight", 1)
                    and (hop.get("dev") is None or have.get("dev") == hop.get("dev"))):
                del left[index]
                break
        else:
            return False
    return True


def wanted_metric(want):
    return want["metric"] if want["metric"] is not None else DEFAULT_METRIC[int(want["family"][-1])]


def route_matches(current, want, for_removal=False):
    """True when the kernel's `current` route is the wanted one.

    For removal the wanted metric and next hops only narrow the choice when they were given.
    """
    if current["type"] != "unicast" and not for_removal:
        return False
    if for_removal:
        if want["metric"] is not None and current["metric"] != want["metric"]:
            return False
        return not want["nexthops"] or hops_match(current["nexthops"], want["nexthops"], any_via=True)
    return current["metric"] == wanted_metric(want) and hops_match(current["nexthops"], want["nexthops"])


def plan_route(current, want, state):
    """The actions that bring the routes of dest (`current`, parsed) to the wanted state.

    Returns a list of ("replace", want_with_metric) or ("delete", route) tuples, empty when the
    kernel already matches.
    """
    if state == "absent":
        return [("delete", r) for r in current if route_matches(r, want, for_removal=True)]
    if any(route_matches(r, want) for r in current):
        return []
    return [("replace", dict(want, metric=wanted_metric(want)))]


def apply_plan(current, actions):
    """The routes of dest after `actions`, as predicted (check mode)."""
    result = [dict(r) for r in current]
    for kind, route in actions:
        if kind == "delete":
            result = [r for r in result if r != route]
        else:
            result = [r for r in result if r["metric"] != route["metric"]] + [route]
    return sorted(result, key=lambda r: r["metric"])


def route_command(route, kind):
    """Arguments after `ip` for replacing or deleting `route`."""
    args = ["-6" if route["family"] == "ipv6" else "-4", "route", kind, route["dest"], "table", route["table"]]
    if kind == "del":
        args += ["metric", str(route["metric"])]
        if route["type"] != "unicast":
            args.insert(3, route["type"])
        return args
    args += ["metric", str(route["metric"])]
    hops = route["nexthops"]
    if len(hops) == 1:
        if hops[0]["via"]:
            args += ["via", hops[0]["via"]]
        if hops[0]["dev"]:
            args += ["dev", hops[0]["dev"]]
        return args
    for hop in hops:
        args += ["nexthop", "via", hop["via"]]
        if hop["dev"]:
            args += ["dev", hop["dev"]]
        args += ["weight", str(hop["weight"])]
    return args


def route_text(route):
    """A route in `ip route show` style (one line, plus a tab-indented line per ECMP next hop)."""
    words = [route["dest"]] if route["type"] == "unicast" else [route["type"], route["dest"]]
    hops = route["nexthops"]
    if len(hops) == 1:
        if hops[0].get("via"):
            words += ["via", hops[0]["via"]]
        if hops[0].get("dev"):
            words += ["dev", hops[0]["dev"]]
    if route["family"] == "ipv6" or route["metric"]:
        words += ["metric", str(route["metric"])]
    if route["table"] != "main":
        words += ["table", route["table"]]
    lines = [" ".join(words)]
    if len(hops) > 1:
        for hop in hops:
            words = ["nexthop", "via", hop["via"]]
            if hop.get("dev"):
                words += ["dev", hop["dev"]]
            words += ["weight", str(hop["weight"])]
            lines.append("\t" + " ".join(words))
    return "".join(line + "\n" for line in lines)


def routes_text(routes):
    return "".join(route_text(r) for r in routes)


# ---------------------------------------------------------------------------------------------
# Running ip
# ---------------------------------------------------------------------------------------------
def read_routes(ip, want):
    family = 6 if want["family"] == "ipv6" else 4
    cmd = ip.ip_cmd("-j", "-%d" % family, "route", "show", "exact", want["dest"], "table", want["table"])
    rc, out, err = ip.run(cmd, check=False)
    if rc != 0:
        if "FIB table does not exist" in err:
            return []  # a numeric table without routes yet: the kernel makes it on the first add
        raise MptcpError("cannot read the routes of %s in table %r: %s" % (want["dest"], want["table"], (err or out).strip()),
                         cmd=cmd, rc=rc, stdout=out, stderr=err)
    return parse_routes(out, family, want["table"])


def check_gateways(ip, want):
    """Fail, naming every unreachable gateway, before anything changes (in check mode too)."""
    if not any(h.get("via") for h in want["nexthops"]):
        return
    family = 6 if want["family"] == "ipv6" else 4
    connected = []
    for table in sorted(set((want["table"], "main", "local"))):
        cmd = ip.ip_cmd("-j", "-%d" % family, "route", "show", "table", table)
        rc, out, err = ip.run(cmd, check=False)
        if rc == 0:
            connected += parse_connected(out, family)
        elif "FIB table does not exist" not in err:
            raise MptcpError("cannot read the routes of table %s: %s" % (table, (err or out).strip()),
                             cmd=cmd, rc=rc, stdout=out, stderr=err)
    problems = gateway_problems(want, connected)
    if problems:
        raise MptcpError("route %s: %s" % (want["dest"], "; ".join(problems)))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="str", required=True),
            via=dict(type="str"),
            dev=dict(type="str"),
            nexthops=dict(type="list", elements="dict", options=dict(
                via=dict(type="str", required=True),
                dev=dict(type="str"),
                weight=dict(type="int", default=1),
            )),
            metric=dict(type="int"),
            table=dict(type="str", default="main"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            check_gateways=dict(type="bool", default=True),
            netns=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, route=None, routes=[], commands=[])
    ip = IpMptcp(module, p["netns"])
    try:
        want = validate_route(p["dest"], p["via"], p["dev"], p["nexthops"], p["metric"], p["table"], p["state"])
        ip.check_netns()
        if p["state"] == "present":
            for dev in sorted(set(h["dev"] for h in want["nexthops"] if h["dev"])):
                ip.check_dev(dev)
            if p["check_gateways"]:
                check_gateways(ip, want)
        before = read_routes(ip, want)
        actions = plan_route(before, want, p["state"])
        commands = [ip.ip_cmd(*route_command(r, kind)) for kind, r in
                    (("del" if a[0] == "delete" else "replace", a[1]) for a in actions)]
        result["commands"] = commands
        result["changed"] = bool(actions)
        if actions and not module.check_mode:
            for cmd in commands:
                ip.run(cmd)
            after = read_routes(ip, want)
        else:
            after = apply_plan(before, actions)
    except MptcpError as e:
        fail_from(module, e, **result)

    result["routes"] = after
    if p["state"] == "present":
        result["route"] = next((r for r in after if route_matches(r, want)), None)
    if module._diff:
        where = " (netns %s)" % p["netns"] if p["netns"] else ""
        header = "ip route %s table %s%s" % (want["dest"], want["table"], where)
        result["diff"] = dict(before=routes_text(before), after=routes_text(after),
                              before_header=header, after_header=header)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
