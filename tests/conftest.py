"""Shared pytest set-up: make this checkout importable as ansible_collections.multipath.mptcp; the
galaxy tarball of the checkout (built once per pytest process) and that tarball installed offline
into an empty collections path, with a project folder outside the checkout (tests/quality and the
scenarios' runs of the installed copy use them)."""
import os
import sys

import pytest

from galaxy_helpers import BIN, VENV_PY, VERSION, clean_env, no_network_prefix, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "multipath", "mptcp")):
    raise RuntimeError("run scripts/bootstrap.sh first: it links this checkout as multipath.mptcp")
sys.path.insert(0, COLLECTIONS)


@pytest.fixture(scope="session")
def galaxy_tarball(tmp_path_factory):
    """`ansible-galaxy collection build` of the checkout, into a fresh folder."""
    out = tmp_path_factory.mktemp("galaxy-build")
    proc = run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(out)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarball = out / ("multipath-mptcp-%s.tar.gz" % VERSION)
    assert tarball.is_file(), sorted(os.listdir(str(out)))
    return tarball


@pytest.fixture(scope="session")
def installed_collection(galaxy_tarball, tmp_path_factory):
    """The tarball installed with `ansible-galaxy collection install --offline` (without network
    where possible) into an empty collections path, used from a project folder outside the
    checkout whose ansible.cfg sees only that path and the `ansible` package's collections (where
    the dependencies ansible.posix and community.docker come from)."""
    base = tmp_path_factory.mktemp("galaxy-install")
    collections = base / "collections"
    project = base / "project"
    collections.mkdir()
    project.mkdir()
    site = run([VENV_PY, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    assert os.path.isdir(os.path.join(site, "ansible_collections", "community", "docker")), site
    config = project / "ansible.cfg"
    config.write_text(
        "[defaults]\n"
        "collections_path = %s:%s\n"
        "collections_scan_sys_path = False\n"
        "interpreter_python = auto_silent\n"
        "callback_result_format = yaml\n"
        "host_key_checking = False\n"
        "retry_files_enabled = False\n"
        "forks = 10\n"
        "[connection]\n"
        "pipelining = True\n"
        "[ssh_connection]\n"
        "pipelining = True\n" % (collections, site))
    env = clean_env(config)
    proc = run(no_network_prefix() + [os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline",
                                       "-p", str(collections), str(galaxy_tarball)], cwd=str(project), env=env)
    return {"proc": proc, "collections": collections, "project": project, "config": config, "env": env,
            "root": collections / "ansible_collections" / "multipath" / "mptcp", "site": site}


# The longest test files and folders first (most bring up Docker labs): under `pytest -n N --dist loadfile` the
# files are handed out in collection order, so starting the long ones first shortens the run.
LAB_FIRST = ("tests/proxy/", "tests/scenarios/test_sevpn.py", "tests/softether/test_softether_hardening.py",
             "tests/scenarios/", "tests/integration/test_modules_kernel.py", "tests/integration/test_persistence.py",
             "tests/ssh/", "tests/faults/", "tests/quality/test_collection.py", "tests/examples/")


def pytest_collection_modifyitems(items):
    def rank(item):
        path = item.nodeid.split("::", 1)[0]
        return next((i for i, prefix in enumerate(LAB_FIRST) if path.startswith(prefix)), len(LAB_FIRST))
    items.sort(key=rank)  # stable: the order inside each rank stays as collected
