"""The sevpn lab (seed 001 "sevpn", the main job: SoftEther VPN carried over MPTCP by the proxies):
the installed copy of the collection brings the lab up from nothing with `multipath.mptcp.sevpn`
from a folder outside the checkout; molecule's steps then run on that lab (converge, the second run,
changes nothing; verify counts again); on it, the SoftEther lock-down read back and a VPN server
restart; then molecule destroys it. The tests run in this order and share the lab."""
import re
import subprocess
import time

import pytest

from galaxy_helpers import assert_passed, lab_containers, play
from lablock import lab_lock
from molecule_helpers import EXPECTED, assert_scenario_passed, leftovers, molecule, molecule_on_lab
from vpncmd_helpers import vpncmd as vpncmd_in


def vpn_ping(count, timeout):
    """ping from the VPN client to server-srv over the VPN: (replies, output)."""
    proc = subprocess.run(["docker", "exec", "sevpn-client-vpn", "ping", "-n", "-q", "-c", str(count), "-W", "1",
                           "-w", str(timeout), "10.100.1.3"], capture_output=True, text=True)
    m = re.search(r"(\d+) received", proc.stdout)
    return (int(m.group(1)) if m else 0), proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def sevpn_lock():
    """The sevpn lab's lock, held once for every test of this file (a second flock on another open
    file in the same process would wait for the first)."""
    with lab_lock("sevpn"):
        yield


def test_installed_sevpn_brings_up_the_lab_and_passes(installed_collection, sevpn_lock):
    assert installed_collection["proc"].returncode == 0
    if lab_containers("sevpn-"):  # left by an interrupted run
        play(installed_collection, "multipath.mptcp.lab_down", "-e", "lab_group=sevpn", timeout=600)
    assert lab_containers("sevpn-") == []
    proc = play(installed_collection, "multipath.mptcp.sevpn", timeout=2400)
    assert_passed(proc, ["sevpn-client-proxy", "sevpn-client-vpn", "sevpn-server-vpn"], EXPECTED["sevpn"])
    assert "MPTCP check passed on sevpn-client-proxy" in proc.stdout


@pytest.fixture(scope="module")
def sevpn_lab(sevpn_lock):
    """molecule's steps on the lab the installed copy brought up (from nothing if it did not), the
    lab left up for the tests below; test_molecule_destroy takes it down, the finalizer too if a
    test failed first."""
    rc, out, second_run = molecule_on_lab("sevpn")
    try:
        yield rc, out, second_run
    finally:
        if leftovers("sevpn"):
            molecule("destroy", "-s", "sevpn")


def test_molecule_sevpn(sevpn_lab):
    """sevpn passes: counts, idempotence, 5/5 pings, bytes on both paths."""
    rc, out, second_run = sevpn_lab
    assert rc == 0, out[-6000:]
    assert_scenario_passed("sevpn", out, second_run)
    assert "ping 10.100.1.3: 5/5 replies" in out
    paths = dict(re.findall(r"'  (eth[01])\s+(\d+) received\s+\d+ sent'", out))
    assert set(paths) == {"eth0", "eth1"} and all(int(v) > 0 for v in paths.values()), out[-4000:]


# The VPN server as the scenario left it, read back on sevpn-server-vpn: blank passwords for the
# server and for the hub refused (on 127.0.0.1, where nothing listens any more, and on the listen
# address), the right ones work, the only TCP listener is the listen address, no UDP listener on
# SoftEther's ports, no DEFAULT hub.
SERVER = "sevpn-server-vpn"
LISTEN = "10.100.0.3"
ADMIN = "lab-only-admin-password"  # inventories/lab/group_vars/sevpn.yml (lab-only secrets)
HUBPW = "lab-only-hub-password"


def vpncmd(*args):
    return vpncmd_in(SERVER, *args)


@pytest.mark.parametrize("access", [["/HUB:VPN", "/PASSWORD:", "/CMD", "UserList"], ["/PASSWORD:", "/CMD", "HubList"]],
                         ids=["hub", "server"])
def test_blank_password_refused(sevpn_lab, access):
    rc, out = vpncmd("127.0.0.1:5555", "/SERVER", *access)
    assert rc != 0 and "Connection to the server failed" in out, out
    rc, out = vpncmd("%s:5555" % LISTEN, "/SERVER", *access)
    assert rc != 0 and "The command completed successfully" not in out and out.rstrip().endswith("Password:"), out


def test_right_passwords_work(sevpn_lab):
    rc, out = vpncmd("%s:5555" % LISTEN, "/SERVER", "/HUB:VPN", "/PASSWORD:" + HUBPW, "/CSV", "/CMD", "UserList")
    assert rc == 0 and "\nmptcp," in out, out
    rc, out = vpncmd("%s:5555" % LISTEN, "/SERVER", "/PASSWORD:" + ADMIN, "/CSV", "/CMD", "HubList")
    assert rc == 0 and "\nVPN,Online" in out and "DEFAULT" not in out, out


def test_listeners(sevpn_lab):
    out = subprocess.run(["docker", "exec", SERVER, "ss", "-Hlntup"], capture_output=True, text=True, check=True).stdout
    mine = [line.split() for line in out.splitlines() if '"vpnserver"' in line]
    assert sorted(f[4] for f in mine if f[0] == "tcp") == ["%s:5555" % LISTEN], out
    udp = [f[4] for f in mine if f[0] == "udp"]
    assert all(a.startswith(LISTEN + ":") and a.rsplit(":", 1)[1] not in ("443", "992", "1194", "5555") for a in udp), out


def test_vpn_server_restart(sevpn_lab):
    """The VPN server is restarted: the VPN client reconnects (through both proxies again) and ping
    works again."""
    assert sevpn_lab[0] == 0, "the scenario failed, see test_molecule_sevpn"
    subprocess.run(["docker", "exec", SERVER, "systemctl", "restart", "softether-vpnserver.service"], check=True)
    lost, lost_out = vpn_ping(1, 2)
    assert lost == 0, "the VPN still answered right after its server restarted: " + lost_out
    # the client's watchdog and SoftEther's own retry bring the session back (bounded). One
    # ping at a time: ping ends early on ICMP errors (no ARP answer while the VPN is down).
    deadline = time.monotonic() + 120
    back, back_out = vpn_ping(1, 2)
    while back == 0 and time.monotonic() < deadline:
        time.sleep(1)
        back, back_out = vpn_ping(1, 2)
    assert back == 1, "no reply over the VPN within 120 s of the server restart: " + back_out
    replies, ping_out = vpn_ping(5, 15)
    assert replies == 5, ping_out


def test_molecule_destroy(sevpn_lab):
    destroy_rc, destroy_out = molecule("destroy", "-s", "sevpn")
    assert destroy_rc == 0, destroy_out[-3000:]
    assert leftovers("sevpn") == []
