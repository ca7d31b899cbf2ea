"""SoftEther roles: a missing or bad secret (or server address) stops the role before anything is
touched, with a message naming the variable, and a secret never shows in the output.

The target host is a Docker container that does not exist: the roles' checks run on the
controller, so a role that checked nothing would go on and fail on the host (UNREACHABLE) instead
of stopping with the expected message, and the test would see it.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = "s3cret-VALUE-never-printed"
SERVER = {"softether_server_admin_password": SECRET, "softether_server_hub_password": SECRET + "-hub",
          "softether_server_listen_address": "10.100.0.3"}


def server(**changes):
    values = dict(SERVER, **changes)
    return {k: v for k, v in values.items() if v is not None}


CASES = {
    "server without admin password": (
        "softether_server", server(softether_server_admin_password=None,
                                   softether_server_users=[{"name": "u", "password": SECRET}]),
        "softether_server_admin_password"),
    "server with empty admin password": (
        "softether_server", server(softether_server_admin_password=""),
        "softether_server_admin_password is empty"),
    "server with a password of three spaces": (
        "softether_server", server(softether_server_admin_password="   "),
        "softether_server_admin_password is empty or only white space"),
    "server with a password given as a number": (
        "softether_server", server(softether_server_admin_password=123456789012345),
        "softether_server_admin_password must be a string (quote it in YAML), not a number"),
    "server without hub password": (
        "softether_server", server(softether_server_hub_password=None),
        "softether_server_hub_password"),
    "server hub password equal to the admin password": (
        "softether_server", server(softether_server_hub_password=SECRET),
        "softether_server_hub_password must differ from softether_server_admin_password"),
    "server without listen address": (
        "softether_server", server(softether_server_listen_address=None),
        "softether_server_listen_address"),
    "server user without password": (
        "softether_server", server(softether_server_users=[{"name": "nopass"}]),
        "password"),
    "client without password": (
        "softether_client", {"softether_client_server": "10.101.0.2:5555",
                             "softether_client_username": "mptcp"},
        "softether_client_password"),
    "client with a password given as a number": (
        "softether_client", {"softether_client_server": "10.101.0.2:5555",
                             "softether_client_username": "mptcp",
                             "softether_client_password": 12345678901234},
        "softether_client_password must be a string"),
    "client server without port": (
        "softether_client", {"softether_client_server": "10.101.0.2",
                             "softether_client_username": "mptcp",
                             "softether_client_password": SECRET},
        "softether_client_server"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_secret_stops_before_anything(case, tmp_path):
    role, role_vars, named = CASES[case]
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"no-such-container-mptcp-test": {
        "ansible_connection": "community.docker.docker"}}}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{
        "name": "role with bad input", "hosts": "all", "gather_facts": False,
        "roles": [{"role": "multipath.mptcp." + role, "vars": role_vars}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                           "-i", str(inventory), str(playbook)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert named in out, out
    assert "UNREACHABLE" not in out, out
    assert SECRET not in out, out
