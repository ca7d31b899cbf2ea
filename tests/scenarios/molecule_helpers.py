"""Helpers of the molecule scenario tests (one test file per lab: test_simple.py, test_routing.py,
test_routing2.py, test_sevpn.py). Each scenario runs molecule's test sequence: destroy, syntax,
create (the lab), converge, idempotence (changed=0), verify (traffic, `ip mptcp monitor`, exact
counts), destroy; simple and sevpn run it on the lab the installed copy of the collection brought
up from nothing just before (molecule_on_lab: create then changes nothing, converge and idempotence
both report changed=0), so each of those labs comes up once. The assertions read the counts table that verify printed, so a scenario that passed
with other numbers than DESIGN.md's would still fail. Each scenario has a lab of its own (own subnets
and names): `scripts/test.sh` runs the files side by side (pytest-xdist, one file per worker at a
time) and tests/lablock.py keeps two runs of one lab apart.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)

# DESIGN.md, "Expected event counts" (sevpn: CLOSED made exact, see inventories/lab).
EXPECTED = {
    "simple": {"CREATED": 2, "ESTABLISHED": 2, "ANNOUNCED": 2, "SF_ESTABLISHED": 2, "CLOSED": 2},
    "routing": {"CREATED": 2, "ESTABLISHED": 2, "ANNOUNCED": 2, "SF_ESTABLISHED": 2, "CLOSED": 2},
    "routing2": {"CREATED": 2, "ESTABLISHED": 2, "ANNOUNCED": 0, "SF_ESTABLISHED": 2, "CLOSED": 2},
    "sevpn": {"CREATED": 2, "ESTABLISHED": 2, "ANNOUNCED": 2, "SF_ESTABLISHED": 2, "CLOSED": 2},
}
ROW = re.compile(r"'  (?P<event>[A-Z_]+)\s+(?P<expected>\d+)\s+(?P<seen>\d+)\s+(?P<verdict>ok|MISMATCH)'")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(cmd, timeout=1800):
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""), NO_COLOR="1",
               ANSIBLE_FORCE_COLOR="0", PY_COLORS="0")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    out = ANSI.sub("", proc.stdout + proc.stderr)
    return proc.returncode, out


def counts_seen(output):
    """The last counts table printed: {event: (expected, seen, verdict)}."""
    rows = {}
    for m in ROW.finditer(output):
        if m.group("event") == "CREATED" and rows:
            rows = {}  # a new table starts
        rows[m.group("event")] = (int(m.group("expected")), int(m.group("seen")), m.group("verdict"))
    return rows


def leftovers(scenario):
    """Docker containers and networks of the scenario that still exist."""
    names = []
    for cmd in (["docker", "container", "ls", "--all", "--format", "{{.Names}}"],
                ["docker", "network", "ls", "--format", "{{.Name}}"]):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
        names += [n for n in out if n.startswith(scenario + "-")]
    return names


def molecule(*args):
    return run([os.path.join(BIN, "molecule")] + list(args))


def molecule_on_lab(scenario):
    """`molecule test` without its destroy steps: syntax, converge (create, then converge: on a lab
    that is up, create changes nothing), idempotence, verify. (rc, output) of the steps run; they
    stop at the first failing one."""
    outputs = []
    for step in ("syntax", "converge", "idempotence", "verify"):
        rc, out = molecule(step, "-s", scenario)
        outputs.append(out)
        if rc:
            break
    return rc, "".join(outputs)


def assert_scenario_passed(scenario, out):
    assert re.search(r"idempotence.*Executed: Successful", out), out[-6000:]
    seen = counts_seen(out)
    assert seen == {e: (n, n, "ok") for e, n in EXPECTED[scenario].items()}, out[-6000:]
