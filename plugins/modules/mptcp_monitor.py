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
  - multipath.mptcp contributors
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
      - Capture file on the target. O(state=started) truncates it. The monitor's pid is kept in
        C(<path>.pid).
    type: path
    default: /tmp/mptcp-monitor.log
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
  netns:
    description:
      - Name of a network namespace (as listed by C(ip netns list)) to capture in.
    type: str
notes:
  - Reaching O(timeout) does not fail the task; RV(timed_out) says so and the counts are returned,
    so that the caller can show what was seen. M(ansible.builtin.assert) the counts you expect.
  - Which side sees which event (measured on Linux 6.18) - C(ANNOUNCED), C(REMOVED) and C(SF_PRIO)
    are seen by the side that receives the option; tokens differ per side; a normal close emits
    C(CLOSED) only (no C(SF_CLOSED)).
  - Errors raised - unknown event name in O(wait_for) or a negative count, a missing O(netns), MPTCP
    missing or disabled, a monitor that exits at once (its output is in the message), stopping
    when O(path) holds no capture.
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
    path: /tmp/mptcp-events.log

- name: Run traffic (iperf3 through the proxy makes 2 MPTCP connections)
  ansible.builtin.command: iperf3 -c 127.0.0.1 -p 5555 -t 2
  changed_when: false

- name: Stop once both connections closed, at most 30 s
  multipath.mptcp.mptcp_monitor:
    state: stopped
    path: /tmp/mptcp-events.log
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

import os
import signal
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import (
    EVENT_NAMES,
    IpMptcp,
    MptcpError,
    fail_from,
    parse_monitor,
)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except IOError:
        return ""


def running_monitor(path):
    """Pid of the monitor writing `path`, or None (stale pid files are ignored)."""
    try:
        pid = int(read(path + ".pid").strip())
        cmdline = read("/proc/%d/cmdline" % pid).split("\0")
    except ValueError:
        return None
    return pid if "mptcp" in cmdline and "monitor" in cmdline else None


def subscribed(pid):
    """The monitor sits in its receive loop: it has joined the MPTCP events multicast group."""
    if "wait_for_more_packets" in read("/proc/%d/wchan" % pid):
        return True
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return False
    for line in read("/proc/%d/net/netlink" % pid).splitlines()[1:]:
        cols = line.split()
        # Eth 16 is NETLINK_GENERIC; a non-zero group mask means a multicast subscription
        if len(cols) >= 10 and cols[1] == "16" and cols[9] in inodes and int(cols[3], 16):
            return True
    return False


def start(module, ip, path, timeout):
    pid = running_monitor(path)
    if pid:
        return False, pid
    if module.check_mode:
        return True, None
    with open(path, "w") as out:
        proc = subprocess.Popen(ip.ip_cmd("mptcp", "monitor"), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    with open(path + ".pid", "w") as f:
        f.write("%d\n" % proc.pid)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise MptcpError("ip mptcp monitor exited at once (rc %d): %s" % (proc.returncode, read(path).strip()),
                             cmd=ip.ip_cmd("mptcp", "monitor"), rc=proc.returncode, stderr=read(path))
        if subscribed(proc.pid):
            return True, proc.pid
        time.sleep(0.02)
    module.warn("could not confirm that ip mptcp monitor subscribed within %ss; events may be missed" % timeout)
    return True, proc.pid


def reached(counts, wait_for):
    return all(counts.get(name, 0) >= int(n) for name, n in wait_for.items())


def stop(module, path, wait_for, timeout):
    pid = running_monitor(path)
    if pid is None and not os.path.exists(path):
        raise MptcpError("no MPTCP monitor capture at %s (start one with state=started first)" % path)
    started = time.time()
    events, counts = parse_monitor(read(path))
    while pid and not reached(counts, wait_for) and time.time() - started < timeout:
        time.sleep(0.1)
        events, counts = parse_monitor(read(path))
    waited = round(time.time() - started, 2)
    if pid and not module.check_mode:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if running_monitor(path) is None:
                break
            time.sleep(0.02)
        try:
            os.unlink(path + ".pid")
        except OSError:
            pass
        events, counts = parse_monitor(read(path))
    return dict(changed=bool(pid), events=events, counts=counts, waited=waited,
                timed_out=not reached(counts, wait_for))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["started", "stopped"], required=True),
            path=dict(type="path", default="/tmp/mptcp-monitor.log"),
            wait_for=dict(type="dict", default={}),
            timeout=dict(type="float", default=30),
            netns=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    ip = IpMptcp(module, p["netns"])
    try:
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
