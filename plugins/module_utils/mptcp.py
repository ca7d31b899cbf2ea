# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared code of the multipath.mptcp modules: running `ip mptcp`, parsing what it prints
(iproute2 6.1 and newer) and validating input before anything is changed.

Parsing functions are pure (text in, dicts out) so that unit tests can feed them real captured
output; `IpMptcp` is the only place that runs commands.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os
import re

# Endpoint flags as the kernel defines them (include/uapi/linux/mptcp.h, MPTCP_PM_ADDR_FLAG_*).
FLAG_BITS = {
    "signal": 0x01,
    "subflow": 0x02,
    "backup": 0x04,
    "fullmesh": 0x08,
    "implicit": 0x10,
    "laminar": 0x20,
}
USER_FLAGS = ("signal", "subflow", "backup", "fullmesh", "laminar")
# Flags that `ip mptcp endpoint change` can switch in place; any other difference replaces the endpoint.
CHANGEABLE_FLAGS = ("backup", "fullmesh")

LIMIT_MAX = 8  # kernel hard limit (MPTCP_PM_ADDR_MAX) for subflows and add_addr_accepted
ID_MIN, ID_MAX = 1, 255

# `ip mptcp monitor` event names (kernel enum mptcp_event_type). iproute2 6.1 has no names for the
# listener events and prints them as "UNKNOWN <type>".
EVENT_NAMES = (
    "CREATED",
    "ESTABLISHED",
    "CLOSED",
    "ANNOUNCED",
    "REMOVED",
    "SF_ESTABLISHED",
    "SF_CLOSED",
    "SF_PRIO",
    "LISTENER_CREATED",
    "LISTENER_CLOSED",
)
UNKNOWN_EVENT_TYPES = {15: "LISTENER_CREATED", 16: "LISTENER_CLOSED"}
_INT_FIELDS = ("remid", "locid", "sport", "dport", "backup", "ifindex", "error", "flags", "timeout", "reset_reason", "reset_flags")


class MptcpError(Exception):
    """A problem to report to the user: `msg` plus, for a failing command, cmd/rc/stdout/stderr."""

    def __init__(self, msg, **details):
        super(MptcpError, self).__init__(msg)
        self.msg = msg
        self.details = details


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------
def load_ip_json(text, command):
    """The JSON that `ip -j ...` printed (a list; empty output is an empty list).

    Raises MptcpError naming the command when the output is not JSON.
    """
    text = (text or "").strip()
    if not text:
        return []
    try:
        return json.loads(text)
    except ValueError as e:
        raise MptcpError("cannot parse `%s` output as JSON: %s" % (command, e), stdout=text)


def parse_endpoints(text):
    """Parse `ip -j mptcp endpoint show` into a list of normalised endpoint dicts.

    Each dict: address (str, canonical form), id (int), port (int or None), dev (str or None),
    flags (names in kernel bit order), implicit (bool). iproute2 6.1 prints flags it has no name for
    as `rawflags` (hex): those bits are decoded too, so kernel-made (implicit) endpoints are seen.
    """
    raw = load_ip_json(text, "ip -j mptcp endpoint show")
    endpoints = []
    for item in raw:
        names = set(name for name in FLAG_BITS if item.get(name) is True)
        if "rawflags" in item:
            bits = int(str(item["rawflags"]), 16)
            names.update(name for name, bit in FLAG_BITS.items() if bits & bit)
        endpoints.append(
            {
                "address": canonical_address(item["address"]),
                "id": int(item["id"]),
                "port": int(item["port"]) if item.get("port") else None,
                "dev": item.get("dev"),
                "flags": ordered_flags(names - {"implicit"}),
                "implicit": "implicit" in names,
            }
        )
    return sorted(endpoints, key=lambda e: e["id"])


def parse_limits(text):
    """Parse `ip mptcp limits show` (plain text on iproute2 6.1, JSON on newer releases)."""
    text = (text or "").strip()
    if text.startswith("{"):
        data = json.loads(text)
        return {"subflows": int(data["subflows"]), "add_addr_accepted": int(data["add_addr_accepted"])}
    words = text.split()
    values = dict(zip(words[0::2], words[1::2]))
    try:
        return {"subflows": int(values["subflows"]), "add_addr_accepted": int(values["add_addr_accepted"])}
    except (KeyError, ValueError):
        raise MptcpError("cannot parse `ip mptcp limits show` output: %r" % text, stdout=text)


_MONITOR_LINE = re.compile(r"^\[\s*([A-Z_]+(?: \d+)?)\s*\]\s*(.*)$")


def parse_monitor_line(line):
    """Parse one `ip mptcp monitor` line into a dict, or None for a line that is no event.

    `saddr4`/`saddr6` become `saddr` (+ `family`), numbers become ints, names match exactly.
    """
    match = _MONITOR_LINE.match(line.strip())
    if not match:
        return None
    name, rest = match.group(1), match.group(2)
    if name.startswith("UNKNOWN "):
        number = int(name.split()[1])
        name = UNKNOWN_EVENT_TYPES.get(number, name)
    event = {"event": name}
    for word in rest.split():
        key, sep, value = word.partition("=")
        if not sep:
            continue
        if key in ("saddr4", "daddr4", "saddr6", "daddr6"):
            event["family"] = "ipv4" if key.endswith("4") else "ipv6"
            key = key[:-1]
        if key in _INT_FIELDS:
            try:
                value = int(value)
            except ValueError:
                pass
        event[key] = value
    return event


def parse_monitor(text):
    """Parse a whole capture: returns (events, counts) with every known event name in counts."""
    events = [e for e in (parse_monitor_line(line) for line in (text or "").splitlines()) if e]
    return events, count_events(events)


def count_events(events):
    counts = dict((name, 0) for name in EVENT_NAMES)
    for event in events:
        counts[event["event"]] = counts.get(event["event"], 0) + 1
    return counts


def parse_supported_flags(help_text):
    """Endpoint flags this iproute2 knows, from the `FLAG := [ a | b ]` line of `ip mptcp help`."""
    match = re.search(r"^FLAG\s*:=\s*\[(.*)\]", help_text or "", re.M)
    if not match:
        return []
    return [f.strip() for f in match.group(1).split("|") if f.strip()]


def parse_sysctls(text):
    """Parse `grep -r . /proc/sys/net/mptcp` (path:value lines) into {name: value}."""
    result = {}
    for line in (text or "").splitlines():
        path, sep, value = line.partition(":")
        if not sep:
            continue
        name = os.path.basename(path)
        value = value.strip()
        result[name] = int(value) if re.match(r"^-?\d+$", value) else value
    return result


# ---------------------------------------------------------------------------------------------
# Normalising, formatting and validation
# ---------------------------------------------------------------------------------------------
def ordered_flags(flags):
    """Flags without duplicates, in the kernel's bit order (as `ip mptcp endpoint show` prints them)."""
    return [name for name in FLAG_BITS if name in set(flags)]


def canonical_address(value):
    return str(ipaddress.ip_address(str(value).strip()))


def endpoint_line(ep):
    """One endpoint in `ip mptcp endpoint show` style, for diffs and messages."""
    if ep is None:
        return ""
    words = [ep["address"]]
    if ep.get("port"):
        words += ["port", str(ep["port"])]
    if ep.get("id") is not None:
        words += ["id", str(ep["id"])]
    words += list(ep.get("flags") or [])
    if ep.get("implicit"):
        words.append("implicit")
    if ep.get("dev"):
        words += ["dev", ep["dev"]]
    return " ".join(words)


def endpoints_text(endpoints):
    return "".join(endpoint_line(ep) + "\n" for ep in endpoints)


def limits_text(limits):
    return "add_addr_accepted %(add_addr_accepted)d subflows %(subflows)d\n" % limits


def validate_endpoint(address, ep_id, port, flags, state, dev=None):
    """Check an endpoint request before anything runs. Returns the canonical address (or None)."""
    errors = []
    if dev is not None and ifname_problem(dev):
        errors.append(ifname_problem(dev))
    canonical = None
    if address is not None:
        try:
            canonical = str(parse_ip(address, "address"))
        except MptcpError as e:
            errors.append(e.msg)
    if state == "present" and address is None:
        errors.append("address is required with state=present")
    if state == "absent" and address is None and ep_id is None:
        errors.append("state=absent needs address or id")
    if ep_id is not None and not ID_MIN <= ep_id <= ID_MAX:
        errors.append("id %d is outside %d-%d" % (ep_id, ID_MIN, ID_MAX))
    if port is not None and not 1 <= port <= 65535:
        errors.append("port %d is outside 1-65535" % port)
    flags = flags or []
    unknown = [f for f in flags if f not in USER_FLAGS]
    if unknown:
        errors.append("unknown flag(s) %s; valid flags: %s" % (", ".join(map(repr, unknown)), ", ".join(USER_FLAGS)))
    if "signal" in flags and "fullmesh" in flags:
        errors.append("flags 'signal' and 'fullmesh' cannot be combined (the kernel rejects it)")
    if port is not None and "signal" not in flags and state == "present":
        errors.append("port %d needs the 'signal' flag (the port is announced in ADD_ADDR)" % port)
    if errors:
        raise MptcpError("; ".join(errors))
    return canonical


# Names as the kernel and iproute2 allow them. Interface names (net/core/dev.c dev_valid_name):
# 1-15 bytes, not "." or "..", no "/", ":" or white space. Network namespace names (iproute2
# ip/ipnetns.c invalid_name): a file name under /run/netns - 1-255 bytes, not "." or "..", no "/".
IFNAMSIZ = 16
NETNS_NAME_MAX = 255
TABLE_MAX = 2 ** 32 - 1
# Tables that iproute2 always names (lib/rt_names.c); 0 is RT_TABLE_UNSPEC.
RESERVED_TABLES = {"253": "default", "254": "main", "255": "local"}
RT_TABLES_FILES = ("/etc/iproute2/rt_tables", "/usr/share/iproute2/rt_tables",
                   "/usr/lib/iproute2/rt_tables")
RT_TABLES_DIRS = ("/etc/iproute2/rt_tables.d", "/usr/share/iproute2/rt_tables.d",
                  "/usr/lib/iproute2/rt_tables.d")


def ifname_problem(value, what="dev"):
    """Why `value` cannot be a Linux interface name (None when it can), naming the value."""
    if not isinstance(value, str):
        return "%s %r is not an interface name (a string)" % (what, value)
    size = len(value.encode("utf-8", "surrogateescape"))
    if not value or value in (".", ".."):
        return "%s %r is not a valid interface name" % (what, value)
    if size >= IFNAMSIZ:
        return "%s %r is not a valid interface name: %d bytes, the kernel allows at most %d" % (
            what, value, size, IFNAMSIZ - 1)
    bad = sorted(set(c for c in value if c in "/:" or c.isspace() or ord(c) < 32 or ord(c) == 127))
    if bad:
        return "%s %r is not a valid interface name: the kernel refuses %s in it" % (
            what, value, ", ".join(repr(c) for c in bad))
    return None


def validate_ifname(value, what="dev"):
    problem = ifname_problem(value, what)
    if problem:
        raise MptcpError(problem)
    return value


def netns_problem(value):
    """Why `value` cannot be a network namespace name as `ip netns add` makes it (None when it can)."""
    if not isinstance(value, str) or not value or value in (".", ".."):
        return "netns %r is not a network namespace name" % (value,)
    if "/" in value:
        return ("netns %r is not a network namespace name: give the name that `ip netns add` made "
                "(as listed by `ip netns list`, e.g. %r), not a path" % (value, os.path.basename(value.rstrip("/")) or "ns1"))
    if len(value.encode("utf-8", "surrogateescape")) > NETNS_NAME_MAX or "\0" in value:
        return "netns %r is not a network namespace name: at most %d bytes, no NUL" % (value, NETNS_NAME_MAX)
    return None


def validate_netns(value):
    if value is None:
        return None
    problem = netns_problem(value)
    if problem:
        raise MptcpError(problem)
    return value


def parse_ip(value, what):
    """An IPv4/IPv6 address (ipaddress object) from user input. IPv6 scope ids (`fe80::1%eth0`)
    are refused: iproute2 does not take them (the interface goes in `dev`); a scope id that is no
    interface name is named as such. Raises MptcpError naming the value."""
    text = str(value).strip()
    address, sep, scope = text.partition("%")
    if sep:
        problem = ifname_problem(scope, "scope id")
        if problem:
            raise MptcpError("%s %r: %s" % (what, value, problem))
        raise MptcpError("%s %r has a scope id: ip does not take one, give the interface %r as dev instead"
                         % (what, value, scope))
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        raise MptcpError("%s %r is not an IPv4 or IPv6 address" % (what, value))


def parse_prefix(value, what, strict=True):
    """An IPv4/IPv6 prefix (CIDR, or one address) from user input; scope ids are refused."""
    text = str(value).strip()
    if "%" in text:
        raise MptcpError("%s %r has a scope id (%%...): a prefix has none" % (what, value))
    try:
        return ipaddress.ip_network(text, strict=strict)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise MptcpError("%s %r is not an IPv4/IPv6 prefix (CIDR) or address" % (what, value))
        raise MptcpError("%s %r has host bits set (did you mean %s?)" % (what, value, loose.with_prefixlen))


def read_table_names(files=RT_TABLES_FILES, dirs=RT_TABLES_DIRS):
    """{name: number} of the routing tables iproute2 knows by name (rt_tables and rt_tables.d)."""
    paths = list(files)
    for folder in dirs:
        try:
            paths += [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".conf")]
        except OSError:
            pass
    names = {}
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except (IOError, OSError):
            continue
        for line in lines:
            words = line.split("#", 1)[0].split()
            if len(words) >= 2 and words[0].isdigit():
                names.setdefault(words[1], words[0])
    return names


def validate_table(value, names=None):
    """A routing table as iproute2 takes it: a number 1-4294967295 or a known name. Returns the
    canonical text (reserved numbers by name: 253 default, 254 main, 255 local; numbers without
    leading zeros). Table 0 (RT_TABLE_UNSPEC) and `unspec` are refused: the kernel would put the
    route in main. `names` ({name: number}) defaults to what rt_tables holds on this host."""
    text = str(value).strip() if value is not None else ""
    if text.isdigit():
        number = int(text)
        if number == 0:
            raise MptcpError("table %r is table 0 (unspec), which the kernel takes as main: "
                             "give main, or a number 1-%d" % (value, TABLE_MAX))
        if number > TABLE_MAX:
            raise MptcpError("table %r is outside 1-%d" % (value, TABLE_MAX))
        return RESERVED_TABLES.get(str(number), str(number))
    if text in RESERVED_TABLES.values():
        return text
    if text == "unspec":
        raise MptcpError("table %r is table 0 (unspec), which the kernel takes as main: "
                         "give main, or a number 1-%d" % (value, TABLE_MAX))
    known = read_table_names() if names is None else names
    if text and text in known:
        return text
    others = sorted(n for n in known if n not in RESERVED_TABLES.values() and n != "unspec")
    raise MptcpError("table %r is not a number 1-%d, main, local, default or a name of /etc/iproute2/rt_tables%s"
                     % (value, TABLE_MAX, " (" + ", ".join(others) + ")" if others else ""))


def validate_limit(name, value):
    if value is not None and not 0 <= value <= LIMIT_MAX:
        raise MptcpError("%s %d is outside 0-%d (kernel limit)" % (name, value, LIMIT_MAX))


def endpoint_argv(action):
    """The arguments after `ip` of a planned endpoint action: ("add", ep), ("delete", ep) or
    ("change", ep, flags). The one place that builds `ip mptcp endpoint` commands (the modules and
    the boot restore plan use it)."""
    kind, ep = action[0], action[1]
    if kind == "delete":
        return ["mptcp", "endpoint", "delete", "id", str(ep["id"])]
    if kind == "change":
        # `change` sets backup and fullmesh together: pass both, as wanted
        flags = action[2]
        return ["mptcp", "endpoint", "change", "id", str(ep["id"]),
                "backup" if "backup" in flags else "nobackup",
                "fullmesh" if "fullmesh" in flags else "nofullmesh"]
    args = ["mptcp", "endpoint", "add", ep["address"]]
    if ep.get("dev"):
        args += ["dev", ep["dev"]]
    if ep.get("id") is not None:
        args += ["id", str(ep["id"])]
    if ep.get("port"):
        args += ["port", str(ep["port"])]
    return args + list(ep.get("flags") or [])


def limits_argv(subflows=None, add_addr_accepted=None):
    """The arguments after `ip` of `ip mptcp limits set` (the module and the boot restore plan)."""
    args = ["mptcp", "limits", "set"]
    if subflows is not None:
        args += ["subflows", str(subflows)]
    if add_addr_accepted is not None:
        args += ["add_addr_accepted", str(add_addr_accepted)]
    return args


# ---------------------------------------------------------------------------------------------
# Running ip
# ---------------------------------------------------------------------------------------------
class IpMptcp:
    """Runs `ip` (optionally inside a named network namespace) through an AnsibleModule."""

    def __init__(self, module, netns=None):
        self.module = module
        self.netns = netns
        self.ip = module.get_bin_path("ip", required=True)

    # -- plumbing --------------------------------------------------------------------------
    def ip_cmd(self, *args):
        cmd = [self.ip]
        if self.netns:
            cmd += ["-n", self.netns]
        return cmd + list(args)

    def ns_cmd(self, *args):
        """A non-ip command, run inside the namespace with `ip netns exec` when one is set."""
        if self.netns:
            return [self.ip, "netns", "exec", self.netns] + list(args)
        return list(args)

    def run(self, cmd, check=True):
        rc, out, err = self.module.run_command(cmd, environ_update={"LC_ALL": "C"})
        if check and rc != 0:
            raise MptcpError(
                "command failed: %s: %s" % (" ".join(cmd), (err or out).strip()),
                cmd=cmd,
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return rc, out, err

    # -- preconditions ---------------------------------------------------------------------
    def check_netns(self):
        if not self.netns:
            return
        validate_netns(self.netns)
        for base in ("/run/netns", "/var/run/netns"):
            if os.path.exists(os.path.join(base, self.netns)):
                return
        rc, out, err = self.run([self.ip, "netns", "list"], check=False)
        names = [line.split()[0] for line in out.splitlines() if line.strip()]
        raise MptcpError(
            "network namespace %r does not exist (ip netns list: %s)" % (self.netns, ", ".join(names) or "none")
        )

    def sysctls(self):
        """Every net.mptcp.* sysctl of the namespace, or {} when the kernel has no MPTCP."""
        rc, out, err = self.run(self.ns_cmd("grep", "-r", ".", "/proc/sys/net/mptcp"), check=False)
        return parse_sysctls(out) if rc == 0 else {}

    def check_mptcp(self):
        """Fail clearly when MPTCP is missing from the kernel or disabled in this namespace."""
        self.check_netns()
        values = self.sysctls()
        where = "network namespace %r" % self.netns if self.netns else "this host"
        if not values:
            raise MptcpError(
                "MPTCP is not available on %s: /proc/sys/net/mptcp is missing "
                "(kernel built without CONFIG_MPTCP, or older than 5.6)" % where
            )
        if values.get("enabled") != 1:
            raise MptcpError(
                "MPTCP is disabled on %s (net.mptcp.enabled=%s); enable it with "
                "`sysctl -w net.mptcp.enabled=1` (role multipath.mptcp.mptcp_host does)" % (where, values.get("enabled"))
            )
        return values

    def check_dev(self, dev):
        rc, out, err = self.run(self.ip_cmd("-j", "link", "show"), check=False)
        names = [link.get("ifname") for link in json.loads(out or "[]")] if rc == 0 else []
        if dev not in names:
            where = " in network namespace %r" % self.netns if self.netns else ""
            raise MptcpError("dev %r does not exist%s (devices: %s)" % (dev, where, ", ".join(names)))

    def supported_flags(self):
        rc, out, err = self.run(self.ip_cmd("mptcp", "help"), check=False)
        return parse_supported_flags(out + err)

    # -- state -----------------------------------------------------------------------------
    def endpoints(self):
        rc, out, err = self.run(self.ip_cmd("-j", "mptcp", "endpoint", "show"))
        return parse_endpoints(out)

    def limits(self):
        rc, out, err = self.run(self.ip_cmd("mptcp", "limits", "show"))
        return parse_limits(out)

    def versions(self):
        rc, out, err = self.run([self.ip, "-V"], check=False)
        iproute2 = None
        match = re.search(r"iproute2-([\w.]+)", out + err)
        if match:
            iproute2 = match.group(1)
        return {"kernel": os.uname()[2], "iproute2": iproute2}

    # -- changes ---------------------------------------------------------------------------
    def endpoint_cmd(self, action):
        """The ip command of a planned action: ("add", ep), ("delete", ep) or ("change", ep, flags)."""
        return self.ip_cmd(*endpoint_argv(action))

    def limits_set(self, subflows=None, add_addr_accepted=None):
        self.run(self.ip_cmd(*limits_argv(subflows, add_addr_accepted)))


def fail_from(module, error, **result):
    """module.fail_json for an MptcpError, keeping cmd/rc/stdout/stderr when there are some."""
    result.update(error.details)
    module.fail_json(msg=error.msg, **result)


# ---------------------------------------------------------------------------------------------
# Planning (pure): what to run to get from the kernel's endpoints to the wanted one
# ---------------------------------------------------------------------------------------------
def endpoint_matches(current, want, ignore_flags=()):
    """True when `current` satisfies `want`; id and dev are compared only when wanted."""
    if current["address"] != want["address"] or current.get("port") != want.get("port"):
        return False
    if want.get("id") is not None and current["id"] != want["id"]:
        return False
    if want.get("dev") and current.get("dev") != want["dev"]:
        return False
    differing = set(current["flags"]) ^ set(want["flags"])
    return not (differing - set(ignore_flags))


def find_endpoint(endpoints, want):
    """The user-made endpoint of `want`'s address and port, or None."""
    for ep in endpoints:
        if ep["address"] == want["address"] and ep.get("port") == want.get("port") and not ep["implicit"]:
            return ep
    return None


def plan_endpoint(current, want, state):
    """Return the list of actions that bring `current` (parsed endpoints) to `want`.

    Actions: ("delete", ep), ("add", want), ("change", ep, flags). Kernel-made (implicit)
    endpoints never satisfy a request; one is deleted only when it holds the wanted id.
    """
    managed = [e for e in current if not e["implicit"]]
    if state == "absent":
        if want.get("id") is not None:
            return [("delete", e) for e in current
                    if e["id"] == want["id"] and want.get("address") in (None, e["address"])]
        return [("delete", e) for e in managed
                if e["address"] == want["address"] and want.get("port") in (None, e.get("port"))]

    same_address = [e for e in managed if e["address"] == want["address"]]
    candidate = next((e for e in same_address if e.get("port") == want.get("port")), None)
    if candidate is None and same_address:
        candidate = same_address[0]
    holder = None
    if want.get("id") is not None:
        holder = next((e for e in current if e["id"] == want["id"]), None)

    actions = []
    if holder is not None and holder is not candidate:
        actions.append(("delete", holder))
    if candidate is not None and endpoint_matches(candidate, want):
        return actions
    if candidate is not None and endpoint_matches(candidate, want, ignore_flags=CHANGEABLE_FLAGS):
        actions.append(("change", candidate, list(want["flags"])))
        return actions
    if candidate is not None:
        actions.append(("delete", candidate))
    actions.append(("add", want))
    return actions


def apply_plan(current, actions):
    """The endpoint table after `actions`, as predicted (for check mode and diffs)."""
    result = [dict(e) for e in current]
    for action in actions:
        if action[0] == "delete":
            result = [e for e in result if e["id"] != action[1]["id"]]
        elif action[0] == "change":
            for e in result:
                if e["id"] == action[1]["id"]:
                    keep = [f for f in e["flags"] if f not in CHANGEABLE_FLAGS]
                    e["flags"] = ordered_flags(keep + [f for f in action[2] if f in CHANGEABLE_FLAGS])
        else:
            new = dict(action[1], implicit=False)
            # an implicit endpoint with the same address is replaced by the kernel
            result = [e for e in result if not (e["implicit"] and e["address"] == new["address"])]
            result.append(new)
    return sorted(result, key=lambda e: (e["id"] is None, e["id"] or 0))
