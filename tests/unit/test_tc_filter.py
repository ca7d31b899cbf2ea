"""plugins/filter/tc.py: tc units parsed as tc parses them, the tbf bounds of tc and the kernel
(measured on Linux 6.18 / iproute2 6.1, see the comments), the comparison with a root qdisc as
`tc -j qdisc show` prints it, and the checks of router_routes that need no kernel."""
import pytest

from ansible_collections.multipath.mptcp.plugins.filter import tc

ETH0 = {"ifname": "eth0", "mtu": 1500, "link_type": "ether"}
ETH1 = {"ifname": "eth1", "mtu": 1500, "link_type": "ether"}
TUN = {"ifname": "tun0", "mtu": 1400, "link_type": "none"}
LO = {"ifname": "lo", "mtu": 65536, "link_type": "loopback"}
LINKS = [ETH0, ETH1, TUN, LO]
# what the kernel printed after `tc qdisc replace dev eth0 root tbf rate 50mbit burst 62500 latency 50ms`
TBF_50 = {"kind": "tbf", "handle": "8001:", "root": True, "dev": "eth0", "refcnt": 2,
          "options": {"rate": 6250000, "burst": 62500, "lat": 50000}}
NOQUEUE = {"kind": "noqueue", "handle": "0:", "dev": "eth1", "root": True, "refcnt": 2, "options": {}}


@pytest.mark.parametrize("text, bits", [
    ("50mbit", 50e6), ("50Mbit", 50e6), ("1.5gbit", 1.5e9), ("8bit", 8), ("1kibit", 1024), ("2mbps", 16e6),
    (" 10kbit ", 10e3),
])
def test_rates(text, bits):
    assert tc.tc_rate(text) == bits


@pytest.mark.parametrize("text", ["50", "fast", "50 mbit", "-5mbit", "50mbits", "1e6bit", ""])
def test_bad_rates(text):
    with pytest.raises(tc.TcValueError) as e:
        tc.tc_rate(text)
    assert str(e.value).startswith("rate %s is not a tc rate" % text)


@pytest.mark.parametrize("text, size", [("1514", 1514), ("32k", 32768), ("32K", 32768), ("1.5kb", 1536),
                                        ("1m", 1048576), ("1mbit", 131072), ("10b", 10)])
def test_sizes(text, size):
    assert tc.tc_size(text) == size


@pytest.mark.parametrize("text, us", [("50ms", 50000), ("1s", 10 ** 6), ("20usec", 20), ("0.5ms", 500)])
def test_times(text, us):
    assert tc.tc_time(text) == us


def plan(*entries, qdiscs=(), links=LINKS):
    return tc.router_links(list(entries), list(qdiscs), links)


def test_default_burst_is_10ms_of_the_rate_and_at_least_16k_and_a_frame():
    links = plan({"dev": "eth0", "rate": "50mbit"}, {"dev": "eth1", "rate": "1mbit"}, {"dev": "lo", "rate": "1mbit"})
    assert links["problems"] == []
    assert links["links"]["eth0"]["tbf_argv"] == ["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
                                                  "rate", "50000000bit", "burst", "62500", "latency", "50000us"]
    assert links["links"]["eth1"]["burst_bytes"] == 16384
    assert links["links"]["lo"]["burst_bytes"] == 65550  # MTU 65536 + 14


def test_same_tbf_within_rounding_is_left_alone_and_a_difference_is_replaced():
    same = plan({"dev": "eth0", "rate": "50mbit", "latency": "50ms"}, qdiscs=[TBF_50])["links"]["eth0"]
    assert same["action"] == [] and same["root"] == TBF_50
    other = plan({"dev": "eth0", "rate": "40mbit"}, qdiscs=[TBF_50])["links"]["eth0"]
    assert other["action"] == other["tbf_argv"] and "40000000bit" in other["action"]
    assert plan({"dev": "eth0", "state": "absent"}, qdiscs=[TBF_50])["links"]["eth0"]["action"] == [
        "tc", "qdisc", "del", "dev", "eth0", "root"]
    assert plan({"dev": "eth1", "state": "absent"}, qdiscs=[NOQUEUE])["links"]["eth1"]["action"] == []


@pytest.mark.parametrize("entry, words", [
    # tc refuses rates below 1 byte/s ("the rate parameter is mandatory"), after the role had changed forwarding
    ({"dev": "eth0", "rate": "0mbit"}, ["rate 0mbit is below 8bit (1 byte/s)"]),
    ({"dev": "eth0", "rate": "0.0001bit"}, ["rate 0.0001bit is below 8bit"]),
    ({"dev": "eth0", "rate": "7bit"}, ["rate 7bit is below 8bit"]),
    # the kernel takes burst 1b (burst 0, drops every packet: `sch_tbf: burst ... is lower than device mtu`)
    ({"dev": "eth0", "rate": "10mbit", "burst": "1b"},
     ["burst 1b (1 bytes) is smaller than a full frame of dev eth0 (MTU 1500 + header = 1514 bytes)"]),
    ({"dev": "eth0", "rate": "10mbit", "burst": "1513"}, ["give at least 1514"]),
    ({"dev": "tun0", "rate": "10mbit", "burst": "1399"}, ["(MTU 1400 + header = 1400 bytes)"]),
    # tc wraps a bucket longer than 274.9 s of the rate (rate 1kbit burst 40000 showed burst 5640)
    ({"dev": "eth0", "rate": "1kbit", "burst": "40000"}, ["burst 40000 (40000 bytes) takes 320 s to fill", "at most 275 s"]),
    ({"dev": "eth0", "rate": "8bit"}, ["rate 8bit is too low for dev eth0", "at least 48bit"]),
    ({"dev": "eth0", "rate": "10mbit", "burst": "5g"}, ["burst 5g"]),
    # tc wraps the queue limit and the latency to 32 bits (10mbit latency 5000s showed lat 705032704)
    ({"dev": "eth0", "rate": "10mbit", "latency": "5000s"}, ["latency 5000s is outside 1us-4294s"]),
    ({"dev": "eth0", "rate": "10gbit", "latency": "4000s"}, ["latency 4000s at rate 10gbit makes a queue of"]),
    ({"dev": "eth0", "rate": "10mbit", "latency": "0ms"}, ["latency 0ms is outside 1us"]),
    ({"dev": "eth0", "rate": "fast"}, ["rate fast is not a tc rate"]),
    ({"dev": "eth0", "rate": "10mbit", "burst": "lots", "latency": "soon"},
     ["burst lots is not a tc size", "latency soon is not a tc time"]),
    ({"dev": "eth0"}, ["rate is required"]),
    ({"dev": "eth0", "rate": "10mbit", "state": "gone"}, ["state gone is not present or absent"]),
    ({"dev": "eth0", "rate": "10mbit", "loss": "120%"}, ["loss 120% is not a percentage"]),
    ({"dev": "eth0", "rate": "10mbit", "delay": "10"}, ["delay 10 is not a tc time"]),
    ({"dev": "eth0;reboot", "rate": "10mbit"}, ["dev eth0;reboot does not exist (devices: eth0, eth1, lo, tun0)"]),
    ({"dev": "eth0 x", "rate": "10mbit"}, ["dev 'eth0 x' is not a valid interface name"]),
    ({"dev": "a" * 16, "rate": "10mbit"}, ["16 bytes"]),
])
def test_bad_rate_limits_are_named(entry, words):
    problems = plan(entry)["problems"]
    assert problems, entry
    text = "; ".join(problems)
    assert text.startswith("router_rate_limits[0] (dev %s): " % entry["dev"])
    for word in words:
        assert word in text


def test_every_problem_of_every_entry_is_named_and_duplicates_too():
    problems = plan({"dev": "eth0", "rate": "10mbit"}, {"dev": "eth1", "rate": "0.0001bit"},
                    {"dev": "eth0", "rate": "5mbit"}, {"dev": "nosuch0", "rate": "x"})["problems"]
    assert problems == [
        "router_rate_limits[1] (dev eth1): rate 0.0001bit is below 8bit (1 byte/s), the smallest rate tc can set",
        "router_rate_limits[2] (dev eth0): dev eth0 is listed more than once in router_rate_limits (also entry 0)",
        "router_rate_limits[3] (dev nosuch0): dev nosuch0 does not exist (devices: eth0, eth1, lo, tun0)",
        "router_rate_limits[3] (dev nosuch0): rate x is not a tc rate (a number and a unit: bit, kbit, mbit, gbit, "
        "kibit, mibit, bps, kbps, mbps, ...)"]


def test_netem_requests_are_named():
    links = plan({"dev": "eth0", "rate": "10mbit", "delay": "10ms", "loss": "1%"}, {"dev": "eth1", "rate": "1mbit"})
    assert links["netem_requests"] == "eth0 (delay 10ms, loss 1%)"
    assert links["links"]["eth0"]["netem"] is True and links["links"]["eth0"]["action"] == []
    assert links["links"]["eth0"]["netem_argv"][-6:] == ["delay", "10ms", "loss", "1%", "rate", "10mbit"]


# --- router_routes ------------------------------------------------------------------------------
GOOD = {"dest": "10.123.209.0/24", "via": "10.123.200.3"}


@pytest.mark.parametrize("route, words", [
    ({"dest": "10.123.209.0/24", "via": "10.123.200.3", "table": "0"}, ["table '0' is table 0 (unspec)"]),
    ({"dest": "10.123.209.0/24", "via": "10.123.200.3", "table": "255"}, ["table 255 is the kernel's local table"]),
    ({"dest": "10.123.209.0/24", "via": "10.123.200.3", "table": "local"}, ["table local is the kernel's local table"]),
    ({"dest": "10.123.209.0/24", "via": "10.123.200.3", "dev": "eth0;reboot"}, ["dev eth0;reboot does not exist"]),
    ({"dest": "10.123.209.0/24", "via": "10.123.200.3", "dev": "eth0 x"}, ["dev 'eth0 x' is not a valid interface name"]),
    ({"dest": "10.123.209.0/24", "nexthops": [{"via": "10.123.200.3"}, {"via": "10.123.201.3", "dev": "eth9"}]},
     ["dev eth9 does not exist"]),
    ({"dest": "10.123.209.0/24", "via": "fe80::1%eth0"}, ["has a scope id"]),
    ({"dest": "10.123.209.5/24", "via": "10.123.200.3"}, ["host bits set"]),
    ({"dest": "10.123.209.0/24", "via": "10.123.200.3", "table": "100\n"}, []),  # stripped: table 100
])
def test_bad_routes_are_named(route, words):
    problems = tc.router_route_problems([GOOD, route], LINKS)
    if not words:
        assert problems == []
        return
    assert problems and all(p.startswith("router_routes[1] (dest %s): " % route["dest"]) for p in problems), problems
    for word in words:
        assert word in "; ".join(problems)


def test_the_same_route_twice_is_named():
    same = [GOOD, dict(GOOD, via="10.123.201.3"), {"dest": "10.123.209.0/24", "via": "10.123.200.3", "table": "main",
                                                   "metric": 0}, dict(GOOD, metric=5), dict(GOOD, table="254")]
    assert tc.router_route_problems(same, LINKS) == [
        "router_routes[1] (dest 10.123.209.0/24): the same route as router_routes[0] (dest 10.123.209.0/24, table main, "
        "metric 0): list each route once",
        "router_routes[2] (dest 10.123.209.0/24): the same route as router_routes[0] (dest 10.123.209.0/24, table main, "
        "metric 0): list each route once",
        "router_routes[4] (dest 10.123.209.0/24): the same route as router_routes[0] (dest 10.123.209.0/24, table main, "
        "metric 0): list each route once"]


def test_paths():
    assert tc.router_path_problems({"router_sysctl_file": "/etc/sysctl.d/90-x.conf", "router_persist_dir": "/etc/m"}) == []
    problems = tc.router_path_problems({"router_persist_dir": "/etc/my dir", "router_sysctl_file": "x.conf"})
    assert problems == [
        "router_persist_dir '/etc/my dir' is not an absolute path of letters, digits and . _ @ + - / (no '..', "
        "spaces, quotes)",
        "router_sysctl_file 'x.conf' is not an absolute path of letters, digits and . _ @ + - / (no '..', "
        "spaces, quotes)"]
    # what boot_restore refuses in a unit file (systemd expands $ and %), refused here first
    for bad in ("/etc/../root", "/etc/x\ny", "/etc/a;b", "/etc/$HOME", "/etc/100%", "/etc/a=b", "/etc/'q'"):
        assert tc.router_path_problems({"router_persist_dir": bad}), bad


def test_gateways_made_reachable_by_an_earlier_route_of_the_run():
    routes = [
        {"dest": "10.50.0.0/24", "dev": "eth2"},                                   # 0: device route
        {"dest": "10.60.0.0/24", "via": "10.50.0.1"},                              # 1: through it
        {"dest": "10.61.0.0/24", "via": "10.50.0.1", "dev": "eth3"},               # 2: other dev
        {"dest": "10.62.0.0/24", "nexthops": [{"via": "10.123.200.3"}, {"via": "10.50.0.9"}]},  # 3
        {"dest": "10.63.0.0/24", "via": "10.70.0.1"},                              # 4: before its route
        {"dest": "10.70.0.0/24", "dev": "eth2", "table": "100"},                   # 5: table 100
        {"dest": "10.71.0.0/24", "via": "10.70.0.1"},                              # 6: main: not covered
        {"dest": "10.72.0.0/24", "via": "10.70.0.1", "table": "100"},              # 7
        {"dest": "10.80.0.0/24", "dev": "eth2", "state": "absent"},                # 8: removed
        {"dest": "10.81.0.0/24", "via": "10.80.0.1"},                              # 9
    ]
    assert tc.router_gateways_from_run(routes) == [1, 3, 7]
