"""The RFC 8803 Convert protocol of roles/mptcp_proxy/files/mptcp-proxy.

First the pure part (messages encoded and decoded, the allow-list), loaded from
the program file itself; then the server proxy with --convert as a subprocess on
loopback, fed by hand-made Convert messages: every refusal answered with the
right Error TLV and a close, within the bound, while good connections beside
them relay identical data.
"""

import hashlib
import importlib.machinery
import importlib.util
import ipaddress
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from test_mptcp_proxy import (PROXY, PROXY_CMD, free_port, make_backend, make_proxy,  # noqa: F401
                              recv_all)
from test_mptcp_proxy import echo as echo_backend


def _load():
    loader = importlib.machinery.SourceFileLoader("mptcp_proxy_program", PROXY)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # no __pycache__ beside the role's files
    try:
        loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


P = _load()


def words(*chunks):
    return b"".join(chunks)


# --------------------------------------------------------------------------
# Encoding and decoding
# --------------------------------------------------------------------------

def test_fixed_header_and_connect_tlv_bytes():
    """The exact bytes of RFC 8803 sections 4.1 and 4.2.4 for an IPv4 destination."""
    msg = P.encode_message([P.tlv_connect("10.150.1.2", 5201)])
    assert msg == bytes([1, 6, 0, 0,                       # version 1, 6 words, unassigned
                         10, 5, 0x14, 0x51,                # Connect, 5 words, port 5201
                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,   # IPv4-mapped
                         10, 150, 1, 2])
    decoded = P.decode_message(msg)
    assert decoded.connect == (ipaddress.ip_address("10.150.1.2"), 5201, [])
    assert decoded.tlvs == [(10, msg[6:])]
    assert isinstance(decoded.connect[0], ipaddress.IPv4Address)


def test_connect_ipv6_and_tcp_options_round_trip():
    options = bytes([2, 4, 0x05, 0xb4, 1, 1, 4, 2])  # MSS, NOP, NOP, SACK permitted
    msg = P.encode_message([P.tlv_connect("2001:db8::15", 443, options)])
    assert len(msg) == 4 + 20 + 8 and msg[1] == len(msg) // 4
    assert msg[5] == 7
    decoded = P.decode_message(msg)
    assert decoded.connect == (ipaddress.ip_address("2001:db8::15"), 443, [2, 4])


def test_every_tlv_round_trips():
    """Info, Connect, Extended TCP Header, Supported TCP Extensions, Cookie, Error."""
    tcp_header = struct.pack("!HHIIBBHHH", 80, 40000, 1, 2, 0x50, 0x12, 65535, 0, 0)
    msg = P.encode_message([
        P.tlv_info(),
        P.tlv_connect("192.0.2.1", 80),
        P.tlv_extended_tcp_header(tcp_header),
        P.tlv_supported_tcp_extensions([30, 2]),
        P.tlv_cookie(b"\x01\x02\x03\x04\x05\x06"),
        P.tlv_error(P.ERR_NOT_AUTHORIZED),
    ])
    decoded = P.decode_message(msg)
    assert [t for t, _v in decoded.tlvs] == [1, 10, 20, 21, 22, 30]
    assert decoded.info is True
    assert decoded.connect == (ipaddress.ip_address("192.0.2.1"), 80, [])
    assert decoded.extended_tcp_header == tcp_header
    assert decoded.supported == [30, 2]
    assert decoded.cookie == b"\x01\x02\x03\x04\x05\x06\x00\x00"   # padded to a word
    assert decoded.error == (32, b"\x00")
    assert decoded.unknown == []
    assert decoded.describe() == ("Info, Connect, Extended TCP Header, "
                                  "Supported TCP Extensions, Cookie, Error")
    for tlv in decoded.tlvs:
        assert (2 + len(tlv[1])) % 4 == 0


def test_info_and_error_tlv_bytes():
    assert P.tlv_info() == bytes([1, 1, 0, 0])
    assert P.tlv_error(97, 3) == bytes([30, 1, 97, 3])
    assert P.tlv_error(2, b"\xc8\x00\x00\x00\x00") == bytes([30, 2, 2, 0xc8, 0, 0, 0, 0])
    assert P.encode_message() == bytes([1, 1, 0, 0])
    assert P.decode_message(bytes([1, 1, 0, 0])).tlvs == []
    # the Unassigned field is ignored on receipt
    assert P.decode_message(bytes([1, 1, 0xab, 0xcd])).tlvs == []


def test_unknown_tlvs_are_skipped_by_length_and_listed():
    msg = P.encode_message([P.encode_tlv(200, b"\xaa" * 9), P.tlv_connect("10.0.0.1", 1),
                            P.encode_tlv(5, b"")])
    decoded = P.decode_message(msg)
    assert decoded.unknown == [200, 5]
    assert decoded.connect[1] == 1
    assert [t for t, _v in decoded.tlvs] == [200, 10, 5]


@pytest.mark.parametrize("data, code, text", [
    (bytes([2, 1, 0, 0]), 0, "version 2"),
    (bytes([0, 1, 0, 0]), 0, "version 0"),
    (bytes([1, 0, 0, 0]), 1, "Total Length 0"),
    # a TLV of length 0 (it would never advance)
    (bytes([1, 2, 0, 0, 10, 0, 0, 0]), 1, "Connect TLV of length 0"),
    (bytes([1, 2, 0, 0, 99, 0, 0, 0]), 1, "type 99 TLV of length 0"),
    # a TLV longer than the message
    (bytes([1, 2, 0, 0, 10, 5, 0, 80]), 1, "goes past Total Length"),
    # a Connect TLV too short for port and address
    (bytes([1, 3, 0, 0, 10, 2, 0, 80, 0, 0, 0, 0]), 1, "Connect TLV of 8 bytes"),
    # two Connect TLVs
    (P.encode_message([P.tlv_connect("10.0.0.1", 1), P.tlv_connect("10.0.0.2", 2)]), 1,
     "two Connect TLVs"),
    # a TCP option whose length runs past the TLV
    (P.encode_message([P.tlv_connect("10.0.0.1", 1, bytes([2, 9, 0, 0]))]), 1,
     "TCP option 2 has a bad length"),
])
def test_malformed_messages_name_the_error(data, code, text):
    with pytest.raises(P.ConvertError) as info:
        P.decode_message(data)
    assert info.value.code == code
    assert text in info.value.text
    if code == P.ERR_UNSUPPORTED_VERSION:
        assert info.value.value == 1  # the version we support goes in the Value


def test_truncated_and_oversized_messages():
    msg = P.encode_message([P.tlv_connect("10.0.0.1", 80)])
    for cut in range(4, len(msg)):
        with pytest.raises(P.ConvertError, match="bytes where Total Length says 24"):
            P.decode_message(msg[:cut])
    with pytest.raises(P.ConvertError, match="25 bytes where Total Length says 24"):
        P.decode_message(msg + b"x")
    with pytest.raises(ValueError):
        P.message_length(msg[:3])
    # The largest message: Total Length 255 words = 1020 bytes.
    big = P.encode_message([P.tlv_connect("10.0.0.1", 80), P.encode_tlv(201, bytes(994))])
    assert len(big) == 1020 and big[1] == 255
    assert P.decode_message(big).unknown == [201]
    with pytest.raises(ValueError, match="does not fit in 1020 bytes"):
        P.encode_message([P.tlv_connect("10.0.0.1", 80), P.encode_tlv(201, bytes(998))])
    with pytest.raises(ValueError, match="longer than 255 words"):
        P.encode_tlv(201, bytes(1019))
    # A TLV claiming 255 words inside a message of 255 words cannot fit.
    with pytest.raises(P.ConvertError, match="1020 bytes at byte 4 goes past"):
        P.decode_message(bytes([1, 255, 0, 0, 201, 255]) + bytes(1014))


def test_message_length_reads_the_fixed_header_only():
    assert P.message_length(bytes([1, 6, 0, 0])) == 24
    assert P.message_length(bytes([1, 255, 0, 0, 7, 7])) == 1020
    with pytest.raises(P.ConvertError):
        P.message_length(b"GET ")  # an HTTP client talking to the converter


# --------------------------------------------------------------------------
# The allow-list
# --------------------------------------------------------------------------

def test_allow_rules():
    rules = [P.parse_allow(t) for t in ("10.150.1.0/24:5201", "10.150.2.7:1-1024",
                                        "[2001:db8::/32]:443")]
    assert [P.format_allow(r) for r in rules] == ["10.150.1.0/24:5201", "10.150.2.7/32:1-1024",
                                                  "[2001:db8::/32]:443"]
    assert P.allowed(rules, "10.150.1.200", 5201) is rules[0]
    assert P.allowed(rules, "::ffff:10.150.1.200", 5201) is rules[0]   # IPv4-mapped
    assert P.allowed(rules, "10.150.1.200", 5202) is None
    assert P.allowed(rules, "10.150.2.7", 1024) is rules[1]
    assert P.allowed(rules, "10.150.2.8", 80) is None
    assert P.allowed(rules, "2001:db8:1::1", 443) is rules[2]
    assert P.allowed(rules, "2001:db9::1", 443) is None
    assert P.allowed([], "10.150.1.1", 5201) is None


@pytest.mark.parametrize("text, message", [
    ("10.0.0.0/8", "is not CIDR:PORT"),
    ("10.0.0.1/8:80", "has host bits set"),
    ("2001:db8::/32:80", "is not CIDR:PORT"),
    ("10.0.0.0/8:0", "ports must be 1-65535"),
    ("10.0.0.0/8:90-80", "first <= last"),
    ("10.0.0.0/8:1-65536", "ports must be 1-65535"),
    ("example.com:80", "does not appear to be an IPv4 or IPv6 network"),
])
def test_allow_rules_refused(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        P.parse_allow(text)


def test_command_line_of_the_gateway_options(capsys):
    """The parser in this process (main() runs the same parse_args), then the
    program once for --check-config and --help."""
    for args in (["-m", "client", "-p", "1", "--transparent"],
                 ["-m", "client", "-p", "1", "--transparent", "-r", "10.0.0.1:2", "--mark", "7"],
                 ["-m", "client", "-p", "1", "--transparent", "--mark", "0x150"],
                 ["-m", "server", "-p", "1", "--convert"],
                 ["-m", "server", "-p", "1", "--convert", "--allow", "10.0.0.0/8:1-65535",
                  "--allow", "[::1/128]:80", "--convert-timeout", "2"]):
        assert P.parse_args(args + ["--check-config"]).check_config is True
    for args, message in (
            (["-m", "client", "-p", "1"], "the following arguments are required: -r/--remote"),
            (["-m", "server", "-p", "1", "--transparent"], "--transparent is for client mode"),
            (["-m", "client", "-p", "1", "-r", "a:1", "--convert"], "--convert is for server mode"),
            (["-m", "server", "-p", "1", "--convert", "-r", "a:1"],
             "--remote cannot be used with --convert"),
            (["-m", "server", "-p", "1", "-r", "a:1", "--allow", "10.0.0.0/8:1"],
             "--allow only applies with --convert"),
            (["-m", "server", "-p", "1", "--convert", "--allow", "10.0.0.0/8"],
             "argument --allow: '10.0.0.0/8' is not CIDR:PORT"),
            (["-m", "client", "-p", "1", "--transparent", "--mark", "0"],
             "argument --mark: 0 is outside 1-0xffffffff"),
            (["-m", "client", "-p", "1", "--transparent", "--mark", "0x1ffffffff"],
             "argument --mark: 0x1ffffffff is outside 1-0xffffffff"),
            (["-m", "client", "-p", "1", "--transparent", "--mark", "fw"],
             "argument --mark: 'fw' is not a number")):
        with pytest.raises(SystemExit) as info:
            P.parse_args(args)
        stderr = capsys.readouterr().err
        assert info.value.code == 2 and message in stderr, (args, stderr)
    res = subprocess.run(PROXY_CMD + ["-m", "server", "-p", "1", "--convert", "--allow",
                                      "10.0.0.0/8:1", "--check-config"],
                         capture_output=True, text=True, check=False)
    assert (res.returncode, res.stdout) == (0, "ok\n"), res.stderr
    res = subprocess.run(PROXY_CMD + ["-m", "server", "-p", "1", "--transparent", "-r", "a:1",
                                      "--check-config"], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 2 and "--transparent is for client mode" in res.stderr, res.stderr
    res = subprocess.run(PROXY_CMD + ["--help"], capture_output=True, text=True, check=True)
    help_text = " ".join(res.stdout.split())
    for text in ("--transparent", "--convert", "--allow CIDR:PORTS", "--convert-timeout",
                 "--mark MARK", "RFC 8803 Convert message", "Not Authorized (32)",
                 "Default: none, every destination is refused"):
        assert text in help_text, text


# --------------------------------------------------------------------------
# The server proxy with --convert, on loopback
# --------------------------------------------------------------------------

def converter_client(port, message, data=b"", timeout=10.0):
    """Send message (and data) to the server proxy, half-close, return
    (reply Convert message or None, the bytes after it, error or None, seconds)."""
    start = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got, error = b"", None
    try:
        sock.sendall(message + data)
        sock.shutdown(socket.SHUT_WR)
        got = recv_all(sock)
    except OSError as exc:
        error = exc.strerror or str(exc)
    finally:
        sock.close()
    return split_reply(got) + (error, time.monotonic() - start)


def split_reply(got):
    if len(got) < 4:
        return None, got
    size = got[1] * 4
    return P.decode_message(got[:size]), got[size:]


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def converter(make_proxy, make_backend):
    """A server proxy with --convert that allows only the echo backend's port."""
    backend = make_backend(echo_backend)
    port = free_port()
    proxy = make_proxy("-m", "server", "-l", "127.0.0.1", "-p", port, "--convert",
                       "--allow", "127.0.0.0/8:%d" % backend.port, "--convert-timeout", "1")
    return proxy, port, backend


def connect_msg(port, host="127.0.0.1"):
    return P.encode_message([P.tlv_connect(host, port)])


def test_convert_relays_to_the_allowed_destination(converter):
    proxy, port, backend = converter
    data = os.urandom(300_000)
    reply, rest, error, _ = converter_client(port, connect_msg(backend.port), data)
    assert error is None
    assert reply is not None and reply.tlvs == []   # the empty reply: accepted
    assert sha(rest) == sha(data)
    line = proxy.wait_log(r"conn=1 closed peer=\S+ remote=127\.0\.0\.1:%d up=300000 "
                          r"down=300000 " % backend.port)
    assert line


@pytest.mark.parametrize("case", [
    "not-allowed", "ipv6-not-allowed", "garbage", "version", "length0", "tlv-length0", "unknown",
    "no-connect", "tcp-options", "converter-tlv", "truncated", "oversized", "multicast", "refused",
])
def test_convert_refusals_get_the_error_tlv_and_a_close(converter, case):
    proxy, port, backend = converter
    closed = free_port()
    cases = {
        "not-allowed": (connect_msg(backend.port + 1 if backend.port < 65535 else 1), 32,
                        r"not allowed by --allow \(127\.0\.0\.0/8:%d\)" % backend.port),
        "ipv6-not-allowed": (connect_msg(backend.port, "::1"), 32, r"not allowed by --allow"),
        "garbage": (b"GET / HTTP/1.1\r\n\r\n", 0, r"version 71"),
        "version": (bytes([2, 1, 0, 0]), 0, r"version 2"),
        "length0": (bytes([1, 0, 0, 0]), 1, r"Total Length 0"),
        "tlv-length0": (bytes([1, 2, 0, 0, 10, 0, 0, 0]), 1, r"Connect TLV of length 0"),
        "unknown": (P.encode_message([P.encode_tlv(200, b"xy"), P.tlv_connect("127.0.0.1", 1)]),
                    2, r"TLV type 200 \(unknown\) is not handled here"),
        "no-connect": (P.encode_message([P.tlv_cookie(b"abcd")]), 1, r"no Connect TLV \(Cookie\)"),
        "tcp-options": (P.encode_message([P.tlv_connect("127.0.0.1", backend.port,
                                                        bytes([2, 4, 5, 0xb4]))]),
                        33, r"the Connect TLV asks for TCP option\(s\) \[2\]"),
        "converter-tlv": (P.encode_message([P.tlv_error(1), P.tlv_connect("127.0.0.1", 1)]), 2,
                          r"TLV type 30 \(Error\)"),
        "truncated": (connect_msg(backend.port)[:10], 1,
                      r"the stream ended after 10 bytes of the Convert message"),
        # A TLV that claims 255 words within a message of 255 words, then 64 KiB more.
        "oversized": (bytes([1, 255, 0, 0, 10, 255]) + os.urandom(64 << 10), 1,
                      r"Connect TLV of 1020 bytes at byte 4 goes past Total Length"),
        "multicast": (connect_msg(5201, "224.0.0.1"), 32, r"not a unicast address"),
        "refused": (None, 96, r"cannot connect to 127\.0\.0\.1:%d: Connection refused" % closed),
    }
    message, code, log_text = cases[case]
    if case == "refused":
        proxy.stop()
        proxy_port = free_port()
        # the same converter, but allowing a port where nothing listens
        proxy = type(proxy)(proxy.log_path.parent, [
            "-m", "server", "-l", "127.0.0.1", "-p", str(proxy_port), "--convert",
            "--allow", "127.0.0.1/32:%d" % closed])
        port, message = proxy_port, connect_msg(closed)
    try:
        reply, rest, error, elapsed = converter_client(
            port, message, b"" if case == "truncated" else b"payload")
        assert error is None, error          # an orderly close after the Error TLV
        assert reply is not None and reply.error is not None, (reply, rest)
        assert reply.error[0] == code
        assert rest == b""                    # nothing relayed
        assert elapsed < 5
        proxy.wait_log(r"conn=1 refused peer=127\.0\.0\.1:\d+ destination=\S+: %s[^;\n]*; "
                       r"answered RFC 8803 Error %d " % (log_text, code))
        assert backend.results == []
        assert "closed peer" not in proxy.log()
    finally:
        if case == "refused":
            proxy.stop()


def test_info_tlv_is_answered_with_supported_extensions(converter):
    proxy, port, _backend = converter
    reply, rest, error, _ = converter_client(port, P.encode_message([P.tlv_info()]))
    assert error is None and rest == b""
    assert reply.supported in ([30], [])      # [30] when MPTCP is on
    proxy.wait_log(r"conn=1 peer=\S+ sent an Info TLV")


def test_bad_clients_refused_in_time_while_others_pass(converter):
    """Clients that send part of a Convert message and stall are refused within
    --convert-timeout (1 s); a 64 KiB "header", a TLV of length 0 and a
    destination not allowed are refused at once; 8 good connections beside them
    relay identical data, and the backend sees only those 8."""
    proxy, port, backend = converter
    stalled = []
    for cut in (1, 3, 10):
        started = time.monotonic()            # before the proxy can accept it
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(connect_msg(backend.port)[:cut])
        stalled.append((sock, started))
    results, bad = [], []

    def good(i):
        data = os.urandom(200_000 + i)
        reply, rest, error, _ = converter_client(port, connect_msg(backend.port), data)
        results.append((reply is not None and reply.tlvs == [], error, sha(rest) == sha(data)))

    def refused(message):
        reply, rest, error, elapsed = converter_client(port, message, b"data")
        bad.append((reply.error[0] if reply and reply.error else None, rest, error,
                    elapsed < 4))

    threads = [threading.Thread(target=good, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=refused, args=(message,)) for message in (
        bytes([1, 255, 0, 0, 10, 255]) + os.urandom(64 << 10),
        bytes([1, 2, 0, 0, 10, 0, 0, 0]),
        connect_msg(backend.port + 1 if backend.port < 65535 else 1))]
    for thread in threads:
        thread.start()
    for sock, started in stalled:
        got = recv_all(sock)                  # the Error TLV, then EOF
        waited = time.monotonic() - started
        reply, _rest = split_reply(got)
        assert reply.error[0] == P.ERR_MALFORMED_MESSAGE
        assert 0.95 <= waited < 4, waited
        sock.close()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [(True, None, True)] * 8
    assert sorted(bad) == [(1, b"", None, True), (1, b"", None, True), (32, b"", None, True)], bad
    assert len(proxy.wait_log(r"refused peer=\S+ destination=-: no whole Convert message "
                              r"within 1s \(--convert-timeout; (1|3|10) bytes came\)", 3)) == 3
    # refused for what they sent, not by the timeout
    for reason in (r"Connect TLV of 1020 bytes at byte 4 goes past Total Length",
                   r"Connect TLV of length 0 at byte 4",
                   r"not allowed by --allow"):
        proxy.wait_log(r"refused peer=\S+ destination=\S+: %s" % reason)
    assert len(proxy.wait_log(r"refused peer=", 6)) == 6
    assert len(proxy.wait_log(r"closed peer=", 8)) == 8
    assert sorted(backend.wait_results(8)) == sorted(200_000 + i for i in range(8))
    assert proxy.proc.poll() is None


def test_transparent_refuses_connections_made_to_its_own_port(make_proxy):
    """Without a redirect, the original destination is the proxy itself: relaying
    it would loop, so the connection is reset and the refusal logged."""
    port = free_port()
    client = make_proxy("-m", "client", "-l", "127.0.0.1", "-p", port, "--transparent",
                        "-r", "127.0.0.1:9")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(b"x")
            sock.shutdown(socket.SHUT_WR)
            if recv_all(sock) == b"":
                raise AssertionError("an orderly end, not a reset")
    client.wait_log(r"conn=1 failed peer=\S+ remote=127\.0\.0\.1:%d: not redirected: "
                    r"127\.0\.0\.1:%d is this proxy's own address and port" % (port, port))
