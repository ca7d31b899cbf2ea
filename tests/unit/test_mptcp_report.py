"""The filters of plugins/filter/mptcp_report.py (role mptcp_check's tables and summary)."""
import pytest

from ansible_collections.multipath.mptcp.plugins.filter.mptcp_report import (
    mptcp_count_rows, mptcp_path_bytes, mptcp_path_lines, mptcp_summary, mptcp_table)

EVENTS = [
    {"event": "CREATED", "token": "8bf15b9c"},
    {"event": "ESTABLISHED", "token": "8bf15b9c", "saddr": "10.102.0.3", "sport": 51832,
     "daddr": "10.102.0.2", "dport": 4444},
    {"event": "ANNOUNCED", "token": "8bf15b9c"},
    {"event": "SF_ESTABLISHED", "token": "8bf15b9c", "saddr": "10.102.1.3", "sport": 40463,
     "daddr": "10.102.1.2", "dport": 4444, "backup": 0},
    {"event": "CLOSED", "token": "8bf15b9c"},
]


def test_rows_flag_mismatch_and_list_unexpected_events():
    rows = mptcp_count_rows({"CREATED": 2, "ANNOUNCED": 0, "SF_CLOSED": 1},
                            {"CREATED": 2, "ANNOUNCED": 2})
    assert rows == [
        {"event": "CREATED", "expected": 2, "seen": 2, "ok": True},
        {"event": "ANNOUNCED", "expected": 2, "seen": 0, "ok": False},
        {"event": "SF_CLOSED", "expected": None, "seen": 1, "ok": True},
    ]


def test_table_lines():
    rows = mptcp_count_rows({"CREATED": 1, "ANNOUNCED": 0}, {"CREATED": 1, "ANNOUNCED": 2})
    assert mptcp_table(rows, EVENTS, "sevpn-client-proxy") == [
        "MPTCP events on sevpn-client-proxy",
        "  event      expected  seen",
        "  CREATED           1     1  ok",
        "  ANNOUNCED         2     0  MISMATCH",
        "Subflows (2):",
        "  initial  10.102.0.3:51832 -> 10.102.0.2:4444 token 8bf15b9c",
        "  subflow  10.102.1.3:40463 -> 10.102.1.2:4444 token 8bf15b9c",
    ]


def test_path_bytes_from_counter_lines():
    before = ["100", "200", "10", "20"]
    after = ["150", "260", "10", "20"]
    paths = mptcp_path_bytes(before, after, ["eth0", "eth1"])
    assert paths == [
        {"interface": "eth0", "rx_bytes": 50, "tx_bytes": 60, "bytes": 110},
        {"interface": "eth1", "rx_bytes": 0, "tx_bytes": 0, "bytes": 0},
    ]
    assert mptcp_path_lines(paths)[2].endswith("NO TRAFFIC")
    assert mptcp_path_lines([]) == []


def test_path_bytes_rejects_a_short_reading():
    with pytest.raises(ValueError, match="expected 4 counter lines for eth0, eth1, got 3 and 4"):
        mptcp_path_bytes(["1", "2", "3"], ["1", "2", "3", "4"], ["eth0", "eth1"])


def test_summary():
    rows = mptcp_count_rows({"CREATED": 1, "CLOSED": 1}, {"CREATED": 1, "CLOSED": 1})
    result = {"host": "sevpn-client-proxy", "rows": rows, "passed": True, "events": EVENTS,
              "paths": mptcp_path_bytes(["0", "0"], ["5", "6"], ["eth0"]), "iperf3": {},
              "ping_received": 5, "ping_count": 5, "ping_target": "10.100.1.3",
              "ping_host": "sevpn-client-vpn"}
    nodes = [{"name": "sevpn-client-vpn", "addresses": ["eth0 10.101.0.3 (sevpn-client-lan)"]},
             {"name": "hw-router", "addresses": []}]
    assert mptcp_summary([result], nodes) == [
        "Nodes:",
        "  sevpn-client-vpn  eth0 10.101.0.3 (sevpn-client-lan)",
        "  hw-router         -",
        "PASSED on sevpn-client-proxy: CREATED 1/1, CLOSED 1/1 (seen/expected)",
        "Subflows (2):",
        "  initial  10.102.0.3:51832 -> 10.102.0.2:4444 token 8bf15b9c",
        "  subflow  10.102.1.3:40463 -> 10.102.1.2:4444 token 8bf15b9c",
        "Paths (bytes moved during the check):",
        "  eth0                5 received             6 sent",
        "ping 10.100.1.3 from sevpn-client-vpn: 5/5 replies",
    ]
