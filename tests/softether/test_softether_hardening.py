"""SoftEther roles locked down and checked before they change anything, against a real SoftEther VPN
Server and Client (Debian's 5.01 build 9674) in one systemd container of the lab image.

The container `sehard-server` (network sehard-net, 10.132.0.0/24, address 10.132.0.2; a veth pair
sehard0/sehard0p holds the backend address 10.132.9.1/24) gets the server role (hub bridged to
sehard0 through br-vpn) and the client role (connected to 10.132.0.2:5555, static 10.132.9.5/24).
Shared by every test of this module (module-scoped fixture); removed at the end.

- The lock-down read back from the server: its configuration (vpncmd ConfigGet), its sockets (ss),
  vpncmd answers, TLS handshakes of each version; blank passwords refused, the right ones work.
- A second run of the server role changes nothing.
- Bad inputs to both roles in one ansible-playbook run: each case is a block (the role with the bad
  value, then a marker task that must not run) with a rescue that records the message and an
  `always` that reads the host state (units and their digests, files in /, links and addresses,
  hubs, listeners, users, the server's configuration, the client's account and adapters). Every
  state must equal the state before the first case.
- systemd_quote against systemd itself: a unit whose ExecStart= holds nasty words gets them back.
"""
import json
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, ".collections"))
from ansible_collections.multipath.mptcp.plugins.filter.safe_values import systemd_argv  # noqa: E402
from vpncmd_helpers import vpncmd as vpncmd_in  # noqa: E402

IMAGE = os.environ.get("MULTIPATH_LAB_IMAGE", "multipath-mptcp-lab:latest")
NAME = "sehard-server"
NET = ("sehard-net", "10.132.0.0/24", "10.132.0.2")
ADDR = NET[2]
ADMIN = "sehard-admin-password"
HUBPW = "sehard-hub-password"
USERPW = "sehard-user-password"
SECRET = "s3cret-VALUE-never-printed"
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

SERVER_VARS = {
    "softether_server_admin_password": ADMIN,
    "softether_server_hub_password": HUBPW,
    "softether_server_listen_address": ADDR,
    "softether_server_users": [{"name": "mptcp", "password": USERPW}],
    "softether_server_bridge_interface": "sehard0",
    "softether_server_bridge_addresses": ["10.132.9.1/24"],
}
CLIENT_VARS = {
    "softether_client_server": "%s:5555" % ADDR,
    "softether_client_username": "mptcp",
    "softether_client_password": USERPW,
    "softether_client_address": "10.132.9.5/24",
    "softether_client_wait_connected": False,
}

STATE_SCRIPT = r"""
export LC_ALL=C
echo "== units"; find /etc/systemd/system -name 'softether*' \( -type f -o -type l \) | sort | while read -r f; do
  if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f $(sha256sum < "$f" | cut -c1-16)"; fi; done
echo "== files in /"; ls / | tr '\n' ' '; echo
echo "== links"; ip -br addr | sort
echo "== server: hubs, listeners, configuration, users (counters and times left out)"
printf 'HubList\nListenerList\nConfigGet\nHub VPN\nUserList\n' > /run/sehard-state.in
timeout 15 vpncmd 10.132.0.2:5555 /SERVER /PASSWORD:%(admin)s /CSV /IN:/run/sehard-state.in </dev/null \
  | grep -vE 'Traffic|Bytes|Count|Time|NumLogin|ConfigRevision|Config name|^[[:space:]]*[{}]?[[:space:]]*$' | cut -d, -f1,2
echo "== client"; timeout 15 vpncmd localhost /CLIENT /CSV /CMD AccountGet mptcp </dev/null
timeout 15 vpncmd localhost /CLIENT /CSV /CMD NicList </dev/null | cut -d, -f1,2
""" % {"admin": ADMIN}

INJECT = "x\nExecStartPre=/bin/sh -c 'id > /PWNED'"

# (role, variables, words the message must hold); every case also must not show SECRET.
CASES = [
    # finding 1: secrets
    ("server", {"softether_server_admin_password": "   "}, ["softether_server_admin_password is empty or only white space"]),
    ("server", {"softether_server_admin_password": 123456789012345},
     ["softether_server_admin_password must be a string (quote it in YAML), not a number"]),
    ("server", {"softether_server_admin_password": "short-pw1"}, ["softether_server_admin_password must have 12 to 255"]),
    ("server", {"softether_server_admin_password": "aaaaaaaaaaaabbbb"}, ["at least 6 different characters"]),
    ("server", {"softether_server_hub_password": None}, ["softether_server_hub_password"]),
    ("server", {"softether_server_hub_password": ADMIN},
     ["softether_server_hub_password must differ from softether_server_admin_password"]),
    ("server", {"softether_server_hub_password": SECRET + "\n"}, ["softether_server_hub_password holds a double quote or a control"]),
    ("server", {"softether_server_users": [{"name": "mptcp", "password": 12345678901234}]},
     ["softether_server_users[0].password must be a string"]),
    ("server", {"softether_server_users": [{"name": "a", "password": SECRET}, {"name": "A", "password": SECRET}]},
     ["a user name is listed twice"]),
    ("server", {"softether_server_hub": "DEFAULT"}, ["softether_server_hub \"DEFAULT\""]),
    # finding 3: values that reach the unit file, vpncmd or the configuration file
    ("server", {"softether_server_bridge_interface": INJECT},
     ["softether_server_bridge_interface", "is not an interface name the kernel allows"]),
    ("server", {"softether_server_bridge_interface": "e;touch${IFS}X"},
     ["softether_server_bridge_interface \"e;touch${IFS}X\": no such interface on this host"]),
    ("server", {"softether_server_bridge_interface": "a/b"}, ["softether_server_bridge_interface \"a/b\" is not an interface name"]),
    ("server", {"softether_server_bridge_interface": "br-vpn"}, ["is the bridge itself"]),
    ("server", {"softether_server_bridge_addresses": ["10.132.9.1"]},
     ["softether_server_bridge_addresses: \"10.132.9.1\" is not an address with prefix length"]),
    ("server", {"softether_server_bridge_name": "br vpn"}, ["softether_server_bridge_name \"br vpn\""]),
    ("server", {"softether_server_bridge_device": "VPN;x"}, ["softether_server_bridge_device \"VPN;x\""]),
    ("server", {"softether_server_listen_address": "0.0.0.0"}, ["softether_server_listen_address \"0.0.0.0\" is not an IPv4 address"]),
    ("server", {"softether_server_listen_address": "10.132.0.2\nListenIP"}, ["softether_server_listen_address \"10.132.0.2\\nListenIP\""]),
    ("server", {"softether_server_listen_address": "10.132.0.99"},
     ["softether_server_listen_address 10.132.0.99 is not an address of this host"]),
    ("server", {"softether_server_port": 70000}, ["softether_server_port 70000 is not a port 1-65535"]),
    ("server", {"softether_server_udp_ports": [443, 443]}, ["softether_server_udp_ports lists a port twice"]),
    ("server", {"softether_server_udp_ports": [0]}, ["softether_server_udp_ports: 0 is not a port"]),
    ("server", {"softether_server_tls_min_version": "1.0"}, ["softether_server_tls_min_version"]),
    ("server", {"softether_server_wait": 0}, ["softether_server_wait 0"]),
    # several bad values at once: all of them named in one message
    ("server", {"softether_server_port": 0, "softether_server_hub": "a b", "softether_server_admin_password": "x"},
     ["softether_server_port 0", "softether_server_hub \"a b\"", "softether_server_admin_password must have 12"]),
    # the client
    ("client", {"softether_client_server": "10.132.0.2"}, ["softether_client_server \"10.132.0.2\""]),
    ("client", {"softether_client_server": "vpn.example.com:5555"}, ["softether_client_server \"vpn.example.com:5555\""]),
    ("client", {"softether_client_server": "10.132.0.2:0"}, ["softether_client_server \"10.132.0.2:0\""]),
    ("client", {"softether_client_password": "   "}, ["softether_client_password is empty or only white space"]),
    ("client", {"softether_client_password": 12345678901234}, ["softether_client_password must be a string"]),
    ("client", {"softether_client_username": "a b"}, ["softether_client_username \"a b\""]),
    ("client", {"softether_client_nic": "VPN0"}, ["softether_client_nic \"VPN0\""]),
    ("client", {"softether_client_account": "acc$x"}, ["softether_client_account \"acc$x\""]),
    ("client", {"softether_client_address": "10.132.9.5"}, ["softether_client_address \"10.132.9.5\""]),
    ("client", {"softether_client_address": "10.132.9.5/24\n" + INJECT}, ["softether_client_address"]),
    ("client", {"softether_client_max_connections": 33}, ["softether_client_max_connections 33: a whole number 1-32"]),
    ("client", {"softether_client_retry_interval": 1}, ["softether_client_retry_interval 1: a whole number 5-3600"]),
]


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def dexec(*cmd, check=True):
    return sh("docker", "exec", NAME, *cmd, check=check)


def remove():
    sh("docker", "rm", "-f", NAME, check=False)
    sh("docker", "network", "rm", NET[0], check=False)


def start():
    remove()
    sh("docker", "network", "create", "--driver", "bridge", "--subnet", NET[1], "--label", "multipath.mptcp.test=true", NET[0])
    sh("docker", "run", "-d", "--name", NAME, "--hostname", NAME, "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN",
       "--device", "/dev/net/tun", "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run",
       "--tmpfs", "/run/lock", "--stop-signal", "SIGRTMIN+3", "--label", "multipath.mptcp.test=true",
       "--network", NET[0], "--ip", ADDR, IMAGE)
    deadline = time.monotonic() + 120
    while dexec("systemctl", "is-system-running", check=False).stdout.strip() not in ("running", "degraded"):
        assert time.monotonic() < deadline, "systemd in %s did not boot" % NAME
        time.sleep(1)
    dexec("sh", "-c", "ip link add sehard0 type veth peer name sehard0p && ip addr add 10.132.9.1/24 dev sehard0"
                      " && ip link set sehard0 up && ip link set sehard0p up")


def playbook(tmp_path, plays, name="play", extra=()):
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {NAME: {
        "ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"}}}}))
    path = tmp_path / ("%s.json" % name)
    path.write_text(json.dumps(plays))
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    proc = subprocess.run([PLAYBOOK, "-i", str(inventory), str(path)] + list(extra), capture_output=True, text=True,
                          env=env, cwd=ROOT)
    try:
        return proc, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON (rc %d): %s %s" % (proc.returncode, proc.stdout, proc.stderr))


def role_play(role, role_vars):
    return [{"name": role, "hosts": "all", "gather_facts": False,
             "roles": [{"role": "multipath.mptcp." + role, "vars": role_vars}]}]


def changed(out):
    return [t["task"]["name"] for p in out["plays"] for t in p["tasks"]
            for h in t["hosts"].values() if h.get("changed")]


def vpncmd(*args):
    """vpncmd in the container, stdin /dev/null, bounded, stopped at a password prompt: (rc, output)."""
    return vpncmd_in(NAME, *args)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    if sh("docker", "image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.skip("lab image %s not built (make image)" % IMAGE)
    tmp = tmp_path_factory.mktemp("sehard")
    start()
    try:
        runs, states = {}, {}
        steps = (("check fresh", "softether_server", SERVER_VARS, ["--check", "--diff"]),
                 ("server", "softether_server", SERVER_VARS, []),
                 ("client", "softether_client", CLIENT_VARS, []),
                 ("server again", "softether_server", SERVER_VARS, []),
                 ("check server", "softether_server", SERVER_VARS, ["--check", "--diff"]),
                 ("check client", "softether_client", CLIENT_VARS, ["--check", "--diff"]))
        for key, role, role_vars, extra in steps:
            before = dexec("bash", "-c", STATE_SCRIPT).stdout if extra else None
            proc, out = playbook(tmp, role_play(role, role_vars), key.replace(" ", "_"), extra)
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
            runs[key] = out
            if extra:
                states[key] = (before, dexec("bash", "-c", STATE_SCRIPT).stdout)
        yield {"tmp": tmp, "runs": runs, "states": states}
    finally:
        remove()


def config_items(text):
    """Items of a ConfigGet dump as {"Declare/.../Name": "value"} (values as printed)."""
    items, stack, pending = {}, [], None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("declare "):
            pending = line.split(" ", 1)[1]
        elif line == "{":
            stack.append(pending)
        elif line == "}":
            stack.pop()
        elif stack and " " in line and not line.startswith("#"):
            parts = line.split(" ", 2)
            items["/".join(stack[1:] + [parts[1]])] = parts[2] if len(parts) > 2 else ""
    return items


def test_second_server_run_changes_nothing(host):
    assert changed(host["runs"]["server again"]) == []


@pytest.mark.parametrize("run", ["check server", "check client"])
def test_check_mode_on_configured_host(host, run):
    before, after = host["states"][run]
    assert changed(host["runs"][run]) == []
    assert before == after


def test_check_mode_on_fresh_host(host):
    """Check mode before anything was configured: reports what it would do, changes nothing."""
    before, after = host["states"]["check fresh"]
    assert before == after
    assert "Set the configuration items that differ (restarts the VPN server)" not in changed(host["runs"]["check fresh"])


def test_lockdown_read_back_from_the_server(host):
    rc, out = vpncmd("%s:5555" % ADDR, "/SERVER", "/PASSWORD:" + ADMIN, "/CMD", "ConfigGet")
    assert rc == 0, out
    items = config_items(out)
    expected = {
        "ServerConfiguration/ListenIP": ADDR,
        "ServerConfiguration/DisableIPv6Listener": "true",
        "ServerConfiguration/PortsUDP": "$",
        "ServerConfiguration/Tls_Disable1_0": "true",
        "ServerConfiguration/Tls_Disable1_1": "true",
        "ServerConfiguration/Tls_Disable1_2": "false",
        "ServerConfiguration/DisableNatTraversal": "true",
        "ServerConfiguration/DisableJsonRpcWebApi": "true",
        "ServerConfiguration/UseWebUI": "false",
        "ServerConfiguration/EnableVpnOverDns": "false",
        "ServerConfiguration/EnableVpnOverIcmp": "false",
        "ServerConfiguration/UseKeepConnect": "false",
        "ServerConfiguration/Proto/OpenVPN/Enabled": "false",
        "ServerConfiguration/Proto/SSTP/Enabled": "false",
        "DDnsClient/Disabled": "true",
        "IPsec/L2TP_IPsec": "false",
        "IPsec/L2TP_Raw": "false",
        "IPsec/EtherIP_IPsec": "false",
    }
    assert {k: items.get(k) for k in expected} == expected
    # hubs: VPN only (DEFAULT deleted), with the hub password's hash (SHA-0 of the password)
    hubs = sorted(k.split("/")[1] for k in items if k.startswith("VirtualHUB/") and k.endswith("/Online"))
    assert hubs == ["VPN"]
    assert items["VirtualHUB/VPN/HashedPassword"] != items["ServerConfiguration/HashedPassword"]
    # what vpncmd says about the services that are off
    for cmd, words in (("DynamicDnsGetStatus", "Unsupported"), ("VpnAzureGetStatus", "Unsupported")):
        rc, out = vpncmd("%s:5555" % ADDR, "/SERVER", "/PASSWORD:" + ADMIN, "/CMD", cmd)
        assert words in out, out
    rc, out = vpncmd("%s:5555" % ADDR, "/SERVER", "/PASSWORD:" + ADMIN, "/CSV", "/CMD", "ProtoOptionsGet", "SSTP")
    assert "Enabled,Boolean,False" in out, out
    rc, out = vpncmd("%s:5555" % ADDR, "/SERVER", "/PASSWORD:" + ADMIN, "/CSV", "/CMD", "ProtoOptionsGet", "OpenVPN")
    assert "Enabled,Boolean,False" in out, out


def test_sockets_of_the_server(host):
    """TCP only on the listen address and the one port; no UDP listener on SoftEther's ports."""
    out = dexec("ss", "-Hlntup").stdout
    mine = [line.split() for line in out.splitlines() if '"vpnserver"' in line]
    tcp = sorted(fields[4] for fields in mine if fields[0] == "tcp")
    assert tcp == ["%s:5555" % ADDR], out
    udp = [fields[4] for fields in mine if fields[0] == "udp"]
    assert not [a for a in udp if a.rsplit(":", 1)[1] in ("443", "992", "1194", "5555", "500", "4500")], out
    assert all(a.startswith(ADDR + ":") for a in udp), out


PROBE = r"""
import socket, ssl, sys, warnings
warnings.simplefilter("ignore")
for name in ("TLSv1_1", "TLSv1_2", "TLSv1_3"):
    ver = getattr(ssl.TLSVersion, name)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = ver
    try:
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
            with ctx.wrap_socket(s) as t:
                print(name, "accepted", t.version())
    except (ssl.SSLError, OSError) as e:
        print(name, "refused")
"""


def test_tls_below_1_2_refused(host):
    out = dexec("python3", "-c", PROBE, ADDR, "5555").stdout.split("\n")
    assert out[:3] == ["TLSv1_1 refused", "TLSv1_2 accepted TLSv1.2", "TLSv1_3 accepted TLSv1.3"], out


@pytest.mark.parametrize("target", ["127.0.0.1:5555", ADDR + ":5555"])
@pytest.mark.parametrize("access", [["/HUB:VPN", "/PASSWORD:", "/CMD", "UserList"], ["/PASSWORD:", "/CMD", "HubList"]],
                         ids=["hub", "server"])
def test_blank_password_refused(host, target, access):
    """Refused: nothing listens on 127.0.0.1; on the listen address the server denies the empty
    password and vpncmd asks for another one (tests/vpncmd_helpers.py stops it there)."""
    rc, out = vpncmd(target, "/SERVER", *access)
    assert rc != 0, out
    assert "The command completed successfully" not in out and "administrator privileges" not in out, out
    if target.startswith("127."):
        assert "Connection to the server failed" in out, out
    else:
        assert out.rstrip().endswith("Password:"), out


def test_right_passwords_work(host):
    rc, out = vpncmd("%s:5555" % ADDR, "/SERVER", "/HUB:VPN", "/PASSWORD:" + HUBPW, "/CSV", "/CMD", "UserList")
    assert rc == 0 and "\nmptcp," in out, out
    rc, out = vpncmd("%s:5555" % ADDR, "/SERVER", "/PASSWORD:" + ADMIN, "/CSV", "/CMD", "HubList")
    assert rc == 0 and "\nVPN,Online" in out and "DEFAULT" not in out, out
    # the VPN session of the client goes through: connected, address on vpn_vpn
    rc, out = vpncmd("localhost", "/CLIENT", "/CSV", "/CMD", "AccountList")
    assert "mptcp,Connected" in out, out


def test_units_quoted(host):
    unit = dexec("cat", "/etc/systemd/system/softether-vpnserver-bridge.service").stdout
    assert ('ExecStart="/usr/local/libexec/multipath-mptcp/softether-helper" "bridge" "--bridge" "br-vpn" "--tap" '
            '"tap_vpn" "--wait" "60" "--interface" "sehard0" "--address=10.132.9.1/24"') in unit


def test_bad_inputs_change_nothing(host):
    tmp = host["tmp"]
    base = {"server": SERVER_VARS, "client": CLIENT_VARS}
    tasks = [{"name": "state before", "ansible.builtin.raw": STATE_SCRIPT, "register": "before", "changed_when": False}]
    for idx, (role, role_vars, _) in enumerate(CASES):
        case_vars = dict(base[role])
        case_vars.update(role_vars)
        case_vars = {k: v for k, v in case_vars.items() if v is not None}  # None: the variable is not given
        tasks.append({"name": "case %d" % idx, "block": [
            {"name": "role", "ansible.builtin.include_role": {"name": "multipath.mptcp.softether_" + role},
             "vars": case_vars},
            {"name": "case %d did not fail" % idx, "ansible.builtin.set_fact": {"not_failed_%d" % idx: True}},
        ], "rescue": [
            {"name": "message %d" % idx, "ansible.builtin.set_fact": {"msg_%d" % idx: "{{ ansible_failed_result.msg }}"}},
        ], "always": [
            {"name": "state %d" % idx, "ansible.builtin.raw": STATE_SCRIPT, "register": "state_%d" % idx,
             "changed_when": False},
        ]})
    tasks.append({"name": "report", "ansible.builtin.debug": {"msg": "{{ report }}"}, "vars": {"report": {
        "before": "{{ before.stdout }}",
        "cases": ["{{ {'msg': msg_%d | default(none), 'ok': not_failed_%d | default(false), 'state': state_%d.stdout} }}"
                  % (i, i, i) for i in range(len(CASES))]}}})
    proc, out = playbook(tmp, [{"name": "bad inputs", "hosts": "all", "gather_facts": False, "tasks": tasks}], "bad")
    report = out["plays"][0]["tasks"][-1]["hosts"][NAME]["msg"]
    assert "VPN Server>HubList\nVPN,Online\nVPN Server>ListenerList" in report["before"], report["before"]
    assert "VPN Server/VPN>UserList\nmptcp,\n" in report["before"], report["before"]
    assert "TCP 5555,Listening" in report["before"] and "string ListenIP 10.132.0.2" in report["before"], report["before"]
    problems = []
    for (role, role_vars, words), result in zip(CASES, report["cases"]):
        label = "%s %s" % (role, json.dumps(role_vars))
        if result["ok"] or not result["msg"]:
            problems.append("%s: did not fail" % label)
            continue
        for word in words:
            if word not in result["msg"]:
                problems.append("%s: %r not in %r" % (label, word, result["msg"]))
        for secret in (SECRET, ADMIN, HUBPW, USERPW):
            if secret in result["msg"]:
                problems.append("%s: a secret shows in %r" % (label, result["msg"]))
        if result["state"] != report["before"]:
            problems.append("%s: state changed: %s" % (label, _diff(report["before"], result["state"])))
    assert not problems, "\n".join(problems)
    assert len(CASES) >= 15
    assert dexec("test", "-e", "/PWNED", check=False).returncode == 1
    assert dexec("test", "-e", "/X", check=False).returncode == 1
    # no secret anywhere in the output of the run
    assert SECRET not in proc.stdout + proc.stderr


def _diff(a, b):
    import difflib
    return "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0))


NASTY = ["plain", "two words", "semi;colon", "dollar $HOME ${IFS}", "percent %h %%", 'quote " and \\ backslash',
         "line\nbreak\nExecStartPre=/bin/sh -c 'id > /PWNED'", "tab\tand\rcr", "unicode é ✓", "", "'single'"]


def test_systemd_quote_round_trip(host):
    """systemd reads back exactly the words systemd_argv wrote (no shell, no specifier, no variable)."""
    code = "import json, sys; open('/run/sehard-quote.json', 'w').write(json.dumps(sys.argv[1:]))"
    unit = "[Service]\nType=oneshot\nExecStart=%s\n" % systemd_argv(["/usr/bin/python3", "-c", code] + NASTY)
    path = "/run/systemd/system/sehard-quote.service"
    proc = subprocess.run(["docker", "exec", "-i", NAME, "sh", "-c", "cat > %s && systemctl daemon-reload" % path],
                          input=unit, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    try:
        res = dexec("systemctl", "start", "sehard-quote.service", check=False)
        assert res.returncode == 0, res.stderr + dexec("journalctl", "-u", "sehard-quote", "-n", "20", check=False).stdout
        assert json.loads(dexec("cat", "/run/sehard-quote.json").stdout) == NASTY
        assert dexec("test", "-e", "/PWNED", check=False).returncode == 1
    finally:
        dexec("sh", "-c", "rm -f %s && systemctl daemon-reload" % path, check=False)
