# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that compare what a read-once probe found on a host with what a library task would make
of it (file_in_place: ansible.builtin.copy/template/file; unit_in_state: ansible.builtin.systemd_service),
so that a role skips the tasks that would change nothing. Each is documented in the YAML file of its
name beside this one (file_in_place.yml, unit_in_state.yml).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_bytes

RUNNING = ("active", "activating", "reloading")


def file_in_place(entry, content=None, mode="0644", owner="root", group="root"):
    if not isinstance(entry, dict) or "exists" not in entry:
        raise AnsibleFilterError("file_in_place expects a probe entry {exists, dir, sha1, mode, owner, group}, got %r"
                                 % (entry,))
    if not entry["exists"] or entry.get("mode") != "%04o" % int(str(mode), 8):
        return False
    if entry.get("owner") != owner or entry.get("group") != group:
        return False
    if content is None:
        return bool(entry.get("dir"))
    return not entry.get("dir") and entry.get("sha1") == hashlib.sha1(to_bytes(content)).hexdigest()


def unit_in_state(entry, state, enabled=None):
    if not isinstance(entry, dict) or "ActiveState" not in entry:
        raise AnsibleFilterError("unit_in_state expects a probe entry {LoadState, ActiveState, UnitFileState}, got %r"
                                 % (entry,))
    if state not in ("started", "stopped"):
        raise AnsibleFilterError("unit_in_state: state must be started or stopped, not %r" % (state,))
    if entry.get("LoadState") != "loaded":
        return False
    if (entry["ActiveState"] in RUNNING) != (state == "started"):
        return False
    if enabled is True:
        return entry.get("UnitFileState") in ("enabled", "enabled-runtime")
    if enabled is False:
        return entry.get("UnitFileState") in ("disabled", "masked")
    return True


class FilterModule(object):
    def filters(self):
        return {"file_in_place": file_in_place, "unit_in_state": unit_in_state}
