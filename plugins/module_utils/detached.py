# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A process that goes on running after the module has returned, for what a module starts and a
later task stops (mptcp_monitor's `ip mptcp monitor`). AnsibleModule.run_command runs a command to
its end and returns its output, so it cannot start one; commands that end are run with it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess


def start_detached(argv, out_fd):
    """Start `argv` (a list, no shell) in a session of its own, stdin from /dev/null, stdout and
    stderr to the open file descriptor `out_fd`, no other descriptor inherited. Returns the
    subprocess.Popen object (pid, poll(), returncode); nothing waits for the process."""
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_fd, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True)
