"""plugins/filter/safe_values.py: quoting of words for unit files and the checks of user values.

The quoting is also proven against systemd itself (a unit whose ExecStart= gets these words back
as its argv): tests/softether/test_softether_hardening.py::test_systemd_quote_round_trip."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.multipath.mptcp.plugins.filter import safe_values as f


@pytest.mark.parametrize("value, quoted", [
    ("eth1", '"eth1"'),
    ("", '""'),
    ("a b", '"a b"'),
    ("e;touch${IFS}X", '"e;touch$${IFS}X"'),
    ("100%", '"100%%"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("x\nExecStartPre=/bin/sh -c id", '"x\\nExecStartPre=/bin/sh -c id"'),
    ("tab\there\r", '"tab\\there\\r"'),
    ("bell\x07del\x7f", '"bell\\x07del\\x7f"'),
    ("héllo", '"héllo"'),
    (5555, '"5555"'),
])
def test_quote(value, quoted):
    assert f.systemd_quote(value) == quoted


def test_quoted_word_has_no_line_break_and_no_bare_specials():
    word = f.systemd_quote("a\nb\r%c$d")
    assert "\n" not in word and "\r" not in word
    assert "%%" in word and "$$" in word


@pytest.mark.parametrize("value", [None, True, ["a"], {"a": 1}, "nul\0byte"])
def test_quote_refuses(value):
    with pytest.raises(AnsibleFilterError):
        f.systemd_quote(value)


def test_argv():
    assert f.systemd_argv(["/usr/bin/x", "--dev", "e 1", 60]) == '"/usr/bin/x" "--dev" "e 1" "60"'


@pytest.mark.parametrize("value, words", [("a b", "list"), (None, "list"), (5, "list"), ([], "empty")])
def test_argv_refuses(value, words):
    with pytest.raises(AnsibleFilterError, match=words):
        f.systemd_argv(value)


@pytest.mark.parametrize("name", ["eth1", "e;x", "a" * 15, "wg$0", "br-vpn", "e%h"])
def test_ifname_valid(name):
    assert f.ifname_valid(name)


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 16, "a/b", "a:b", "a b", "a\nb", "a\tb", 5, None])
def test_ifname_invalid(name):
    assert not f.ifname_valid(name)


@pytest.mark.parametrize("value, version, ok", [
    ("10.100.0.3", None, True), ("10.100.0.3", 4, True), ("10.100.0.3", 6, False), ("::1", 6, True),
    ("10.100.0.256", None, False), ("10.100.0.3/24", None, False), ("fe80::1%eth0", None, False),
    ("10.100.0.3\n", None, False), (" 10.100.0.3", None, False), ("", None, False), (167772163, None, False),
])
def test_ip_address_valid(value, version, ok):
    assert f.ip_address_valid(value, version) is ok


@pytest.mark.parametrize("value, ok", [
    ("10.100.1.2/24", True), ("2001:db8::5/64", True), ("10.100.1.2", False), ("10.100.1.2/33", False),
    ("10.100.1.2/24;x", False), (["10.100.1.2/24"], False),
])
def test_ip_interface_valid(value, ok):
    assert f.ip_interface_valid(value) is ok


@pytest.mark.parametrize("value, ok", [
    (1, True), (65535, True), ("5555", True), (0, False), (65536, False), (-1, False), ("55 55", False),
    ("5555\n", False), ("²", False), (True, False), (None, False), (5555.0, False),
])
def test_port_valid(value, ok):
    assert f.port_valid(value) is ok


@pytest.mark.parametrize("value", ["lab-only-admin-password", "Correct horse 9", "x" * 250 + "abcde"])
def test_secret_good(value):
    assert f.secret_problems(value, "pw") == []


@pytest.mark.parametrize("value, words", [
    (None, "pw is required"),
    ("", "empty or only white space"),
    ("   ", "empty or only white space"),
    (" " * 20, "empty or only white space"),
    (123456789012345, "must be a string (quote it in YAML), not a number"),
    (True, "not a boolean"),
    (["a"], "not a list"),
    ("short-pw1", "12 to 255 characters"),
    ("x" * 256 + "abcdef", "12 to 255 characters"),
    ("aaaaaaaaaaaabbbb", "at least 6 different characters"),
    (" leading-space-pw", "begin or end with white space"),
    ('with"quote-inside', "double quote or a control character"),
    ("with\nline-break-x", "double quote or a control character"),
    ("with\ttab-inside-x", "double quote or a control character"),
])
def test_secret_bad(value, words):
    problems = f.secret_problems(value, "pw")
    assert problems and any(words in p for p in problems), problems
    if isinstance(value, str) and value.strip():
        assert not any(value in p for p in problems)
