"""The four modules against the real kernel, run through ansible itself, inside network namespaces
that the tests create (seed 000's topology: 10.0.0.0/24 "red" and 192.168.0.0/24 "blue" links).

Every change is read back from the kernel with `ip` directly, independently of the modules.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from ansible_cli import HERE, assert_failed_naming, module_task, read_task, run_module, run_tasks, sh

PEER = os.path.join(HERE, "mptcp_peer.py")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


def kernel_endpoints(ns):
    return json.loads(sh("ip", "-j", "-n", ns, "mptcp", "endpoint", "show").stdout or "[]")


def kernel_limits(ns):
    return parse_limits(sh("ip", "-n", ns, "mptcp", "limits", "show").stdout)


def parse_limits(text):
    words = text.split()
    return {k: int(v) for k, v in zip(words[0::2], words[1::2])}


# Several module calls of one test run in one ansible-playbook (an ansible start costs 1-2 s), with
# the kernel read by plain `ip` between them: the reads are tasks of the same run, in order.
def read_endpoints(ns):
    return read_task("ip", "-j", "-n", ns, "mptcp", "endpoint", "show")


def read_limits(ns):
    return read_task("ip", "-n", ns, "mptcp", "limits", "show")


def endpoints_read(result):
    return json.loads(result["stdout"] or "[]")


@pytest.fixture
def pair():
    """Two namespaces (client, server) joined by two veth links, as in seed 000's topo.sh."""
    tag = "%d" % os.getpid()
    c, s = "mod-%s-c" % tag, "mod-%s-s" % tag
    for ns in (c, s):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    for color, net in (("red", "10.0.0"), ("blue", "192.168.0")):
        sh("ip", "link", "add", color + "-c", "netns", c, "type", "veth", "peer", "name", color + "-s", "netns", s)
        sh("ip", "-n", c, "addr", "add", net + ".2/24", "dev", color + "-c")
        sh("ip", "-n", s, "addr", "add", net + ".1/24", "dev", color + "-s")
        sh("ip", "-n", c, "link", "set", color + "-c", "up")
        sh("ip", "-n", s, "link", "set", color + "-s", "up")
    sh("ip", "-n", c, "addr", "add", "2001:db8::2/64", "dev", "red-c", "nodad")
    yield {"client": c, "server": s}
    for ns in (c, s):
        sh("ip", "netns", "del", ns, check=False)


# --- mptcp_endpoint --------------------------------------------------------------------------
def test_endpoint_add_idempotent_check_and_diff(pair, tmp_path):
    ns = pair["server"]
    args = dict(address="192.168.0.1", dev="blue-s", flags=["signal"], netns=ns)
    planned, after_check, done, after_add, again = run_tasks([
        module_task("mptcp_endpoint", check=True, diff=True, **args), read_endpoints(ns),
        module_task("mptcp_endpoint", diff=True, **args), read_endpoints(ns),
        module_task("mptcp_endpoint", **args)], tmp_path / "add.json")

    assert planned["changed"] is True
    assert endpoints_read(after_check) == []  # check mode changed nothing
    assert planned["diff"]["before"] == "" and planned["diff"]["after"] == "192.168.0.1 signal dev blue-s\n"

    assert done["changed"] is True
    assert endpoints_read(after_add) == [{"address": "192.168.0.1", "id": 1, "signal": True, "dev": "blue-s"}]
    assert done["endpoint"] == {"address": "192.168.0.1", "id": 1, "port": None, "dev": "blue-s",
                                "flags": ["signal"], "implicit": False}
    assert done["diff"]["after"] == "192.168.0.1 id 1 signal dev blue-s\n"

    assert again["changed"] is False and again["commands"] == []


def test_endpoint_every_option(pair, tmp_path):
    ns = pair["client"]
    first, second, third, read, canonical = run_tasks([
        module_task("mptcp_endpoint", address="10.0.0.2", id=7, dev="red-c", port=8080, flags=["signal", "backup"], netns=ns),
        module_task("mptcp_endpoint", address="192.168.0.2", dev="blue-c", flags=["subflow", "fullmesh"], netns=ns),
        module_task("mptcp_endpoint", address="2001:DB8::2", dev="red-c", flags=["subflow"], netns=ns),
        read_endpoints(ns),
        # canonical vs. written-out IPv6 is the same endpoint: nothing to do
        module_task("mptcp_endpoint", address="2001:db8:0::2", dev="red-c", flags=["subflow"], netns=ns)],
        tmp_path / "every.json")
    assert first["changed"] is True and second["changed"] is True
    assert third["endpoint"]["address"] == "2001:db8::2"
    table = {e.pop("address"): e for e in endpoints_read(read)}
    assert table["10.0.0.2"] == {"port": 8080, "id": 7, "signal": True, "backup": True, "dev": "red-c"}
    assert table["192.168.0.2"] == {"id": table["192.168.0.2"]["id"], "subflow": True, "fullmesh": True, "dev": "blue-c"}
    assert table["2001:db8::2"] == {"id": table["2001:db8::2"]["id"], "subflow": True, "dev": "red-c"}
    assert len(table) == 3
    assert canonical["changed"] is False and kernel_endpoints(ns) == endpoints_read(read)


def test_endpoint_flag_change_in_place_and_replace(pair, tmp_path):
    ns = pair["client"]
    common = dict(address="192.168.0.2", dev="blue-c", netns=ns)
    added, changed, after_change, replaced, after_replace, planned, after_check = run_tasks([
        module_task("mptcp_endpoint", id=5, flags=["subflow"], **common),
        module_task("mptcp_endpoint", diff=True, id=5, flags=["subflow", "backup"], **common), read_endpoints(ns),
        # signal instead of subflow cannot be changed in place: replaced, same id
        module_task("mptcp_endpoint", id=5, flags=["signal"], **common), read_endpoints(ns),
        # check mode on a change: nothing changes in the kernel
        module_task("mptcp_endpoint", check=True, id=9, flags=["signal"], **common), read_endpoints(ns)],
        tmp_path / "change.json")
    assert added["changed"] is True

    assert changed["changed"] is True and changed["commands"][0][-5:] == ["change", "id", "5", "backup", "nofullmesh"]
    assert endpoints_read(after_change) == [{"address": "192.168.0.2", "id": 5, "subflow": True, "backup": True, "dev": "blue-c"}]
    assert changed["diff"]["before"] == "192.168.0.2 id 5 subflow dev blue-c\n"
    assert changed["diff"]["after"] == "192.168.0.2 id 5 subflow backup dev blue-c\n"

    assert [c[5] for c in replaced["commands"]] == ["delete", "add"]
    assert endpoints_read(after_replace) == [{"address": "192.168.0.2", "id": 5, "signal": True, "dev": "blue-c"}]

    assert planned["changed"] is True and planned["endpoint"]["id"] == 9
    assert endpoints_read(after_check)[0]["id"] == 5


def test_endpoint_absent_by_address_and_id(pair, tmp_path):
    ns = pair["client"]
    results = run_tasks([
        module_task("mptcp_endpoint", address="192.168.0.2", dev="blue-c", flags=["subflow"], netns=ns),
        module_task("mptcp_endpoint", address="10.0.0.2", id=3, dev="red-c", flags=["subflow"], netns=ns),
        module_task("mptcp_endpoint", check=True, address="192.168.0.2", state="absent", netns=ns), read_endpoints(ns),
        module_task("mptcp_endpoint", address="192.168.0.2", state="absent", netns=ns),
        module_task("mptcp_endpoint", id=3, state="absent", netns=ns), read_endpoints(ns),
        module_task("mptcp_endpoint", id=3, state="absent", netns=ns)], tmp_path / "absent.json")
    add1, add2, planned, after_check, by_address, by_id, after_delete, again = results
    assert add1["changed"] is True and add2["changed"] is True
    assert planned["changed"] is True and len(endpoints_read(after_check)) == 2
    assert by_address["changed"] is True and by_id["changed"] is True
    assert endpoints_read(after_delete) == []
    assert again["changed"] is False and kernel_endpoints(ns) == []


ENDPOINT_BAD = [
    (dict(address="192.168.0.2", flags=["signal", "fullmesh"]), ["'signal' and 'fullmesh'"]),
    (dict(address="192.168.0.2", port=4000, flags=["subflow"]), ["port 4000 needs the 'signal' flag"]),
    (dict(address="192.168.0.2", flags=["bogus"]), ["bogus"]),
    (dict(address="192.168.0.2", id=0, flags=["subflow"]), ["id 0 is outside 1-255"]),
    (dict(address="192.168.0.2", id=300, flags=["subflow"]), ["id 300 is outside 1-255"]),
    (dict(address="192.168.0.300", flags=["subflow"]), ["'192.168.0.300' is not an IPv4 or IPv6 address"]),
    (dict(address="192.168.0.2", dev="nosuchdev", flags=["subflow"]), ["dev 'nosuchdev' does not exist"]),
    (dict(address="fe80::1%e;x", flags=["subflow"]), ["address 'fe80::1%e;x' has a scope id"]),
    (dict(address="fe80::1%e x", flags=["subflow"]), ["scope id 'e x' is not a valid interface name"]),
    (dict(address="192.168.0.2", dev="blue-c x", flags=["subflow"]), ["dev 'blue-c x' is not a valid interface name"]),
    (dict(address="192.168.0.2", dev="blue-c;id", flags=["subflow"]), ["dev 'blue-c;id' does not exist"]),
]


def test_endpoint_bad_input_fails_and_changes_nothing(pair, tmp_path):
    """All cases in one ansible-playbook run; the endpoints are read with ip after each one."""
    ns = pair["client"]
    sh("ip", "-n", ns, "mptcp", "endpoint", "add", "10.0.0.2", "dev", "red-c", "subflow")
    before = kernel_endpoints(ns)
    tasks = []
    for args, words in ENDPOINT_BAD:
        tasks += [{"name": "endpoint", "multipath.mptcp.mptcp_endpoint": dict(args, netns=ns)},
                  {"name": "read", "ansible.builtin.raw": "ip -j -n %s mptcp endpoint show" % ns, "changed_when": False}]
    results = run_tasks(tasks, tmp_path / "bad.json")
    for (args, words), result, read in zip(ENDPOINT_BAD, results[0::2], results[1::2]):
        assert_failed_naming(result, *words)
        assert json.loads(read["stdout"] or "[]") == before, args


def test_endpoint_flag_unknown_to_iproute2(pair):
    ns = pair["client"]
    help_text = sh("ip", "mptcp", "help", check=False)
    known = "laminar" in help_text.stdout + help_text.stderr
    r = run_module("mptcp_endpoint", address="192.168.0.2", dev="blue-c", flags=["laminar"], netns=ns)
    if known:
        assert r["changed"] is True and kernel_endpoints(ns)[0]["laminar"] is True
    else:
        assert_failed_naming(r, "laminar", "not supported by this host's iproute2")
        assert kernel_endpoints(ns) == []


def test_missing_netns_and_disabled_mptcp(pair, tmp_path):
    ns = pair["client"]
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.mptcp.enabled=0")
    missing, endpoint, limits, info = run_tasks([
        module_task("mptcp_endpoint", address="10.0.0.2", flags=["subflow"], netns="no-such-ns"),
        module_task("mptcp_endpoint", address="10.0.0.2", flags=["subflow"], netns=ns),
        module_task("mptcp_limits", subflows=1, netns=ns),
        module_task("mptcp_info", netns=ns)], tmp_path / "disabled.json")
    assert_failed_naming(missing, "network namespace 'no-such-ns' does not exist")
    assert_failed_naming(endpoint, "MPTCP is disabled", "net.mptcp.enabled=0")
    assert_failed_naming(limits, "MPTCP is disabled")
    assert info.get("failed") is not True and info["mptcp"]["enabled"] is False
    assert kernel_endpoints(ns) == [] and kernel_limits(ns)["subflows"] != 1


def test_failing_ip_call_reports_command_rc_stderr(pair):
    ns = pair["client"]
    for i in range(1, 9):  # the kernel keeps at most 8 endpoints
        sh("ip", "-n", ns, "mptcp", "endpoint", "add", "10.0.0.%d" % (100 + i))
    r = run_module("mptcp_endpoint", address="10.0.0.2", dev="red-c", flags=["subflow"], netns=ns)
    assert r["failed"] is True and r["rc"] != 0
    assert r["cmd"][-5:] == ["add", "10.0.0.2", "dev", "red-c", "subflow"]
    assert r["stderr"].strip() and r["stderr"].strip() in r["msg"]
    assert len(kernel_endpoints(ns)) == 8


# --- mptcp_limits ----------------------------------------------------------------------------
def test_limits_set_idempotent_check_diff_and_partial(pair, tmp_path):
    ns = pair["client"]
    start = kernel_limits(ns)
    both = dict(subflows=1, add_addr_accepted=1, netns=ns)
    planned, after_check, done, after_set, again, partial, after_partial = run_tasks([
        module_task("mptcp_limits", check=True, diff=True, **both), read_limits(ns),
        module_task("mptcp_limits", **both), read_limits(ns),
        module_task("mptcp_limits", **both),
        module_task("mptcp_limits", subflows=8, netns=ns), read_limits(ns)],  # add_addr_accepted is left alone
        tmp_path / "limits.json")
    assert planned["changed"] is True and parse_limits(after_check["stdout"]) == start
    assert planned["diff"]["after"] == "add_addr_accepted 1 subflows 1\n"

    assert done["changed"] is True and done["limits"]["before"] == {"subflows": start["subflows"], "add_addr_accepted": start["add_addr_accepted"]}
    assert parse_limits(after_set["stdout"]) == {"add_addr_accepted": 1, "subflows": 1}
    assert again["changed"] is False

    assert partial["changed"] is True and parse_limits(after_partial["stdout"]) == {"add_addr_accepted": 1, "subflows": 8}


LIMITS_BAD = [
    (dict(subflows=9), ["subflows 9 is outside 0-8"]),
    (dict(subflows=2, add_addr_accepted=-1), ["add_addr_accepted -1 is outside 0-8"]),
]


def test_limits_bad_input(pair, tmp_path):
    ns = pair["client"]
    before = kernel_limits(ns)
    tasks = []
    for args, words in LIMITS_BAD:
        tasks += [module_task("mptcp_limits", netns=ns, **args), read_limits(ns)]
    results = run_tasks(tasks, tmp_path / "bad.json")
    for (args, words), result, read in zip(LIMITS_BAD, results[0::2], results[1::2]):
        assert_failed_naming(result, *words)
        assert parse_limits(read["stdout"]) == before, args


# --- mptcp_info ------------------------------------------------------------------------------
def test_info_reports_kernel_state(pair):
    ns = pair["server"]
    sh("ip", "-n", ns, "mptcp", "limits", "set", "subflows", "3", "add_addr_accepted", "2")
    sh("ip", "-n", ns, "mptcp", "endpoint", "add", "192.168.0.1", "dev", "blue-s", "signal")
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.mptcp.allow_join_initial_addr_port=0")
    info = run_module("mptcp_info", netns=ns)["mptcp"]
    assert info["available"] is True and info["enabled"] is True
    assert info["sysctls"]["allow_join_initial_addr_port"] == 0 and info["sysctls"]["enabled"] == 1
    assert info["limits"] == {"subflows": 3, "add_addr_accepted": 2}
    assert [(e["address"], e["flags"]) for e in info["endpoints"]] == [("192.168.0.1", ["signal"])]
    assert info["kernel"] == os.uname().release
    assert info["iproute2"] and info["iproute2"] in sh("ip", "-V").stdout
    assert {"signal", "subflow", "backup", "fullmesh"} <= set(info["supports"]["endpoint_flags"])


# --- mptcp_monitor: one MPTCP connection between the namespaces ------------------------------
def connect(pair, extra_subflows, port=4321):
    server = subprocess.Popen(["ip", "netns", "exec", pair["server"], sys.executable, PEER, "server", str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        out = sh("ip", "netns", "exec", pair["client"], sys.executable, PEER, "client", "10.0.0.1", str(port),
                 str(extra_subflows)).stdout
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
    return out.strip()


def configure_seed_000(pair, client_flags):
    """Server announces 192.168.0.1 (signal); the client has subflow endpoints, as in topo.sh."""
    tasks = [module_task("mptcp_limits", subflows=4, add_addr_accepted=2, netns=ns) for ns in (pair["client"], pair["server"])]
    tasks += [module_task("mptcp_endpoint", address="192.168.0.1", dev="blue-s", flags=["signal"], netns=pair["server"]),
              module_task("mptcp_endpoint", address="192.168.0.2", dev="blue-c", flags=client_flags, netns=pair["client"])]
    if "fullmesh" in client_flags:
        tasks.append(module_task("mptcp_endpoint", address="10.0.0.2", dev="red-c", flags=client_flags, netns=pair["client"]))
    return tasks


def capture(pair, configure, extra_subflows, wait_for, tmp_path):
    """Configure (tasks) and start the capture twice in one ansible-playbook run, connect, stop."""
    path = str(tmp_path / "events.log")
    results = run_tasks(configure + [module_task("mptcp_monitor", state="started", path=path, netns=pair["client"])] * 2,
                        tmp_path / "capture.json")
    assert all(r["changed"] is True for r in results[:len(configure)]), results
    started, again = results[-2:]
    assert started["changed"] is True and started["pid"] > 0
    assert again["changed"] is False and again["pid"] == started["pid"]
    assert connect(pair, extra_subflows) == "got 100000 subflows=%d" % extra_subflows
    stopped = run_module("mptcp_monitor", state="stopped", path=path, wait_for=wait_for, timeout=20)
    assert stopped["changed"] is True and stopped["timed_out"] is False
    assert not os.path.exists("/proc/%d" % started["pid"]) or "monitor" not in open(
        "/proc/%d/cmdline" % started["pid"]).read()
    return stopped


def exact(counts, **expected):
    wanted = {name: 0 for name in counts}
    wanted.update(expected)
    assert counts == wanted


def test_monitor_counts_seed_000_default(pair, tmp_path):
    r = capture(pair, configure_seed_000(pair, ["subflow"]), 2, {"CLOSED": 1}, tmp_path)
    exact(r["counts"], CREATED=1, ESTABLISHED=1, ANNOUNCED=1, SF_ESTABLISHED=2, CLOSED=1)
    subflows = sorted((e["saddr"], e["daddr"]) for e in r["events"] if e["event"] == "SF_ESTABLISHED")
    assert subflows == [("192.168.0.2", "10.0.0.1"), ("192.168.0.2", "192.168.0.1")]
    created = r["events"][0]
    assert (created["event"], created["saddr"], created["daddr"], created["dport"]) == ("CREATED", "10.0.0.2", "10.0.0.1", 4321)


def test_monitor_counts_seed_000_fullmesh(pair, tmp_path):
    r = capture(pair, configure_seed_000(pair, ["subflow", "fullmesh"]), 3, {"CLOSED": 1}, tmp_path)
    exact(r["counts"], CREATED=1, ESTABLISHED=1, ANNOUNCED=1, SF_ESTABLISHED=3, CLOSED=1)


def test_monitor_counts_seed_000_no_join_to_initial_address(pair, tmp_path):
    sh("ip", "netns", "exec", pair["server"], "sysctl", "-qw", "net.mptcp.allow_join_initial_addr_port=0")
    r = capture(pair, configure_seed_000(pair, ["subflow", "fullmesh"]), 2, {"CLOSED": 1}, tmp_path)
    exact(r["counts"], CREATED=1, ESTABLISHED=1, ANNOUNCED=1, SF_ESTABLISHED=2, CLOSED=1)
    subflows = sorted((e["saddr"], e["daddr"]) for e in r["events"] if e["event"] == "SF_ESTABLISHED")
    assert subflows == [("10.0.0.2", "192.168.0.1"), ("192.168.0.2", "192.168.0.1")]


def test_monitor_wait_is_bounded_and_check_mode(pair, tmp_path):
    path = str(tmp_path / "idle.log")
    r = run_module("mptcp_monitor", check=True, state="started", path=path, netns=pair["client"])
    assert r["changed"] is True and r["pid"] is None and not os.path.exists(path)
    began = time.time()
    run_module("mptcp_monitor", state="started", path=path, netns=pair["client"])
    overhead = time.time() - began  # starting ansible and the module, no wait (seconds under load)
    began = time.time()
    r = run_module("mptcp_monitor", state="stopped", path=path, wait_for={"CLOSED": 1}, timeout=2)
    # the module's own clock says the wait stopped at its bound; the whole call took about that
    # bound more than a call that does not wait (a wait that never ended would hang the call)
    assert r["timed_out"] is True and 2 <= r["waited"] < 4
    assert time.time() - began < 2 * overhead + 6, (time.time() - began, overhead)
    assert r["counts"]["CLOSED"] == 0 and r["events"] == []


def test_monitor_bad_input(pair, tmp_path):
    path = str(tmp_path / "x.log")
    unknown, not_a_number, no_capture = run_tasks([
        module_task("mptcp_monitor", state="stopped", path=path, wait_for={"CREATD": 1}),
        module_task("mptcp_monitor", state="stopped", path=path, wait_for={"CLOSED": "two"}),
        module_task("mptcp_monitor", state="stopped", path=path)], tmp_path / "bad.json")
    assert_failed_naming(unknown, "unknown event 'CREATD'")
    assert_failed_naming(not_a_number, "'two'")
    assert_failed_naming(no_capture, "no MPTCP monitor capture at " + path)


# --- mptcp_monitor: where it writes and what it signals ----------------------------------------
def monitor_processes(ns):
    """Pids of `ip -n <ns> mptcp monitor` processes (what a start would leave running)."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except (IOError, OSError, ValueError):
            continue
        if pid.isdigit() and b"monitor" in argv and ns.encode() in argv:
            pids.append(int(pid))
    return pids


def test_monitor_refuses_links_foreign_files_and_shared_directories(pair, tmp_path):
    ns = pair["client"]
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    planted = tmp_path / "events.log"
    planted.symlink_to(victim)
    foreign = tmp_path / "foreign.log"
    foreign.write_text("theirs\n")
    os.chown(str(foreign), 65534, 65534)
    pid_link = tmp_path / "p.log.pid"
    pid_link.symlink_to(victim)
    shared = "/tmp/mptcp-it-%d.log" % os.getpid()
    os.symlink(str(victim), shared)
    try:
        cases = [
            (str(planted), [str(planted) + " is a symbolic link: refused"]),
            (str(foreign), [str(foreign) + " belongs to uid 65534", "refused"]),
            (str(tmp_path / "p.log"), [str(pid_link) + " is a symbolic link"]),
            (shared, ["capture directory /tmp is writable by other users (mode 1777)", "path %s is refused" % shared]),
        ]
        tasks = [{"name": "start", "multipath.mptcp.mptcp_monitor": dict(state="started", path=path, netns=ns),
                  "check_mode": check} for path, words in cases for check in (True, False)]
        tasks.append({"name": "stop", "multipath.mptcp.mptcp_monitor": dict(state="stopped", path=str(planted))})
        results = run_tasks(tasks, tmp_path.parent / ("monitor-%d.json" % os.getpid()))
        for (path, words), result in zip([c for c in cases for check in (True, False)], results):
            assert_failed_naming(result, *words)
        assert_failed_naming(results[-1], "is a symbolic link")
    finally:
        os.unlink(shared)
    assert victim.read_text() == "keep\n" and foreign.read_text() == "theirs\n"
    assert os.stat(str(foreign)).st_uid == 65534 and planted.is_symlink() and pid_link.is_symlink()
    assert sorted(os.listdir(str(tmp_path))) == ["events.log", "foreign.log", "p.log.pid", "victim"]
    assert monitor_processes(ns) == []


def test_monitor_pid_file_naming_another_process_gets_no_signal(pair, tmp_path):
    """A pid file names a process that is not the recorded monitor: a sleep, and a real
    `ip mptcp monitor` in the same namespace with the same command line but another start time;
    also a pid file in the old plain format. None of them is signalled."""
    ns = pair["client"]
    path = str(tmp_path / "events.log")
    started = run_module("mptcp_monitor", state="started", path=path, netns=ns)
    with open(path + ".pid") as f:
        record = json.load(f)
    assert record["pid"] == started["pid"] and record["argv"][-4:] == ["-n", ns, "mptcp", "monitor"]
    sleeper = subprocess.Popen(["sleep", "60"])
    twin = subprocess.Popen(record["argv"], stdout=subprocess.DEVNULL)
    try:
        # one run: stop the real monitor, then for each planted pid file a stop and a check-mode start
        plants = [json.dumps(dict(record, pid=sleeper.pid)), json.dumps(dict(record, pid=twin.pid)), str(sleeper.pid)]
        tasks = [module_task("mptcp_monitor", state="stopped", path=path)]
        for planted in plants:
            tasks += [{"name": "plant", "ansible.builtin.copy": {"content": planted, "dest": path + ".pid"}},
                      module_task("mptcp_monitor", state="stopped", path=path),
                      module_task("mptcp_monitor", check=True, state="started", path=path, netns=ns)]
        results = run_tasks(tasks, tmp_path / "plants.json")
        assert results[0]["changed"] is True
        for plant, stopped, started in zip(results[1::3], results[2::3], results[3::3]):
            assert plant["changed"] is True, plant
            assert stopped.get("failed") is not True and stopped["changed"] is False, stopped
            assert "no process was signalled" in " ".join(stopped.get("warnings", []))
            assert started["changed"] is True and started["pid"] is None  # not taken for a running monitor
        assert sleeper.poll() is None and twin.poll() is None
    finally:
        sleeper.kill()
        twin.kill()


def test_monitor_default_directory_is_created_root_only(pair):
    ns = pair["client"]
    path = "/run/multipath-mptcp/monitor/it-%d/events.log" % os.getpid()
    try:
        r = run_module("mptcp_monitor", state="started", path=path, netns=ns)
        assert r["changed"] is True
        for folder in ("/run/multipath-mptcp", "/run/multipath-mptcp/monitor", os.path.dirname(path)):
            st = os.lstat(folder)
            assert (st.st_uid, oct(st.st_mode & 0o777)) == (0, "0o700"), folder
        assert oct(os.stat(path).st_mode & 0o777) == "0o600" and oct(os.stat(path + ".pid").st_mode & 0o777) == "0o600"
        assert run_module("mptcp_monitor", state="stopped", path=path)["changed"] is True
        assert monitor_processes(ns) == [] and not os.path.exists(path + ".pid")
    finally:
        for name in (path, path + ".pid"):
            if os.path.exists(name):
                os.unlink(name)
        os.rmdir(os.path.dirname(path))


def test_netns_given_as_a_path_is_named(pair, tmp_path):
    ns = pair["client"]
    cases = []
    for path in ("/var/run/netns/" + ns, "/proc/1/ns/net"):
        for module, args in (("mptcp_endpoint", dict(address="10.0.0.2", flags=["subflow"])),
                             ("mptcp_limits", dict(subflows=1)), ("mptcp_info", {}),
                             ("mptcp_monitor", dict(state="started", path="/run/multipath-mptcp/monitor/x.log")),
                             ("ip_route", dict(dest="10.9.0.0/24", via="10.0.0.1")),
                             ("ip_rule", dict(src="10.0.0.2", table="100"))):
            cases.append((path, {"name": module, "multipath.mptcp." + module: dict(args, netns=path)}))
    for (path, task), result in zip(cases, run_tasks([task for path, task in cases], tmp_path / "netns.json")):
        assert_failed_naming(result, "netns %r is not a network namespace name" % path, "not a path")
    assert kernel_endpoints(ns) == [] and kernel_limits(ns)["subflows"] != 1
    assert not os.path.exists("/run/multipath-mptcp/monitor/x.log")


def test_ip_rule_tables_and_prefixes_that_reach_ip_are_validated(pair, tmp_path):
    ns = pair["client"]
    before = sh("ip", "-j", "-n", ns, "rule", "show").stdout
    cases = [
        (dict(src="10.0.0.2", table="0"), ["table '0' is table 0 (unspec), which the kernel takes as main"]),
        (dict(src="10.0.0.2", table="unspec"), ["table 'unspec' is table 0"]),
        (dict(src="10.0.0.2", table="nosuchtable"), ["table 'nosuchtable' is not a number 1-4294967295"]),
        (dict(src="10.0.0.2", table="100;reboot"), ["table '100;reboot' is not a number"]),
        (dict(src="fe80::1%e;x", table="100"), ["src 'fe80::1%e;x' has a scope id"]),
    ]
    results = run_tasks([{"name": "rule", "multipath.mptcp.ip_rule": dict(args, netns=ns)} for args, _ in cases],
                        tmp_path / "rules.json")
    for result, (args, words) in zip(results, cases):
        assert_failed_naming(result, *words)
        assert result["commands"] == [], result
    assert sh("ip", "-j", "-n", ns, "rule", "show").stdout == before
