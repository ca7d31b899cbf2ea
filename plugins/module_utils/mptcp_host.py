# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation and planning of role multipath.mptcp.mptcp_host (pure: input and the kernel's state
in, a plan or every problem out), used by the module mptcp_host_plan before the role changes anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import re

from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import (
    ID_MAX,
    ID_MIN,
    LIMIT_MAX,
    USER_FLAGS,
    MptcpError,
    canonical_address,
    find_endpoint,
    ordered_flags,
    plan_endpoint,
    validate_endpoint,
)

ENDPOINT_MAX = 8  # MPTCP_PM_ADDR_MAX: endpoints per network namespace
TABLE_MAX = 2 ** 32 - 1
RESERVED_TABLES = (253, 254, 255)  # default, main, local
PRIORITY_MIN, PRIORITY_MAX = 1, 32765  # before the main table's rule (32766)
WAIT_MAX = 3600
IFNAMSIZ = 16
ENDPOINT_KEYS = ("address", "dev", "id", "port", "flags", "gateway")
POLICY_KEYS = ("address", "dev", "gateway", "table", "priority")
LIMIT_KEYS = ("subflows", "add_addr_accepted")
# A path that can stand in a unit file and on a command line as it is (the boot restore).
SAFE_PATH = re.compile(r"^/([A-Za-z0-9_@+-][A-Za-z0-9._@+-]*/)*[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*\Z")
SYSCTL_NAME = re.compile(r"^[a-z0-9_]+\Z")
SYSCTL_VALUE = re.compile(r"^[A-Za-z0-9_.,:+-]+\Z")
DIGITS = re.compile(r"^[0-9]+\Z")


def show(value):
    """A value as the user wrote it, quotes and control characters visible (for messages)."""
    return repr(value) if isinstance(value, str) else str(value)


def valid_ifname(name):
    """What the kernel accepts as an interface name (net/core/dev.c dev_valid_name)."""
    return (isinstance(name, str) and 0 < len(name.encode("utf-8")) < IFNAMSIZ and name not in (".", "..")
            and not any(c in "/:\0" or c.isspace() for c in name))


def to_int(value, what, low, high, errors, exclude=()):
    """An int from an int or a string of digits; None (and an error naming the value) otherwise."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and DIGITS.match(value))):
        errors.append("%s %s is not a whole number %d-%d" % (what, show(value), low, high))
        return None
    number = int(value)
    if not low <= number <= high or number in exclude:
        others = (" or one of %s" % ", ".join(map(str, exclude))) if exclude else ""
        errors.append("%s %s is outside %d-%d%s" % (what, show(value), low, high, others))
        return None
    return number


def to_bool(value, what, errors):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "on", "1"):
        return True
    if text in ("no", "false", "off", "0"):
        return False
    errors.append("%s %s is not a boolean" % (what, show(value)))
    return False


def to_address(value, what, errors):
    try:
        return canonical_address(value) if isinstance(value, str) and value == value.strip() else canonical_address(None)
    except (ValueError, TypeError):
        errors.append("%s %s is not an IPv4 or IPv6 address" % (what, show(value)))
        return None


def check_dev(dev, what, links, errors):
    if not valid_ifname(dev):
        errors.append("%s %s is not an interface name (1-15 characters, no '/', ':' or white space)" % (what, show(dev)))
        return False
    if dev not in links:
        errors.append("%s %s does not exist (interfaces: %s)" % (what, show(dev), ", ".join(sorted(links)) or "none"))
        return False
    return True


def check_path(value, what, errors):
    if not isinstance(value, str) or not SAFE_PATH.match(value):
        errors.append("%s %s is not an absolute path of letters, digits and . _ @ + - / (no '..', spaces, quotes)"
                      % (what, show(value)))


def plan_sysctls(p, kernel, errors):
    enabled = to_bool(p["enabled"], "mptcp_host_enabled", errors)
    sysctls = p["sysctls"] or {}
    out = [("net.mptcp.enabled", "1" if enabled else "0")]
    if not isinstance(sysctls, dict):
        errors.append("mptcp_host_sysctls %s is not a dict" % show(sysctls))
        sysctls = {}
    for key in sorted(sysctls, key=str):
        value = sysctls[key]
        what = "mptcp_host_sysctls.%s" % key
        if not isinstance(key, str) or not SYSCTL_NAME.match(key):
            errors.append("mptcp_host_sysctls key %s is not a sysctl name (lower case letters, digits, _; without net.mptcp.)"
                          % show(key))
            continue
        if key not in kernel["sysctls"]:
            errors.append("mptcp_host_sysctls: %s not known by kernel %s (it has: %s)"
                          % (key, kernel.get("release", ""), ", ".join(sorted(kernel["sysctls"]))))
            continue
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (int, str)) or not SYSCTL_VALUE.match(str(value)):
            errors.append("%s value %s is not a number or a word" % (what, show(value)))
            continue
        if key == "enabled":
            if str(value) != ("1" if enabled else "0"):
                errors.append("mptcp_host_sysctls.enabled %s contradicts mptcp_host_enabled %s (set mptcp_host_enabled only)"
                              % (show(value), enabled))
            continue
        out.append(("net.mptcp." + key, str(value)))
    rp = to_int(p["rp_filter"], "mptcp_host_rp_filter", 0, 2, errors)
    for scope in ("all", "default"):
        out.append(("net.ipv4.conf.%s.rp_filter" % scope, str(rp)))
    return enabled, [{"name": n, "value": v} for n, v in out]


def plan_limits(p, kernel, errors):
    limits = p["limits"] or {}
    if not isinstance(limits, dict):
        errors.append("mptcp_host_limits %s is not a dict" % show(limits))
        return {}, {}
    wanted = {}
    for key in sorted(limits, key=str):
        if key not in LIMIT_KEYS:
            errors.append("mptcp_host_limits key %s is not one of %s" % (show(key), ", ".join(LIMIT_KEYS)))
            continue
        value = to_int(limits[key], "mptcp_host_limits.%s" % key, 0, LIMIT_MAX, errors)
        if value is not None:
            wanted[key] = value
    after = dict(kernel["limits"], **wanted) if wanted else {}
    return wanted, after


def listening(kernel, address, port):
    """True when a TCP socket listens on port at address or at the wildcard address."""
    for addr, lport in kernel.get("listeners", ()):
        if lport == port and addr in (address, "0.0.0.0", "::"):
            return True
    return False


def plan_endpoints(p, kernel, errors):
    endpoints = p["endpoints"] or []
    purge = to_bool(p["purge_endpoints"], "mptcp_host_purge_endpoints", errors)
    if not isinstance(endpoints, list):
        errors.append("mptcp_host_endpoints %s is not a list" % show(endpoints))
        return [], []
    out = []
    for index, ep in enumerate(endpoints):
        where = "mptcp_host_endpoints[%d]" % index
        if not isinstance(ep, dict):
            errors.append("%s %s is not a dict" % (where, show(ep)))
            continue
        unknown = [k for k in ep if k not in ENDPOINT_KEYS]
        if unknown:
            errors.append("%s: unknown key(s) %s (known: %s)" % (where, ", ".join(map(show, unknown)), ", ".join(ENDPOINT_KEYS)))
        if ep.get("address") is None:
            errors.append("%s has no address" % where)
            continue
        count = len(errors)
        address = to_address(ep["address"], where + " address", errors)
        where = "%s (%s)" % (where, ep["address"])
        dev = ep.get("dev")
        if dev is not None:
            check_dev(dev, where + " dev", kernel["links"], errors)
        ep_id = to_int(ep["id"], where + " id", ID_MIN, ID_MAX, errors) if ep.get("id") is not None else None
        port = to_int(ep["port"], where + " port", 1, 65535, errors) if ep.get("port") is not None else None
        flags = ep.get("flags") or []
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            errors.append("%s flags %s is not a list of %s" % (where, show(flags), ", ".join(USER_FLAGS)))
            flags = []
        gateway = ep.get("gateway")
        if gateway is not None:
            gw = to_address(gateway, where + " gateway", errors)
            if gw and address and (":" in gw) != (":" in address):
                errors.append("%s gateway %s is of the other address family" % (where, show(gateway)))
        if len(errors) > count or address is None:
            continue
        try:
            validate_endpoint(address, ep_id, port, flags, "present")
        except MptcpError as e:
            errors.append("%s: %s" % (where, e.msg))
            continue
        if port is not None:
            own = any(k["address"] == address and k.get("port") == port for k in kernel["endpoints"])
            if not own and listening(kernel, address, port):
                errors.append("%s port %d is in use (a socket listens on it; the kernel could not announce it)"
                              % (where, port))
        out.append(dict(address=address, dev=dev, id=ep_id, port=port, flags=ordered_flags(flags)))
    for key, what in (("address", "address"), ("id", "id")):
        values = [ep[key] for ep in out if ep[key] is not None]
        for value in sorted(set(v for v in values if values.count(v) > 1), key=str):
            errors.append("mptcp_host_endpoints lists %s %s more than once (one endpoint per %s)" % (what, value, what))
    wanted = set(ep["address"] for ep in out)
    others = [e for e in kernel["endpoints"] if not e["implicit"] and e["address"] not in wanted]
    purged = [dict(id=e["id"], address=e["address"]) for e in others] if purge else []
    total = len(out) + (0 if purge else len(others))
    if total > ENDPOINT_MAX:
        errors.append("mptcp_host_endpoints: %d endpoints%s, the kernel holds at most %d"
                      % (total, "" if purge else " with the %d unlisted ones the kernel has (%s; purge them with "
                         "mptcp_host_purge_endpoints)" % (len(others), ", ".join(e["address"] for e in others)),
                         ENDPOINT_MAX))
    return out, purged


def plan_policy(p, kernel, endpoints_in, errors):
    """The policy routing entries: {address, dev, family, table, priority, gateway, connected}."""
    routes = p["policy_routes"] or []
    if not isinstance(routes, list):
        errors.append("mptcp_host_policy_routes %s is not a list" % show(routes))
        return [], []
    origin = "mptcp_host_policy_routes" if routes else "mptcp_host_endpoints"
    source = routes or (endpoints_in if isinstance(endpoints_in, list) else [])
    base = to_int(p["policy_table_base"], "mptcp_host_policy_table_base", 1, TABLE_MAX, errors)
    default_prio = to_int(p["policy_rule_priority"], "mptcp_host_policy_rule_priority", PRIORITY_MIN, PRIORITY_MAX, errors)
    if not source:
        errors.append("mptcp_host_policy_routing is on but there is nothing to route: set mptcp_host_policy_routes "
                      "or mptcp_host_endpoints (with dev)")
    entries = []
    for index, e in enumerate(source):
        if not isinstance(e, dict) or e.get("address") is None:
            errors.append("%s[%d] %s has no address" % (origin, index, show(e)))
            continue
        if routes:
            unknown = [k for k in e if k not in POLICY_KEYS]
            if unknown:
                errors.append("%s[%d]: unknown key(s) %s (known: %s)"
                              % (origin, index, ", ".join(map(show, unknown)), ", ".join(POLICY_KEYS)))
        count = len(errors)
        address = to_address(e["address"], "%s[%d] address" % (origin, index), errors)
        if address is None:
            continue
        where = "%s: %s" % (origin, address)
        v6 = ":" in address
        dev = e.get("dev")
        if not dev:
            errors.append("%s has no dev (policy routing needs the interface that owns the address)" % where)
        elif check_dev(dev, where + " dev", kernel["links"], errors) and address not in kernel["links"][dev]:
            errors.append("%s is not an address of dev %s (it has: %s)" % (where, dev, ", ".join(kernel["links"][dev]) or "none"))
        if e.get("table") is not None:
            table = to_int(e["table"], where + " table", 1, TABLE_MAX, errors, exclude=RESERVED_TABLES)
        elif base is not None:
            table = to_int(base + index, where + " table (mptcp_host_policy_table_base + %d)" % index, 1, TABLE_MAX,
                           errors, exclude=RESERVED_TABLES)
        else:
            table = None
        if e.get("priority") is not None:
            priority = to_int(e["priority"], where + " priority", PRIORITY_MIN, PRIORITY_MAX, errors)
        else:
            priority = default_prio
        main = kernel["main6" if v6 else "main4"]
        on_dev = [r for r in main if r.get("dev") == dev]
        gateway = e.get("gateway")
        if gateway is not None:
            gateway = to_address(gateway, where + " gateway", errors)
            if gateway is not None and (":" in gateway) != v6:
                errors.append("%s gateway %s is of the other address family" % (where, gateway))
        else:
            gateway = next((canonical_address(r["gateway"]) for r in on_dev
                            if r.get("dst") == "default" and r.get("gateway")), None)
        if len(errors) > count:
            continue
        connected = [r for r in on_dev if r.get("protocol") == "kernel" and r.get("dst") != "default"
                     and not str(r.get("dst", "")).startswith("fe80:")]
        if not v6:
            connected = [r for r in connected if r.get("prefsrc") == address]
        prefixes = []
        for r in connected:
            if r["dst"] not in prefixes:
                prefixes.append(r["dst"])
        entries.append(dict(address=address, dev=dev, family="ipv6" if v6 else "ipv4", table=str(table),
                            priority=priority, gateway=gateway, connected=prefixes))
    for key, what in (("address", "lists %s more than once"), ("table", ": table %s is given to more than one address (one table per address)")):
        values = [e[key] for e in entries]
        for value in sorted(set(v for v in values if values.count(v) > 1)):
            errors.append(origin + (" " if key == "address" else "") + what % value)
    wanted = set((e["priority"], e["address"], e["table"]) for e in entries)
    prios = set(e["priority"] for e in entries)
    stale = [r for r in kernel.get("rules", []) if r["priority"] in prios and (r["priority"], r["src"], r["table"]) not in wanted]
    return entries, stale


def parse_sysctl_file(text):
    """{name: value} of a sysctl.d file, read the way ansible.posix.sysctl reads it (the last line wins)."""
    out = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        name, value = line.split("=", 1)
        out[name.strip()] = " ".join(value.split())
    return out


def pending_sysctls(planned, running, file_text):
    """The planned sysctls that ansible.posix.sysctl would change: the running value or the file's differs.

    `running`: {full name: value as read from /proc/sys}; a name missing there counts as differing.
    """
    in_file = parse_sysctl_file(file_text)
    return [s for s in planned
            if " ".join(str(running.get(s["name"], "")).split()) != s["value"] or in_file.get(s["name"]) != s["value"]]


def endpoints_in_place(planned, current):
    """The kernel's endpoint for each planned one (as mptcp_endpoint returns it) when none needs a change, else None."""
    if any(plan_endpoint(current, want, "present") for want in planned):
        return None
    return [find_endpoint(current, want) for want in planned]


# Where the role records the sysctls and limits as they were before its first change (in
# mptcp_host_persist_dir); state absent puts them back and removes the record.
RECORD_NAME = "mptcp_host.before.json"
RECORD_VALUE = re.compile(r"^[ -~]*\Z")   # one line of printable ASCII (a running value may hold spaces)


def running_values(sysctls, kernel):
    """The running values of the role's sysctls and the kernel's limits: what the role records."""
    values = kernel.get("sysctl_values", {})
    return {"sysctls": dict((s["name"], " ".join(str(values[s["name"]]).split())) for s in sysctls if s["name"] in values),
            "limits": dict(kernel["limits"])}


def parse_record(text, path):
    """The record of the values before the role's first change; None when there is none (empty text)."""
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    sysctls = record.get("sysctls") if isinstance(record, dict) else None
    limits = record.get("limits") if isinstance(record, dict) else None
    if (not isinstance(sysctls, dict) or not isinstance(limits, dict)
            or not all(isinstance(k, str) and isinstance(v, str) and RECORD_VALUE.match(v) for k, v in sysctls.items())
            or not all(k.startswith(("net.mptcp.", "net.ipv4.conf.")) for k in sysctls)
            or not all(k in LIMIT_KEYS and isinstance(v, int) and 0 <= v <= LIMIT_MAX for k, v in limits.items())):
        raise MptcpError("%s is not a record this role wrote ({sysctls: {name: value}, limits: {subflows, "
                         "add_addr_accepted}}): move it away to go on" % path)
    return record


def restore_values(record, kernel):
    """What state absent sets back: the recorded sysctls whose running value differs, and the
    recorded limits when one differs ([] and {} without a record)."""
    if not record:
        return [], {}
    values = kernel.get("sysctl_values", {})
    sysctls = [{"name": name, "value": value} for name, value in sorted(record["sysctls"].items())
               if " ".join(str(values.get(name, "")).split()) != value]
    limits = record["limits"] if any(kernel["limits"].get(k) != v for k, v in record["limits"].items()) else {}
    return sysctls, limits


def plan_host(p, kernel):
    """Check every input of role mptcp_host against the kernel's state; return the plan.

    `p`: the role's variables without the `mptcp_host_` prefix. `kernel`: sysctls {name: value},
    links {name: [addresses]}, endpoints (parsed), limits, listeners [(address, port)], main4/main6
    (`ip -j route show table main`), rules [{priority, src, table}] (plain single-address rules).
    Raises MptcpError listing every problem, each naming the bad value.
    """
    errors = []
    enabled, sysctls = plan_sysctls(p, kernel, errors)
    limits, limits_after = plan_limits(p, kernel, errors)
    endpoints, purge = plan_endpoints(p, kernel, errors)
    policy_routing = to_bool(p["policy_routing"], "mptcp_host_policy_routing", errors)
    policy, stale = plan_policy(p, kernel, p["endpoints"], errors) if policy_routing else ([], [])
    if not enabled and (endpoints or limits or policy_routing):
        errors.append("mptcp_host_enabled is false (net.mptcp.enabled=0) but endpoints, limits or policy routing are "
                      "given: they need MPTCP enabled")
    check_path(p["sysctl_file"], "mptcp_host_sysctl_file", errors)
    persist = to_bool(p["persist"], "mptcp_host_persist", errors)
    check_path(p["persist_dir"], "mptcp_host_persist_dir", errors)
    wait = to_int(p["persist_wait"], "mptcp_host_persist_wait", 0, WAIT_MAX, errors)
    if errors:
        raise MptcpError("; ".join(errors))
    devices = [ep["dev"] for ep in endpoints if ep["dev"]] + [e["dev"] for e in policy]
    record = parse_record(kernel.get("record"), "%s/%s" % (p["persist_dir"], RECORD_NAME))
    restore_sysctls, restore_limits = restore_values(record, kernel)
    return dict(
        enabled=enabled,
        sysctls=sysctls,
        sysctls_pending=pending_sysctls(sysctls, kernel.get("sysctl_values", {}), kernel.get("sysctl_file", "")),
        limits=limits,
        limits_after=limits_after,
        limits_pending=any(kernel["limits"].get(k) != v for k, v in limits.items()),
        endpoints=endpoints,
        endpoints_in_place=endpoints_in_place(endpoints, kernel["endpoints"]),
        purge=purge,
        policy=policy,
        policy_stale=stale,
        persist=persist,
        persist_wait=wait,
        devices=sorted(set(devices), key=devices.index),
        record="%s/%s" % (p["persist_dir"].rstrip("/"), RECORD_NAME),
        running=running_values(sysctls, kernel),
        recorded=record,
        restore_sysctls=restore_sysctls,
        restore_limits=restore_limits,
    )


def plain_rules(raw, family):
    """Single-address lookup rules (only priority, src and table) of `ip -j rule show` output."""
    out = []
    for r in raw:
        if set(r) - {"priority", "src", "table"} or r.get("src") in (None, "all") or r.get("table") is None:
            continue
        try:
            src = canonical_address(r["src"])
        except ValueError:
            continue
        out.append(dict(priority=int(r["priority"]), src=src, table=str(r["table"]), family=family))
    return out


def parse_listeners(text):
    """(address, port) of the LISTEN sockets in /proc/net/tcp or /proc/net/tcp6 text."""
    out = []
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != "0A":
            continue
        hexaddr, hexport = fields[1].partition(":")[::2]
        raw = bytes.fromhex(hexaddr)
        # the kernel prints each 32-bit word in host (little endian) order
        words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
        address = ipaddress.ip_address(words)
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        out.append((str(address), int(hexport, 16)))
    return out


# ---------------------------------------------------------------------------------------------
# Other programs that manage MPTCP endpoints (NetworkManager 1.40+, mptcpd)
# ---------------------------------------------------------------------------------------------
NM_MPTCP_VERSION = (1, 40)  # NetworkManager adds and removes MPTCP endpoints from 1.40 on
NM_DISABLED = re.compile(r"(?m)^\s*connection\.mptcp-flags\s*=\s*(0x0*1|1)\s*$")


def parse_units(text):
    """`systemctl show --property=Id,ActiveState,UnitFileState A B` -> {name: {active, enabled, state}}
    for NetworkManager and mptcpd (both inactive and 'not found' when not shown)."""
    missing = {"active": False, "enabled": False, "state": "not found"}
    units = {"NetworkManager": dict(missing), "mptcpd": dict(missing)}
    for block in (text or "").split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" not in props:
            continue
        name = re.sub(r"[.]service$", "", props["Id"])
        active, file_state = props.get("ActiveState", ""), props.get("UnitFileState", "")
        units[name] = {"active": active in ("active", "activating", "reloading"),
                       "enabled": file_state in ("enabled", "enabled-runtime"),
                       "state": "%s (%s)" % (active or "unknown", file_state or "not installed")}
    return units


def endpoint_managers(units, nm_output=""):
    """Descriptions of the other programs that manage MPTCP endpoints here (empty: none)."""
    found = []
    if units["NetworkManager"]["active"]:
        lines = (nm_output or "").splitlines()
        match = re.match(r"^[0-9][0-9.]*", lines[0].strip()) if lines else None
        version = match.group(0).rstrip(".") if match else "unknown version"
        numbers = tuple(int(n) for n in version.split(".")[:2] if n.isdigit()) if match else None
        recent = numbers is None or numbers >= NM_MPTCP_VERSION
        if recent and not NM_DISABLED.search(nm_output or ""):
            found.append("NetworkManager %s (NetworkManager.service is active; from 1.40 on it adds and removes MPTCP "
                         "endpoints for its connections, connection.mptcp-flags)" % version)
    if units["mptcpd"]["active"] or units["mptcpd"]["enabled"]:
        found.append("mptcpd (mptcpd.service is %s; its path manager plugins add endpoints)" % units["mptcpd"]["state"])
    return found
