#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mptcp_info
short_description: Gather the Multipath TCP state of a host or network namespace
version_added: 0.1.0
description:
  - Returns whether MPTCP is enabled, every C(net.mptcp.*) sysctl, the path manager's limits and
    endpoints (including kernel-made C(implicit) ones), the kernel and iproute2 versions and what
    this kernel and iproute2 support.
  - Never changes anything. Does not fail when MPTCP is missing or disabled; it says so in the result.
author:
  - multipath.mptcp contributors (!UNKNOWN)
requirements:
  - Linux, iproute2. Reading limits needs MPTCP in the kernel.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
extends_documentation_fragment:
  - multipath.mptcp.attributes
  - multipath.mptcp.attributes.netns_group
  - multipath.mptcp.netns
notes:
  - Fails only when O(netns) does not exist or C(ip) itself fails (the result then holds C(cmd),
    C(rc), C(stdout), C(stderr)).
seealso:
  - module: multipath.mptcp.mptcp_endpoint
  - module: multipath.mptcp.mptcp_limits
"""

EXAMPLES = r"""
- name: Read the MPTCP state
  multipath.mptcp.mptcp_info:
  register: mptcp_state

- name: Show the signal endpoints (jmespath)
  ansible.builtin.debug:
    msg: "{{ mptcp_state.mptcp.endpoints | community.general.json_query('[?contains(flags, `signal`)].address') }}"
"""

RETURN = r"""
mptcp:
  description: The MPTCP state.
  returned: always
  type: dict
  contains:
    available:
      description: The kernel has MPTCP (C(/proc/sys/net/mptcp) exists).
      type: bool
    enabled:
      description: C(net.mptcp.enabled) is 1.
      type: bool
    sysctls:
      description: Every C(net.mptcp.*) sysctl, name without the prefix -> value (int when numeric).
      type: dict
      sample: {"enabled": 1, "allow_join_initial_addr_port": 1, "path_manager": "kernel"}
    limits:
      description: Path manager limits (C(null) when MPTCP is not available).
      type: dict
      sample: {"subflows": 2, "add_addr_accepted": 0}
    endpoints:
      description: Endpoints, each with address, id, port, dev, flags and implicit.
      type: list
      elements: dict
    kernel:
      description: Kernel release of the target (C(uname -r)).
      type: str
      sample: 6.18.0
    iproute2:
      description: iproute2 version of the target's C(ip).
      type: str
      sample: 6.1.0
    supports:
      description: What the target supports.
      type: dict
      contains:
        endpoint_flags:
          description: Endpoint flags the target's iproute2 knows.
          type: list
          elements: str
        path_managers:
          description: C(net.mptcp.available_path_managers) (Linux 6.15 and newer), else C([kernel]).
          type: list
          elements: str
        schedulers:
          description: C(net.mptcp.available_schedulers) (Linux 6.6 and newer).
          type: list
          elements: str
        monitor_json:
          description: C(ip mptcp monitor) can print JSON (iproute2 7.1 and newer).
          type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import IpMptcp, MptcpError, fail_from


def version_tuple(text):
    parts = []
    for piece in (text or "").split("."):
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def main():
    module = AnsibleModule(argument_spec=dict(netns=dict(type="str")), supports_check_mode=True)
    ip = IpMptcp(module, module.params["netns"])
    try:
        ip.check_netns()
        sysctls = ip.sysctls()
        versions = ip.versions()
        info = dict(
            available=bool(sysctls),
            enabled=sysctls.get("enabled") == 1,
            sysctls=sysctls,
            limits=ip.limits() if sysctls else None,
            endpoints=ip.endpoints() if sysctls else [],
            kernel=versions["kernel"],
            iproute2=versions["iproute2"],
            supports=dict(
                endpoint_flags=ip.supported_flags(),
                path_managers=str(sysctls.get("available_path_managers", "kernel")).split(),
                schedulers=str(sysctls.get("available_schedulers", "")).split(),
                monitor_json=version_tuple(versions["iproute2"]) >= (7, 1),
            ),
        )
    except MptcpError as e:
        fail_from(module, e)
    module.exit_json(changed=False, mptcp=info)


if __name__ == "__main__":
    main()
