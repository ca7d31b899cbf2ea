"""Helpers of the collection-level tests (galaxy build and install, lab runs of the installed copy)."""
import contextlib
import fcntl
import os
import shutil
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv", "bin")
VENV_PY = os.path.join(BIN, "python")
VERSION = "0.1.0"
# Lab runs that bring up simple/routing/routing2 (same subnets) take this lock; see README.
LAB_LOCK = "/tmp/multipath-mptcp-lab.lock"


def run(cmd, cwd=ROOT, timeout=1200, env=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def clean_env(config=None):
    """The environment without the caller's ANSIBLE_* settings (and the checkout's ansible.cfg),
    with ANSIBLE_CONFIG=config when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.pop("PYTHONPATH", None)
    if config:
        env["ANSIBLE_CONFIG"] = str(config)
    return env


@contextlib.contextmanager
def lab_lock(timeout=3600):
    """Hold LAB_LOCK (fcntl.flock, the same lock as `flock /tmp/multipath-mptcp-lab.lock ...`)."""
    with open(LAB_LOCK, "a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail("%s still held by another lab run after %d s" % (LAB_LOCK, timeout))
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def no_network_prefix():
    """`unshare --net` when this machine allows it (root): the command then has no network at all."""
    unshare = shutil.which("unshare")
    if unshare and run([unshare, "--net", "true"]).returncode == 0:
        return [unshare, "--net"]
    return []
