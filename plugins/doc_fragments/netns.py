# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The netns option of every module that runs ip (the action group multipath.mptcp.netns)."""

    DOCUMENTATION = r"""
options:
  netns:
    description:
      - Name of a network namespace as C(ip netns add) made it (listed by C(ip netns list)); the module
        works inside it instead of the target's own network namespace.
      - A path such as C(/run/netns/NAME) is refused, naming the value; a name that does not exist
        fails before anything is changed.
      - To give it once for every task of a play, set it in C(module_defaults) for the action group
        C(group/multipath.mptcp.netns), whose members are the modules that have this option.
    type: str
"""
