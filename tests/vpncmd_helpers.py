"""vpncmd (SoftEther's command line) in a lab container, for the tests that read a VPN server back.

When the server refuses a password, vpncmd prompts `Password:` for another one; with stdin at EOF
it then spins until it is killed. vpncmd() therefore runs it under a small Python watcher inside the
container that returns as soon as the output ends with that prompt (the refusal is then certain)
and kills vpncmd there, bounded by `timeout` seconds in all cases. The exit status is vpncmd's own
when it ended by itself, 125 when the watcher stopped it at the prompt, 124 on the time bound.
"""
import subprocess

WATCH = r"""
import os, select, subprocess, sys, time
timeout, argv = float(sys.argv[1]), sys.argv[2:]
proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
out, deadline, rc = b"", time.monotonic() + timeout, None
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        rc = 124
        break
    if select.select([proc.stdout], [], [], left)[0]:
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        out += chunk
        if out.rstrip().endswith(b"Password:"):
            rc = 125
            break
if rc is None:
    rc = proc.wait()
else:
    proc.kill()
    proc.wait()
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(rc)
"""


def vpncmd(container, *args, timeout=15):
    """vpncmd ARGS in container: (exit status, output)."""
    res = subprocess.run(["docker", "exec", container, "python3", "-c", WATCH, str(timeout), "vpncmd"] + list(args),
                         capture_output=True, text=True, timeout=timeout + 30)
    return res.returncode, res.stdout + res.stderr
