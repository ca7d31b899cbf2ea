"""mptcp_host and other programs that manage MPTCP endpoints, in a systemd lab container.

The container runs a stand-in `mptcpd.service` (a real systemd unit, active and enabled, whose
program only sleeps: Debian's mptcpd is not in the lab image). With the default
mptcp_host_endpoint_manager_conflict=fail the role stops naming mptcpd, with nothing changed (limits,
endpoints, sysctl file); with takeover it stops and disables the unit and configures; a later run in
fail mode then passes with nothing to do. Container networks: 10.124.12.0/24 (mptcp-conflict-a).
"""
import pytest

from lab_container import changed_tasks, dexec, docker_available, failures, inventory, remove, run_plays, start

pytestmark = pytest.mark.skipif(not docker_available(), reason="needs Docker and the lab image")

NAME = "mptcp-conflict-host"
NETWORKS = [("mptcp-conflict-a", "10.124.12.0/24", "10.124.12.2")]
UNIT = "[Unit]\nDescription=stand-in for mptcpd (test)\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
ROLE_VARS = {"mptcp_host_persist": False, "mptcp_host_limits": {"subflows": 4, "add_addr_accepted": 3},
             "mptcp_host_endpoints": [{"address": "10.124.12.2", "dev": "eth0", "flags": ["signal"]}]}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    start(NAME, NETWORKS)
    try:
        dexec(NAME, "sh", "-c", "printf '%s' \"$0\" > /etc/systemd/system/mptcpd.service && systemctl daemon-reload"
                                " && systemctl enable --now mptcpd.service", UNIT)
        yield inventory(tmp_path_factory.mktemp("conflict") / "inventory.json", NAME)
    finally:
        remove(NAME, NETWORKS)


def kernel():
    return (dexec(NAME, "ip", "mptcp", "limits", "show").stdout, dexec(NAME, "ip", "mptcp", "endpoint", "show").stdout,
            dexec(NAME, "test", "-e", "/etc/sysctl.d/90-multipath-mptcp.conf", check=False).returncode)


def test_fail_then_takeover_then_nothing_to_do(host, tmp_path):
    assert dexec(NAME, "systemctl", "is-active", "mptcpd.service").stdout.strip() == "active"
    before = kernel()
    plays = [{"name": "fail (default)", "hosts": NAME, "gather_facts": False, "vars": {"msgs": []}, "tasks": [
        {"name": "role", "block": [{"name": "run", "ansible.builtin.include_role": {"name": "multipath.mptcp.mptcp_host"},
                                    "vars": ROLE_VARS}],
         "rescue": [{"name": "record", "ansible.builtin.set_fact": {"msgs": "{{ [ansible_failed_result.msg] }}"}}]},
        {"name": "messages", "ansible.builtin.debug": {"var": "msgs"}}]}]
    out = run_plays(plays, tmp_path / "fail.json", host)
    (msg,) = out["plays"][0]["tasks"][-1]["hosts"][NAME]["msgs"]
    assert "mptcpd (mptcpd.service is active (enabled)" in msg and "Nothing was changed" in msg, msg
    assert "mptcp_host_endpoint_manager_conflict: takeover" in msg
    assert kernel() == before
    assert before[2] != 0  # no sysctl file was written

    takeover = [{"name": "takeover", "hosts": NAME, "gather_facts": False, "roles": [
        {"role": "multipath.mptcp.mptcp_host", "vars": dict(ROLE_VARS, mptcp_host_endpoint_manager_conflict="takeover")}]}]
    out = run_plays(takeover, tmp_path / "takeover.json", host)
    assert out["stats"][NAME]["failures"] == 0, failures(out)
    assert "Stop and disable mptcpd" in changed_tasks(out["plays"][0], NAME)
    shown = dexec(NAME, "systemctl", "show", "-p", "ActiveState", "-p", "UnitFileState", "mptcpd.service").stdout.split()
    assert sorted(shown) == ["ActiveState=inactive", "UnitFileState=disabled"]
    limits, endpoints, sysctl_missing = kernel()
    assert limits.split() == ["add_addr_accepted", "3", "subflows", "4"]
    assert endpoints.split()[:2] == ["10.124.12.2", "id"] and "signal" in endpoints

    again = [{"name": "fail mode again", "hosts": NAME, "gather_facts": False, "roles": [
        {"role": "multipath.mptcp.mptcp_host", "vars": ROLE_VARS}]}]
    out = run_plays(again, tmp_path / "again.json", host)
    assert out["stats"][NAME]["failures"] == 0, failures(out)
    assert changed_tasks(out["plays"][0], NAME) == []
