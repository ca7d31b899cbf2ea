"""plugins/modules/mptcp_monitor.py without the kernel's MPTCP: where a capture may be written
(directories, links, files of other users) and which process a pid file may name."""
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.multipath.mptcp.plugins.module_utils.mptcp import MptcpError
from ansible_collections.multipath.mptcp.plugins.modules import mptcp_monitor as mon

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make files of another user")


def test_a_directory_of_this_user_is_accepted(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    fd = mon.open_dir(str(tmp_path / "events.log"))
    os.close(fd)


@pytest.mark.parametrize("mode, words", [(0o777, ["is writable by other users (mode 0777)"]),
                                         (0o775, ["mode 0775"]), (0o1777, ["mode 1777"])])
def test_a_directory_others_can_write_to_is_refused(tmp_path, mode, words):
    os.chmod(str(tmp_path), mode)
    with pytest.raises(MptcpError) as e:
        mon.open_dir(str(tmp_path / "events.log"))
    for word in words + ["path %s is refused" % (tmp_path / "events.log")]:
        assert word in e.value.msg


def test_a_linked_directory_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(MptcpError) as e:
        mon.open_dir(str(tmp_path / "link" / "events.log"))
    assert e.value.msg == "capture directory %s is a symbolic link: refused (give a real directory)" % (tmp_path / "link")


@root_only
def test_a_directory_of_another_user_is_refused(tmp_path):
    os.chown(str(tmp_path), 65534, 65534)
    with pytest.raises(MptcpError) as e:
        mon.open_dir(str(tmp_path / "events.log"))
    assert "is owned by uid 65534, not by uid 0" in e.value.msg


def test_files_links_and_replacement(tmp_path):
    (tmp_path / "victim").write_text("keep")
    (tmp_path / "events.log").symlink_to(tmp_path / "victim")
    (tmp_path / "fifo").mkdir()
    fd = mon.open_dir(str(tmp_path / "x"))
    try:
        with pytest.raises(MptcpError) as e:
            mon.create(fd, "events.log", str(tmp_path / "events.log"))
        assert "is a symbolic link: refused, nothing was written or followed" in e.value.msg
        with pytest.raises(MptcpError) as e:
            mon.read(fd, "events.log", "p")
        assert "p is a symbolic link" in e.value.msg
        with pytest.raises(MptcpError) as e:
            mon.entry(fd, "fifo", "p")
        assert e.value.msg == "p is not a regular file: refused"
        assert mon.read(fd, "missing", "p") == ""
        (tmp_path / "old.log").write_text("old capture")
        out = mon.create(fd, "old.log", "p")  # an earlier capture of ours is replaced
        os.write(out, b"new")
        os.close(out)
        assert mon.read(fd, "old.log", "p") == "new" and oct(os.stat(str(tmp_path / "old.log")).st_mode & 0o777) == "0o600"
    finally:
        os.close(fd)
    assert (tmp_path / "victim").read_text() == "keep"


@root_only
def test_a_file_of_another_user_is_refused(tmp_path):
    (tmp_path / "events.log").write_text("theirs")
    os.chown(str(tmp_path / "events.log"), 65534, 65534)
    fd = mon.open_dir(str(tmp_path / "events.log"))
    try:
        with pytest.raises(MptcpError) as e:
            mon.create(fd, "events.log", "p")
        assert e.value.msg == "p belongs to uid 65534, not to uid 0 that runs the monitor: refused"
    finally:
        os.close(fd)
    assert (tmp_path / "events.log").read_text() == "theirs"


def test_own_directories_are_only_those_below_run_multipath_mptcp(tmp_path, monkeypatch):
    monkeypatch.setattr(mon, "OWN_DIR", str(tmp_path / "own"))
    mon.make_own_dirs(str(tmp_path / "own" / "monitor" / "a"))
    for folder in ("own", "own/monitor", "own/monitor/a"):
        assert oct(os.stat(str(tmp_path / folder)).st_mode & 0o777) == "0o700"
    mon.make_own_dirs(str(tmp_path / "elsewhere"))
    assert not (tmp_path / "elsewhere").exists()
    assert mon.own_dir_missing(str(tmp_path / "own" / "new" / "x.log"))
    assert not mon.own_dir_missing(str(tmp_path / "elsewhere" / "x.log"))


def test_a_record_names_only_the_process_started():
    argv = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"  # it has exec'd: /proc shows its own argv
        record = dict(pid=proc.pid, start_time=mon.start_time(proc.pid), argv=argv)
        assert record["start_time"] > 0
        assert mon.is_recorded(record)
        assert not mon.is_recorded(dict(record, start_time=record["start_time"] - 1))
        assert not mon.is_recorded(dict(record, argv=["ip", "mptcp", "monitor"]))
        assert not mon.is_recorded(dict(record, pid=1))
        assert not mon.is_recorded(dict(record, pid="x")) and not mon.is_recorded({})
        assert mon.terminate(dict(record, start_time=0)) is False and proc.poll() is None
        assert mon.terminate(record) is True
        assert proc.wait(timeout=5) == -15
    finally:
        proc.kill()


def test_pid_file_in_the_old_format_or_garbage_names_nothing(tmp_path):
    fd = mon.open_dir(str(tmp_path / "e.log"))
    try:
        for text in ("%d\n" % os.getpid(), "not json", json.dumps([1, 2]), json.dumps({"pid": os.getpid()})):
            (tmp_path / "e.log.pid").write_text(text)
            assert mon.running_monitor(fd, "e.log", "p") is None
    finally:
        os.close(fd)
