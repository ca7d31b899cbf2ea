"""The routing lab (seed 001 "routing": the client behind a router that spreads the server's two
paths with an ECMP route): the molecule scenario."""
from lablock import lab_lock
from molecule_helpers import assert_scenario_passed, leftovers, molecule


def test_molecule_routing():
    with lab_lock("routing"):
        rc, out = molecule("test", "-s", "routing")
    assert rc == 0, out[-6000:]
    assert_scenario_passed("routing", out)
    assert leftovers("routing") == []
