"""softether-helper's editing of vpn_server.config (server-config): items found by their path, values
written in SoftEther's format, nothing written when an item is missing. Fed with the configuration a
fresh Debian SoftEther 5.01 build 9674 server wrote (parts of it, as ConfigGet printed them).
The same items are read back from a real server in test_softether_hardening.py."""
import importlib.machinery
import importlib.util
import os

import pytest

HELPER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "roles", "softether_common", "files", "softether-helper")
_loader = importlib.machinery.SourceFileLoader("softether_helper", HELPER)
_spec = importlib.util.spec_from_loader("softether_helper", _loader)
h = importlib.util.module_from_spec(_spec)
_loader.exec_module(h)

FRESH = """\ufeff# Software Configuration File
# ---------------------------
declare root
{
\tuint ConfigRevision 0
\tstring Region $

\tdeclare DDnsClient
\t{
\t\tbool Disabled false
\t\tstring LocalHostname sehard-server
\t}
\tdeclare IPsec
\t{
\t\tbool L2TP_IPsec false
\t\tstring L2TP_DefaultHub DEFAULT
\t}
\tdeclare ServerConfiguration
\t{
\t\tbool DisableJsonRpcWebApi false
\t\tstring ListenIP 0.0.0.0
\t\tstring PortsUDP 443,$20992,$201194,$205555
\t\tbool Tls_Disable1_0 false
\t\tuint KeepConnectPort 80

\t\tdeclare Proto
\t\t{
\t\t\tdeclare OpenVPN
\t\t\t{
\t\t\t\tbool Enabled true
\t\t\t}
\t\t\tdeclare SSTP
\t\t\t{
\t\t\t\tbool Enabled true
\t\t\t}
\t\t}
\t}
\tdeclare VirtualHUB
\t{
\t\tdeclare DEFAULT
\t\t{
\t\t\tbool Online true
\t\t}
\t}
}
"""

WANTED = {
    "ServerConfiguration/ListenIP": "10.100.0.3",
    "ServerConfiguration/PortsUDP": "",
    "ServerConfiguration/Tls_Disable1_0": True,
    "ServerConfiguration/DisableJsonRpcWebApi": True,
    "ServerConfiguration/Proto/OpenVPN/Enabled": False,
    "ServerConfiguration/Proto/SSTP/Enabled": False,
    "ServerConfiguration/KeepConnectPort": 8080,
    "DDnsClient/Disabled": True,
}


def test_fresh_config_read():
    conf = h.parse_config(FRESH)
    assert h.config_value(conf, "ServerConfiguration/PortsUDP") == "443, 992, 1194, 5555"
    assert h.config_value(conf, "ServerConfiguration/Proto/SSTP/Enabled") is True
    assert h.config_value(conf, "ServerConfiguration/Nothing") is None
    assert h.config_value(conf, "Nothing/At/All") is None


def test_edit_sets_every_item_and_nothing_else():
    new = h.edit_config(FRESH, WANTED)
    conf = h.parse_config(new)
    assert {path: h.config_value(conf, path) for path in WANTED} == WANTED
    before = [l for l in FRESH.splitlines()]
    after = [l for l in new.splitlines()]
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(changed) == len(WANTED)
    assert "\t\tstring PortsUDP $" in after and "\t\t\t\tbool Enabled false" in after
    # the same name in another declare is not touched
    assert "\t\tstring L2TP_DefaultHub DEFAULT" in after and "\t\t\tbool Online true" in after


def test_edit_is_stable():
    once = h.edit_config(FRESH, WANTED)
    assert h.edit_config(once, WANTED) == once


@pytest.mark.parametrize("value, literal", [
    ("10.100.0.3", "10.100.0.3"), ("", "$"), ("443, 992", "443,$20992"), ("a$b#c", "a$24b$23c"),
    ("é", "$C3$A9"), ("x\ny", "x$0Ay"),
])
def test_string_literal_round_trip(value, literal):
    assert h._config_literal("string", value) == literal
    assert h._unescape(literal) == value


def test_missing_item_changes_nothing():
    with pytest.raises(h.HelperError, match="no item ServerConfiguration/EnableVpnAzure; nothing was changed"):
        h.edit_config(FRESH, dict(WANTED, **{"ServerConfiguration/EnableVpnAzure": False}))


def test_wrong_type_refused():
    with pytest.raises(h.HelperError):
        h._config_literal("byte", "x")
