#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mptcp_limits
short_description: Set the Multipath TCP path-manager limits (C(ip mptcp limits))
version_added: 0.1.0
description:
  - Sets the in-kernel path manager's limits of a network namespace, as C(ip mptcp limits set) does -
    how many additional subflows one MPTCP connection may have and how many addresses announced by
    the peer (ADD_ADDR) it accepts.
  - Reads the current limits first (C(ip mptcp limits show)) and runs C(ip mptcp limits set) only
    when a given value differs. A limit that is not given is left as it is.
author:
  - multipath.mptcp contributors (!UNKNOWN)
requirements:
  - Linux with MPTCP (5.6 or newer; C(net.mptcp.enabled=1)), iproute2 with C(ip mptcp).
  - CAP_NET_ADMIN (root) on the target.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  subflows:
    description:
      - Maximum number of additional subflows per MPTCP connection (not counting the initial one),
        0-8. The kernel's default is 2 (Linux 5.19 and newer; 0 before).
    type: int
  add_addr_accepted:
    description:
      - Maximum number of ADD_ADDR announcements accepted per connection, each of which may start a
        subflow to the announced address, 0-8. The kernel's default is 0.
    type: int
extends_documentation_fragment:
  - multipath.mptcp.attributes
  - multipath.mptcp.attributes.netns_group
  - multipath.mptcp.netns
notes:
  - 8 is the kernel's hard limit for both values (MPTCP_PM_ADDR_MAX); a larger value fails before
    anything is changed, with a message naming it.
  - Errors raised as well - a missing O(netns), MPTCP missing or disabled; on a failing C(ip) call the
    result holds C(cmd), C(rc), C(stdout) and C(stderr).
seealso:
  - module: multipath.mptcp.mptcp_endpoint
  - name: ip-mptcp(8)
    description: The iproute2 manual page of C(ip mptcp).
    link: https://man7.org/linux/man-pages/man8/ip-mptcp.8.html
"""

EXAMPLES = r"""
- name: Client that accepts one announced address and opens one extra subflow (seed routing2)
  multipath.mptcp.mptcp_limits:
    subflows: 1
    add_addr_accepted: 1

- name: Raise only the subflow limit inside a namespace
  multipath.mptcp.mptcp_limits:
    subflows: 4
    netns: mptcp-server
"""

RETURN = r"""
limits:
  description: The limits before and after the task (after is predicted in check mode).
  returned: always
  type: dict
  contains:
    before:
      description: Limits read from the kernel before any change.
      type: dict
      sample: {"subflows": 2, "add_addr_accepted": 0}
    after:
      description: Limits after the task.
      type: dict
      sample: {"subflows": 1, "add_addr_accepted": 1}
commands:
  description: The C(ip) commands run (or, in check mode, that would run).
  returned: always
  type: list
  elements: list
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import (
    IpMptcp,
    MptcpError,
    fail_from,
    limits_text,
    validate_limit,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            subflows=dict(type="int"),
            add_addr_accepted=dict(type="int"),
            netns=dict(type="str"),
        ),
        required_one_of=[("subflows", "add_addr_accepted")],
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, limits={}, commands=[])
    ip = IpMptcp(module, p["netns"])
    try:
        validate_limit("subflows", p["subflows"])
        validate_limit("add_addr_accepted", p["add_addr_accepted"])
        ip.check_mptcp()
        before = ip.limits()
        want = dict((k, p[k]) for k in ("subflows", "add_addr_accepted") if p[k] is not None)
        changes = dict((k, v) for k, v in want.items() if before[k] != v)
        after = dict(before, **changes)
        if changes:
            result["changed"] = True
            result["commands"] = [ip.ip_cmd("mptcp", "limits", "set", *[str(x) for kv in sorted(changes.items()) for x in kv])]
            if not module.check_mode:
                ip.limits_set(**changes)
                after = ip.limits()
    except MptcpError as e:
        fail_from(module, e, **result)

    result["limits"] = dict(before=before, after=after)
    if module._diff:
        where = " (netns %s)" % p["netns"] if p["netns"] else ""
        result["diff"] = dict(before=limits_text(before), after=limits_text(after),
                              before_header="mptcp limits%s" % where, after_header="mptcp limits%s" % where)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
