"""Helpers of the molecule scenario tests (one test file per lab: test_simple.py, test_routing.py,
test_routing2.py, test_sevpn.py). Each scenario runs molecule's test sequence: destroy, syntax,
create (the lab), converge, idempotence (changed=0), verify (traffic, `ip mptcp monitor`, exact
counts), destroy; simple and sevpn run it on the lab the installed copy of the collection brought
up from nothing just before (molecule_on_lab: create then changes nothing, and molecule's converge,
the second run of configure.yml, must report changed=0), so each of those labs comes up and is
configured once. The assertions read the counts table that verify printed, so a scenario that passed
with other numbers than DESIGN.md's would still fail. Each scenario has a lab of its own (own subnets
and names): `scripts/test.sh` runs the files side by side (pytest-xdist, one file per worker at a
time) and tests/lablock.py keeps two runs of one lab apart.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)

# DESIGN.md, "Expected event counts" (sevpn: CLOSED made exact, see inventories/lab; backup: measured,
# README "Backup paths").
EXPECTED = {
    "simple": {"CREATED": 2, "ESTABLISHED": 2, "ANNOUNCED": 2, "SF_ESTABLISHED": 2, "CLOSED": 2},
    "backup": {"CREATED": 2, "ESTABLISHED": 2, "ANNOUNCED": 2, "SF_ESTABLISHED": 2, "CLOSED": 2},
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


# a PLAY RECAP line, also as molecule frames it ("  │ host : ok=...")
RECAP = re.compile(r"^[\s\u2502]*(?P<host>[\w.-]+)\s+: ok=\d+\s+changed=(?P<changed>\d+)\s", re.M)


def molecule_on_lab(scenario):
    """molecule's steps on the lab that the installed copy of the collection brought up and configured
    just before: syntax, converge, verify. There, converge (its create changes nothing on a lab that is
    up) is the second run of configure.yml, so it is the idempotence check itself: every recap line of
    the step must say changed=0 (assert_scenario_passed). On a lab that is not up (a test run alone),
    the full sequence runs instead: converge from nothing, idempotence, verify.
    (rc, output, second_run): second_run tells which of the two it was; the steps stop at the first
    failing one."""
    second_run = bool(leftovers(scenario))
    outputs = []
    for step in ("syntax", "converge") + (() if second_run else ("idempotence",)) + ("verify",):
        rc, out = molecule(step, "-s", scenario)
        outputs.append(out)
        if step == "converge" and second_run:
            changed = {m.group("host"): int(m.group("changed")) for m in RECAP.finditer(out)}
            outputs.append("\nconverge on the configured lab, changed per host: %s\n" % json.dumps(changed))
        if rc:
            break
    return rc, "".join(outputs), second_run


def assert_scenario_passed(scenario, out, second_run=False):
    """The counts table of the scenario, and idempotence: molecule's idempotence step passed or, when
    molecule's converge was the second run on a configured lab (molecule_on_lab), it changed nothing
    on any host (and listed them)."""
    if second_run:
        m = re.search(r"converge on the configured lab, changed per host: (\{.*\})", out)
        assert m, out[-6000:]
        changed = json.loads(m.group(1))
        hosts = [h for h in changed if h.startswith(scenario + "-")]
        assert hosts and all(n == 0 for n in changed.values()), out[-6000:]
    else:
        assert re.search(r"idempotence.*Executed: Successful", out), out[-6000:]
    seen = counts_seen(out)
    assert seen == {e: (n, n, "ok") for e, n in EXPECTED[scenario].items()}, out[-6000:]
