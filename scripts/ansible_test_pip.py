"""Lets `ansible-test sanity` make its virtual environments with pip from PyPI.

ansible-test installs the requirements of a sanity test (pylint, pycodestyle, voluptuous, ...) into
a virtual environment of its own under ~/.ansible/test/venv, created without pip. To put pip into it
it runs a get-pip script that it downloads from a host of its own and keeps as
~/.ansible/test/cache/get_pip_<version>.py; where that host cannot be reached, the tests that need
requirements stop with "Download failed". This writes that cached script: one that installs pip
from the pip wheel of PyPI (downloaded once, checked against the sha256 in
tests/sanity/pip-bootstrap.txt) kept beside it. The requirements themselves then come from the
package index as pip is set up on this machine. A script of the same name that this program did
not write (a real get-pip, downloaded where that host is reachable) is left alone.

Run by scripts/bootstrap.sh with the Python of .venv; safe to re-run. Prints what it did."""
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
PINS = os.path.join(os.path.dirname(HERE), "tests", "sanity", "pip-bootstrap.txt")
CACHE = os.path.expanduser("~/.ansible/test/cache")
MARK = "# multipath.mptcp: pip from the PyPI wheel beside this file (scripts/ansible_test_pip.py)"

SHIM = MARK + '''
# ansible-test runs this file in place of get-pip.py, with the arguments of `pip install`.
import os
import sys

WHEEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), %(wheel)r)
sys.path.insert(0, WHEEL)
from pip._internal.cli.main import main  # noqa: E402 (pip runs from its wheel)

ARGS = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", os.path.dirname(WHEEL)] + ARGS))
'''


def wanted_version():
    """The pip version ansible-test (of this .venv) bootstraps into its virtual environments."""
    from ansible_test._internal.python_requirements import get_venv_packages
    version = "%d.%d" % sys.version_info[:2]
    return get_venv_packages(types.SimpleNamespace(version=version))["pip"]


def pinned():
    """{version: sha256} of tests/sanity/pip-bootstrap.txt (lines `pip==V --hash=sha256:H`)."""
    pins = {}
    with open(PINS) as f:
        for line in f:
            m = re.match(r"pip==(\S+)\s+--hash=sha256:([0-9a-f]{64})\s*$", line)
            if m:
                pins[m.group(1)] = m.group(2)
    return pins


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    version = wanted_version()
    digest = pinned().get(version)
    if digest is None:
        sys.exit("ansible-test bootstraps pip %s, which %s does not pin: add `pip==%s --hash=sha256:...`"
                 % (version, PINS, version))
    shim = os.path.join(CACHE, "get_pip_%s.py" % version.replace(".", "_"))
    if os.path.exists(shim):
        with open(shim) as f:
            if f.readline().rstrip("\n") != MARK:
                print("ansible-test pip %s: %s is ansible-test's own download, left alone" % (version, shim))
                return
    wheel = "pip-%s-py3-none-any.whl" % version
    wheel_path = os.path.join(CACHE, wheel)
    os.makedirs(CACHE, exist_ok=True)
    if not os.path.exists(wheel_path) or sha256(wheel_path) != digest:
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            with open(os.path.join(tmp, "pin.txt"), "w") as f:
                f.write("pip==%s --hash=sha256:%s\n" % (version, digest))
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                            "--require-hashes", "-r", os.path.join(tmp, "pin.txt"), "-d", tmp], check=True)
            os.replace(os.path.join(tmp, wheel), wheel_path)
        print("ansible-test pip %s: %s from PyPI" % (version, wheel_path))
    text = SHIM % {"wheel": wheel}
    current = None
    if os.path.exists(shim):
        with open(shim) as f:
            current = f.read()
    if current != text:
        with open(shim + ".tmp", "w") as f:
            f.write(text)
        os.replace(shim + ".tmp", shim)
        print("ansible-test pip %s: %s" % (version, shim))


if __name__ == "__main__":
    main()
