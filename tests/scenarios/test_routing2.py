"""The routing2 lab (seed 001 "routing2": asymmetric, the client opens its second subflow itself,
no ADD_ADDR): the molecule scenario, then the check with wrong expected counts fails with the table."""
import os

from lablock import lab_lock
from molecule_helpers import BIN, EXPECTED, counts_seen, leftovers, molecule, run


def test_molecule_routing2_and_wrong_counts_fail_with_the_table():
    """routing2 passes with ANNOUNCED 0; the same check expecting ANNOUNCED 2 fails and says why."""
    with lab_lock("routing2"):
        try:
            rc, out = molecule("test", "-s", "routing2", "--destroy", "never")
            assert rc == 0, out[-6000:]
            assert counts_seen(out) == {e: (n, n, "ok") for e, n in EXPECTED["routing2"].items()}, out[-6000:]

            wrong = dict(EXPECTED["routing2"], ANNOUNCED=2)
            rc, out = run([os.path.join(BIN, "ansible-playbook"), "playbooks/check.yml",
                           "-e", "scenario=routing2",
                           "-e", '{"mptcp_check_expected": %s}' % str(wrong).replace("'", '"')])
        finally:
            destroy_rc, destroy_out = molecule("destroy", "-s", "routing2")
    assert rc != 0, out[-4000:]
    assert "ANNOUNCED              2     0  MISMATCH" in out, out[-4000:]
    assert "MPTCP check failed on routing2-client" in out, out[-4000:]
    assert destroy_rc == 0, destroy_out[-3000:]
    assert leftovers("routing2") == []
