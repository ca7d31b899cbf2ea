# Read-only probe run by the SoftEther roles before they change anything:
#   python3 -c "<this file>" '{"packages": [...], "files": [...], "units": [...]}'
# prints JSON, read once per run and reused by every task of the roles:
#   links     `ip -j address show`
#   packages  {name: dpkg status ("installed", ...) or null when unknown to dpkg}
#   files     {path: {exists, dir, sha1, mode ("0644"), owner, group}} (sha1 of regular files only)
#   units     {unit: {LoadState, ActiveState, UnitFileState}} from `systemctl show`
import grp
import hashlib
import json
import os
import pwd
import subprocess
import sys

request = json.loads(sys.argv[1])


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout


def name_of(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def file_info(path):
    try:
        st = os.stat(path)
    except OSError:
        return {"exists": False, "dir": False, "sha1": None, "mode": None, "owner": None, "group": None}
    info = {"exists": True, "dir": os.path.isdir(path), "sha1": None, "mode": "%04o" % (st.st_mode & 0o7777),
            "owner": name_of(pwd.getpwuid, st.st_uid), "group": name_of(grp.getgrgid, st.st_gid)}
    if os.path.isfile(path):
        with open(path, "rb") as fh:
            info["sha1"] = hashlib.sha1(fh.read()).hexdigest()
    return info


packages = {name: None for name in request.get("packages", [])}
if packages:
    out = run("dpkg-query", "--show", "--showformat=${Package} ${db:Status-Status}\n", *packages)
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] in packages:
            packages[fields[0]] = fields[1]

units = {}
names = request.get("units", [])
if names:
    # one block of KEY=VALUE lines per unit, in the order asked, separated by blank lines
    out = run("systemctl", "show", "--property=LoadState,ActiveState,UnitFileState", *names)
    blocks = out.strip().split("\n\n") if out.strip() else []
    for name, block in zip(names, blocks):
        units[name] = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
    for name in names:
        units.setdefault(name, {"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""})

print(json.dumps({
    "links": json.loads(run("ip", "-j", "address", "show") or "[]"),
    "packages": packages,
    "files": {path: file_info(path) for path in request.get("files", [])},
    "units": units,
}))
