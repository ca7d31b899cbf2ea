"""ansible-test sanity over the collection (a file of its own: the pytest workers run it beside
ansible-lint and the ansible-doc tests of test_collection.py instead of after them)."""
import os
import re
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv", "bin")


def run(cmd, cwd=ROOT, timeout=1200):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


# Every ansible-test sanity test runs (ansible-test sanity --list-tests names them: 24 with
# ansible-core 2.19), none skipped. The tests with Python requirements install them into virtual
# environments of ansible-test's own (~/.ansible/test/venv, kept across runs) from the package
# index, with the pip that scripts/ansible_test_pip.py (run by scripts/bootstrap.sh) provides. What
# a test may not report is in tests/sanity/ignore-2.19.txt, each line explained.
# Checked: every file of the collection (what its users run: plugins, roles with the programs they
# install, playbooks, metadata, docs, changelog) and tests/quality, tests/sanity, scripts/. Not yet:
# the benchmarks and the rest of the test suite, whose Python still has about 100 pep8 and pylint
# findings under ansible-test's rules (continuation lines, `lambda` assignments, `_` as a name,
# subprocess.run without check=). Remove an entry here once its findings are fixed.
# (ansible-lint's production profile permits no ignore-file entry for pylint, pep8 or
# validate-modules findings, so these are left out instead of listed in tests/sanity/.)
NOT_SANITY_CHECKED = ("bench/", "tests/conftest.py",
                      "tests/examples/", "tests/faults/", "tests/galaxy_helpers.py", "tests/integration/",
                      "tests/lablock.py", "tests/proxy/", "tests/scenarios/", "tests/softether/", "tests/ssh/",
                      "tests/unit/", "tests/vpncmd_helpers.py")


def sanity_targets(names):
    """The paths to give ansible-test: each top-level file or folder ("name/") of `names`, with the
    folders that hold something not checked replaced by their checked files."""
    checked = [n for n in names if not n.startswith(NOT_SANITY_CHECKED)]
    partial = {n.split("/", 1)[0] for n in names if n.startswith(NOT_SANITY_CHECKED)}
    targets = set()
    for name in checked:
        top = name.split("/", 1)[0]
        targets.add(name if top in partial else top + "/" if "/" in name else name)
    return sorted(targets)


def test_ansible_test_sanity(tmp_path):
    """ansible-test needs the collection at ansible_collections/<ns>/<name>: the tracked files (and
    new ones not ignored by git) are copied there."""
    dest = tmp_path / "ansible_collections" / "multipath" / "mptcp"
    files = run(["git", "ls-files", "-co", "--exclude-standard"]).stdout.split("\n")
    copied = []
    for name in filter(None, files):
        src = os.path.join(ROOT, name)
        if os.path.isfile(src) and not os.path.islink(src):
            os.makedirs(os.path.dirname(str(dest / name)), exist_ok=True)
            shutil.copy2(src, str(dest / name))
            copied.append(name)
    subprocess.run(["git", "init", "-q"], cwd=str(dest), check=True)
    subprocess.run(["git", "add", "-A"], cwd=str(dest), check=True)
    test = os.path.join(BIN, "ansible-test")
    listed = run([test, "sanity", "--list-tests"], cwd=str(dest)).stdout.split()
    assert len(listed) >= 24, listed
    proc = run([test, "sanity", "--python", "3.11", "--color", "no"] + sanity_targets(copied), cwd=str(dest),
               timeout=1200)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    ran = re.findall(r'^Running sanity test "([^"]+)"', proc.stdout, re.M)
    assert sorted(ran) == sorted(listed), proc.stdout
    assert "Skipping sanity test" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
