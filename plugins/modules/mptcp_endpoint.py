#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mptcp_endpoint
short_description: Manage Multipath TCP path-manager endpoints (C(ip mptcp endpoint))
version_added: 0.1.0
description:
  - Adds, changes or removes one endpoint of the Linux in-kernel MPTCP path manager, the addresses
    the kernel announces with ADD_ADDR (C(signal)) or uses to open extra subflows with MP_JOIN
    (C(subflow)), as C(ip mptcp endpoint) of iproute2 does.
  - Reads the kernel's endpoints first (C(ip -j mptcp endpoint show)) and acts only on a difference.
    An endpoint is found by O(address) (and O(port)); O(id) and O(dev) are compared only when given.
  - A difference in the C(backup) or C(fullmesh) flag alone is applied in place with
    C(ip mptcp endpoint change); any other difference replaces the endpoint (delete, then add; if
    the add fails the old endpoint is put back).
  - Endpoints the kernel made by itself (C(implicit), shown by iproute2 6.1 as C(rawflags 10)) are
    reported but never count as the wanted endpoint; one is removed only when it holds the wanted O(id).
  - Everything is validated before any change; a bad value fails with a message that names it.
author:
  - multipath.mptcp contributors (!UNKNOWN)
requirements:
  - Linux with MPTCP (5.6 or newer; C(net.mptcp.enabled=1)), iproute2 with C(ip mptcp) (5.8 or newer).
  - CAP_NET_ADMIN (root) on the target.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  address:
    description:
      - IPv4 or IPv6 address of the endpoint. Required with O(state=present); with O(state=absent)
        either O(address) or O(id) is needed.
    type: str
  id:
    description:
      - Endpoint id, 1-255. When omitted the kernel picks the next free id and any id is accepted.
    type: int
  dev:
    description:
      - Network device the endpoint is bound to (C(dev NAME)); must exist on the target.
      - Needed for C(subflow) endpoints on multi-homed hosts so that subflows leave by that device.
    type: str
  port:
    description:
      - Port announced with the address (1-65535). Only valid with the C(signal) flag
        (RFC 8684 section 3.4.1, ADD_ADDR carries an optional port).
    type: int
  flags:
    description:
      - Endpoint flags. C(signal) announces the address to the peer with ADD_ADDR; C(subflow)
        makes this host open an MP_JOIN subflow from the address; C(backup) marks subflows from it
        as backup (MP_PRIO); C(fullmesh) opens a subflow from it to every address the peer
        announced (cannot be combined with C(signal)); C(laminar) (Linux 6.18) uses the endpoint for
        subflows towards announced addresses even without C(subflow) (needs an iproute2 that knows it).
    type: list
    elements: str
    choices: [signal, subflow, backup, fullmesh, laminar]
    default: []
  state:
    description:
      - Whether the endpoint must exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - multipath.mptcp.attributes
  - multipath.mptcp.attributes.netns_group
  - multipath.mptcp.netns
notes:
  - Kernel limit of 8 endpoints per network namespace (MPTCP_PM_ADDR_MAX); the kernel's error is
    returned when it is reached.
  - Errors raised - invalid address (an IPv6 scope id such as C(%eth0) too - give the interface as
    O(dev)), a O(dev) that is no valid interface name, id outside 1-255, port outside 1-65535,
    C(port) without C(signal), C(signal) with C(fullmesh), unknown flag, a flag this iproute2 does not know, a
    missing O(dev), a missing O(netns), MPTCP missing or disabled; on a failing C(ip) call the
    result holds C(cmd), C(rc), C(stdout) and C(stderr).
seealso:
  - module: multipath.mptcp.mptcp_limits
  - module: multipath.mptcp.mptcp_info
  - name: ip-mptcp(8)
    description: The iproute2 manual page of C(ip mptcp).
    link: https://man7.org/linux/man-pages/man8/ip-mptcp.8.html
  - name: RFC 8684
    description: TCP Extensions for Multipath Operation with Multiple Addresses (ADD_ADDR, MP_JOIN, MP_PRIO).
    link: https://www.rfc-editor.org/rfc/rfc8684
"""

EXAMPLES = r"""
- name: Announce the second address of the server with ADD_ADDR
  multipath.mptcp.mptcp_endpoint:
    address: 10.123.201.2
    dev: eth1
    flags: [signal]

- name: Open a subflow from the client's second interface (client-initiated MP_JOIN)
  multipath.mptcp.mptcp_endpoint:
    address: 10.123.202.3
    dev: eth1
    id: 2
    flags: [subflow]

- name: Make it a backup path (changed in place with ip mptcp endpoint change)
  multipath.mptcp.mptcp_endpoint:
    address: 10.123.202.3
    dev: eth1
    id: 2
    flags: [subflow, backup]

- name: Remove an endpoint inside a network namespace
  multipath.mptcp.mptcp_endpoint:
    address: 192.168.0.2
    state: absent
    netns: mptcp-client
"""

RETURN = r"""
endpoint:
  description: The endpoint as the kernel has it after the task (predicted in check mode; C(null) when absent).
  returned: always
  type: dict
  sample: {"address": "10.123.201.2", "id": 1, "port": null, "dev": "eth1", "flags": ["signal"], "implicit": false}
endpoints:
  description: Every endpoint of the namespace after the task, including kernel-made (implicit) ones.
  returned: always
  type: list
  elements: dict
commands:
  description: The C(ip) commands run (or, in check mode, that would run).
  returned: always
  type: list
  elements: list
  sample: [["ip", "mptcp", "endpoint", "add", "10.123.201.2", "dev", "eth1", "signal"]]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import (
    IpMptcp,
    MptcpError,
    USER_FLAGS,
    apply_plan,
    endpoints_text,
    fail_from,
    find_endpoint,
    ordered_flags,
    plan_endpoint,
    validate_endpoint,
)


def run_actions(ip, actions):
    """Run the plan; if a later step fails, put back what earlier steps deleted."""
    deleted = []
    try:
        for action in actions:
            ip.run(ip.endpoint_cmd(action))
            if action[0] == "delete":
                deleted.append(action[1])
    except MptcpError:
        for ep in deleted:
            if not ep["implicit"]:
                try:
                    ip.run(ip.endpoint_cmd(("add", ep)))
                except MptcpError:
                    pass
        raise


def main():
    module = AnsibleModule(
        argument_spec=dict(
            address=dict(type="str"),
            id=dict(type="int"),
            dev=dict(type="str"),
            port=dict(type="int"),
            flags=dict(type="list", elements="str", choices=list(USER_FLAGS), default=[]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            netns=dict(type="str"),
        ),
        required_if=[("state", "present", ["address"])],
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, endpoint=None, endpoints=[], commands=[])
    ip = IpMptcp(module, p["netns"])
    try:
        address = validate_endpoint(p["address"], p["id"], p["port"], p["flags"], p["state"], p["dev"])
        ip.check_mptcp()
        if p["dev"] and p["state"] == "present":
            ip.check_dev(p["dev"])
        if p["state"] == "present":
            known = ip.supported_flags()
            missing = [f for f in p["flags"] if known and f not in known]
            if missing:
                raise MptcpError(
                    "flag(s) %s not supported by this host's iproute2 %s (it knows: %s)"
                    % (", ".join(missing), ip.versions()["iproute2"], ", ".join(known))
                )
        want = dict(address=address, id=p["id"], dev=p["dev"], port=p["port"],
                    flags=ordered_flags(p["flags"]))
        before = ip.endpoints()
        actions = plan_endpoint(before, want, p["state"])
        result["commands"] = [ip.endpoint_cmd(a) for a in actions]
        result["changed"] = bool(actions)
        if actions and not module.check_mode:
            run_actions(ip, actions)
            after = ip.endpoints()
        else:
            after = apply_plan(before, actions)
    except MptcpError as e:
        fail_from(module, e, **result)

    result["endpoints"] = after
    if p["state"] == "present":
        result["endpoint"] = find_endpoint(after, want)
    if module._diff:
        where = " (netns %s)" % p["netns"] if p["netns"] else ""
        result["diff"] = dict(
            before=endpoints_text(before),
            after=endpoints_text(after),
            before_header="mptcp endpoints%s" % where,
            after_header="mptcp endpoints%s" % where,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
