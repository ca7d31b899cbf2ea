# Read-only probe run by the mptcp_proxy role before it changes anything:
#   python3 -c "<this file>" PORT UNIT
# prints JSON: whether systemd is the init system, the host's addresses and on-link prefixes (ip -j addr), the sockets that
# listen on PORT with their processes and owners (ss -Hltnpe), whether they belong to
# the running instance UNIT, its MainPID (0 if none), and whether nft (nftables) is installed.
import json
import os
import re
import shutil
import subprocess
import sys

port, unit = int(sys.argv[1]), sys.argv[2]


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout


addresses, prefixes = [], []
for link in json.loads(run("ip", "-j", "addr", "show") or "[]"):
    for info in link.get("addr_info", []):
        if info.get("family") in ("inet", "inet6") and "local" in info:
            addresses.append(info["local"])
            if info.get("scope") == "global":
                prefixes.append("%s/%s" % (info["local"], info["prefixlen"]))

main_pid = run("systemctl", "show", "--property=MainPID", "--value", unit).strip()
main_pid = int(main_pid) if main_pid.isdigit() else 0
main_uid = None
if main_pid:
    try:
        with open("/proc/%d/status" % main_pid, encoding="ascii") as status:
            for line in status:
                if line.startswith("Uid:"):
                    main_uid = int(line.split()[1])
    except OSError:
        pass

# A listener is this instance's when ss names its process (root may not see the processes
# of a DynamicUser= service without CAP_SYS_PTRACE) or when it belongs to the unit's
# dynamic user (ss -e shows uid: for sockets of non-root users).
listeners = []
for line in run("ss", "-Hltnpe", "sport = :%d" % port).splitlines():
    fields = line.split()
    if len(fields) < 4:
        continue
    host = fields[3].rsplit(":", 1)[0].strip("[]").split("%")[0]
    users = re.findall(r'\("([^"]*)",pid=(\d+)', line)
    uid = re.search(r"\buid:(\d+)", line)
    uid = int(uid.group(1)) if uid else 0
    pids = [int(u[1]) for u in users]
    mine = bool(main_pid) and (main_pid in pids or (main_uid not in (None, 0) and uid == main_uid))
    listeners.append({"address": host, "processes": sorted({u[0] for u in users}),
                      "uid": uid, "mine": mine})

print(json.dumps({"systemd": os.path.isdir("/run/systemd/system"), "addresses": addresses, "prefixes": prefixes, "listeners": listeners,
                  "main_pid": main_pid,
                  "nft": any(os.access(p, os.X_OK) for p in ("/usr/sbin/nft", "/sbin/nft"))
                  or bool(shutil.which("nft"))}))
