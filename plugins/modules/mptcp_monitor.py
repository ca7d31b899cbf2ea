#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mptcp_monitor
short_description: Capture Multipath TCP path-manager events (C(ip mptcp monitor)) and count them
version_added: 0.1.0
description:
  - O(state=started) runs C(ip mptcp monitor) in the background, writing to O(path), and returns
    once the monitor is subscribed to the kernel's MPTCP events, so that no event of traffic started
    right after is missed.
  - O(state=stopped) optionally waits, at most O(timeout) seconds, until the capture holds at least
    the O(wait_for) counts (events such as C(CLOSED) arrive after the application closed its socket;
    wait for them, do not sleep), stops the monitor, parses every line and returns the C(events)
    and their C(counts).
  - Event names are matched exactly (C(CREATED) is not C(LISTENER_CREATED), C(CLOSED) is not
    C(SF_CLOSED)). iproute2 6.1 prints the listener events as C(UNKNOWN 15) and C(UNKNOWN 16); they
    are returned as C(LISTENER_CREATED) and C(LISTENER_CLOSED).
author:
  - multipath.mptcp contributors (!UNKNOWN)
requirements:
  - Linux with MPTCP (5.12 or newer for events), iproute2 with C(ip mptcp monitor) (5.12 or newer).
  - CAP_NET_ADMIN (root) on the target.
attributes:
  check_mode:
    support: full
    details: In check mode no monitor is started or stopped; O(state=stopped) parses what the capture holds.
  diff_mode:
    support: none
options:
  state:
    description:
      - C(started) starts a capture (nothing happens when one runs already for O(path));
        C(stopped) waits for O(wait_for), stops it and returns the events.
    type: str
    choices: [started, stopped]
    required: true
  path:
    description:
      - Capture file on the target, written as the user that runs the module (root). O(state=started)
        replaces a capture of an earlier run. The monitor's pid, start time and command line are kept
        in C(<path>.pid); a process is stopped only when all three still match, so a stale or planted
        pid file never gets a process signalled.
      - Its directory must be a real directory (not a symbolic link) owned by that user and writable
        by no one else; a directory such as C(/tmp) is refused, because another user could plant a
        link or a file there. The default directory C(/run/multipath-mptcp/monitor) is created with
        mode 0700 when missing (as is any directory below C(/run/multipath-mptcp)); any other must exist.
      - The capture and the pid file are opened without following links and created exclusively
        (mode 0600); a symbolic link, a non-regular file or a file of another user at O(path) or
        C(<path>.pid) is refused, naming it, and nothing is written.
    type: path
    default: /run/multipath-mptcp/monitor/mptcp-monitor.log
  wait_for:
    description:
      - Event name -> count. With O(state=stopped), wait until the capture holds at least this many
        of each event, or until O(timeout) seconds passed. Names are those of RV(counts).
    type: dict
    default: {}
  timeout:
    description:
      - Upper bound in seconds for O(wait_for) with O(state=stopped), and for the subscription
        with O(state=started).
    type: float
    default: 30
extends_documentation_fragment:
  - multipath.mptcp.attributes
  - multipath.mptcp.attributes.netns_group
  - multipath.mptcp.netns
notes:
  - Reaching O(timeout) does not fail the task; RV(timed_out) says so and the counts are returned,
    so that the caller can show what was seen. M(ansible.builtin.assert) the counts you expect.
  - Which side sees which event (measured on Linux 6.18) - C(ANNOUNCED), C(REMOVED) and C(SF_PRIO)
    are seen by the side that receives the option; tokens differ per side; a normal close emits
    C(CLOSED) only (no C(SF_CLOSED)).
  - Errors raised - unknown event name in O(wait_for) or a negative count, a negative O(timeout),
    a O(netns) given as a path or missing, MPTCP missing or disabled, a monitor that exits at once
    (its output is in the message), stopping when O(path) holds no capture, an unsafe O(path)
    (see there).
seealso:
  - module: multipath.mptcp.mptcp_endpoint
  - name: ip-mptcp(8)
    description: The iproute2 manual page of C(ip mptcp monitor).
    link: https://man7.org/linux/man-pages/man8/ip-mptcp.8.html
"""

EXAMPLES = r"""
- name: Start capturing MPTCP events on the client
  multipath.mptcp.mptcp_monitor:
    state: started
    path: /run/multipath-mptcp/monitor/events.log

- name: Run traffic (iperf3 through the proxy makes 2 MPTCP connections)
  ansible.builtin.command: iperf3 -c 127.0.0.1 -p 5555 -t 2
  changed_when: false

- name: Stop once both connections closed, at most 30 s
  multipath.mptcp.mptcp_monitor:
    state: stopped
    path: /run/multipath-mptcp/monitor/events.log
    wait_for: {CLOSED: 2}
    timeout: 30
  register: capture

- name: Assert the exact counts
  ansible.builtin.assert:
    that:
      - capture.counts.CREATED == 2
      - capture.counts.SF_ESTABLISHED == 2
"""

RETURN = r"""
pid:
  description: Pid of the C(ip mptcp monitor) process (O(state=started), C(null) in check mode).
  returned: when state is started
  type: int
events:
  description:
    - Every event of the capture, in order. C(saddr4)/C(saddr6) become C(saddr) and C(family);
      numbers are ints. Fields as C(ip mptcp monitor) prints them - C(token), C(remid), C(locid),
      C(saddr), C(daddr), C(sport), C(dport), C(backup), C(ifindex), C(error), C(flags) and others.
  returned: when state is stopped
  type: list
  elements: dict
  sample: [{"event": "SF_ESTABLISHED", "token": "867717f1", "remid": 1, "locid": 1, "family": "ipv4",
            "saddr": "192.168.0.2", "daddr": "192.168.0.1", "sport": 36969, "dport": 4321, "backup": 0}]
counts:
  description: Event name -> number seen; every known name is present, 0 when not seen.
  returned: when state is stopped
  type: dict
  sample: {"CREATED": 1, "ESTABLISHED": 1, "CLOSED": 1, "ANNOUNCED": 1, "REMOVED": 0, "SF_ESTABLISHED": 2,
           "SF_CLOSED": 0, "SF_PRIO": 0, "LISTENER_CREATED": 0, "LISTENER_CLOSED": 0}
timed_out:
  description: O(wait_for) was not reached within O(timeout).
  returned: when state is stopped
  type: bool
waited:
  description: Seconds spent waiting for O(wait_for).
  returned: when state is stopped
  type: float
"""

import errno
import json
import os
import select
import signal
import stat
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multipath.mptcp.plugins.module_utils.detached import start_detached
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import (
    EVENT_NAMES,
    IpMptcp,
    MptcpError,
    fail_from,
    parse_monitor,
)

OWN_DIR = "/run/multipath-mptcp"
DEFAULT_DIR = OWN_DIR + "/monitor"
DEFAULT_PATH = DEFAULT_DIR + "/mptcp-monitor.log"


# ---------------------------------------------------------------------------------------------
# Files: only in a directory no other user can write to, never through a link
# ---------------------------------------------------------------------------------------------
def make_own_dirs(directory):
    """Create the module's own folders (under /run/multipath-mptcp) with mode 0700 when missing."""
    if directory != OWN_DIR and not directory.startswith(OWN_DIR + "/"):
        return
    part = OWN_DIR
    for piece in [""] + [x for x in directory[len(OWN_DIR):].split("/") if x]:
        part = os.path.join(part, piece) if piece else part
        try:
            os.mkdir(part, 0o700)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise MptcpError("cannot create the capture directory %s: %s" % (part, e.strerror))


def open_dir(path, create=False):
    """An fd of the directory of `path`, refused unless it is a real directory (not a link) owned by
    this user and writable by nobody else: there, no other user can plant a link or a file."""
    directory = os.path.dirname(os.path.abspath(path)) or "/"
    if create:
        make_own_dirs(directory)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(directory):
            raise MptcpError("capture directory %s is a symbolic link: refused (give a real directory)" % directory)
        raise MptcpError("capture directory %s cannot be opened: %s" % (directory, e.strerror))
    st = os.fstat(fd)
    problem = None
    if st.st_uid != os.geteuid():
        problem = "is owned by uid %d, not by uid %d that runs the monitor" % (st.st_uid, os.geteuid())
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = "is writable by other users (mode %04o)" % stat.S_IMODE(st.st_mode)
    if problem:
        os.close(fd)
        raise MptcpError("capture directory %s %s: another user could plant a link or a file there, so "
                         "path %s is refused; use a directory only this user can write to (default %s)"
                         % (directory, problem, path, DEFAULT_DIR))
    return fd


def entry(dir_fd, name, path):
    """lstat of `name` in the directory, None when missing; a link, a non-file or a file of another
    user is refused, naming it."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise MptcpError("cannot inspect %s: %s" % (path, e.strerror))
    if stat.S_ISLNK(st.st_mode):
        raise MptcpError("%s is a symbolic link: refused, nothing was written or followed (remove it)" % path)
    if not stat.S_ISREG(st.st_mode):
        raise MptcpError("%s is not a regular file: refused" % path)
    if st.st_uid != os.geteuid():
        raise MptcpError("%s belongs to uid %d, not to uid %d that runs the monitor: refused" % (path, st.st_uid, os.geteuid()))
    return st


def create(dir_fd, name, path):
    """A new file `name` (mode 0600) for writing; an earlier file of ours is replaced."""
    if entry(dir_fd, name, path) is not None:
        os.unlink(name, dir_fd=dir_fd)
    try:
        return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as e:
        raise MptcpError("cannot create %s: %s" % (path, e.strerror))


def read(dir_fd, name, path):
    """Text of `name`, "" when missing; never through a link."""
    if entry(dir_fd, name, path) is None:
        return ""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        return f.read().decode("utf-8", "replace")


def read_proc(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return ""


# ---------------------------------------------------------------------------------------------
# The monitor process: recorded at start (pid, start time, argv), believed only when all match
# ---------------------------------------------------------------------------------------------
def start_time(pid):
    """Field 22 of /proc/<pid>/stat (clock ticks after boot; never changes for a process), or None."""
    text = read_proc("/proc/%d/stat" % pid)
    fields = text[text.rfind(")") + 1:].split()
    return int(fields[19]) if len(fields) > 19 else None


def is_recorded(record):
    """True when the process `record` names is the monitor that was started (same start time and
    command line), so that a stale or planted pid never gets a signal."""
    try:
        pid = int(record["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    cmdline = read_proc("/proc/%d/cmdline" % pid).split("\0")[:-1]
    return pid > 1 and start_time(pid) == record.get("start_time") and cmdline == record.get("argv")


def running_monitor(dir_fd, name, path):
    """The record of the monitor writing `path` when it still runs, else None."""
    text = read(dir_fd, name + ".pid", path + ".pid")
    try:
        record = json.loads(text) if text.strip() else None
    except ValueError:
        record = None
    return record if isinstance(record, dict) and is_recorded(record) else None


def subscribed(pid):
    """The monitor sits in its receive loop: it has joined the MPTCP events multicast group."""
    if "wait_for_more_packets" in read_proc("/proc/%d/wchan" % pid):
        return True
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return False
    for line in read_proc("/proc/%d/net/netlink" % pid).splitlines()[1:]:
        cols = line.split()
        # Eth 16 is NETLINK_GENERIC; a non-zero group mask means a multicast subscription
        if len(cols) >= 10 and cols[1] == "16" and cols[9] in inodes and int(cols[3], 16):
            return True
    return False


def terminate(record, bound=5.0):
    """SIGTERM to the recorded monitor and wait (bounded) until it has exited. Through a pidfd
    where the system has one: the process is checked after the pidfd is open, so a pid reused in
    between cannot receive the signal. Returns False when the process is not the recorded one."""
    pid = int(record["pid"])
    pidfd = None
    if hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal"):
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return False
    try:
        if not is_recorded(record):
            return False
        if pidfd is None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.time() + bound
            while is_recorded(record) and time.time() < deadline:
                time.sleep(0.02)
            return True
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)  # readable once the process has exited
        poller.poll(int(bound * 1000))
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def own_dir_missing(path):
    """True for a path below /run/multipath-mptcp whose directory is not made yet (check mode)."""
    directory = os.path.dirname(os.path.abspath(path))
    return (directory == OWN_DIR or directory.startswith(OWN_DIR + "/")) and not os.path.lexists(directory)


def start(module, ip, path, timeout):
    if module.check_mode and own_dir_missing(path):
        return True, None
    dir_fd = open_dir(path, create=not module.check_mode)
    name = os.path.basename(path)
    try:
        record = running_monitor(dir_fd, name, path)
        if record:
            return False, record["pid"]
        # a link or a foreign file at either name is refused before anything is written
        entry(dir_fd, name, path)
        entry(dir_fd, name + ".pid", path + ".pid")
        if module.check_mode:
            return True, None
        argv = ip.ip_cmd("mptcp", "monitor")
        pid_fd = create(dir_fd, name + ".pid", path + ".pid")
        out_fd = create(dir_fd, name, path)
        try:
            proc = start_detached(argv, out_fd)
        finally:
            os.close(out_fd)
        record = dict(pid=proc.pid, start_time=start_time(proc.pid), argv=argv)
        with os.fdopen(pid_fd, "w") as f:
            f.write(json.dumps(record) + "\n")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                text = read(dir_fd, name, path).strip()
                raise MptcpError("ip mptcp monitor exited at once (rc %d): %s" % (proc.returncode, text),
                                 cmd=argv, rc=proc.returncode, stderr=text)
            if subscribed(proc.pid):
                return True, proc.pid
            time.sleep(0.02)
        module.warn("could not confirm that ip mptcp monitor subscribed within %ss; events may be missed" % timeout)
        return True, proc.pid
    finally:
        os.close(dir_fd)


def reached(counts, wait_for):
    return all(counts.get(name, 0) >= int(n) for name, n in wait_for.items())


def stop(module, path, wait_for, timeout):
    dir_fd = open_dir(path)
    name = os.path.basename(path)
    try:
        record = running_monitor(dir_fd, name, path)
        if record is None and entry(dir_fd, name, path) is None:
            raise MptcpError("no MPTCP monitor capture at %s (start one with state=started first)" % path)
        if record is None and read(dir_fd, name + ".pid", path + ".pid").strip():
            module.warn("%s.pid names no running monitor started for %s (stale, or not the recorded process): "
                        "no process was signalled" % (path, path))
        started = time.time()
        events, counts = parse_monitor(read(dir_fd, name, path))
        while record and not reached(counts, wait_for) and time.time() - started < timeout:
            time.sleep(0.1)
            events, counts = parse_monitor(read(dir_fd, name, path))
        waited = round(time.time() - started, 2)
        changed = False
        if record and not module.check_mode:
            changed = terminate(record)
            if entry(dir_fd, name + ".pid", path + ".pid") is not None:
                os.unlink(name + ".pid", dir_fd=dir_fd)
            events, counts = parse_monitor(read(dir_fd, name, path))
        elif record:
            changed = True
        return dict(changed=changed, events=events, counts=counts, waited=waited,
                    timed_out=not reached(counts, wait_for))
    finally:
        os.close(dir_fd)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["started", "stopped"], required=True),
            path=dict(type="path", default=DEFAULT_PATH),
            wait_for=dict(type="dict", default={}),
            timeout=dict(type="float", default=30),
            netns=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    ip = IpMptcp(module, p["netns"])
    try:
        if p["timeout"] < 0:
            raise MptcpError("timeout %s is negative" % p["timeout"])
        for name, count in p["wait_for"].items():
            if name not in EVENT_NAMES:
                raise MptcpError("wait_for: unknown event %r; known events: %s" % (name, ", ".join(EVENT_NAMES)))
            try:
                ok = int(count) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise MptcpError("wait_for: count %r for %s is not a whole number >= 0" % (count, name))
        if p["state"] == "started":
            ip.check_mptcp()
            changed, pid = start(module, ip, p["path"], p["timeout"])
            module.exit_json(changed=changed, pid=pid, path=p["path"])
        result = stop(module, p["path"], p["wait_for"], p["timeout"])
    except MptcpError as e:
        fail_from(module, e)
    module.exit_json(path=p["path"], **result)


if __name__ == "__main__":
    main()
