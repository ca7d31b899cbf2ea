"""The boot restore through systemd, in a systemd lab container (`hard-restore`, network
hard-restore-a 10.131.10.0/24): roles mptcp_host and router install their restore plans and units;
the kernel state is wiped; systemd runs the units as at boot (`systemctl restart`); everything is
read back. The MPTCP endpoints sit on interfaces whose legal names are shell code
(`e;touch${IFS}X`, "e'x$y"): the unit runs nothing but `ip`/`tc`, no file X appears.

Then bad input to the roles' restore part (persist folder, unit name, description, wait, program
path, ...): each fails before any change, the units, plans and program read back byte for byte.
"""
import json

import pytest

from lab_container import changed_tasks, dexec, docker_available, failures, inventory, remove, run_plays, start

pytestmark = pytest.mark.skipif(not docker_available(), reason="needs Docker and the lab image")

NAME = "hard-restore"
NETWORKS = [("hard-restore-a", "10.131.10.0/24", "10.131.10.2")]
EVIL = "e;touch${IFS}X"
QUOTE = "e'x$y"
UNITS = ["multipath-mptcp-host.service", "multipath-mptcp-router.service"]

MPTCP_HOST = {
    "mptcp_host_limits": {"subflows": 3, "add_addr_accepted": 2},
    "mptcp_host_endpoints": [
        {"address": "10.131.11.2", "dev": EVIL, "flags": ["signal"], "port": 7201},
        {"address": "10.131.12.2", "dev": QUOTE, "id": 7, "flags": ["subflow", "backup"]},
    ],
    "mptcp_host_purge_endpoints": True,
    "mptcp_host_policy_routing": True,
    "mptcp_host_policy_routes": [{"address": "10.131.12.2", "dev": QUOTE, "gateway": "10.131.12.1"}],
}
ROUTER = {
    "router_ip_forward": True,
    "router_routes": [{"dest": "10.131.99.0/24", "via": "10.131.10.1", "metric": 5}],
    "router_rate_limits": [{"dev": "eth0", "rate": "20mbit"}],
}
FILES = ["/etc/systemd/system/multipath-mptcp-host.service", "/etc/systemd/system/multipath-mptcp-router.service",
         "/etc/multipath-mptcp/mptcp_host.json", "/etc/multipath-mptcp/router.json",
         "/usr/local/libexec/multipath-mptcp-restore"]


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    start(NAME, NETWORKS)
    try:
        script = ("ip link add \"$1\" type veth peer name \"$2\" && ip link set \"$1\" up && ip link set \"$2\" up"
                  " && ip addr add 10.131.11.2/24 dev \"$1\" && ip addr add 10.131.12.2/24 dev \"$2\"")
        dexec(NAME, "sh", "-c", script, "sh", EVIL, QUOTE)
        yield inventory(tmp_path_factory.mktemp("hard-restore") / "inventory.json", NAME)
    finally:
        remove(NAME, NETWORKS)


def state():
    def j(*cmd):
        return json.loads(dexec(NAME, *cmd).stdout or "[]")
    return {
        "limits": dexec(NAME, "ip", "mptcp", "limits", "show").stdout,
        "endpoints": j("ip", "-j", "mptcp", "endpoint", "show"),
        "rules": j("ip", "-j", "rule", "show"),
        "routes": sorted((r for r in j("ip", "-j", "route", "show", "table", "all")
                          if r.get("table") != "local" and r.get("protocol") != "kernel"), key=json.dumps),
        "qdisc": [q["kind"] for q in j("tc", "-j", "qdisc", "show", "dev", "eth0") if q.get("root")],
    }


def wipe():
    dexec(NAME, "sh", "-c", "ip mptcp endpoint flush; ip mptcp limits set subflows 0 add_addr_accepted 0;"
                            " ip rule del priority 1000; ip route flush table 100; ip route del 10.131.99.0/24;"
                            " tc qdisc del dev eth0 root", check=False)


def test_units_restore_through_systemd_and_run_nothing_but_ip(host, tmp_path):
    plays = [{"name": "configure", "hosts": NAME, "gather_facts": False, "roles": [
        {"role": "multipath.mptcp.mptcp_host", "vars": MPTCP_HOST}, {"role": "multipath.mptcp.router", "vars": ROUTER}]}]
    out = run_plays(plays, tmp_path / "apply.json", host)
    assert out["stats"][NAME]["failures"] == 0, failures(out)
    configured = state()
    assert len(configured["endpoints"]) == 2 and configured["qdisc"] == ["tbf"]

    plan = json.loads(dexec(NAME, "cat", "/etc/multipath-mptcp/mptcp_host.json").stdout)
    assert plan["wait_devices"] == [EVIL, QUOTE]
    assert all(step["argv"][0] == "ip" for step in plan["steps"])
    router_plan = json.loads(dexec(NAME, "cat", "/etc/multipath-mptcp/router.json").stdout)
    assert [s["argv"][0] for s in router_plan["steps"]] == ["ip", "tc"]
    unit = dexec(NAME, "cat", "/etc/systemd/system/multipath-mptcp-host.service").stdout
    assert ("ExecStart=/usr/local/libexec/multipath-mptcp-restore /etc/multipath-mptcp/mptcp_host.json\n" in unit)
    assert "TimeoutStartSec=%d\n" % (30 + 90 + 2 * len(plan["steps"])) in unit
    shown = dexec(NAME, "systemctl", "show", "-p", "TimeoutStartUSec", "-p", "UnitFileState", UNITS[0]).stdout.splitlines()
    assert sorted(shown) == ["TimeoutStartUSec=%dmin %ds" % divmod(30 + 90 + 2 * len(plan["steps"]), 60), "UnitFileState=enabled"]

    wipe()
    assert state() != configured
    dexec(NAME, "systemctl", "restart", *UNITS)
    for unit_name in UNITS:
        result = dexec(NAME, "systemctl", "show", "-p", "Result", "-p", "ExecMainStatus", unit_name).stdout.split()
        assert sorted(result) == ["ExecMainStatus=0", "Result=success"], (unit_name, result)
    assert state() == configured
    assert dexec(NAME, "sh", "-c", "ls / /etc/multipath-mptcp | grep -c '^X$'", check=False).stdout.strip() == "0"
    journal = dexec(NAME, "journalctl", "-o", "cat", "-u", UNITS[0], "-u", UNITS[1]).stdout
    ran = [line.split(": run: ", 1)[1] for line in journal.splitlines() if ": run: " in line]
    assert ran and all(c.startswith("ip ") or c.startswith("tc ") for c in ran), ran
    assert 'ip mptcp endpoint add 10.131.11.2 dev "e;touch${IFS}X" id 1 port 7201 signal' in ran

    again = run_plays(plays, tmp_path / "again.json", host)
    assert again["stats"][NAME]["failures"] == 0, failures(again)
    assert changed_tasks(again["plays"][0], NAME) == []


BAD = [
    # role mptcp_host: its restore part
    ("mptcp_host", {"mptcp_host_persist_dir": "/etc/multipath mptcp"}, "mptcp_host_persist_dir '/etc/multipath mptcp'"),
    ("mptcp_host", {"mptcp_host_persist_dir": "/etc/x\nExecStartPre=/bin/id"}, "mptcp_host_persist_dir '/etc/x\\nExecStartPre"),
    ("mptcp_host", {"mptcp_host_persist_wait": -1}, "mptcp_host_persist_wait -1 is outside 0-3600"),
    ("mptcp_host", {"mptcp_host_sysctl_file": "/etc/sysctl.d/a b.conf"}, "mptcp_host_sysctl_file '/etc/sysctl.d/a b.conf'"),
    ("mptcp_host", {"mptcp_host_policy_routes": [{"address": "10.131.12.2", "dev": QUOTE, "table": "100\n"}]},
     "table '100\\n' is not a whole number"),
    ("mptcp_host", {"mptcp_host_endpoints": [{"address": "10.131.11.2", "dev": "e;touch${IFS}Y", "flags": ["subflow"]}]},
     "dev 'e;touch${IFS}Y' does not exist"),
    # role boot_restore itself
    ("boot_restore", {"boot_restore_unit": "x.service\nExecStartPre=/bin/id"}, "unit \"x.service\\nExecStartPre=/bin/id\""),
    ("boot_restore", {"boot_restore_unit": "../x.service"}, "unit \"../x.service\""),
    ("boot_restore", {"boot_restore_plan": "/etc/multipath mptcp/x.json"}, "plan \"/etc/multipath mptcp/x.json\""),
    ("boot_restore", {"boot_restore_plan": "relative.json"}, "plan \"relative.json\""),
    ("boot_restore", {"boot_restore_program": "/usr/local/libexec/x;id"}, "program \"/usr/local/libexec/x;id\""),
    ("boot_restore", {"boot_restore_description": "x\nExecStartPre=/bin/id"}, "description \"x\\nExecStartPre=/bin/id\""),
    ("boot_restore", {"boot_restore_wait": 100000}, "wait 100000"),
    ("boot_restore", {"boot_restore_sysctl_file": "/etc/a b.conf"}, "sysctl file \"/etc/a b.conf\""),
]


# the restore files (sha256) and the kernel state they restore
READ_BACK = ('for f in "$@"; do sha256sum "$f" 2>/dev/null || echo "missing $f"; done;'
             ' ip mptcp endpoint show; ip mptcp limits show; ip rule show; ip route show table all')


def test_bad_restore_input_changes_nothing(host, tmp_path):
    tasks = []
    for index, (role, variables, _) in enumerate(BAD):
        if role == "mptcp_host":
            variables = dict(MPTCP_HOST, **variables)
        else:
            variables = dict({"boot_restore_unit": "multipath-mptcp-host.service",
                              "boot_restore_plan": "/etc/multipath-mptcp/mptcp_host.json",
                              "boot_restore_steps": [{"argv": ["ip", "link", "show"], "on_error": "report"}]}, **variables)
        tasks += [
            {"name": "case %d" % index, "block": [
                {"name": "run", "ansible.builtin.include_role": {"name": "multipath.mptcp." + role}, "vars": variables},
                {"name": "not failed", "ansible.builtin.set_fact": {"msgs": "{{ msgs + ['NOT FAILED'] }}"}},
            ], "rescue": [{"name": "record", "ansible.builtin.set_fact": {"msgs": "{{ msgs + [ansible_failed_result.msg] }}"}}]},
            {"name": "read back", "ansible.builtin.command": {"argv": ["sh", "-c", READ_BACK, "sh"] + FILES},
             "changed_when": False, "register": "read"},
            {"name": "keep", "ansible.builtin.set_fact": {"reads": "{{ reads + [read.stdout] }}"}},
        ]
    tasks.append({"name": "results", "ansible.builtin.debug": {"msg": {"msgs": "{{ msgs }}", "reads": "{{ reads }}"}}})
    before = dexec(NAME, "sh", "-c", READ_BACK, "sh", *FILES).stdout
    assert "missing" not in before  # the first test installed everything
    out = run_plays([{"name": "bad", "hosts": NAME, "gather_facts": False, "vars": {"msgs": [], "reads": []}, "tasks": tasks}],
                    tmp_path / "bad.json", host)
    results = out["plays"][0]["tasks"][-1]["hosts"][NAME]["msg"]
    assert len(results["msgs"]) == len(BAD) == len(results["reads"]), results
    problems = []
    for index, ((role, variables, words), msg, read) in enumerate(zip(BAD, results["msgs"], results["reads"])):
        if words not in msg or "Nothing was changed" not in msg:
            problems.append("case %d %r: %r not in %r" % (index, variables, words, msg))
        if read.strip() != before.strip():
            problems.append("case %d %r changed:\n%s\n%s" % (index, variables, before, read))
    assert not problems, "\n".join(problems)


def test_plan_refused_by_the_program_changes_nothing(host, tmp_path):
    """boot_restore_unit checks the plan with the program's --check before it is put in place: a plan
    the program refuses fails the task, and the plan, the unit and their state stay as they were."""
    before = dexec(NAME, "sh", "-c", READ_BACK, "sh", *FILES).stdout
    task = {"name": "bad plan", "multipath.mptcp.boot_restore_unit": {
        "unit": UNITS[0], "unit_content": "[Unit]\nDescription=x\n",
        "plan": "/etc/multipath-mptcp/mptcp_host.json", "plan_content": '{"version": 1, "steps": "x"}\n',
        "program": "/usr/local/libexec/multipath-mptcp-restore",
        "program_content": dexec(NAME, "cat", "/usr/local/libexec/multipath-mptcp-restore").stdout}}
    out = run_plays([{"name": "bad plan", "hosts": NAME, "gather_facts": False, "tasks": [task]}],
                    tmp_path / "plan.json", host)
    result = out["plays"][0]["tasks"][0]["hosts"][NAME]
    assert result.get("failed") and "the restore program refused the plan for /etc/multipath-mptcp/mptcp_host.json" \
        in result["msg"], result
    assert dexec(NAME, "sh", "-c", READ_BACK, "sh", *FILES).stdout == before
    assert dexec(NAME, "sh", "-c", "ls -A /etc/multipath-mptcp | grep -c '^[.]check'", check=False).stdout.strip() == "0"
