"""What role mptcp_host could change on a host, read by a small program run inside a network
namespace (the tests of the role's bad input and of its state absent)."""

# Everything the role could change, as JSON on stdout (run inside the namespace).
STATE = r'''
import glob, json, os, subprocess, sys
def ip(*a):
    out = subprocess.run(["ip", "-j"] + list(a), capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")
def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return "missing: %s" % e.strerror
sysctls = {p: read(p).strip() for p in sorted(glob.glob("/proc/sys/net/mptcp/*"))
           + ["/proc/sys/net/ipv4/conf/all/rp_filter", "/proc/sys/net/ipv4/conf/default/rp_filter"]}
persist = sys.argv[2]
print(json.dumps({
    "sysctls": sysctls,
    "sysctl_file": read(sys.argv[1]),
    "limits": subprocess.run(["ip", "mptcp", "limits", "show"], capture_output=True, text=True).stdout,
    "endpoints": ip("mptcp", "endpoint", "show"),
    "rules": ip("-4", "rule", "show") + ip("-6", "rule", "show"),
    "routes": ip("-4", "route", "show", "table", "all") + ip("-6", "route", "show", "table", "all"),
    "persist": sorted(os.listdir(persist)) if os.path.isdir(persist) else None,
}, sort_keys=True))
'''
