# -*- coding: utf-8 -*-
# Copyright: multipath.mptcp contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files and systemd units that a module of this collection installs in one call (so that a role
needs one round trip to the host instead of one per file): write a file only when its content or
mode differs (atomically, check mode and diff honoured), remove files, and run systemctl.

Used by the modules boot_restore_unit and mptcp_proxy_instance.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

UNIT_DIR = "/etc/systemd/system"


def read_file(path):
    """(content, mode) of a file, (None, None) when it does not exist."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        return data.decode("utf-8", "replace"), os.stat(path).st_mode & 0o7777
    except (IOError, OSError):
        if os.path.lexists(path):
            raise
        return None, None


def write_atomic(path, content, mode):
    """Write `content` to `path` through a temporary file in the same directory and a rename."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content.encode("utf-8"))
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class HostFiles:
    """The files one module call manages: what changed, and the diff of it."""

    def __init__(self, module):
        self.module = module
        self.changed_files = []
        self.diff = {"before": "", "after": ""}

    def note(self, path, before, after):
        self.changed_files.append(path)
        self.diff["before"] += "# %s\n%s" % (path, before or "")
        self.diff["after"] += "# %s\n%s" % (path, after or "")

    def ensure_file(self, path, content, mode, before_write=None):
        """Make `path` hold `content` with `mode`; True when it had to change.

        `before_write(path, content)` runs (outside check mode) before the file is written; it
        may fail the module, and the file then stays as it was.
        """
        old, old_mode = read_file(path)
        if old == content and old_mode == mode:
            return False
        if old == content:
            self.note(path, "(mode %s)\n" % oct(old_mode), "(mode %s)\n" % oct(mode))
        else:
            self.note(path, old, content)
        if not self.module.check_mode:
            if before_write:
                before_write(path, content)
            write_atomic(path, content, mode)
        return True

    def ensure_dir(self, path, mode=0o755):
        """Create the directory `path` (and its parents) when missing, or set its mode; True when it changed."""
        if os.path.isdir(path):
            if os.stat(path).st_mode & 0o7777 == mode:
                return False
            self.note(path + "/", "(directory, mode %s)\n" % oct(os.stat(path).st_mode & 0o7777),
                      "(directory, mode %s)\n" % oct(mode))
            if not self.module.check_mode:
                os.chmod(path, mode)
            return True
        self.note(path + "/", None, "(directory, mode %s)\n" % oct(mode))
        if not self.module.check_mode:
            os.makedirs(path, mode=mode, exist_ok=True)
            os.chmod(path, mode)
        return True

    def remove(self, path):
        """Remove a file or a whole directory; True when there was one."""
        if os.path.isdir(path) and not os.path.islink(path):
            self.note(path + "/", "(directory)\n", None)
            if not self.module.check_mode:
                shutil.rmtree(path)
            return True
        if not os.path.lexists(path):
            return False
        old, _mode = read_file(path)
        self.note(path, old, None)
        if not self.module.check_mode:
            os.unlink(path)
        return True


class Systemctl:
    """systemctl through the module; a failure fails the module with what changed so far."""

    def __init__(self, module, files=None):
        self.module = module
        self.files = files

    def run(self, *args):
        rc, out, err = self.module.run_command(["systemctl"] + list(args), environ_update={"LC_ALL": "C"})
        return rc, out.strip(), err.strip()

    def run_or_fail(self, *args, **extra):
        rc, out, err = self.run(*args)
        if rc != 0:
            msg = extra.pop("msg", None) or "systemctl %s failed (rc %d): %s" % (" ".join(args), rc, err or out)
            self.module.fail_json(msg=msg, changed_files=self.files.changed_files if self.files else [], **extra)
        return out

    def is_enabled(self, unit):
        rc, out, _err = self.run("is-enabled", unit)
        return rc == 0 and out == "enabled"

    def is_active(self, unit):
        rc, out, _err = self.run("is-active", unit)
        return out in ("active", "reloading", "activating")

    def running_units(self, pattern):
        """Names of the running units that match the glob `pattern`."""
        rc, out, _err = self.run("list-units", "--state=running", "--no-legend", "--plain", pattern)
        return [line.split()[0] for line in out.splitlines() if line.strip()] if rc == 0 else []

    def journal_tail(self, unit, lines=15):
        rc, out, err = self.module.run_command(["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", unit],
                                               environ_update={"LC_ALL": "C"})
        return [line for line in out.splitlines() if line.strip()]


def has_systemd():
    return os.path.isdir("/run/systemd/system")
