"""The collection as users get it: `ansible-galaxy collection build` gives a clean tarball, which
installs offline into an empty collections path (dependencies from the `ansible` package), and from
a folder outside the checkout its docs and playbooks resolve. The runs of the installed copy's
`multipath.mptcp.simple` and `.sevpn` against the Docker lab are in tests/scenarios (one file per
lab), with the other tests of the same lab."""
import json
import os
import tarfile

from galaxy_helpers import BIN, VERSION, run

# Nothing of these may be in the tarball: caches, virtualenvs, VCS data, test and benchmark output.
FORBIDDEN_PARTS = {".venv", ".collections", ".git", "__pycache__", ".pytest_cache", ".cache", ".ansible",
                   ".tox", ".mypy_cache", ".molecule"}
FORBIDDEN_PREFIXES = ("tests/output", "bench/results")
FORBIDDEN_SUFFIXES = (".pyc", ".pyo", ".retry", ".tar.gz")
# What an installed copy needs to run the playbooks (and ansible-builder to read the metadata).
REQUIRED = ["MANIFEST.json", "FILES.json", "meta/runtime.yml", "plugins/modules/mptcp_endpoint.py",
            "plugins/module_utils/mptcp.py", "roles/mptcp_host/meta/argument_specs.yml",
            "roles/lab/tasks/main.yml", "playbooks/simple.yml", "playbooks/scenario.yml",
            "playbooks/lab_down.yml", "inventories/lab/hosts.yml", "inventories/hardware.example/hosts.yml",
            "meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt"]


def tar_names(tarball):
    with tarfile.open(str(tarball)) as tar:
        return [m.name[2:] if m.name.startswith("./") else m.name for m in tar.getmembers()]


def forbidden(name):
    parts = name.split("/")
    return (bool(FORBIDDEN_PARTS.intersection(parts)) or name.startswith(FORBIDDEN_PREFIXES)
            or name.endswith(FORBIDDEN_SUFFIXES) or parts[-1] == "vault.yml")


def test_tarball_has_what_is_needed_and_no_caches_or_test_output(galaxy_tarball):
    names = tar_names(galaxy_tarball)
    missing = [n for n in REQUIRED if n not in names]
    assert missing == [], missing
    bad = [n for n in names if forbidden(n)]
    assert bad == [], bad
    with tarfile.open(str(galaxy_tarball)) as tar:
        files = json.load(tar.extractfile("FILES.json"))["files"]
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert [f["name"] for f in files if forbidden(f["name"])] == []
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("multipath", "mptcp", VERSION)
    assert set(manifest["dependencies"]) == {"ansible.posix", "community.docker"}


def test_forbidden_matches_what_it_should():
    """The filter above really catches each kind of unwanted file."""
    for name in ["tests/output/junit.xml", "plugins/modules/__pycache__/x.cpython-311.pyc", ".venv/bin/python",
                 ".collections/ansible_collections/multipath", ".git/HEAD", "bench/results/run.json",
                 ".pytest_cache/v/cache", "inventories/site/group_vars/all/vault.yml", "x.retry"]:
        assert forbidden(name), name
    for name in ["plugins/modules/mptcp_endpoint.py", "inventories/hardware.example/group_vars/all/vault.yml.example",
                 "tests/unit/test_mptcp_parsing.py"]:
        assert not forbidden(name), name


def test_offline_install_into_empty_path(installed_collection):
    proc = installed_collection["proc"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "multipath.mptcp:%s was installed successfully" % VERSION in proc.stdout
    root = installed_collection["root"]
    assert (root / "MANIFEST.json").is_file() and (root / "playbooks" / "simple.yml").is_file()
    # the dependencies were found in the ansible package, not downloaded next to it
    assert sorted(os.listdir(str(installed_collection["collections"] / "ansible_collections"))) == ["multipath"]
    listing = run([os.path.join(BIN, "ansible-galaxy"), "collection", "list", "--format", "json"],
                  cwd=str(installed_collection["project"]), env=installed_collection["env"])
    assert listing.returncode == 0, listing.stderr
    where = {path: sorted(c for c in cols if c in ("multipath.mptcp", "ansible.posix", "community.docker"))
             for path, cols in json.loads(listing.stdout).items()}
    where = {path: cols for path, cols in where.items() if cols}
    assert where == {
        str(installed_collection["collections"] / "ansible_collections"): ["multipath.mptcp"],
        os.path.join(installed_collection["site"], "ansible_collections"): ["ansible.posix", "community.docker"],
    }


def test_installed_docs_and_syntax(installed_collection):
    """ansible-doc and a syntax check resolve the installed copy from outside the checkout."""
    assert installed_collection["proc"].returncode == 0
    cwd, env = str(installed_collection["project"]), installed_collection["env"]
    doc = run([os.path.join(BIN, "ansible-doc"), "multipath.mptcp.mptcp_endpoint"], cwd=cwd, env=env)
    assert doc.returncode == 0 and "netns" in doc.stdout, doc.stderr
    inventory = str(installed_collection["root"] / "inventories" / "lab")
    for playbook in ("multipath.mptcp.simple", "multipath.mptcp.configure", "multipath.mptcp.check"):
        proc = run([os.path.join(BIN, "ansible-playbook"), "-i", inventory, "--syntax-check", playbook],
                   cwd=cwd, env=env)
        assert proc.returncode == 0, playbook + proc.stdout + proc.stderr
