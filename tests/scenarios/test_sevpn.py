"""The sevpn lab (seed 001 "sevpn", the main job: SoftEther VPN carried over MPTCP by the proxies):
the molecule scenario with a VPN server restart, then the installed copy of the collection running
`multipath.mptcp.sevpn` against a new lab from a folder outside the checkout."""
import re
import subprocess
import time

from galaxy_helpers import assert_passed, lab_containers, play
from lablock import lab_lock
from molecule_helpers import assert_scenario_passed, leftovers, molecule


def vpn_ping(count, timeout):
    """ping from the VPN client to server-srv over the VPN: (replies, output)."""
    proc = subprocess.run(["docker", "exec", "sevpn-client-vpn", "ping", "-n", "-q", "-c", str(count), "-W", "1",
                           "-w", str(timeout), "10.100.1.3"], capture_output=True, text=True)
    m = re.search(r"(\d+) received", proc.stdout)
    return (int(m.group(1)) if m else 0), proc.stdout + proc.stderr


def test_molecule_sevpn_and_vpn_server_restart():
    """sevpn passes (counts, 5/5 pings, bytes on both paths); then the VPN server is restarted:
    the VPN client reconnects (through both proxies again) and ping works again."""
    with lab_lock("sevpn"):
        try:
            rc, out = molecule("test", "-s", "sevpn", "--destroy", "never")
            assert rc == 0, out[-6000:]
            assert_scenario_passed("sevpn", out)
            assert "ping 10.100.1.3: 5/5 replies" in out
            paths = dict(re.findall(r"'  (eth[01])\s+(\d+) received\s+\d+ sent'", out))
            assert set(paths) == {"eth0", "eth1"} and all(int(v) > 0 for v in paths.values()), out[-4000:]

            subprocess.run(["docker", "exec", "sevpn-server-vpn", "systemctl", "restart", "softether-vpnserver.service"],
                           check=True)
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
        finally:
            destroy_rc, destroy_out = molecule("destroy", "-s", "sevpn")
    assert destroy_rc == 0, destroy_out[-3000:]
    assert leftovers("sevpn") == []


def test_installed_sevpn_runs_against_the_lab(installed_collection):
    assert installed_collection["proc"].returncode == 0
    with lab_lock("sevpn"):
        assert lab_containers("sevpn-") == [], "a sevpn lab is already up: the installed copy must bring it up itself"
        try:
            proc = play(installed_collection, "multipath.mptcp.sevpn", timeout=2400)
            assert_passed(proc, ["sevpn-client-proxy", "sevpn-client-vpn", "sevpn-server-vpn"],
                          {"CREATED": 2, "ESTABLISHED": 2, "ANNOUNCED": 2, "SF_ESTABLISHED": 2, "CLOSED": 2})
            assert "MPTCP check passed on sevpn-client-proxy" in proc.stdout
        finally:
            down = play(installed_collection, "multipath.mptcp.lab_down", "-e", "lab_group=sevpn", timeout=600)
        assert down.returncode == 0, down.stdout[-4000:] + down.stderr
        assert lab_containers("sevpn-") == []
