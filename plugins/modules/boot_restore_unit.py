#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: boot_restore_unit
short_description: Install or remove a boot restore (program, JSON plan, oneshot systemd unit) in one step
version_added: 0.2.0
description:
  - Used by role M(multipath.mptcp.boot_restore), which renders the three files; one call per host
    instead of one task per file, folder and C(systemctl) command.
  - With O(state=present) it writes the restore program, the plan and the unit (only the files
    whose content or mode differ; each written to a temporary file in the same folder and renamed
    into place), removes O(obsolete), runs C(systemctl daemon-reload) when the unit file changed
    and C(systemctl enable) when the unit is not enabled. The unit is not started; installing a
    restore never runs the plan.
  - The plan is checked with C(PROGRAM --check) before it is put in place (outside check mode);
    a plan the program refuses fails the task and nothing of the plan is changed.
  - With O(state=absent) it disables the unit, removes the unit, the plan and O(obsolete) and
    reloads systemd; the program stays (other restore units may use it).
  - On a host that does not run systemd (no C(/run/systemd/system)) it changes nothing and returns
    RV(systemd=false); the role says so.
author:
  - multipath.mptcp contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    details: Reports what would change; the plan is not checked by the program (it may not be installed yet).
  diff_mode:
    support: full
options:
  state:
    description: Install (V(present)) or remove (V(absent)).
    type: str
    choices: [present, absent]
    default: present
  unit:
    description: Unit name, C(NAME.service), installed as C(/etc/systemd/system/NAME.service).
    type: str
    required: true
  unit_content:
    description: The unit file. Required with O(state=present).
    type: str
  plan:
    description: Absolute path of the plan (mode 0644).
    type: path
    required: true
  plan_content:
    description: The plan (JSON). Required with O(state=present).
    type: str
  program:
    description: Absolute path of the restore program (mode 0755).
    type: path
    required: true
  program_content:
    description: The restore program. Required with O(state=present).
    type: str
  obsolete:
    description: Files an earlier version installed, removed with both states.
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - multipath.mptcp.attributes
notes:
  - Folders that are missing are created with mode 0755, owned by root.
"""

EXAMPLES = r"""
- name: Install the restore of the MPTCP endpoints
  multipath.mptcp.boot_restore_unit:
    unit: multipath-mptcp-host.service
    unit_content: "{{ lookup('ansible.builtin.template', 'restore.service.j2') }}"
    plan: /etc/multipath-mptcp/mptcp_host.json
    plan_content: "{{ plan | to_nice_json }}"
    program: /usr/local/libexec/multipath-mptcp-restore
    program_content: "{{ lookup('ansible.builtin.file', 'multipath-mptcp-restore') }}"

- name: Remove it again
  multipath.mptcp.boot_restore_unit:
    state: absent
    unit: multipath-mptcp-host.service
    plan: /etc/multipath-mptcp/mptcp_host.json
    program: /usr/local/libexec/multipath-mptcp-restore
"""

RETURN = r"""
systemd:
  description: Whether the host runs systemd; without it nothing is changed.
  returned: always
  type: bool
changed_files:
  description: Files written or removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/multipath-mptcp/mptcp_host.json]
enabled:
  description: Whether the unit is enabled after the task (with O(state=present)).
  returned: always
  type: bool
"""

import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multipath.mptcp.plugins.module_utils.host_files import (
    UNIT_DIR,
    HostFiles,
    Systemctl,
    has_systemd,
)

UNIT_NAME = re.compile(r"^[A-Za-z0-9_.@:-]+[.]service\Z")


class Restore:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.files = HostFiles(module)
        self.systemctl = Systemctl(module, self.files)

    def check_plan(self, path, content):
        """The program's --check on a temporary copy of the plan, next to where it goes."""
        folder = os.path.dirname(path)
        os.makedirs(folder, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".check.", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content.encode("utf-8"))
            rc, out, err = self.module.run_command([self.params["program"], "--check", tmp])
        finally:
            os.unlink(tmp)
        if rc != 0:
            self.module.fail_json(msg="the restore program refused the plan for %s (nothing of the plan was "
                                      "changed): %s" % (path, (err or out).strip()),
                                  changed_files=self.files.changed_files)

    def present(self):
        p = self.params
        for key in ("unit_content", "plan_content", "program_content"):
            if p[key] is None:
                self.module.fail_json(msg="%s is required with state=present" % key)
        unit_path = os.path.join(UNIT_DIR, p["unit"])
        self.files.ensure_file(p["program"], p["program_content"], 0o755)
        self.files.ensure_file(p["plan"], p["plan_content"], 0o644, before_write=self.check_plan)
        for path in p["obsolete"]:
            self.files.remove(path)
        unit_changed = self.files.ensure_file(unit_path, p["unit_content"], 0o644)
        if unit_changed and not self.module.check_mode:
            self.systemctl.run_or_fail("daemon-reload")
        enabled = self.systemctl.is_enabled(p["unit"]) if not unit_changed or not self.module.check_mode else False
        changed = bool(self.files.changed_files)
        if not enabled:
            changed = True
            if not self.module.check_mode:
                self.systemctl.run_or_fail("enable", p["unit"])
                enabled = True
        return changed, enabled

    def absent(self):
        p = self.params
        unit_path = os.path.join(UNIT_DIR, p["unit"])
        changed = False
        if os.path.exists(unit_path) and self.systemctl.is_enabled(p["unit"]):
            changed = True
            if not self.module.check_mode:
                self.systemctl.run_or_fail("disable", p["unit"])
        unit_removed = self.files.remove(unit_path)
        for path in [p["plan"]] + p["obsolete"]:
            self.files.remove(path)
        if unit_removed and not self.module.check_mode:
            self.systemctl.run_or_fail("daemon-reload")
        return changed or bool(self.files.changed_files), False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            unit=dict(type="str", required=True),
            unit_content=dict(type="str"),
            plan=dict(type="path", required=True),
            plan_content=dict(type="str"),
            program=dict(type="path", required=True),
            program_content=dict(type="str"),
            obsolete=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not UNIT_NAME.match(p["unit"]):
        module.fail_json(msg="unit %r is not a unit name NAME.service" % p["unit"])
    for key in ("plan", "program"):
        if not os.path.isabs(p[key]) or ".." in p[key].split("/"):
            module.fail_json(msg="%s %r is not an absolute path without '..'" % (key, p[key]))
    if not has_systemd():
        module.exit_json(changed=False, systemd=False, changed_files=[], enabled=False)
    restore = Restore(module)
    changed, enabled = restore.present() if p["state"] == "present" else restore.absent()
    result = dict(changed=changed, systemd=True, changed_files=restore.files.changed_files, enabled=enabled)
    if module._diff and restore.files.changed_files:
        result["diff"] = restore.files.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
