"""Pure checks of role mptcp_host's validation and planning (plugins/module_utils/mptcp_host.py), of
the restore step filters (plugins/filter/restore_steps.py) and of the restore program's plan check
(roles/boot_restore/files/multipath-mptcp-restore), with a kernel state given as data."""
import importlib.machinery
import importlib.util
import json
import os

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.multipath.mptcp.plugins.filter import restore_steps
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import MptcpError
from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp_host import (
    endpoint_managers,
    parse_listeners,
    parse_sysctl_file,
    parse_units,
    plain_rules,
    plan_host,
    valid_ifname,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROGRAM = os.path.join(ROOT, "roles", "boot_restore", "files", "multipath-mptcp-restore")


def load_program():
    loader = importlib.machinery.SourceFileLoader("multipath_mptcp_restore", PROGRAM)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


KERNEL = {
    "sysctls": {"enabled": 1, "add_addr_timeout": 120, "allow_join_initial_addr_port": 1},
    "links": {"lo": ["127.0.0.1", "::1"], "eth0": ["10.0.1.2"], "eth1": ["10.0.2.2", "2001:db8::5"], "e;x": []},
    "endpoints": [{"address": "10.0.1.2", "id": 9, "port": None, "dev": "eth0", "flags": ["subflow"], "implicit": False}],
    "limits": {"subflows": 1, "add_addr_accepted": 1},
    "listeners": [("0.0.0.0", 22), ("10.0.2.2", 8080)],
    "main4": [{"dst": "default", "gateway": "10.0.1.1", "dev": "eth0"},
              {"dst": "10.0.1.0/24", "dev": "eth0", "protocol": "kernel", "prefsrc": "10.0.1.2"},
              {"dst": "10.0.2.0/24", "dev": "eth1", "protocol": "kernel", "prefsrc": "10.0.2.2"}],
    "main6": [{"dst": "2001:db8::/64", "dev": "eth1", "protocol": "kernel"}, {"dst": "fe80::/64", "dev": "eth1", "protocol": "kernel"}],
    "rules": [{"priority": 1000, "src": "10.0.9.9", "table": "109", "family": "ipv4"}],
    "release": "6.18",
}


def params(**over):
    p = dict(enabled=True, sysctls={}, limits={}, endpoints=[], purge_endpoints=False, rp_filter=2,
             sysctl_file="/etc/sysctl.d/90-multipath-mptcp.conf", policy_routing=False, policy_routes=[],
             policy_table_base=100, policy_rule_priority=1000, persist=True, persist_dir="/etc/multipath-mptcp",
             persist_wait=30)
    p.update(over)
    return p


def test_good_plan_canonical_and_converted():
    plan = plan_host(params(
        sysctls={"add_addr_timeout": "60", "allow_join_initial_addr_port": False},
        limits={"subflows": "2", "add_addr_accepted": 3},
        endpoints=[{"address": "2001:0DB8::5", "dev": "eth1", "flags": ["signal", "signal"], "port": "7000"},
                   {"address": "10.0.2.2", "dev": "eth1", "id": "4", "flags": ["backup", "subflow"]}],
        purge_endpoints="yes", policy_routing=True), KERNEL)
    assert plan["sysctls"] == [{"name": "net.mptcp.enabled", "value": "1"},
                               {"name": "net.mptcp.add_addr_timeout", "value": "60"},
                               {"name": "net.mptcp.allow_join_initial_addr_port", "value": "0"},
                               {"name": "net.ipv4.conf.all.rp_filter", "value": "2"},
                               {"name": "net.ipv4.conf.default.rp_filter", "value": "2"}]
    assert plan["limits"] == {"subflows": 2, "add_addr_accepted": 3}
    assert plan["limits_after"] == {"subflows": 2, "add_addr_accepted": 3}
    assert plan["endpoints"] == [
        {"address": "2001:db8::5", "dev": "eth1", "id": None, "port": 7000, "flags": ["signal"]},
        {"address": "10.0.2.2", "dev": "eth1", "id": 4, "port": None, "flags": ["subflow", "backup"]}]
    assert plan["purge"] == [{"id": 9, "address": "10.0.1.2"}]
    assert plan["policy"] == [
        {"address": "2001:db8::5", "dev": "eth1", "family": "ipv6", "table": "100", "priority": 1000, "gateway": None,
         "connected": ["2001:db8::/64"]},
        {"address": "10.0.2.2", "dev": "eth1", "family": "ipv4", "table": "101", "priority": 1000, "gateway": None,
         "connected": ["10.0.2.0/24"]}]
    assert plan["policy_stale"] == [{"priority": 1000, "src": "10.0.9.9", "table": "109", "family": "ipv4"}]
    assert plan["devices"] == ["eth1"]


SYSCTL_FILE = """# written by ansible.posix.sysctl
net.mptcp.enabled=1
net.ipv4.conf.all.rp_filter = 2
net.ipv4.conf.default.rp_filter=1
;net.mptcp.add_addr_timeout=60
net.ipv4.conf.default.rp_filter=2
"""


def test_sysctl_file_read_as_the_sysctl_module_reads_it():
    assert parse_sysctl_file(SYSCTL_FILE) == {"net.mptcp.enabled": "1", "net.ipv4.conf.all.rp_filter": "2",
                                              "net.ipv4.conf.default.rp_filter": "2"}


@pytest.mark.parametrize("running, file_text, pending", [
    # nothing differs: no sysctl task runs
    ({"net.mptcp.enabled": "1", "net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.default.rp_filter": "2"},
     SYSCTL_FILE, []),
    # the running value differs (the file is right)
    ({"net.mptcp.enabled": "0", "net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.default.rp_filter": "2"},
     SYSCTL_FILE, ["net.mptcp.enabled"]),
    # the file lacks the line (a commented line does not count), the running value is unknown
    ({"net.mptcp.enabled": "1", "net.ipv4.conf.all.rp_filter": "2"},
     SYSCTL_FILE.replace("net.mptcp.enabled=1\n", ""), ["net.mptcp.enabled", "net.ipv4.conf.default.rp_filter"]),
    # no file at all
    ({"net.mptcp.enabled": "1", "net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.default.rp_filter": "2"},
     "", ["net.mptcp.enabled", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"]),
])
def test_only_the_differing_sysctls_are_pending(running, file_text, pending):
    plan = plan_host(params(), dict(KERNEL, sysctl_values=running, sysctl_file=file_text))
    assert [s["name"] for s in plan["sysctls"]] == ["net.mptcp.enabled", "net.ipv4.conf.all.rp_filter",
                                                    "net.ipv4.conf.default.rp_filter"]
    assert [s["name"] for s in plan["sysctls_pending"]] == pending


RUNNING = {"net.mptcp.enabled": "1", "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "1"}


def test_running_values_recorded_and_put_back_from_the_record():
    kernel = dict(KERNEL, sysctl_values=RUNNING)
    plan = plan_host(params(), kernel)
    assert plan["record"] == "/etc/multipath-mptcp/mptcp_host.before.json"
    assert plan["running"] == {"sysctls": RUNNING, "limits": {"subflows": 1, "add_addr_accepted": 1}}
    assert plan["recorded"] is None and plan["restore_sysctls"] == [] and plan["restore_limits"] == {}
    # after the role's run: rp_filter 2 and limits 3/2; the record holds the values before it
    record = json.dumps(plan["running"])
    after = dict(kernel, limits={"subflows": 3, "add_addr_accepted": 2}, record=record,
                 sysctl_values=dict(RUNNING, **{"net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.default.rp_filter": "2"}))
    plan = plan_host(params(), after)
    assert plan["recorded"] == json.loads(record)
    assert plan["restore_sysctls"] == [{"name": "net.ipv4.conf.all.rp_filter", "value": "0"},
                                       {"name": "net.ipv4.conf.default.rp_filter", "value": "1"}]
    assert plan["restore_limits"] == {"subflows": 1, "add_addr_accepted": 1}
    # everything back: nothing left to restore
    plan = plan_host(params(), dict(kernel, record=record))
    assert plan["restore_sysctls"] == [] and plan["restore_limits"] == {}


@pytest.mark.parametrize("record", [
    "not json", "[]", '{"sysctls": {}}', '{"sysctls": {"kernel.hostname": "x"}, "limits": {}}',
    '{"sysctls": {"net.mptcp.enabled": "1\\nnet.ipv4.ip_forward=1"}, "limits": {}}',
    '{"sysctls": {}, "limits": {"subflows": 9}}', '{"sysctls": {}, "limits": {"subflow": 1}}'])
def test_a_record_the_role_did_not_write_is_refused_naming_the_file(record):
    with pytest.raises(MptcpError) as err:
        plan_host(params(), dict(KERNEL, record=record))
    assert "/etc/multipath-mptcp/mptcp_host.before.json is not a record this role wrote" in err.value.msg


@pytest.mark.parametrize("limits, pending", [
    ({}, False), ({"subflows": 1}, False), ({"subflows": "1", "add_addr_accepted": 1}, False),
    ({"subflows": 2}, True), ({"add_addr_accepted": 0}, True)])
def test_limits_pending_only_when_a_given_limit_differs(limits, pending):
    assert plan_host(params(limits=limits), KERNEL)["limits_pending"] is pending


@pytest.mark.parametrize("endpoints, in_place", [
    ([], []),
    # the kernel's endpoint (id 9, dev eth0, subflow) satisfies these, returned as the kernel has it
    ([{"address": "10.0.1.2", "flags": ["subflow"]}], [KERNEL["endpoints"][0]]),
    ([{"address": "10.0.1.2", "dev": "eth0", "id": 9, "flags": ["subflow"]}], [KERNEL["endpoints"][0]]),
    # another flag, id or a second endpoint: the role sets them all
    ([{"address": "10.0.1.2", "flags": ["signal"]}], None),
    ([{"address": "10.0.1.2", "id": 3, "flags": ["subflow"]}], None),
    ([{"address": "10.0.1.2", "flags": ["subflow"]}, {"address": "10.0.2.2", "flags": ["subflow"]}], None),
])
def test_endpoints_in_place_only_when_none_needs_a_change(endpoints, in_place):
    assert plan_host(params(endpoints=endpoints), KERNEL)["endpoints_in_place"] == in_place


@pytest.mark.parametrize("over, words", [
    (dict(limits={"subflows": 9}), "mptcp_host_limits.subflows 9 is outside 0-8"),
    (dict(limits={"subflows": True}), "mptcp_host_limits.subflows True is not a whole number"),
    (dict(endpoints=[{"address": "10.0.2.2", "port": 8080, "flags": ["signal"]}]), "port 8080 is in use"),
    (dict(endpoints=[{"address": "10.0.2.3", "port": 22, "flags": ["signal"]}]), "port 22 is in use"),
    (dict(endpoints=[{"address": "10.0.2.%d" % i} for i in range(8)]), "9 endpoints with the 1 unlisted ones"),
    (dict(endpoints=[{"address": "10.0.2.2", "dev": "e x"}]), "dev 'e x' is not an interface name"),
    (dict(sysctls={"enabled": 0}, endpoints=[{"address": "10.0.2.2"}]), "contradicts mptcp_host_enabled"),
    (dict(enabled=False, limits={"subflows": 1}), "mptcp_host_enabled is false"),
    (dict(policy_routing=True, policy_routes=[{"address": "10.0.2.2", "dev": "eth1", "table": "100\n"}]),
     "table '100\\n' is not a whole number"),
    (dict(policy_routing=True, policy_routes=[{"address": "10.0.2.2", "dev": "eth1", "table": 254}]), "table 254 is outside"),
    (dict(persist_dir="/etc/multipath mptcp"), "mptcp_host_persist_dir '/etc/multipath mptcp'"),
    (dict(sysctl_file="/etc/sysctl.d/x\n.conf"), "mptcp_host_sysctl_file '/etc/sysctl.d/x\\n.conf'"),
])
def test_bad_input_named(over, words):
    with pytest.raises(MptcpError) as error:
        plan_host(params(**over), KERNEL)
    assert words in error.value.msg


def test_own_port_is_not_in_use_and_purge_frees_room():
    kernel = dict(KERNEL, endpoints=KERNEL["endpoints"] + [
        {"address": "10.0.2.2", "id": 3, "port": 8080, "dev": None, "flags": ["signal"], "implicit": False}])
    plan = plan_host(params(endpoints=[{"address": "10.0.2.2", "port": 8080, "flags": ["signal"]}]), kernel)
    assert plan["endpoints"][0]["port"] == 8080
    plan = plan_host(params(endpoints=[{"address": "10.0.2.%d" % i} for i in range(8)], purge_endpoints=True), KERNEL)
    assert len(plan["endpoints"]) == 8


def test_ifnames_as_the_kernel_allows():
    assert all(valid_ifname(n) for n in ("e;x", "e$x", "e'x", "e`x", "e;touch${IFS}X", "a" * 15))
    assert not any(valid_ifname(n) for n in ("", ".", "..", "a" * 16, "e/x", "e:x", "e x", "e\nx", "e\tx", None, 5))


def test_listeners_and_rules_parsing():
    tcp = ("  sl  local_address rem_address   st\n"
           "   0: 0100007F:0016 00000000:0000 0A 0\n"
           "   1: 0202000A:1F90 00000000:0000 01 0\n")
    tcp6 = ("  sl  local_address rem_address st\n"
            "   0: 00000000000000000000000000000000:1B58 00000000000000000000000000000000:0000 0A 0\n"
            "   1: 0000000000000000FFFF00000202000A:1F91 00000000000000000000000000000000:0000 0A 0\n")
    assert parse_listeners(tcp) == [("127.0.0.1", 22)]
    assert parse_listeners(tcp6) == [("::", 7000), ("10.0.2.2", 8081)]
    rules = plain_rules([{"priority": 0, "src": "all", "table": "local"},
                         {"priority": 1000, "src": "2001:0db8::5", "table": "100"},
                         {"priority": 1000, "src": "10.0.0.0", "srclen": 24, "table": "100"}], "ipv6")
    assert rules == [{"priority": 1000, "src": "2001:db8::5", "table": "100", "family": "ipv6"}]


def test_restore_steps_are_argv_from_the_module_builders():
    steps = (restore_steps.mptcp_limits_restore_steps({"subflows": 2, "add_addr_accepted": 1})
             + restore_steps.mptcp_endpoint_restore_steps(
                 [{"address": "10.0.1.2", "dev": "e;touch${IFS}X", "id": 3, "port": None, "flags": ["subflow"]}], True)
             + restore_steps.ip_route_restore_steps([{"dest": "default", "family": "ipv4", "table": "100", "metric": 0,
                                                      "type": "unicast", "nexthops": [{"via": "10.0.1.1", "dev": "e'x", "weight": 1}]}])
             + restore_steps.ip_rule_restore_steps([{"address": "10.0.1.2", "table": "100", "priority": 1000}])
             + restore_steps.argv_restore_steps([["tc", "qdisc", "replace", "dev", "e$x", "root", "tbf", "rate", "1mbit",
                                                  "burst", "16384", "latency", "50ms"]]))
    assert steps == [
        {"argv": ["ip", "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "1"], "on_error": "report"},
        {"argv": ["ip", "mptcp", "endpoint", "flush"], "on_error": "report"},
        {"argv": ["ip", "mptcp", "endpoint", "delete", "id", "3"], "on_error": "ignore"},
        {"argv": ["ip", "mptcp", "endpoint", "add", "10.0.1.2", "dev", "e;touch${IFS}X", "id", "3", "subflow"], "on_error": "report"},
        {"argv": ["ip", "-4", "route", "replace", "default", "table", "100", "metric", "0", "via", "10.0.1.1", "dev", "e'x"],
         "on_error": "report"},
        {"argv": ["ip", "-4", "rule", "del", "priority", "1000", "from", "10.0.1.2/32", "table", "100"], "on_error": "ignore",
         "repeat_max": 64},
        {"argv": ["ip", "-4", "rule", "add", "from", "10.0.1.2/32", "table", "100", "priority", "1000"], "on_error": "report"},
        {"argv": ["tc", "qdisc", "replace", "dev", "e$x", "root", "tbf", "rate", "1mbit", "burst", "16384", "latency", "50ms"],
         "on_error": "report"},
    ]
    assert load_program().check_plan({"version": 1, "steps": steps})["steps"] == steps
    with pytest.raises(AnsibleFilterError):
        restore_steps.mptcp_endpoint_restore_steps([{"address": "10.0.1.2;x", "flags": []}])
    with pytest.raises(AnsibleFilterError):
        restore_steps.argv_restore_steps([["tc", 5]])


@pytest.mark.parametrize("plan, words", [
    ({"version": 1, "steps": [{"argv": ["bash", "-c", "id"]}]}, "'bash' may not be run"),
    ({"version": 1, "steps": [{"argv": ["ip", "a\0b"]}]}, "argv must be a non-empty list of strings"),
    ({"version": 1, "wait_devices": ["a" * 16]}, "wait_devices must be a list of interface names"),
    ({"version": 1, "wait_seconds": True}, "wait_seconds True is not a number"),
    ({"version": 1, "steps": [{"argv": ["ip"], "repeat_max": -1}]}, "repeat_max -1 is not 0-256"),
    ([], "not a version 1 plan"),
])
def test_program_refuses_bad_plans(plan, words):
    program = load_program()
    with pytest.raises(program.PlanError) as error:
        program.check_plan(plan)
    assert words in str(error.value)


def test_program_shows_commands_quoted_for_reading():
    program = load_program()
    assert program.shown(["ip", "link", "show", "dev", "e;x", "100\n", ""]) == 'ip link show dev "e;x" "100\\n" ""'


SHOW = ("Id=NetworkManager.service\nActiveState=active\nUnitFileState=enabled\n\n"
        "Id=mptcpd.service\nActiveState=inactive\nUnitFileState=enabled\n")


@pytest.mark.parametrize("show, nm, found", [
    ("", "", []),  # no systemd output: nothing runs
    (SHOW, "1.42.4\n[main]\n", ["NetworkManager 1.42.4 (NetworkManager.service is active; from 1.40 on",
                                "mptcpd (mptcpd.service is inactive (enabled); its path manager plugins add endpoints)"]),
    (SHOW, "1.38.0\n", ["mptcpd (mptcpd.service is inactive (enabled)"]),  # too old to manage endpoints
    (SHOW, "1.42.4\n[connection-x]\nconnection.mptcp-flags=0x1\n", ["mptcpd"]),  # told not to
    (SHOW.replace("UnitFileState=enabled\n", "UnitFileState=disabled\n"), "weird\n",
     ["NetworkManager unknown version (NetworkManager.service is active"]),
])
def test_other_endpoint_managers(show, nm, found):
    managers = endpoint_managers(parse_units(show), nm)
    assert len(managers) == len(found)
    for text, start in zip(managers, found):
        assert text.startswith(start), text
