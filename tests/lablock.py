"""One lock per Docker lab, so that two runs (two pytest processes, or pytest and `make bench`)
never bring up the same lab at once, while different labs run side by side.

The labs of inventories/lab have subnets and container names of their own (simple, routing,
routing2, sevpn); so do the suite's other labs (faults, ssh, the single-container tests). In the
suite all tests of one lab are in one file, and scripts/test.sh runs files side by side
(`pytest -n N --dist loadfile`), one file per worker at a time; this lock guards against runs of the
same lab from outside that pytest process.
"""
import contextlib
import fcntl
import time

import pytest


def lock_path(lab):
    return "/tmp/multipath-mptcp-lab-%s.lock" % lab


@contextlib.contextmanager
def lab_lock(lab, timeout=3600):
    """Hold the lab's lock (fcntl.flock; `flock /tmp/multipath-mptcp-lab-<lab>.lock ...` from a
    shell takes the same one); fail with a clear message after timeout seconds."""
    with open(lock_path(lab), "a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail("%s still held by another run of the %s lab after %d s" % (lock_path(lab), lab, timeout))
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
