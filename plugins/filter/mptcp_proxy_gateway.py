# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gateway modes of role mptcp_proxy (transparent client proxy, RFC 8803 Convert server proxy):
every variable checked (all problems named at once), then what the role installs for them: the
program's extra arguments, the nftables ruleset of the instance's own table, the unit drop-in
(capabilities, ExecStartPre=/ExecStopPost= that load and remove the table and the policy routing
TPROXY needs) and the prefixes the unit's address filter must admit.

Every value that reaches the ruleset or the drop-in is an integer or an IP prefix that Python's
ipaddress module parsed and printed again, so no user text is ever copied into them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: mptcp_proxy_gateway
short_description: Check the gateway settings of role mptcp_proxy and render its nftables ruleset and drop-in
version_added: 0.3.0
description:
  - Used by role M(multipath.mptcp.mptcp_proxy). Takes a dict of the role's settings (C(mode), C(instance),
    C(port), C(listen) (list), C(remote) (or none), C(transparent) (dict), C(convert), C(allow), C(mark),
    C(config_dir)) and returns a dict - C(problems) (list of messages naming each bad value; when it is not
    empty the other keys are not to be used), C(args) (program options), C(nft) (ruleset or none),
    C(gateway) (drop-in or none), C(ip_allow) (prefixes the address filter must admit), C(table) (nftables
    table name).
options:
  _input:
    description: The settings.
    type: dict
    required: true
author:
  - multipath.mptcp contributors
"""

EXAMPLES = r"""
- name: Work out the gateway settings
  ansible.builtin.set_fact:
    gw: "{{ {'mode': 'client', 'instance': 'gw', 'port': 5555, 'listen': ['::'], 'remote': '10.0.0.2:4444',
             'transparent': {'mode': 'redirect', 'destinations': ['10.100.1.0/24'], 'ports': [5201]},
             'convert': false, 'allow': [], 'mark': 0, 'config_dir': '/etc/mptcp-proxy'}
           | multipath.mptcp.mptcp_proxy_gateway }}"
"""

RETURN = r"""
_value:
  description: C(problems), C(args), C(nft), C(gateway), C(ip_allow), C(table).
  type: dict
"""

KEYS = ("mode", "sources", "destinations", "ports", "tproxy_mark", "tproxy_table", "tproxy_rule_priority")
DEFAULTS = {"mode": "redirect", "sources": [], "destinations": ["0.0.0.0/0", "::/0"], "ports": ["1-65535"],
            "tproxy_mark": 0x151, "tproxy_table": 150, "tproxy_rule_priority": 150}
DEFAULT_MARK = 0x150
RESERVED_TABLES = (0, 253, 254, 255)
WILDCARDS = {4: ("0.0.0.0", "::"), 6: ("::",)}
LOOPBACK = {4: ("127.0.0.1", "0.0.0.0", "::"), 6: ("::1", "::")}
HEADER = "# Managed by Ansible (multipath.mptcp.mptcp_proxy): local changes are overwritten.\n"


def _shown(value):
    return json.dumps(value, default=str)


def _int(value, name, low, high, problems):
    """An integer in [low, high] (decimal or 0x... text accepted); None and a message otherwise."""
    if isinstance(value, bool):
        value = None
    try:
        number = value if isinstance(value, int) else int(str(value), 0)
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        problems.append("%s=%s is not an integer in %d-%d (0x%x)" % (name, _shown(value), low, high, high))
        return None
    return number


def _prefixes(values, name, problems):
    """IP prefixes (an address alone is /32 or /128; host bits must be zero) -> {4: [...], 6: [...]}."""
    found = {4: [], 6: []}
    if not isinstance(values, list):
        problems.append("%s=%s must be a list of IP prefixes" % (name, _shown(values)))
        return found
    for value in values:
        try:
            net = ipaddress.ip_network(str(value), strict=True) if isinstance(value, str) else None
        except ValueError as exc:
            problems.append("%s: %s is not an IP prefix (%s), e.g. 192.168.10.0/24 or 2001:db8::/32"
                            % (name, _shown(value), exc))
            continue
        if net is None:
            problems.append("%s: %s is not an IP prefix (a string such as 192.168.10.0/24)" % (name, _shown(value)))
        elif str(net) not in found[net.version]:
            found[net.version].append(str(net))
    return found


def _ports(values, problems):
    """Ports and ranges 'first-last' -> ['80', '1000-2000']."""
    name = "mptcp_proxy_transparent.ports"
    if not isinstance(values, list) or not values:
        problems.append("%s=%s must be a non-empty list of ports or ranges (e.g. [80, 443, '8000-8080'])"
                        % (name, _shown(values)))
        return []
    found = []
    for value in values:
        text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
        parts = text.split("-")
        ok = 1 <= len(parts) <= 2 and all(p.isdigit() and len(p) <= 5 for p in parts)
        numbers = [int(p) for p in parts] if ok else []
        if not ok or not all(1 <= n <= 65535 for n in numbers) or numbers != sorted(numbers):
            problems.append("%s: %s is not a port 1-65535 or a range first-last with first <= last"
                            % (name, _shown(value)))
            continue
        item = "%d" % numbers[0] if len(numbers) == 1 or numbers[0] == numbers[1] else "%d-%d" % tuple(numbers)
        if item not in found:
            found.append(item)
    return found


def _match(family, field, prefixes):
    """An nft match of one family's addresses; empty when every address is meant."""
    keyword = "ip" if family == 4 else "ip6"
    if any(p.endswith("/0") for p in prefixes):
        return ""
    return "%s %s { %s } " % (keyword, field, ", ".join(prefixes))


def _nft(table, settings, port, mark):
    lines = [HEADER.rstrip("\n"),
             "# Loaded by mptcp-proxy@ (ExecStartPre=nft --file) into a table of its own, deleted when the",
             "# instance stops. nft list table inet %s" % table,
             "add table inet %s" % table,
             "delete table inet %s" % table,
             "table inet %s {" % table]
    ports = "tcp dport { %s }" % ", ".join(settings["ports"])
    families = [f for f in (4, 6) if settings["destinations"][f]]
    proto = {4: "meta nfproto ipv4 ", 6: "meta nfproto ipv6 "}
    if settings["mode"] == "redirect":
        lines += ["\tchain output {",
                  "\t\ttype nat hook output priority -100; policy accept;",
                  "\t\tmeta mark 0x%x return" % mark,
                  "\t\tip daddr 127.0.0.0/8 return",
                  "\t\tip6 daddr ::1 return"]
        for family in families:
            dest = _match(family, "daddr", settings["destinations"][family]) or proto[family]
            lines.append("\t\t%s%s redirect to :%d" % (dest, ports, port))
        lines.append("\t}")
    forwarded = [f for f in families if settings["sources"][f]]
    if forwarded:
        if settings["mode"] == "redirect":
            lines += ["\tchain prerouting {", "\t\ttype nat hook prerouting priority -100; policy accept;"]
        else:
            lines += ["\tchain prerouting {", "\t\ttype filter hook prerouting priority mangle; policy accept;"]
        lines.append("\t\tfib daddr type local return")
        for family in forwarded:
            match = (_match(family, "saddr", settings["sources"][family])
                     + _match(family, "daddr", settings["destinations"][family])) or proto[family]
            if settings["mode"] == "redirect":
                action = "redirect to :%d" % port
            else:
                action = "tproxy %s to :%d meta mark set 0x%x accept" % (
                    "ip" if family == 4 else "ip6", port, settings["tproxy_mark"])
            lines.append("\t\t%s%s %s" % (match, ports, action))
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n", forwarded


def _dropin(table, nft_path, mark, settings, forwarded):
    lines = [HEADER.rstrip("\n"),
             "# Gateway mode of this instance: CAP_NET_ADMIN for --mark (SO_MARK) and IP_TRANSPARENT (TPROXY);",
             "# '+' runs a command with full privileges, '-' lets it fail (what it deletes may be missing).",
             "[Service]"]
    if mark or (settings and settings["mode"] == "tproxy"):
        lines += ["AmbientCapabilities=CAP_NET_ADMIN", "CapabilityBoundingSet=CAP_NET_ADMIN"]
    if settings:
        lines.append("ExecStartPre=+nft --file %s" % nft_path)
        routes = []
        if settings["mode"] == "tproxy":
            for family in forwarded:
                rule = "ip -%d rule %%s fwmark 0x%x lookup %d priority %d" % (
                    family, settings["tproxy_mark"], settings["tproxy_table"], settings["tproxy_rule_priority"])
                route = "ip -%d route %%s local %s dev lo table %d" % (
                    family, "0.0.0.0/0" if family == 4 else "::/0", settings["tproxy_table"])
                routes.append((rule, route))
        for rule, route in routes:
            lines += ["ExecStartPre=-+" + rule % "del", "ExecStartPre=+" + rule % "add",
                      "ExecStartPre=+" + route % "replace"]
        lines.append("ExecStopPost=-+nft delete table inet %s" % table)
        for rule, route in routes:
            lines += ["ExecStopPost=-+" + rule % "del", "ExecStopPost=-+" + route % "del"]
    return "\n".join(lines) + "\n"


def mptcp_proxy_gateway(settings):
    if not isinstance(settings, dict):
        raise AnsibleFilterError("mptcp_proxy_gateway expects a dict of settings, got %r" % (settings,))
    problems = []
    mode = settings.get("mode")
    instance = str(settings.get("instance"))
    transparent = settings.get("transparent") or {}
    convert = settings.get("convert")
    allow = settings.get("allow") or []
    remote = settings.get("remote")
    listen = [str(a) for a in settings.get("listen") or []]
    table = "multipath_mptcp_" + instance
    nft_path = "%s/%s.nft" % (settings.get("config_dir"), instance)

    if not isinstance(transparent, dict):
        problems.append("mptcp_proxy_transparent=%s must be a dict (e.g. {mode: redirect, destinations: "
                        "[10.100.1.0/24], ports: [5201]}) or {} for off" % _shown(transparent))
        transparent = {}
    unknown = sorted(set(transparent) - set(KEYS))
    if unknown:
        problems.append("mptcp_proxy_transparent has unknown keys %s (known: %s)" % (_shown(unknown), ", ".join(KEYS)))
    if transparent and mode != "client":
        problems.append("mptcp_proxy_transparent needs mptcp_proxy_mode=client (it is %s): a server proxy takes "
                        "the client proxies' connections; give it mptcp_proxy_convert instead" % _shown(mode))
    if not isinstance(convert, bool):
        problems.append("mptcp_proxy_convert=%s must be true or false" % _shown(convert))
        convert = False
    if convert and mode != "server":
        problems.append("mptcp_proxy_convert needs mptcp_proxy_mode=server (it is %s): a client proxy sends the "
                        "Convert message when it has mptcp_proxy_transparent and mptcp_proxy_remote" % _shown(mode))
    if convert and remote:
        problems.append("mptcp_proxy_remote=%s may not be set with mptcp_proxy_convert: each connection's "
                        "Convert message names its destination (limit them with mptcp_proxy_allow)" % _shown(remote))
    if allow and not convert:
        problems.append("mptcp_proxy_allow=%s is only used with mptcp_proxy_convert: true" % _shown(allow))
    if not remote and not transparent and not convert:
        problems.append("mptcp_proxy_remote is required (host:port) unless mptcp_proxy_transparent (client) or "
                        "mptcp_proxy_convert (server) is set")
    if not isinstance(allow, list) or not all(isinstance(a, str) and a and "\n" not in a for a in allow):
        problems.append("mptcp_proxy_allow=%s must be a list of CIDR:PORTS strings (e.g. 10.100.1.0/24:5201, "
                        "[2001:db8::/32]:443, 10.0.0.0/8:1-65535)" % _shown(allow))
        allow = []
    mark = _int(settings.get("mark") or 0, "mptcp_proxy_mark", 0, 0xFFFFFFFF, problems) or 0

    normal = None
    if transparent:
        normal = dict(DEFAULTS)
        normal.update({k: v for k, v in transparent.items() if k in KEYS and v is not None})
        if normal["mode"] not in ("redirect", "tproxy"):
            problems.append("mptcp_proxy_transparent.mode=%s is not redirect (the host's own connections, and "
                            "those of sources, by nat REDIRECT) or tproxy (forwarded connections of sources)"
                            % _shown(normal["mode"]))
        normal["sources"] = _prefixes(normal["sources"], "mptcp_proxy_transparent.sources", problems)
        normal["destinations"] = _prefixes(normal["destinations"], "mptcp_proxy_transparent.destinations", problems)
        normal["ports"] = _ports(normal["ports"], problems)
        if not (normal["destinations"][4] or normal["destinations"][6]):
            problems.append("mptcp_proxy_transparent.destinations is empty: nothing would be carried")
        mark = mark or DEFAULT_MARK
        for key, low, high in (("tproxy_mark", 1, 0xFFFFFFFF), ("tproxy_table", 1, 0xFFFFFFFF),
                               ("tproxy_rule_priority", 1, 32765)):
            normal[key] = _int(normal[key], "mptcp_proxy_transparent." + key, low, high, problems)
        if normal["tproxy_table"] in RESERVED_TABLES:
            problems.append("mptcp_proxy_transparent.tproxy_table=%d is a table of the system (local, main, "
                            "default): choose another" % normal["tproxy_table"])
        if normal["mode"] == "tproxy":
            if normal["tproxy_mark"] == mark:
                problems.append("mptcp_proxy_transparent.tproxy_mark=0x%x equals the mark of the proxy's own "
                                "connections (mptcp_proxy_mark): they would be routed to this host" % mark)
            if not (normal["sources"][4] or normal["sources"][6]):
                problems.append("mptcp_proxy_transparent.sources is empty: tproxy carries the forwarded "
                                "connections of these LAN prefixes (e.g. [192.168.10.0/24])")
        for family in (4, 6):
            if not normal["destinations"][family]:
                continue
            need = WILDCARDS[family]
            where = "forwarded connections arrive at the LAN-facing address"
            if normal["mode"] == "redirect" and not normal["sources"][family]:
                need = LOOPBACK[family]
                where = "the host's own connections are redirected to %s" % ("127.0.0.1" if family == 4 else "::1")
            if normal["mode"] == "tproxy" and not normal["sources"][family]:
                continue
            if not set(need) & set(listen):
                problems.append("mptcp_proxy_listen=%s cannot take the IPv%d connections mptcp_proxy_transparent "
                                "carries (%s): listen on %s" % (_shown(listen), family, where, " or ".join(need)))

    result = {"problems": problems, "table": table, "args": [], "nft": None, "gateway": None, "ip_allow": []}
    if problems:
        return result
    args = []
    if normal:
        args.append("--transparent")
        nft, forwarded = _nft(table, normal, int(settings.get("port")), mark)
        result["nft"] = nft
        result["ip_allow"] = normal["sources"][4] + normal["sources"][6]
        if not remote:  # the proxy connects to the destinations itself
            result["ip_allow"] += normal["destinations"][4] + normal["destinations"][6]
    else:
        forwarded = []
    if convert:
        args.append("--convert")
        args += ["--allow=" + a for a in allow]
        for entry in allow:
            prefix = entry.rsplit(":", 1)[0].strip("[]")
            if prefix not in result["ip_allow"]:
                result["ip_allow"].append(prefix)
    if mark:
        args.append("--mark=0x%x" % mark)
    if mark or normal:
        result["gateway"] = _dropin(table, nft_path, mark, normal, forwarded)
    result["args"] = args
    return result


class FilterModule(object):
    def filters(self):
        return {"mptcp_proxy_gateway": mptcp_proxy_gateway}
