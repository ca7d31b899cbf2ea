"""The simple lab (seed 001 "simple": client and server joined by paths A and B): the molecule
scenario, then the installed copy of the collection running `multipath.mptcp.simple` against the
same lab from a folder outside the checkout."""
from galaxy_helpers import assert_passed, lab_containers, play
from lablock import lab_lock
from molecule_helpers import assert_scenario_passed, leftovers, molecule


def test_molecule_simple():
    with lab_lock("simple"):
        rc, out = molecule("test", "-s", "simple")
    assert rc == 0, out[-6000:]
    assert_scenario_passed("simple", out)
    assert leftovers("simple") == []


def test_installed_simple_runs_against_the_lab(installed_collection):
    assert installed_collection["proc"].returncode == 0
    with lab_lock("simple"):
        try:
            proc = play(installed_collection, "multipath.mptcp.simple")
            assert_passed(proc, ["simple-client", "simple-server"],
                          {"CREATED": 2, "ESTABLISHED": 2, "ANNOUNCED": 2, "SF_ESTABLISHED": 2, "CLOSED": 2})
            assert "MPTCP check passed on simple-client" in proc.stdout
        finally:
            down = play(installed_collection, "multipath.mptcp.lab_down", "-e", "lab_group=simple", timeout=600)
        assert down.returncode == 0, down.stdout[-4000:] + down.stderr
        assert lab_containers("simple-") == []
