# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """What the attributes of this collection's modules mean. A module names its own support (and
    details) of check_mode and diff_mode; these texts and the platform are the same for all."""

    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: In check mode the module changes nothing and reports what it would change (C(changed) as a real run would set it).
  diff_mode:
    description: In diff mode the module returns the state before and after the change (the predicted one in check mode).
  platform:
    description: The systems the module runs on.
    support: full
    platforms: linux
"""

    NETNS_GROUP = r"""
attributes:
  action_group:
    description: The module belongs to the action group named here, so its defaults can be set once with C(module_defaults).
    support: full
    membership:
      - multipath.mptcp.netns
"""
