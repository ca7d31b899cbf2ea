"""README's "Use it in your own playbook", run as a user runs it, so that the example cannot rot.

examples/own_playbook is copied into an empty project folder outside the checkout together with
the tarball of `ansible-galaxy collection build`; `ansible-galaxy collection install -r
requirements.yml` installs it there (offline; the dependencies come from the `ansible` package).
Two lab containers stand in for the example's hosts (tests/examples/inventory.yml: example-client
and example-server on networks example-a/example-b, 10.123.240-241.0/24), brought up and removed
with the installed copy's multipath.mptcp.lab_up / lab_down. The example's site.yml runs against
them over the Docker connection (the example's inventory, then ours, which only says how to reach
the two hosts): the check reports the counts of the simple scenario, and a second run changes
nothing. The lab is removed even when a step fails.
"""
import os
import shutil
import subprocess

import pytest
import yaml

from galaxy_helpers import BIN, ROOT, VERSION, assert_passed, clean_env, lab_containers, no_network_prefix, recap, run
from lablock import lab_lock

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(ROOT, "examples", "own_playbook")
LAB_INVENTORY = os.path.join(HERE, "inventory.yml")
LAB = "example"
HOSTS = ["client", "server"]
# The simple scenario's counts (inventories/lab/group_vars/mptcp_checkers.yml): the same two hosts,
# two paths, signal endpoint and proxies.
EXPECTED = {"CREATED": 2, "ESTABLISHED": 2, "ANNOUNCED": 2, "SF_ESTABLISHED": 2, "CLOSED": 2}


def _docker_ok():
    if not shutil.which("docker") or os.geteuid() != 0:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def _load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _lab_networks():
    proc = run(["docker", "network", "ls", "--format", "{{.Name}}"])
    assert proc.returncode == 0, proc.stderr
    return [n for n in proc.stdout.split() if n.startswith(LAB + "-")]


@pytest.fixture(scope="module")
def project(galaxy_tarball, tmp_path_factory):
    """A user's project folder: the example's files, the tarball, an ansible.cfg whose collections
    path is the folder's own `collections` (plus the Python path, where the `ansible` package keeps
    ansible.posix and community.docker), and the collection installed from requirements.yml."""
    folder = tmp_path_factory.mktemp("own-playbook")
    for name in os.listdir(EXAMPLE):
        shutil.copy2(os.path.join(EXAMPLE, name), str(folder / name))
    shutil.copy2(str(galaxy_tarball), str(folder / galaxy_tarball.name))
    config = folder / "ansible.cfg"
    config.write_text("[defaults]\ncollections_path = ./collections\ninterpreter_python = auto_silent\n"
                      "retry_files_enabled = False\n[connection]\npipelining = True\n")
    env = clean_env(config)
    proc = run(no_network_prefix() + [os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline",
                                       "-r", "requirements.yml"], cwd=str(folder), env=env, timeout=300)
    return {"folder": folder, "env": env, "install": proc}


def playbook(project, *args, timeout=600):
    return run([os.path.join(BIN, "ansible-playbook")] + list(args), cwd=str(project["folder"]),
               env=project["env"], timeout=timeout)


def test_example_matches_the_simple_scenario_and_the_tarball():
    """The example names the tarball `ansible-galaxy collection build` makes of this version, and
    checks the counts of the simple scenario."""
    names = [c["name"] for c in _load(os.path.join(EXAMPLE, "requirements.yml"))["collections"]]
    assert names == ["./multipath-mptcp-%s.tar.gz" % VERSION]
    simple = _load(os.path.join(ROOT, "inventories", "lab", "group_vars", "mptcp_checkers.yml"))
    assert simple["mptcp_check_expected"] == EXPECTED
    check = [p for p in _load(os.path.join(EXAMPLE, "site.yml")) if p["hosts"] == "client"][0]
    assert check["roles"][0]["vars"]["mptcp_check_expected"] == EXPECTED
    hosts = _load(os.path.join(EXAMPLE, "inventory.yml"))["all"]["children"]["mptcp_pair"]["hosts"]
    assert sorted(hosts) == HOSTS


def test_installed_from_requirements(project):
    proc = project["install"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "multipath.mptcp:%s was installed successfully" % VERSION in proc.stdout
    root = project["folder"] / "collections" / "ansible_collections" / "multipath" / "mptcp"
    assert (root / "MANIFEST.json").is_file()
    # the only multipath.mptcp the project sees is the installed one
    listing = run([os.path.join(BIN, "ansible-galaxy"), "collection", "list", "multipath.mptcp"],
                  cwd=str(project["folder"]), env=project["env"])
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count("multipath.mptcp") == 1, listing.stdout
    assert str(project["folder"] / "collections" / "ansible_collections") in listing.stdout, listing.stdout


@pytest.mark.skipif(not _docker_ok(), reason="needs root and a working Docker engine")
def test_example_site_against_lab_containers(project):
    assert project["install"].returncode == 0, project["install"].stdout + project["install"].stderr
    inventories = ["-i", "inventory.yml", "-i", LAB_INVENTORY]
    with lab_lock(LAB):
        try:
            up = playbook(project, "-i", LAB_INVENTORY, "multipath.mptcp.lab_up", "-e", "lab_group=" + LAB)
            assert up.returncode == 0, up.stdout[-6000:] + up.stderr[-3000:]
            assert sorted(lab_containers(LAB + "-")) == ["example-client", "example-server"]

            first = playbook(project, *inventories, "site.yml")
            assert_passed(first, HOSTS, EXPECTED)
            assert first.stdout.count("Subflows (4):") >= 1, first.stdout[-4000:]

            again = playbook(project, *inventories, "site.yml")
            assert_passed(again, HOSTS, EXPECTED)
            changed = {host: counts["changed"] for host, counts in recap(again.stdout).items()}
            assert changed == {"client": 0, "server": 0}, again.stdout[-6000:]
        finally:
            down = playbook(project, "-i", LAB_INVENTORY, "multipath.mptcp.lab_down", "-e", "lab_group=" + LAB)
            assert down.returncode == 0, down.stdout[-4000:] + down.stderr[-2000:]
            assert lab_containers(LAB + "-") == [] and _lab_networks() == []
