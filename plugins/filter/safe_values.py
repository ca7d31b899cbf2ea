# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""User values that reach unit files, command lines and configuration files: the quoting of words
for unit files, and the checks the roles run on every value before they change anything.

systemd_quote / systemd_argv: one word (or a command line) for ExecStart= and similar settings.
systemd splits those lines into words itself (no shell): a word in double quotes keeps spaces and
semicolons, a backslash starts a C escape, "%" starts a specifier and "$" an environment variable.
So every word is put in double quotes, with \\ \" and control characters escaped, "%" doubled to
"%%" and "$" doubled to "$$". A line break can then never end the setting.

ifname_valid / ip_address_valid / ip_interface_valid / port_valid: checks of user values, true or
false, so that a role can name every bad value before it changes anything.

secret_problems: the password rule of the SoftEther roles; a list of messages that name the
variable, never the value.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import ifname_problem

DOCUMENTATION = r"""
name: systemd_quote
short_description: Quote one word for a systemd unit file command line (ExecStart=)
description:
  - Puts the value in double quotes; escapes C(\\), C(") and control characters the way systemd
    unquotes them; writes C(%) as C(%%) (specifier) and C($) as C($$) (variable expansion).
  - Strings, integers and floats only; NUL characters are refused (systemd cannot carry them).
  - C(multipath.mptcp.systemd_argv) quotes every element of a list and joins them with spaces.
  - C(multipath.mptcp.ifname_valid), C(multipath.mptcp.ip_address_valid),
    C(multipath.mptcp.ip_interface_valid) and C(multipath.mptcp.port_valid) return true or false.
  - C(multipath.mptcp.secret_problems(name)) returns the list of reasons why a password breaks the
    rule (empty when it is fine). The rule - a string of 12 to 255 characters, at least 6 different
    ones, not only white space, no white space at either end, no double quote and no control
    character (vpncmd cannot pass them). The messages name the variable, never the value.
options:
  _input:
    description: The word (or, for systemd_argv, the list of words).
    required: true
"""

EXAMPLES = r"""
- name: A unit whose command line holds user values
  ansible.builtin.copy:
    dest: /etc/systemd/system/example.service
    content: |
      [Service]
      ExecStart={{ ['/usr/bin/tool', '--name', user_value] | multipath.mptcp.systemd_argv }}
"""

RETURN = r"""
_value:
  description: The quoted word(s), or true/false for the checks.
  type: str
"""

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "%": "%%", "$": "$$"}


def systemd_quote(value):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise AnsibleFilterError("systemd_quote: expected a string or a number, got %s" % type(value).__name__)
    text = str(value)
    out = []
    for ch in text:
        if ch == "\0":
            raise AnsibleFilterError("systemd_quote: a NUL character cannot be written to a unit file")
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return '"%s"' % "".join(out)


def systemd_argv(values):
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise AnsibleFilterError("systemd_argv: expected a list of words, got %s" % type(values).__name__)
    if not values:
        raise AnsibleFilterError("systemd_argv: the command line is empty")
    return " ".join(systemd_quote(v) for v in values)


def ifname_valid(value):
    """A Linux interface name as the kernel allows it (dev_valid_name): 1-15 bytes, no '/', ':' or
    whitespace, not '.' or '..' (the modules' own check, plugins/module_utils/mptcp.py)."""
    return ifname_problem(value) is None


def _text(value):
    return value if isinstance(value, str) else None


def ip_address_valid(value, version=None):
    """An IP address (version 4 or 6 when given), no scope id, nothing else."""
    text = _text(value)
    if text is None or "%" in text:
        return False
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or addr.version == int(version)


def ip_interface_valid(value, version=None):
    """An address with its prefix length (CIDR), for example 10.100.1.2/24."""
    text = _text(value)
    if text is None or "/" not in text or "%" in text:
        return False
    try:
        addr = ipaddress.ip_interface(text)
    except ValueError:
        return False
    return version is None or addr.version == int(version)


def port_valid(value):
    """A TCP/UDP port 1-65535, given as an integer (a string of digits is accepted too)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,5}", value):
            return False
        value = int(value)
    return isinstance(value, int) and 1 <= value <= 65535


MIN_SECRET_LENGTH = 12
MAX_SECRET_LENGTH = 255
MIN_SECRET_DISTINCT = 6


def secret_problems(value, name):
    """Why value breaks the password rule (an empty list when it does not). Never shows the value."""
    if value is None:
        return ["%s is required (no default; keep it in Ansible Vault)" % name]
    if not isinstance(value, str):
        kind = "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__
        if isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, (list, tuple)):
            kind = "list"
        elif isinstance(value, dict):
            kind = "dict"
        return ["%s must be a string (quote it in YAML), not a %s" % (name, kind)]
    if value.strip() == "":
        return ["%s is empty or only white space" % name]
    problems = []
    if not MIN_SECRET_LENGTH <= len(value) <= MAX_SECRET_LENGTH:
        problems.append("%s must have %d to %d characters" % (name, MIN_SECRET_LENGTH, MAX_SECRET_LENGTH))
    if len(set(value)) < MIN_SECRET_DISTINCT:
        problems.append("%s must hold at least %d different characters" % (name, MIN_SECRET_DISTINCT))
    if value != value.strip():
        problems.append("%s must not begin or end with white space" % name)
    if any(ch == '"' or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        problems.append(
            "%s holds a double quote or a control character (line break, tab...), which vpncmd cannot pass" % name
        )
    return problems


class FilterModule(object):
    def filters(self):
        return {
            "systemd_quote": systemd_quote,
            "systemd_argv": systemd_argv,
            "ifname_valid": ifname_valid,
            "ip_address_valid": ip_address_valid,
            "ip_interface_valid": ip_interface_valid,
            "port_valid": port_valid,
            "secret_problems": secret_problems,
        }
