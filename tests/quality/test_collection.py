"""The collection as a whole: lint, ansible-test sanity, docs and the galaxy build."""
import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv", "bin")
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")))


def run(cmd, cwd=ROOT, timeout=1200):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


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


# These sanity tests need Python packages that ansible-test installs into venvs of its own, with a
# pip bootstrap script it downloads from a host that this project's machines cannot reach; the
# same checks run elsewhere here: ansible-doc (test_ansible_doc_renders), yamllint and the
# argument specs (ansible-lint), imports and module arguments (tests/integration).
NEEDS_DOWNLOADS = ["ansible-doc", "import", "pep8", "pylint", "runtime-metadata", "validate-modules", "yamllint"]


def test_ansible_test_sanity(tmp_path):
    """The offline ansible-test sanity tests. ansible-test needs the collection at
    ansible_collections/<ns>/<name>: the tracked files are copied there."""
    dest = tmp_path / "ansible_collections" / "multipath" / "mptcp"
    files = run(["git", "ls-files", "-co", "--exclude-standard"]).stdout.split("\n")
    for name in filter(None, files):
        src = os.path.join(ROOT, name)
        if os.path.isfile(src) and not os.path.islink(src):
            os.makedirs(os.path.dirname(str(dest / name)), exist_ok=True)
            shutil.copy2(src, str(dest / name))
    subprocess.run(["git", "init", "-q"], cwd=str(dest), check=True)
    subprocess.run(["git", "add", "-A"], cwd=str(dest), check=True)
    skips = [arg for name in NEEDS_DOWNLOADS for arg in ("--skip-test", name)]
    proc = run([os.path.join(BIN, "ansible-test"), "sanity", "--python", "3.11", "--color", "no"] + skips,
               cwd=str(dest), timeout=1200)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    ran = [line for line in proc.stdout.splitlines() if line.startswith("Running sanity test")]
    assert len(ran) >= 15, proc.stdout



# The galaxy build (tarball contents), the offline install and runs of the installed copy are in
# test_galaxy_install.py.
