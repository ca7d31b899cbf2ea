"""The hand-written baseline of the provisioning benchmark: seed 001's `simple` and `sevpn` done the
way a test suite's shell script does them, with nothing but the docker CLI, `ip mptcp` commands, the
collection's own proxy program (roles/mptcp_proxy/files/mptcp-proxy), iperf3 and exact counting
of `ip mptcp monitor` events. Same image and container settings as the lab role.

    .venv/bin/python bench/baseline.py simple|sevpn [--keep]     (root, Docker, the lab image)

From no lab to verified counts, timed; then the lab is removed (not timed). It prints one JSON
line: {"scenario", "seconds", "counts", "teardown_s"} and exits 1 when a count is not the expected
one (CREATED 2, ESTABLISHED 2, ANNOUNCED 2, SF_ESTABLISHED 2, CLOSED 2: monitor on the client,
iperf3 through the proxies makes two MPTCP connections).

sevpn: SoftEther set up with vpncmd (hub, user, a tap bridged to the real-server LAN, a client
account of 2 TCP connections without QoS and UDP through the client proxy), the session opened
inside the capture on the client proxy, 5 pings and 2 s of iperf3 through the VPN, the session
closed: the same counts, and 5/5 replies.

Its own names and subnets: containers and networks bench-simple-* (10.141.0.0/24 path A,
10.141.1.0/24 path B) and bench-sevpn-* (10.141.10-14.0/24); nothing of inventories/lab. Every wait is bounded and waits for the
thing itself (a listening port, the monitor's subscription, the CLOSED events), never for a fixed
time. The processes are plain `docker exec -d` ones: the baseline does not wait for systemd.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROXY = os.path.join(ROOT, "roles", "mptcp_proxy", "files", "mptcp-proxy")
IMAGE = "multipath-mptcp-lab:latest"
# As roles/lab: systemd as PID 1 with these capabilities, cgroups, tmpfs and stop signal.
RUN_OPTS = ["--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN", "--cgroupns", "host",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
            "--stop-signal", "SIGRTMIN+3", "--label", "multipath.mptcp.bench=baseline"]
EXPECTED = {"CREATED": 2, "ESTABLISHED": 2, "ANNOUNCED": 2, "SF_ESTABLISHED": 2, "CLOSED": 2}
# "[       CREATED] token=..." (iproute2 6.1 prints listener events as "[UNKNOWN 15]"/"16")
EVENT = re.compile(r"^\[\s*([A-Z_]+(?: \d+)?)\]")
MONITOR_LOG = "/run/bench-monitor.log"

SIMPLE = {
    "networks": [("bench-simple-a", "10.141.0.0/24"), ("bench-simple-b", "10.141.1.0/24")],
    "containers": [("bench-simple-client", [("bench-simple-a", "10.141.0.3"),
                                            ("bench-simple-b", "10.141.1.3")]),
                   ("bench-simple-server", [("bench-simple-a", "10.141.0.2"),
                                            ("bench-simple-b", "10.141.1.2")])],
}
# inventories/lab's sevpn on other names and subnets: client-vpn -- client LAN -- client-proxy
# == paths A, B == server-proxy -- server LAN -- server-vpn -- srv LAN -- server-srv
SEVPN = {
    "networks": [("bench-sevpn-a", "10.141.10.0/24"), ("bench-sevpn-b", "10.141.11.0/24"),
                 ("bench-sevpn-client-lan", "10.141.12.0/24"),
                 ("bench-sevpn-server-lan", "10.141.13.0/24"),
                 ("bench-sevpn-srv-lan", "10.141.14.0/24")],
    "containers": [
        ("bench-sevpn-client-vpn", [("bench-sevpn-client-lan", "10.141.12.3")]),
        ("bench-sevpn-client-proxy", [("bench-sevpn-a", "10.141.10.3"),
                                      ("bench-sevpn-b", "10.141.11.3"),
                                      ("bench-sevpn-client-lan", "10.141.12.2")]),
        ("bench-sevpn-server-proxy", [("bench-sevpn-a", "10.141.10.2"),
                                      ("bench-sevpn-b", "10.141.11.2"),
                                      ("bench-sevpn-server-lan", "10.141.13.2")]),
        ("bench-sevpn-server-vpn", [("bench-sevpn-server-lan", "10.141.13.3"),
                                    ("bench-sevpn-srv-lan", "10.141.14.2")]),
        ("bench-sevpn-server-srv", [("bench-sevpn-srv-lan", "10.141.14.3")])],
    "tun": ("bench-sevpn-client-vpn", "bench-sevpn-server-vpn"),
}
VPN_PASSWORD = "bench-only-password"   # throw-away containers of this run

def run(*argv, check=True, timeout=60, **kw):
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise RuntimeError("%s: rc %d: %s" % (" ".join(argv), res.returncode,
                                              (res.stderr or res.stdout).strip()))
    return res.stdout


def dexec(container, *argv, **kw):
    return run("docker", "exec", container, *argv, **kw)


def wait(what, predicate, timeout, step=0.05):
    """Call predicate until it is true; fail naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError("%s: not within %s s" % (what, timeout))
        time.sleep(step)


def counts(text):
    """Exact event name -> count of a monitor capture (CREATED is not LISTENER_CREATED)."""
    seen = collections.Counter()
    for line in text.splitlines():
        m = EVENT.match(line.strip())
        if m:
            seen[m.group(1)] += 1
    return dict(seen)


def listening(container, port, timeout=10):
    wait("port %d in %s" % (port, container),
         lambda: dexec(container, "ss", "-Hltn", "sport = :%d" % port).strip(), timeout)


def teardown(topology):
    names = [name for name, _addrs in topology["containers"]]
    run("docker", "rm", "-f", *names, check=False)
    run("docker", "network", "rm", *[n for n, _s in topology["networks"]], check=False)


def create(topology):
    """docker network create + docker run: eth0 at start, the other networks connected next, in
    order (as the lab role); tun=True passes /dev/net/tun (SoftEther)."""
    for name, subnet in topology["networks"]:
        run("docker", "network", "create", "--subnet", subnet, name)
    for name, nets in topology["containers"]:
        tun = ["--device", "/dev/net/tun"] if name in topology.get("tun", ()) else []
        run("docker", "run", "-d", "--name", name, "--hostname", name, *RUN_OPTS, *tun,
            "--network", nets[0][0], "--ip", nets[0][1], IMAGE)
        for net, addr in nets[1:]:
            run("docker", "network", "connect", "--ip", addr, net, name)


def start_monitor(host):
    """ip mptcp monitor in the background on host; returns once it is subscribed: it reports an
    MPTCP listener opened and closed after its start (LISTENER_CREATED, "UNKNOWN 15" on
    iproute2 6.1). Returns the capture's line count at that point."""
    run("docker", "exec", "-d", host, "sh", "-c",
        "echo $$ > %s.pid; exec ip mptcp monitor > %s" % (MONITOR_LOG, MONITOR_LOG))
    probe = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262); "
             "s.bind(('127.0.0.1', 0)); s.listen(); s.close()")

    def subscribed():
        dexec(host, "python3", "-c", probe)
        capture = dexec(host, "cat", MONITOR_LOG, check=False)
        return "UNKNOWN 15" in capture or "LISTENER_CREATED" in capture
    wait("monitor subscribed", subscribed, 10, step=0.1)
    return len(dexec(host, "cat", MONITOR_LOG).splitlines())


def stop_monitor(host, mark):
    """Wait (bounded) for the expected CLOSED events, stop the monitor, return the exact counts."""
    def events():
        return counts("\n".join(dexec(host, "cat", MONITOR_LOG).splitlines()[mark:]))
    wait("CLOSED x%d" % EXPECTED["CLOSED"],
         lambda: events().get("CLOSED", 0) >= EXPECTED["CLOSED"], 30)
    dexec(host, "sh", "-c", 'kill "$(cat %s.pid)"' % MONITOR_LOG)
    seen = events()
    return {k: seen.get(k, 0) for k in EXPECTED}


def proxy(host, mode, port, remote, listen):
    run("docker", "cp", PROXY, "%s:/usr/local/bin/mptcp-proxy" % host)
    run("docker", "exec", "-d", host, "/usr/local/bin/mptcp-proxy", "--mode", mode,
        "--port", str(port), "--remote", remote, "--listen", listen)


def vpncmd(host, mode, *command, hub=None):
    """One vpncmd command (stdin empty, bounded: on a prompt vpncmd would spin for ever)."""
    admin = ["/ADMINHUB:" + hub] if hub else []
    return dexec(host, "timeout", "20", "vpncmd", "localhost", "/" + mode, *admin, "/CMD",
                 *command)


def simple(keep=False):
    topo = SIMPLE
    teardown(topo)  # a run that was interrupted
    start = time.monotonic()
    create(topo)
    client, server = "bench-simple-client", "bench-simple-server"
    # MPTCP: the server signals its path B address, the client accepts one ADD_ADDR
    dexec(server, "ip", "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "0")
    dexec(server, "ip", "mptcp", "endpoint", "add", "10.141.1.2", "dev", "eth1", "signal")
    dexec(client, "ip", "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "1")
    # iperf3 server, server proxy (MPTCP in, TCP out), client proxy (TCP in, MPTCP out): plain
    # background processes (docker exec -d), as a test suite's script starts them
    run("docker", "exec", "-d", server, "iperf3", "-s", "-p", "5201")
    proxy(server, "server", 4444, "127.0.0.1:5201", "0.0.0.0")
    proxy(client, "client", 5555, "10.141.0.2:4444", "127.0.0.1")
    listening(server, 5201)
    listening(server, 4444)
    listening(client, 5555)
    mark = start_monitor(client)
    dexec(client, "iperf3", "-c", "127.0.0.1", "-p", "5555", "-t", "2")
    got = stop_monitor(client, mark)
    return finish("simple", topo, start, got, keep)


def sevpn(keep=False):
    """The VPN session (2 TCP connections, no QoS, no UDP) opened inside the capture on the
    client proxy, a ping and 2 s of iperf3 through the VPN, the session closed: 2/2/2/2/2."""
    topo = SEVPN
    teardown(topo)
    start = time.monotonic()
    create(topo)
    cvpn, cproxy, sproxy, svpn, srv = [name for name, _n in topo["containers"]]
    dexec(sproxy, "ip", "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "0")
    dexec(sproxy, "ip", "mptcp", "endpoint", "add", "10.141.11.2", "dev", "eth1", "signal")
    dexec(cproxy, "ip", "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "1")
    proxy(sproxy, "server", 4444, "10.141.13.3:5555", "0.0.0.0")
    proxy(cproxy, "client", 5555, "10.141.10.2:4444", "10.141.12.2")
    run("docker", "exec", "-d", srv, "iperf3", "-s", "-p", "5201")
    # VPN server: its DEFAULT hub, a user, the hub bridged to a tap in a Linux bridge with eth1
    dexec(svpn, "mkdir", "-p", "/run/softether")   # its runtime folder (tmpfs /run)
    dexec(svpn, "vpnserver", "start")
    listening(svpn, 5555, timeout=30)
    vpncmd(svpn, "SERVER", "HubCreate", "VPN", "/PASSWORD:" + VPN_PASSWORD)
    vpncmd(svpn, "SERVER", "UserCreate", "mptcp", "/GROUP:none", "/REALNAME:none",
           "/NOTE:none", hub="VPN")
    vpncmd(svpn, "SERVER", "UserPasswordSet", "mptcp", "/PASSWORD:" + VPN_PASSWORD,
           hub="VPN")
    vpncmd(svpn, "SERVER", "BridgeCreate", "VPN", "/DEVICE:vpn", "/TAP:yes")
    wait("tap_vpn in %s" % svpn,
         lambda: dexec(svpn, "ip", "link", "show", "tap_vpn", check=False).strip(), 20)
    for cmd in (["ip", "link", "add", "br-vpn", "type", "bridge"],
                ["ip", "address", "flush", "dev", "eth1"],
                ["ip", "link", "set", "eth1", "master", "br-vpn"],
                ["ip", "link", "set", "tap_vpn", "master", "br-vpn"],
                ["ip", "address", "add", "10.141.14.2/24", "dev", "br-vpn"],
                ["ip", "link", "set", "br-vpn", "up"], ["ip", "link", "set", "tap_vpn", "up"]):
        dexec(svpn, *cmd)
    # VPN client: adapter, account through the client proxy
    dexec(cvpn, "mkdir", "-p", "/run/softether")
    dexec(cvpn, "vpnclient", "start")
    wait("vpnclient of %s" % cvpn,
         lambda: subprocess.run(["docker", "exec", cvpn, "timeout", "5", "vpncmd", "localhost",
                                 "/CLIENT", "/CMD", "NicList"], capture_output=True,
                                text=True).returncode == 0, 30, step=0.1)
    vpncmd(cvpn, "CLIENT", "NicCreate", "vpn")
    vpncmd(cvpn, "CLIENT", "AccountCreate", "lab", "/SERVER:10.141.12.2:5555", "/HUB:VPN",
           "/USERNAME:mptcp", "/NICNAME:vpn")
    vpncmd(cvpn, "CLIENT", "AccountPasswordSet", "lab", "/PASSWORD:" + VPN_PASSWORD,
           "/TYPE:standard")
    vpncmd(cvpn, "CLIENT", "AccountDetailSet", "lab", "/MAXTCP:2", "/INTERVAL:1", "/TTL:0",
           "/HALF:no", "/BRIDGE:no", "/MONITOR:no", "/NOTRACK:no", "/NOQOS:yes",
           "/DISABLEUDP:yes")
    mark = start_monitor(cproxy)
    vpncmd(cvpn, "CLIENT", "AccountConnect", "lab")
    wait("vpn_vpn in %s" % cvpn,
         lambda: dexec(cvpn, "ip", "link", "show", "vpn_vpn", check=False).strip(), 20)
    dexec(cvpn, "ip", "address", "replace", "10.141.14.5/24", "dev", "vpn_vpn")
    dexec(cvpn, "ip", "link", "set", "vpn_vpn", "up")
    wait("ping 10.141.14.3 through the VPN",
         lambda: subprocess.run(["docker", "exec", cvpn, "ping", "-c", "1", "-W", "1",
                                 "10.141.14.3"], capture_output=True).returncode == 0, 30,
         step=0.2)
    pings = dexec(cvpn, "ping", "-c", "5", "-i", "0.2", "10.141.14.3")
    dexec(cvpn, "iperf3", "-c", "10.141.14.3", "-p", "5201", "-t", "2")
    vpncmd(cvpn, "CLIENT", "AccountDisconnect", "lab")
    got = stop_monitor(cproxy, mark)
    result = finish("sevpn", topo, start, got, keep)
    result["ping_received"] = int(re.search(r"(\d+) received", pings).group(1))
    result["passed"] = result["passed"] and result["ping_received"] == 5
    return result


def finish(name, topo, start, got, keep):
    result = {"scenario": name, "seconds": round(time.monotonic() - start, 2), "counts": got,
              "passed": got == EXPECTED}
    if not keep:
        t0 = time.monotonic()
        teardown(topo)
        result["teardown_s"] = round(time.monotonic() - t0, 2)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["simple", "sevpn"])
    parser.add_argument("--keep", action="store_true", help="leave the containers up")
    args = parser.parse_args()
    topo, func = {"simple": (SIMPLE, simple), "sevpn": (SEVPN, sevpn)}[args.scenario]
    try:
        result = func(args.keep)
    except Exception:
        if not args.keep:
            teardown(topo)
        raise
    print(json.dumps(result))
    if not result["passed"]:
        print("counts differ: expected %s, seen %s" % (EXPECTED, result["counts"]),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
