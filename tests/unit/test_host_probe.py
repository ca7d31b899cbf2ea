"""The SoftEther roles' read-once probe (roles/softether_common/files/host_probe.py, run here on this
machine's real files and units) and the filters that decide from it whether a library task would
change anything (plugins/filter/host_probe.py: file_in_place, unit_in_state)."""
import json
import os
import subprocess
import sys

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.multipath.mptcp.plugins.filter.host_probe import file_in_place, unit_in_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE = os.path.join(ROOT, "roles", "softether_common", "files", "host_probe.py")


def probe(**request):
    with open(PROBE) as fh:
        code = fh.read()
    out = subprocess.run([sys.executable, "-c", code, json.dumps(request)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="files owned by root:root are made as root")
def test_probe_reads_files_that_the_filter_then_compares(tmp_path):
    script = tmp_path / "helper"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    folder = tmp_path / "dir"
    folder.mkdir(mode=0o750)
    folder.chmod(0o750)
    found = probe(files=[str(script), str(folder), str(tmp_path / "missing")])["files"]
    assert found[str(script)]["mode"] == "0755" and found[str(script)]["owner"] == "root"
    assert file_in_place(found[str(script)], "#!/bin/sh\necho hi\n", "0755") is True
    assert file_in_place(found[str(script)], "#!/bin/sh\necho ho\n", "0755") is False  # content
    assert file_in_place(found[str(script)], "#!/bin/sh\necho hi\n", "0644") is False  # mode
    assert file_in_place(found[str(script)], "#!/bin/sh\necho hi\n", "0755", owner="nobody") is False
    assert file_in_place(found[str(folder)], mode="0750") is True
    assert file_in_place(found[str(folder)], mode="0755") is False
    assert file_in_place(found[str(folder)], "text", "0750") is False  # a directory where a file goes
    assert file_in_place(found[str(script)], mode="0755") is False  # a file where a directory goes
    assert found[str(tmp_path / "missing")]["exists"] is False
    assert file_in_place(found[str(tmp_path / "missing")], "x") is False


def test_probe_reads_links_packages_and_units():
    found = probe(packages=["iproute2", "no-such-package-xyz"], units=["no-such-unit-xyz.service"])
    assert "lo" in [link["ifname"] for link in found["links"]]
    assert found["packages"]["iproute2"] == "installed"
    assert found["packages"]["no-such-package-xyz"] is None
    assert found["units"]["no-such-unit-xyz.service"]["LoadState"] == "not-found"
    assert unit_in_state(found["units"]["no-such-unit-xyz.service"], "stopped") is False


@pytest.mark.parametrize("entry, state, enabled, expected", [
    ({"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"}, "started", True, True),
    ({"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"}, "started", None, True),
    ({"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "disabled"}, "started", True, False),
    ({"LoadState": "loaded", "ActiveState": "failed", "UnitFileState": "enabled"}, "started", True, False),
    ({"LoadState": "loaded", "ActiveState": "inactive", "UnitFileState": "disabled"}, "stopped", False, True),
    ({"LoadState": "loaded", "ActiveState": "inactive", "UnitFileState": "static"}, "stopped", False, False),
    ({"LoadState": "loaded", "ActiveState": "activating", "UnitFileState": "disabled"}, "stopped", False, False),
    ({"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""}, "stopped", None, False),
])
def test_unit_in_state(entry, state, enabled, expected):
    assert unit_in_state(entry, state, enabled) is expected


def test_filters_refuse_what_is_not_a_probe_entry():
    with pytest.raises(AnsibleFilterError, match="file_in_place expects a probe entry"):
        file_in_place("/etc/passwd")
    with pytest.raises(AnsibleFilterError, match="unit_in_state expects a probe entry"):
        unit_in_state({}, "started")
    with pytest.raises(AnsibleFilterError, match="state must be started or stopped"):
        unit_in_state({"ActiveState": "active"}, "restarted")
