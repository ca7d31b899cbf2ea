#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mptcp_proxy_instance
short_description: Install, start, stop or remove one instance of the mptcp-proxy service in one call
version_added: 0.3.0
description:
  - Used by role M(multipath.mptcp.mptcp_proxy) after it has validated its variables and read the
    host, so that the whole change is one round trip to the host.
  - With O(state=started) or O(state=stopped) it writes, each only when its content or mode differs,
    the program (O(program), mode 0755), the unit template C(/etc/systemd/system/mptcp-proxy@.service),
    the instance's argument file C(<config_dir>/<instance>.conf) and its address filter drop-in
    C(/etc/systemd/system/mptcp-proxy@<instance>.service.d/ip-access.conf) (mode 0644, written
    atomically); runs C(systemctl daemon-reload) when a unit file changed; restarts the other running
    instances when the program or the unit template changed; enables (started) or disables (stopped)
    the instance; and starts it, restarts it when one of its files changed, or stops it.
  - C(mptcp-proxy@.service) is C(Type=notify), so the start returns once the proxy listens. When it
    fails, the module fails with the unit's name, the listen addresses and port it was given, and
    the last 15 lines of the unit's journal.
  - With O(gateway_content) and O(nft_content) (the gateway modes - transparent proxy, RFC 8803 Convert) it
    also writes the drop-in C(gateway.conf) (capabilities, and the C(ExecStartPre=)/C(ExecStopPost=) lines
    that load and remove the instance's nftables table and policy routing) and the ruleset
    C(<config_dir>/<instance>.nft). The ruleset is checked with C(nft --check) before any file is written.
    When the drop-in changes or goes away while the instance runs, the instance is stopped first, so that
    the old C(ExecStopPost=) removes the old rules. Without these options both files are removed.
  - With O(state=absent) it stops and disables the instance and removes its argument file, ruleset and
    drop-in directory; when no other instance's argument file is left in O(config_dir), also the
    program, the unit template and O(config_dir).
  - Without systemd (no C(/run/systemd/system)) it fails and changes nothing.
author:
  - multipath.mptcp contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    details: Reports the files that would change and whether the instance would be (re)started; changes nothing.
  diff_mode:
    support: full
    details: The old and new content of every file that changes.
options:
  instance:
    description: Name of the instance (unit C(mptcp-proxy@<instance>.service)); letters, digits, C(_), C(-), C(.).
    type: str
    required: true
  state:
    description: C(started) (enabled and running), C(stopped) (installed, disabled, not running) or C(absent).
    type: str
    choices: [started, stopped, absent]
    default: started
  program:
    description: Absolute path of the program.
    type: path
    default: /usr/local/bin/mptcp-proxy
  program_content:
    description: The program (the role's C(files/mptcp-proxy)). Required unless O(state=absent).
    type: str
  unit_content:
    description: The unit template C(mptcp-proxy@.service). Required unless O(state=absent).
    type: str
  config_dir:
    description: Absolute path of the directory of the argument files.
    type: path
    default: /etc/mptcp-proxy
  args_content:
    description: The instance's argument file (one argument per line). Required unless O(state=absent).
    type: str
  dropin_content:
    description: The instance's drop-in C(ip-access.conf) (C(IPAddressAllow=)). Required unless O(state=absent).
    type: str
  gateway_content:
    description:
      - The instance's drop-in C(gateway.conf); omitted, the drop-in is removed.
    type: str
  nft_content:
    description:
      - The instance's nftables ruleset C(<config_dir>/<instance>.nft), loaded by the drop-in's C(ExecStartPre=);
        omitted, the file is removed. Checked with C(nft --check --file -) before anything changes (skipped in
        check mode when C(nft) is not installed yet).
    type: str
  listen:
    description: The listen addresses, only for the message when the start fails.
    type: list
    elements: str
    default: []
  port:
    description: The port, only for the message when the start fails.
    type: int
extends_documentation_fragment:
  - multipath.mptcp.attributes
seealso:
  - module: multipath.mptcp.boot_restore_unit
notes:
  - The role M(multipath.mptcp.mptcp_proxy) renders the contents from its templates and validates
    them first (C(mptcp-proxy --check-config) on the controller); this module does not check them again.
"""

EXAMPLES = r"""
- name: Install and start the client proxy instance
  multipath.mptcp.mptcp_proxy_instance:
    instance: client
    program_content: "{{ lookup('ansible.builtin.file', 'mptcp-proxy', rstrip=false) }}"
    unit_content: "{{ lookup('ansible.builtin.template', 'mptcp-proxy@.service.j2') }}"
    args_content: "--mode=client\n--port=5555\n--remote=10.123.200.2:4444\n--listen=127.0.0.1\n"
    dropin_content: "[Service]\nIPAddressDeny=any\nIPAddressAllow=localhost 10.123.200.0/24\n"
    listen: [127.0.0.1]
    port: 5555

- name: Remove it
  multipath.mptcp.mptcp_proxy_instance:
    instance: client
    state: absent
"""

RETURN = r"""
unit:
  description: The instance's unit.
  returned: always
  type: str
  sample: mptcp-proxy@client.service
changed_files:
  description: The files (and directories, with a trailing C(/)) written or removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
restarted:
  description: The units that were (or would be) started or restarted, this instance's included.
  returned: always
  type: list
  elements: str
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multipath.mptcp.plugins.module_utils.host_files import (
    UNIT_DIR,
    HostFiles,
    Systemctl,
    has_systemd,
    read_file,
)

INSTANCE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
TEMPLATE = "mptcp-proxy@.service"


class Instance:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.files = HostFiles(module)
        self.systemctl = Systemctl(module, self.files)
        self.unit = "mptcp-proxy@%s.service" % self.p["instance"]
        self.template = os.path.join(UNIT_DIR, TEMPLATE)
        self.dropin_dir = os.path.join(UNIT_DIR, self.unit + ".d")
        self.args_path = os.path.join(self.p["config_dir"], self.p["instance"] + ".conf")
        self.nft_path = os.path.join(self.p["config_dir"], self.p["instance"] + ".nft")
        self.gateway_path = os.path.join(self.dropin_dir, "gateway.conf")
        self.restarted = []

    def present(self):
        p, files, check = self.p, self.files, self.module.check_mode
        for key in ("program_content", "unit_content", "args_content", "dropin_content"):
            if p[key] is None:
                self.module.fail_json(msg="%s is required with state=%s" % (key, p["state"]))
        self.check_nft()
        self.stop_before_gateway_change()
        files.ensure_dir(p["config_dir"])
        files.ensure_dir(self.dropin_dir)
        program = files.ensure_file(p["program"], p["program_content"], 0o755)
        template = files.ensure_file(self.template, p["unit_content"], 0o644)
        args = files.ensure_file(self.args_path, p["args_content"], 0o644)
        dropin = files.ensure_file(os.path.join(self.dropin_dir, "ip-access.conf"), p["dropin_content"], 0o644)
        gateway = self.ensure_or_remove(self.gateway_path, p["gateway_content"])
        nft = self.ensure_or_remove(self.nft_path, p["nft_content"])
        dropin = dropin or gateway
        args = args or nft
        changed = bool(files.changed_files) or self.stopped_first
        if (template or dropin) and not check:
            self.systemctl.run_or_fail("daemon-reload")
        if program or template:
            # every instance runs the one program and template: restart the others that run
            others = [u for u in self.systemctl.running_units("mptcp-proxy@*.service") if u != self.unit]
            for unit in others:
                self.restarted.append(unit)
                if not check:
                    self.systemctl.run_or_fail("restart", unit)
        known = not (check and template)  # in check mode a new unit file was not written
        want_enabled = p["state"] == "started"
        if (self.systemctl.is_enabled(self.unit) if known else False) != want_enabled:
            changed = True
            if not check:
                self.systemctl.run_or_fail("enable" if want_enabled else "disable", self.unit)
        active = self.systemctl.is_active(self.unit) if known else False
        if p["state"] == "started" and (not active or program or template or args or dropin):
            changed = True
            if self.unit not in self.restarted:
                self.restarted.append(self.unit)
            if not check:
                self.start("restart" if active else "start")
        elif p["state"] == "stopped" and active:
            changed = True
            if not check:
                self.systemctl.run_or_fail("stop", self.unit)
        return changed

    def ensure_or_remove(self, path, content):
        if content is None:
            return self.files.remove(path)
        return self.files.ensure_file(path, content, 0o644)

    def check_nft(self):
        """The ruleset must load (nft --check) before any file is written."""
        content = self.p["nft_content"]
        if content is None or read_file(self.nft_path)[0] == content:
            return
        nft = self.module.get_bin_path("nft")
        if nft is None:
            if self.module.check_mode:
                return
            self.module.fail_json(msg="nft is not installed (Debian package nftables): the ruleset of %s cannot "
                                      "be loaded. Nothing was changed." % self.unit)
        rc, out, err = self.module.run_command([nft, "--check", "--file", "-"], data=content, binary_data=True,
                                               environ_update={"LC_ALL": "C"})
        if rc != 0:
            self.module.fail_json(msg="nft --check refuses the ruleset of %s (rc %d): %s. Nothing was changed."
                                      % (self.unit, rc, (err or out).strip()), ruleset=content)

    def stop_before_gateway_change(self):
        """A running instance whose gateway drop-in changes or goes away is stopped with the old unit
        definition, so that its ExecStopPost= removes the rules it loaded."""
        self.stopped_first = False
        old = read_file(self.gateway_path)[0]
        if old is None or old == self.p["gateway_content"] or not self.systemctl.is_active(self.unit):
            return
        self.stopped_first = True
        self.restarted.append(self.unit)
        if not self.module.check_mode:
            self.systemctl.run_or_fail("stop", self.unit)

    def start(self, verb):
        rc, out, err = self.systemctl.run(verb, self.unit)
        if rc != 0:
            journal = self.systemctl.journal_tail(self.unit)
            self.module.fail_json(
                msg="%s did not start listening on %s port %s: %s -- journal: %s"
                    % (self.unit, ", ".join(self.p["listen"]) or "?", self.p["port"], err or out,
                       " | ".join(journal)),
                changed_files=self.files.changed_files, journal=journal)

    def absent(self):
        files, check = self.files, self.module.check_mode
        changed = False
        if os.path.exists(self.template):
            if self.systemctl.is_active(self.unit):
                changed = True
                if not check:
                    self.systemctl.run_or_fail("stop", self.unit)
            if self.systemctl.is_enabled(self.unit):
                changed = True
                if not check:
                    self.systemctl.run_or_fail("disable", self.unit)
        files.remove(self.args_path)
        files.remove(self.nft_path)
        reload_needed = files.remove(self.dropin_dir)
        folder = self.p["config_dir"]
        others = [n for n in os.listdir(folder) if n.endswith(".conf")] if os.path.isdir(folder) else []
        others = [n for n in others if os.path.join(folder, n) != self.args_path]
        if not others:
            reload_needed = files.remove(self.template) or reload_needed
            files.remove(self.p["program"])
            files.remove(folder)
        if reload_needed and not check:
            self.systemctl.run_or_fail("daemon-reload")
        return changed or bool(files.changed_files)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            instance=dict(type="str", required=True),
            state=dict(type="str", choices=["started", "stopped", "absent"], default="started"),
            program=dict(type="path", default="/usr/local/bin/mptcp-proxy"),
            program_content=dict(type="str"),
            unit_content=dict(type="str"),
            config_dir=dict(type="path", default="/etc/mptcp-proxy"),
            args_content=dict(type="str"),
            dropin_content=dict(type="str"),
            gateway_content=dict(type="str"),
            nft_content=dict(type="str"),
            listen=dict(type="list", elements="str", default=[]),
            port=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not INSTANCE.match(p["instance"]):
        module.fail_json(msg="instance %r may only contain letters, digits, '_', '-' and '.'" % p["instance"])
    for key in ("program", "config_dir"):
        if not os.path.isabs(p[key]) or ".." in p[key].split("/") or p[key].rstrip("/") in ("", "/etc", "/usr"):
            module.fail_json(msg="%s %r is not an absolute path of its own (no '..')" % (key, p[key]))
    if not has_systemd():
        module.fail_json(msg="mptcp-proxy runs as a systemd service: this host does not run systemd "
                             "(/run/systemd/system is missing). Nothing was changed.")
    instance = Instance(module)
    changed = instance.present() if p["state"] != "absent" else instance.absent()
    result = dict(changed=changed, unit=instance.unit, changed_files=instance.files.changed_files,
                  restarted=instance.restarted)
    if module._diff and instance.files.changed_files:
        result["diff"] = instance.files.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
