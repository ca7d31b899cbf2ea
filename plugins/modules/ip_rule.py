#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ip_rule
short_description: Manage routing policy rules (C(ip rule)) for source-based routing
version_added: 0.1.0
description:
  - Adds or removes one IPv4 or IPv6 routing policy rule that sends packets of a source (and
    optionally destination) prefix to a routing table, as C(ip rule add from SRC to DST table T
    priority P) does. This is what multi-homed MPTCP hosts need so that each subflow leaves by the
    interface that owns its source address (one table per address).
  - Reads the rules first (C(ip -j rule show), C(ip -j -6 rule show)) and acts only on a
    difference. Unchanged rules are never rewritten.
  - A rule is identified by its family, O(src), O(dst) and O(table); O(priority), when given, is
    compared too. A matching rule at another priority is moved (deleted, then added at
    O(priority)). Only plain lookup rules are considered - rules with other selectors (C(iif),
    C(oif), C(fwmark), C(ipproto), ports, C(not), ...) or another action (C(unreachable),
    C(goto), ...) are never matched, changed or removed.
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
  src:
    description:
      - Source address or prefix (CIDR) the rule selects (C(from)). Host bits must be zero.
      - Omitted or V(all) - any source.
    type: str
    aliases: [from]
  dst:
    description:
      - Destination address or prefix (CIDR) the rule selects (C(to)). Host bits must be zero.
      - Omitted or V(all) - any destination.
    type: str
    aliases: [to]
  table:
    description:
      - Routing table to look up, a name known to iproute2 (C(local), C(main), C(default),
        C(/etc/iproute2/rt_tables)) or a number 1-4294967295 (V(254) is V(main)).
      - Required with O(state=present). With O(state=absent), omitted means any table.
    type: str
  priority:
    description:
      - Priority (preference) of the rule, 0-4294967295; lower numbers are looked at first. The
        kernel's own rules are C(0) (local), C(32766) (main) and C(32767) (default).
      - When omitted, O(state=present) accepts the rule at any priority (the kernel picks one
        below the lowest existing non-zero priority when it adds it), and O(state=absent)
        removes matching rules at any priority.
    type: int
  family:
    description:
      - Address family of a rule without O(src) and O(dst) (V(ipv4) when omitted). Otherwise it
        follows from the addresses, and a different value here is an error.
    type: str
    choices: [ipv4, ipv6]
  state:
    description: Whether the rule must exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - multipath.mptcp.attributes
  - multipath.mptcp.attributes.netns_group
  - multipath.mptcp.netns
notes:
  - Errors raised before anything changes - O(src) or O(dst) that is not an address or prefix,
    host bits set, O(src) and O(dst) of different families, O(family) contradicting them, a
    priority outside 0-4294967295, a table that is empty, V(0), V(unspec) or contains blanks,
    O(state=present) without O(table), a missing O(netns). On a failing C(ip) call the result
    holds C(cmd), C(rc), C(stdout) and C(stderr).
  - The rule is not persistent by itself; role M(multipath.mptcp.mptcp_host) writes the rules it
    manages into a restore script run at boot.
seealso:
  - module: multipath.mptcp.ip_route
  - name: ip-rule(8)
    description: The iproute2 manual page of C(ip rule).
    link: https://man7.org/linux/man-pages/man8/ip-rule.8.html
"""

EXAMPLES = r"""
# A multi-homed MPTCP client: packets from the eth1 address use table 102, which routes them out of
# eth1 (its routes are set with multipath.mptcp.ip_route and table: "102")
- name: Source rule of the second interface
  multipath.mptcp.ip_rule:
    src: 10.124.2.2
    table: "102"
    priority: 1000

- name: The same for IPv6, inside a network namespace
  multipath.mptcp.ip_rule:
    src: 2001:db8:2::2
    table: "102"
    priority: 1000
    netns: mptcp-client

- name: Only traffic from a LAN towards one network
  multipath.mptcp.ip_rule:
    from: 192.168.10.0/24
    to: 10.123.202.0/24
    table: "200"

- name: Remove every plain rule from that address, whatever its table and priority
  multipath.mptcp.ip_rule:
    src: 10.124.2.2
    state: absent
"""

RETURN = r"""
rule:
  description: The managed rule as the kernel has it after the task (predicted in check mode), C(null) when absent.
  returned: always
  type: dict
  sample: {"priority": 1000, "family": "ipv4", "src": "10.124.2.2/32", "dst": null, "table": "102", "plain": true}
rules:
  description: Every rule of the family after the task (predicted in check mode), same form as RV(rule).
  returned: always
  type: list
  elements: dict
commands:
  description: The C(ip) commands run (or, in check mode, that would run).
  returned: always
  type: list
  elements: list
  sample:
    - ["ip", "-4", "rule", "add", "from", "10.124.2.2/32", "table", "102", "priority", "1000"]
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import (
    IpMptcp,
    MptcpError,
    fail_from,
    load_ip_json,
    validate_table,
)

PRIORITY_MAX = 2 ** 32 - 1
TABLE_MAX = 2 ** 32 - 1
FAMILY_NAME = {4: "ipv4", 6: "ipv6"}
# Numbers of the tables that iproute2 always prints by name (rt_names.c)
RESERVED_TABLES = {"255": "local", "254": "main", "253": "default"}
# Keys of `ip -j rule show` that a plain "from/to ... lookup TABLE" rule has; any other key
# (iif, oif, fwmark, ipproto, sport, dport, uidrange, not, action, goto, ...) makes it not plain.
PLAIN_KEYS = frozenset(("priority", "src", "srclen", "dst", "dstlen", "table"))


# ---------------------------------------------------------------------------------------------
# Parsing (pure)
# ---------------------------------------------------------------------------------------------
def _prefix(address, length, family):
    """`src`/`dst` plus `srclen`/`dstlen` of `ip -j rule show` as CIDR, None for `all`."""
    if address in (None, "", "all"):
        return None
    full = 32 if family == 4 else 128
    return ipaddress.ip_network("%s/%d" % (address, full if length is None else int(length)), strict=False).with_prefixlen


def normalise_table(table):
    """A table as `ip rule show` prints it: reserved numbers by name, numbers without leading zeros."""
    text = str(table).strip()
    if text.isdigit():
        text = str(int(text))
    return RESERVED_TABLES.get(text, text)


def parse_rules(text, family):
    """Parse `ip -j [-6] rule show` into normalised rule dicts.

    Each dict: priority (int), family, src and dst (CIDR, None for all), table (str, None for a
    rule without a lookup), plain (bool: only from/to/table, a lookup rule this module may manage),
    and `other` (the remaining keys as printed, for messages).
    """
    raw = load_ip_json(text, "ip -j rule show")
    rules = []
    for item in raw:
        other = dict((k, v) for k, v in item.items() if k not in PLAIN_KEYS)
        table = item.get("table")
        rules.append(dict(
            priority=int(item.get("priority", 0)),
            family=FAMILY_NAME[family],
            src=_prefix(item.get("src"), item.get("srclen"), family),
            dst=_prefix(item.get("dst"), item.get("dstlen"), family),
            table=normalise_table(table) if table is not None else None,
            plain=not other and table is not None,
            other=other,
        ))
    return rules


def _short(prefix):
    """A prefix as iproute2 prints it in rules: a host prefix without its length."""
    if prefix is None:
        return "all"
    network = ipaddress.ip_network(prefix)
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else prefix


def rule_text(rule):
    """One rule in `ip rule show` style (plain rules exactly; others with their extra keys)."""
    words = ["%d:" % rule["priority"]]
    if "not" in rule.get("other", {}):
        words.append("not")
    words += ["from", _short(rule["src"])]
    if rule["dst"] is not None:
        words += ["to", _short(rule["dst"])]
    for key, value in sorted(rule.get("other", {}).items()):
        if key not in ("not", "action"):
            words += [key, str(value)]
    if rule["table"] is not None:
        words += ["lookup", rule["table"]]
    if rule.get("other", {}).get("action"):
        words.append(str(rule["other"]["action"]))
    return words[0] + "\t" + " ".join(words[1:]) + "\n"


def rules_text(rules):
    return "".join(rule_text(r) for r in rules)


# ---------------------------------------------------------------------------------------------
# Validation (pure)
# ---------------------------------------------------------------------------------------------
def _network(value, what, errors):
    text = str(value).strip()
    if text.lower() == "all":
        return None
    if "%" in text:
        errors.append("%s %r has a scope id (%%...): a rule's prefix has none" % (what, value))
        return False
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
            errors.append("%s %r has host bits set (did you mean %s?)" % (what, value, loose.with_prefixlen))
        except ValueError:
            errors.append("%s %r is not an IPv4/IPv6 address or prefix (CIDR), or 'all'" % (what, value))
        return False


def validate_rule(src=None, dst=None, table=None, priority=None, family=None, state="present", table_names=None):
    """Check a rule request before anything runs; return the wanted rule (a normalised dict).

    `priority` and (for state=absent) `table` are None in the result when not given. Raises
    MptcpError with every problem found, each naming the bad value.
    """
    errors = []
    source = _network(src, "src", errors) if src not in (None, "") else None
    dest = _network(dst, "dst", errors) if dst not in (None, "") else None
    versions = set(n.version for n in (source, dest) if n)
    if len(versions) > 1:
        errors.append("src %s and dst %s are of different address families" % (src, dst))
    elif versions:
        version = versions.pop()
        if family is not None and FAMILY_NAME[version] != family:
            errors.append("family %s does not match the IPv%d address(es) %s"
                          % (family, version, " ".join(str(x) for x in (src, dst) if x not in (None, ""))))
        family = FAMILY_NAME[version]
    family = family or "ipv4"
    if priority is not None and not 0 <= priority <= PRIORITY_MAX:
        errors.append("priority %r is outside 0-%d" % (priority, PRIORITY_MAX))
    wanted_table = None
    if table is not None:
        try:
            wanted_table = normalise_table(validate_table(table, table_names))
        except MptcpError as e:
            errors.append(e.msg)
    elif state == "present":
        errors.append("state=present needs table (the routing table the rule looks up)")
    if errors:
        raise MptcpError("; ".join(errors))
    return dict(
        priority=priority,
        family=family,
        src=source.with_prefixlen if source else None,
        dst=dest.with_prefixlen if dest else None,
        table=wanted_table,
        plain=True,
        other={},
    )


# ---------------------------------------------------------------------------------------------
# Comparing and planning (pure)
# ---------------------------------------------------------------------------------------------
def rule_matches(current, want, any_priority=False):
    """True when the kernel's plain rule `current` has the wanted selectors and table.

    A wanted table of None (state=absent without table) matches any table; a wanted priority is
    compared unless `any_priority`."""
    if not current["plain"] or current["family"] != want["family"]:
        return False
    if current["src"] != want["src"] or current["dst"] != want["dst"]:
        return False
    if want["table"] is not None and current["table"] != want["table"]:
        return False
    return any_priority or want["priority"] is None or current["priority"] == want["priority"]


def plan_rule(current, want, state):
    """The actions that bring the kernel's rules (`current`, parsed) to the wanted state:
    a list of ("delete", rule) and ("add", rule) tuples, empty when nothing differs."""
    if state == "absent":
        return [("delete", r) for r in current if rule_matches(r, want)]
    if any(rule_matches(r, want) for r in current):
        return []
    # the same rule at another priority is moved
    return [("delete", r) for r in current if rule_matches(r, want, any_priority=True)] + [("add", want)]


def apply_plan(current, actions):
    """The rules after `actions`, as predicted (check mode). An added rule without a priority
    gets the one the kernel would give it: one below the lowest non-zero priority."""
    result = [dict(r) for r in current]
    for kind, rule in actions:
        if kind == "delete":
            result.remove(next(r for r in result if r == rule))
        else:
            rule = dict(rule)
            if rule["priority"] is None:
                nonzero = [r["priority"] for r in result if r["priority"] > 0]
                rule["priority"] = max(min(nonzero) - 1, 0) if nonzero else 0
            result.append(rule)
    return sorted(result, key=lambda r: r["priority"])


def rule_command(rule, kind):
    """Arguments after `ip` to add or delete `rule`."""
    args = ["-6" if rule["family"] == "ipv6" else "-4", "rule", kind]
    if kind == "del" or rule["priority"] is not None:
        prio = ["priority", str(rule["priority"])]
    else:
        prio = []
    if kind == "del":
        args += prio
    if rule["src"] is not None:
        args += ["from", rule["src"]]
    if rule["dst"] is not None:
        args += ["to", rule["dst"]]
    args += ["table", rule["table"]]
    if kind == "add":
        args += prio
    return args


# ---------------------------------------------------------------------------------------------
# Running ip
# ---------------------------------------------------------------------------------------------
def read_rules(ip, family):
    cmd = ip.ip_cmd("-j", "-6" if family == "ipv6" else "-4", "rule", "show")
    rc, out, err = ip.run(cmd)
    return parse_rules(out, 6 if family == "ipv6" else 4)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="str", aliases=["from"]),
            dst=dict(type="str", aliases=["to"]),
            table=dict(type="str"),
            priority=dict(type="int"),
            family=dict(type="str", choices=["ipv4", "ipv6"]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            netns=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, rule=None, rules=[], commands=[])
    ip = IpMptcp(module, p["netns"])
    try:
        want = validate_rule(p["src"], p["dst"], p["table"], p["priority"], p["family"], p["state"])
        ip.check_netns()
        before = read_rules(ip, want["family"])
        actions = plan_rule(before, want, p["state"])
        commands = [ip.ip_cmd(*rule_command(r, "del" if kind == "delete" else "add")) for kind, r in actions]
        result["commands"] = commands
        result["changed"] = bool(actions)
        if actions and not module.check_mode:
            for cmd in commands:
                ip.run(cmd)
            after = read_rules(ip, want["family"])
        else:
            after = apply_plan(before, actions)
    except MptcpError as e:
        fail_from(module, e, **result)

    result["rules"] = after
    if p["state"] == "present":
        result["rule"] = next((r for r in after if rule_matches(r, want)), None)
    if module._diff:
        where = " (netns %s)" % p["netns"] if p["netns"] else ""
        header = "ip %s rule%s" % ("-6" if want["family"] == "ipv6" else "-4", where)
        result["diff"] = dict(before=rules_text(before), after=rules_text(after),
                              before_header=header, after_header=header)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
