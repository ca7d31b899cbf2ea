# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Steps of a boot restore plan (role multipath.mptcp.boot_restore): each step an argument vector
(never a shell line) plus what to do when it fails. The commands come from the same builders the
modules use (module_utils/mptcp.py endpoint_argv/limits_argv, ip_route's route_command, ip_rule's
rule_command), so a restored command is exactly the one the module ran.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: restore_steps
short_description: Build the steps of a boot restore plan (argv lists, no shell)
version_added: 0.2.0
description:
  - C(mptcp_limits_restore_steps) - limits dict -> the C(ip mptcp limits set) step.
  - C(mptcp_endpoint_restore_steps) - endpoints (as M(multipath.mptcp.mptcp_endpoint) returns them) -> a
    C(flush) step when O(purge), then per endpoint a C(delete id) step (failure ignored) and an C(add) step.
  - C(ip_route_restore_steps) - routes (as M(multipath.mptcp.ip_route) returns them in C(route)) -> C(ip route replace) steps.
  - C(ip_rule_restore_steps) - rules C({src, table, priority}) (C(address) for C(src) also accepted) -> a C(rule del) step repeated while it
    succeeds (at most 64 times, every copy removed), then a C(rule add) step.
  - C(argv_restore_steps) - argument vectors (C(tc ...)) -> steps as given.
options:
  _input:
    description: What to restore (see above).
    type: raw
    required: true
"""

EXAMPLES = r"""
steps: >-
  {{ (limits | multipath.mptcp.mptcp_limits_restore_steps)
     + (endpoints | multipath.mptcp.mptcp_endpoint_restore_steps(true))
     + (routes | multipath.mptcp.ip_route_restore_steps)
     + ([{'src': '10.0.1.2', 'table': '100', 'priority': 1000}] | multipath.mptcp.ip_rule_restore_steps) }}
"""

RETURN = r"""
_value:
  description: Steps, each C({argv, on_error}) (and C(repeat_max) for a repeated delete).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import (
    MptcpError,
    endpoint_argv,
    limits_argv,
    ordered_flags,
    validate_endpoint,
)
from ansible_collections.multipath.mptcp.plugins.modules.ip_route import route_command
from ansible_collections.multipath.mptcp.plugins.modules.ip_rule import rule_command, validate_rule

RULE_DELETE_REPEAT = 64


def _step(argv, on_error="report", repeat_max=0):
    if not all(isinstance(a, string_types) for a in argv):
        raise AnsibleFilterError("restore step %r: every argument must be a string" % (argv,))
    step = {"argv": [str(a) for a in argv], "on_error": on_error}
    if repeat_max:
        step["repeat_max"] = repeat_max
    return step


def mptcp_limits_restore_steps(limits):
    if not limits:
        return []
    return [_step(["ip"] + limits_argv(limits.get("subflows"), limits.get("add_addr_accepted")))]


def mptcp_endpoint_restore_steps(endpoints, purge=False):
    steps = [_step(["ip", "mptcp", "endpoint", "flush"])] if purge else []
    for ep in endpoints or []:
        try:
            address = validate_endpoint(ep.get("address"), ep.get("id"), ep.get("port"), ep.get("flags") or [], "present")
        except MptcpError as e:
            raise AnsibleFilterError("endpoint %r: %s" % (ep, e.msg))
        want = dict(address=address, dev=ep.get("dev"), id=ep.get("id"), port=ep.get("port"),
                    flags=ordered_flags(ep.get("flags") or []))
        if want["id"] is not None:
            steps.append(_step(["ip"] + endpoint_argv(("delete", want)), on_error="ignore"))
        steps.append(_step(["ip"] + endpoint_argv(("add", want))))
    return steps


def ip_route_restore_steps(routes):
    return [_step(["ip"] + route_command(route, "replace")) for route in routes or [] if route]


def ip_rule_restore_steps(rules):
    steps = []
    for rule in rules or []:
        try:
            want = validate_rule(src=rule.get("src", rule.get("address")), table=rule.get("table"), priority=rule.get("priority"))
        except MptcpError as e:
            raise AnsibleFilterError("rule %r: %s" % (rule, e.msg))
        steps.append(_step(["ip"] + rule_command(want, "del"), on_error="ignore", repeat_max=RULE_DELETE_REPEAT))
        steps.append(_step(["ip"] + rule_command(want, "add")))
    return steps


def argv_restore_steps(argvs):
    return [_step(list(argv)) for argv in argvs or [] if argv]


class FilterModule(object):
    def filters(self):
        return {
            "mptcp_limits_restore_steps": mptcp_limits_restore_steps,
            "mptcp_endpoint_restore_steps": mptcp_endpoint_restore_steps,
            "ip_route_restore_steps": ip_route_restore_steps,
            "ip_rule_restore_steps": ip_rule_restore_steps,
            "argv_restore_steps": argv_restore_steps,
        }
