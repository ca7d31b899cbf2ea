"""The collection as a whole: lint and docs (ansible-test sanity: test_sanity.py; the galaxy build:
test_galaxy_install.py)."""
import glob
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv", "bin")
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")))


def run(cmd, cwd=ROOT, timeout=1200):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def test_contract_modules_exist():
    assert MODULES == ["boot_restore_unit", "ip_route", "ip_rule", "mptcp_endpoint", "mptcp_host_plan", "mptcp_info",
                       "mptcp_limits", "mptcp_monitor", "mptcp_proxy_instance"]


# Modules that act on the host's files and systemd units, not on a network namespace.
HOST_ONLY = {"boot_restore_unit", "mptcp_proxy_instance"}


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    proc = run([os.path.join(BIN, "ansible-doc"), "multipath.mptcp." + module])
    assert proc.returncode == 0, proc.stderr
    for section in ("OPTIONS", "EXAMPLES", "RETURN VALUES"):
        assert section in proc.stdout
    assert ("netns" in proc.stdout) == (module not in HOST_ONLY)


def test_ansible_lint_production_profile():
    proc = run([os.path.join(BIN, "ansible-lint"), "--profile", "production", "--offline"])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]


# The galaxy build (tarball contents), the offline install and runs of the installed copy are in
# test_galaxy_install.py.
