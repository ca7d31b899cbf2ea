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
        {"interface": "eth0", "rx_bytes": 50, "tx_bytes": 60, "bytes": 110, "backup": False, "ok": True},
        {"interface": "eth1", "rx_bytes": 0, "tx_bytes": 0, "bytes": 0, "backup": False, "ok": False},
    ]
    assert mptcp_path_lines(paths)[2].endswith("NO TRAFFIC")
    assert mptcp_path_lines([]) == []


def test_backup_path_must_move_less_than_its_share_of_the_active_paths():
    before = ["0", "0", "0", "0"]
    paths = mptcp_path_bytes(before, ["500000", "500000", "3000", "6000"], ["eth0", "eth1"], ["eth1"])
    assert paths[1] == {"interface": "eth1", "rx_bytes": 3000, "tx_bytes": 6000, "bytes": 9000,
                        "backup": True, "ok": True, "share": 0.009, "max_share": 0.01}
    assert paths[0]["ok"] and not paths[0]["backup"]
    assert mptcp_path_lines(paths)[2] == ("  eth1             3000 received          6000 sent"
                                          "  backup: 0.9000 % of the active paths' bytes (max 1 %)")
    # 1 % or more of what the active paths moved: not a standby path
    paths = mptcp_path_bytes(before, ["500000", "500000", "4000", "6000"], ["eth0", "eth1"], ["eth1"], 0.01)
    assert not paths[1]["ok"] and paths[1]["share"] == 0.01
    assert mptcp_path_lines(paths)[2].endswith("(max 1 %)  TOO MUCH")
    # a backup path that moved nothing (not even its subflow's handshake) is down
    paths = mptcp_path_bytes(before, ["5", "5", "0", "0"], ["eth0", "eth1"], ["eth1"])
    assert not paths[1]["ok"] and mptcp_path_lines(paths)[2].endswith("NO TRAFFIC")
    # no active path moved anything: no share to compare with
    paths = mptcp_path_bytes(before, ["0", "0", "1", "0"], ["eth0", "eth1"], ["eth1"])
    assert paths[1]["share"] is None and not paths[1]["ok"]
    assert mptcp_path_lines(paths)[2].endswith("NO ACTIVE PATH MOVED ANYTHING")


def test_path_bytes_rejects_a_backup_interface_it_did_not_read():
    with pytest.raises(ValueError, match="backup interfaces eth2 are not among the interfaces read"):
        mptcp_path_bytes(["1", "2"], ["1", "2"], ["eth0"], ["eth2"])


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
