#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mptcp_host_plan
short_description: Check the whole configuration of role mptcp_host against the host and plan it (changes nothing)
version_added: 0.2.0
description:
  - Used by role M(multipath.mptcp.mptcp_host) as its first step, so that the role validates all of
    its input before its first change. Reads the host once (C(net.mptcp.*) sysctls, interfaces
    and their addresses, MPTCP endpoints and limits, listening TCP ports and, for policy routing,
    the main routing tables and the rules) and checks every option - types converted, ranges,
    duplicate addresses and ids, IPv6 compared in canonical form, interface names as the kernel
    allows them and present on the host, C(signal) with C(fullmesh), C(port) without C(signal) or
    in use, more than 8 endpoints, MPTCP disabled while endpoints are given, paths that cannot be
    used by the boot restore, policy tables and priorities.
  - Also reports the other programs that manage MPTCP endpoints (NetworkManager 1.40+, mptcpd) from
    C(systemctl show), for the role to stop, take over or go on.
  - Fails with every problem found, each naming the bad value; otherwise returns the plan the role
    applies (canonical values).
  - Never changes anything (also outside check mode).
author:
  - multipath.mptcp contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  enabled:
    description: C(mptcp_host_enabled).
    type: raw
    default: true
  sysctls:
    description: C(mptcp_host_sysctls) (keys without C(net.mptcp.)).
    type: raw
    default: {}
  limits:
    description: C(mptcp_host_limits).
    type: raw
    default: {}
  endpoints:
    description: C(mptcp_host_endpoints).
    type: raw
    default: []
  purge_endpoints:
    description: C(mptcp_host_purge_endpoints).
    type: raw
    default: false
  rp_filter:
    description: C(mptcp_host_rp_filter).
    type: raw
    default: 2
  sysctl_file:
    description: C(mptcp_host_sysctl_file).
    type: raw
    default: /etc/sysctl.d/90-multipath-mptcp.conf
  policy_routing:
    description: C(mptcp_host_policy_routing).
    type: raw
    default: false
  policy_routes:
    description: C(mptcp_host_policy_routes).
    type: raw
    default: []
  policy_table_base:
    description: C(mptcp_host_policy_table_base).
    type: raw
    default: 100
  policy_rule_priority:
    description: C(mptcp_host_policy_rule_priority).
    type: raw
    default: 1000
  persist:
    description: C(mptcp_host_persist).
    type: raw
    default: true
  persist_dir:
    description: C(mptcp_host_persist_dir).
    type: raw
    default: /etc/multipath-mptcp
  persist_wait:
    description: C(mptcp_host_persist_wait).
    type: raw
    default: 30
extends_documentation_fragment:
  - multipath.mptcp.attributes
  - multipath.mptcp.attributes.netns_group
  - multipath.mptcp.netns
seealso:
  - module: multipath.mptcp.mptcp_endpoint
  - module: multipath.mptcp.mptcp_limits
"""

EXAMPLES = r"""
- name: Check everything before the first change
  multipath.mptcp.mptcp_host_plan:
    limits: {subflows: 2, add_addr_accepted: 2}
    endpoints:
      - {address: 10.123.202.3, dev: eth1, flags: [subflow]}
  register: plan
"""

RETURN = r"""
plan:
  description: What the role applies, every value converted and canonical.
  returned: success
  type: dict
  contains:
    sysctls:
      description: The sysctls to set, C({name, value}), C(net.mptcp.enabled) first, then the others and rp_filter.
      type: list
      elements: dict
    sysctls_pending:
      description:
        - The entries of RV(plan.sysctls) whose running value or whose line in C(sysctl_file) differs
          (the ones M(ansible.posix.sysctl) would change); the role sets only these.
      type: list
      elements: dict
    limits_pending:
      description: Whether a given limit differs from the kernel's (the role sets the limits only then).
      type: bool
    limits:
      description: The limits given (converted to int).
      type: dict
    limits_after:
      description: The kernel's limits with the given ones applied ({} when none given).
      type: dict
    endpoints:
      description: The endpoints, C({address, dev, id, port, flags}), addresses canonical.
      type: list
      elements: dict
    endpoints_in_place:
      description:
        - When every endpoint of RV(plan.endpoints) is already in the kernel as asked, the kernel's
          endpoints (as M(multipath.mptcp.mptcp_endpoint) returns them, with their ids), in the same
          order; C(null) when at least one needs a change (the role then sets them all).
      type: list
      elements: dict
    purge:
      description: The endpoints to delete (C({id, address})) when purging.
      type: list
      elements: dict
    policy:
      description: Policy routing entries C({address, dev, family, table, priority, gateway, connected}).
      type: list
      elements: dict
    policy_stale:
      description: Single-address rules at the role's priorities that are no longer wanted.
      type: list
      elements: dict
    devices:
      description: The interfaces the configuration names.
      type: list
      elements: str
    record:
      description:
        - The file where the role records the values of RV(plan.running) before its first change,
          C(mptcp_host.before.json) in C(persist_dir); O(persist) does not matter.
      type: str
    running:
      description:
        - The running values of the sysctls of RV(plan.sysctls) (a dict by sysctl name) and the
          kernel's limits, C({subflows, add_addr_accepted}), as read now.
      type: dict
    recorded:
      description:
        - The content of RV(plan.record), C(null) when there is none. A file that is not such a
          record fails the module, naming it.
      type: dict
    restore_sysctls:
      description:
        - The recorded sysctls whose running value differs, C({name, value}) (what
          C(mptcp_host_state=absent) sets back); empty without a record.
      type: list
      elements: dict
    restore_limits:
      description:
        - The recorded limits when one of them differs from the kernel's (what C(mptcp_host_state=absent)
          sets back); C({}) when they are equal or there is no record.
      type: dict
kernel:
  description: The release of the kernel that was read.
  returned: always
  type: str
managers:
  description:
    - Other programs that manage MPTCP endpoints on the host, each a sentence naming it and its
      service - NetworkManager 1.40 or newer (active, unless its configuration sets
      C(connection.mptcp-flags=0x1)) and mptcpd (active or enabled); empty when none (or no systemd).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import (
    IpMptcp,
    MptcpError,
    canonical_address,
    fail_from,
    load_ip_json,
)
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp_host import (
    RECORD_NAME,
    endpoint_managers,
    parse_listeners,
    parse_units,
    plain_rules,
    plan_host,
)


def read_json(ip, *args):
    cmd = ip.ip_cmd("-j", *args)
    rc, out, err = ip.run(cmd)
    return load_ip_json(out, " ".join(cmd))


def read_text(path):
    """The text of a file on the host, "" when it is missing or unreadable (or the path is not a string)."""
    try:
        with open(path) as fh:
            return fh.read()
    except (IOError, OSError, TypeError, ValueError):
        return ""


def read_sysctl_values(ip, mptcp):
    """The running values of the sysctls the role may set: net.mptcp.* (already read) and rp_filter."""
    values = dict(("net.mptcp.%s" % name, str(value)) for name, value in mptcp.items())
    for scope in ("all", "default"):
        rc, out, err = ip.run(ip.ns_cmd("cat", "/proc/sys/net/ipv4/conf/%s/rp_filter" % scope), check=False)
        if rc == 0:
            values["net.ipv4.conf.%s.rp_filter" % scope] = out.strip()
    return values


def read_kernel(ip, p):
    ip.check_netns()
    sysctls = ip.sysctls()
    where = "network namespace %r" % ip.netns if ip.netns else "this host"
    if not sysctls:
        raise MptcpError("MPTCP is not available on %s: /proc/sys/net/mptcp is missing "
                         "(Linux 5.6+ with CONFIG_MPTCP is needed). Nothing was changed." % where)
    links = {}
    for link in read_json(ip, "address", "show"):
        addresses = []
        for info in link.get("addr_info", []):
            try:
                addresses.append(canonical_address(info["local"]))
            except (KeyError, ValueError):
                pass
        links[link["ifname"]] = addresses
    kernel = dict(sysctls=sysctls, links=links, endpoints=ip.endpoints(), limits=ip.limits(),
                  release=os.uname()[2], main4=[], main6=[], rules=[], listeners=[],
                  sysctl_values=read_sysctl_values(ip, sysctls), sysctl_file=read_text(p["sysctl_file"]),
                  record=read_text("%s/%s" % (str(p["persist_dir"]).rstrip("/"), RECORD_NAME)))
    endpoints = p["endpoints"] if isinstance(p["endpoints"], list) else []
    if any(isinstance(e, dict) and e.get("port") is not None for e in endpoints):
        for name in ("tcp", "tcp6"):
            rc, out, err = ip.run(ip.ns_cmd("cat", "/proc/net/" + name), check=False)
            if rc == 0:
                kernel["listeners"] += parse_listeners(out)
    if p["policy_routing"] not in (False, None, "false", "no", "False", 0):
        kernel["main4"] = read_json(ip, "-4", "route", "show", "table", "main")
        rc, out, err = ip.run(ip.ip_cmd("-j", "-6", "route", "show", "table", "main"), check=False)
        kernel["main6"] = load_ip_json(out, "ip -j -6 route show") if rc == 0 else []  # a kernel without IPv6
        kernel["rules"] = plain_rules(read_json(ip, "-4", "rule", "show"), "ipv4")
        rc, out, err = ip.run(ip.ip_cmd("-j", "-6", "rule", "show"), check=False)
        if rc == 0:
            kernel["rules"] += plain_rules(load_ip_json(out, "ip -j -6 rule show"), "ipv6")
    return kernel


def read_managers(module):
    """Other programs that manage MPTCP endpoints (read-only; none without systemd)."""
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return []
    rc, out, err = module.run_command([systemctl, "show", "--property=Id,ActiveState,UnitFileState",
                                       "NetworkManager.service", "mptcpd.service"], environ_update={"LC_ALL": "C"})
    units = parse_units(out if rc == 0 else "")
    nm_output = ""
    if units["NetworkManager"]["active"]:
        nm = module.get_bin_path("NetworkManager", opt_dirs=["/usr/sbin", "/sbin"])
        if nm:
            rc, version, err = module.run_command([nm, "--version"], environ_update={"LC_ALL": "C"})
            rc2, config, err = module.run_command([nm, "--print-config"], environ_update={"LC_ALL": "C"})
            nm_output = version + config
    return endpoint_managers(units, nm_output)


def main():
    options = dict(
        enabled=dict(type="raw", default=True),
        sysctls=dict(type="raw", default={}),
        limits=dict(type="raw", default={}),
        endpoints=dict(type="raw", default=[]),
        purge_endpoints=dict(type="raw", default=False),
        rp_filter=dict(type="raw", default=2),
        sysctl_file=dict(type="raw", default="/etc/sysctl.d/90-multipath-mptcp.conf"),
        policy_routing=dict(type="raw", default=False),
        policy_routes=dict(type="raw", default=[]),
        policy_table_base=dict(type="raw", default=100),
        policy_rule_priority=dict(type="raw", default=1000),
        persist=dict(type="raw", default=True),
        persist_dir=dict(type="raw", default="/etc/multipath-mptcp"),
        persist_wait=dict(type="raw", default=30),
        netns=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=options, supports_check_mode=True)
    p = module.params
    ip = IpMptcp(module, p["netns"])
    result = dict(changed=False, kernel=os.uname()[2], managers=read_managers(module))
    try:
        kernel = read_kernel(ip, p)
        result["plan"] = plan_host(p, kernel)
    except MptcpError as e:
        if not e.msg.endswith("Nothing was changed."):
            e.msg = "mptcp_host: %s. Nothing was changed." % e.msg
        fail_from(module, e, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
