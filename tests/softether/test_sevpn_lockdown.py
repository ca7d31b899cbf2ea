"""The SoftEther VPN server of the sevpn lab is locked down once the scenario runs
(`playbooks/sevpn.yml`: lab up, configure, check with the exact counts), read back on
sevpn-server-vpn: blank passwords for the server and for the hub refused (on 127.0.0.1, where
nothing listens any more, and on the listen address 10.100.0.3), the right ones work, the only
TCP listener is 10.100.0.3:5555, no UDP listener on SoftEther's ports, no DEFAULT hub.

The lab is brought up by the fixture (a no-op when it is up already) and taken down at the end
when the fixture brought it up.
"""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)
SERVER = "sevpn-server-vpn"
LISTEN = "10.100.0.3"
ADMIN = "lab-only-admin-password"  # inventories/lab/group_vars/sevpn.yml (lab-only secrets)
HUBPW = "lab-only-hub-password"


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def running(name):
    return sh("docker", "inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip() == "true"


def vpncmd(*args):
    res = sh("docker", "exec", SERVER, "timeout", "15", "vpncmd", *args, check=False)
    return res.returncode, res.stdout + res.stderr


@pytest.fixture(scope="module")
def lab():
    if sh("docker", "image", "inspect", "multipath-mptcp-lab:latest", check=False).returncode != 0:
        pytest.skip("lab image not built (make image)")
    was_up = running(SERVER)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    try:
        proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "playbooks/sevpn.yml"], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert "CREATED 2/2, ESTABLISHED 2/2, ANNOUNCED 2/2, SF_ESTABLISHED" in proc.stdout, proc.stdout[-6000:]
        yield proc.stdout
    finally:
        if not was_up:
            subprocess.run([os.path.join(BIN, "ansible-playbook"), "playbooks/lab_down.yml", "-e", "lab_group=sevpn"],
                           cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("access", [["/HUB:VPN", "/PASSWORD:", "/CMD", "UserList"], ["/PASSWORD:", "/CMD", "HubList"]],
                         ids=["hub", "server"])
def test_blank_password_refused(lab, access):
    rc, out = vpncmd("127.0.0.1:5555", "/SERVER", *access)
    assert rc != 0 and "Connection to the server failed" in out, out
    rc, out = vpncmd("%s:5555" % LISTEN, "/SERVER", *access)
    assert rc != 0 and "The command completed successfully" not in out and out.rstrip().endswith("Password:"), out


def test_right_passwords_work(lab):
    rc, out = vpncmd("%s:5555" % LISTEN, "/SERVER", "/HUB:VPN", "/PASSWORD:" + HUBPW, "/CSV", "/CMD", "UserList")
    assert rc == 0 and "\nmptcp," in out, out
    rc, out = vpncmd("%s:5555" % LISTEN, "/SERVER", "/PASSWORD:" + ADMIN, "/CSV", "/CMD", "HubList")
    assert rc == 0 and "\nVPN,Online" in out and "DEFAULT" not in out, out


def test_listeners(lab):
    out = sh("docker", "exec", SERVER, "ss", "-Hlntup").stdout
    mine = [line.split() for line in out.splitlines() if '"vpnserver"' in line]
    assert sorted(f[4] for f in mine if f[0] == "tcp") == ["%s:5555" % LISTEN], out
    udp = [f[4] for f in mine if f[0] == "udp"]
    assert all(a.startswith(LISTEN + ":") and a.rsplit(":", 1)[1] not in ("443", "992", "1194", "5555") for a in udp), out
