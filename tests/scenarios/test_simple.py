"""The simple lab (seed 001 "simple": client and server joined by paths A and B): the installed copy
of the collection brings the lab up from nothing with `multipath.mptcp.simple` from a folder
outside the checkout; molecule's steps then run on that lab (converge, the second run,
changes nothing; verify counts again) and destroy it. The tests run in this order and share the lab."""
import pytest

from galaxy_helpers import assert_passed, lab_containers, play
from lablock import lab_lock
from molecule_helpers import EXPECTED, assert_scenario_passed, leftovers, molecule, molecule_on_lab


@pytest.fixture(scope="module")
def simple_lock():
    """The simple lab's lock, held once for every test of this file."""
    with lab_lock("simple"):
        yield


def test_installed_simple_brings_up_the_lab_and_passes(installed_collection, simple_lock):
    assert installed_collection["proc"].returncode == 0
    if lab_containers("simple-"):  # left by an interrupted run
        play(installed_collection, "multipath.mptcp.lab_down", "-e", "lab_group=simple", timeout=600)
    assert lab_containers("simple-") == []
    proc = play(installed_collection, "multipath.mptcp.simple")
    assert_passed(proc, ["simple-client", "simple-server"], EXPECTED["simple"])
    assert "MPTCP check passed on simple-client" in proc.stdout


def test_molecule_simple(simple_lock):
    try:
        rc, out, second_run = molecule_on_lab("simple")
    finally:
        destroy_rc, destroy_out = molecule("destroy", "-s", "simple")
    assert rc == 0, out[-6000:]
    assert_scenario_passed("simple", out, second_run)
    assert destroy_rc == 0, destroy_out[-3000:]
    assert leftovers("simple") == []
