"""Provisioning and scale benchmarks of `make bench` (bench/mptcp_bench.py runs them; alone:
`.venv/bin/python bench/provisioning.py [--scenarios simple sevpn] [--scale 1 2 4 8]`).

Provisioning, per scenario, side by side in one run:
  baseline    bench/baseline.py <scenario>: docker CLI + ip mptcp + the proxy program + iperf3 +
              exact counting, from no lab to verified counts (skipped, and said so, for a
              scenario that has no baseline yet)
  first       playbooks/<scenario>.yml from no lab (after lab_down.yml -e lab_group=<scenario>)
  again       the same playbook once more (changed=0 expected)
  configure   playbooks/configure.yml -e scenario=<scenario> alone, again
  check       playbooks/check.yml -e scenario=<scenario> alone
Each figure is the wall time of the whole ansible-playbook process, with its ratio to the
baseline; the ten slowest tasks of every playbook run come from the ansible.posix.profile_tasks
callback (the switch users have too: ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks).

Scale: bench/scale_inventory.py writes N client/server pairs of the simple topology (scale-<n>-*,
10.140.0.0/16); for N = 1, 2, 4, 8: lab_up.yml, configure.yml (one run for all pairs) and
check.yml, timed, over the Docker connection and over SSH (a key made for the run); the cost of an
added pair is (t(N) - t(1)) / (N - 1). The scale labs are removed at the end.

The lab image is built or reused first (playbooks/lab_image.yml, not timed). Every lab is held
under its lock /tmp/multipath-mptcp-lab-<lab>.lock (tests/lablock.py's scheme),
so a test run never shares a lab with the bench. Nothing is made up: a step that fails is
reported with its rc and log file, and its figures are absent.
"""
import argparse
import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import scale_inventory  # noqa: E402  (bench/scale_inventory.py)

PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                   re.M)
# profile_tasks' recap: "<role> : <task> ------- 4.57s"
TASK_TIME = re.compile(r"^(.+?) -{2,} (\d+\.\d+)s$", re.M)
BASELINES = ("simple", "sevpn")


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


@contextlib.contextmanager
def lab_lock(lab, wait_s):
    """flock /tmp/multipath-mptcp-lab-<lab>.lock (the test suite's lock of that lab)."""
    with open("/tmp/multipath-mptcp-lab-%s.lock" % lab, "a", encoding="utf-8") as fh:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("lab lock of %s held by another run for %d s"
                                       % (lab, wait_s))
                time.sleep(1)
        yield


def playbook(name, *extra, inventory=None, log_path=None, env=None):
    """One ansible-playbook run: wall seconds, rc, changed/failed from the recap, 10 slowest tasks."""
    cmd = [PLAYBOOK] + (["-i", inventory] if inventory else []) + [
        os.path.join(ROOT, "playbooks", name)] + list(extra)
    run_env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
                   PROFILE_TASKS_TASK_OUTPUT_LIMIT="10", **(env or {}))
    start = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=run_env, check=False)
    seconds = time.monotonic() - start
    if log_path:
        with open(log_path, "w", encoding="utf-8") as fh:
            fh.write(" ".join(cmd) + "\n" + res.stdout + res.stderr)
    recap = RECAP.findall(res.stdout)
    tail = res.stdout[res.stdout.rfind("TASKS RECAP"):] if "TASKS RECAP" in res.stdout else ""
    return {"rc": res.returncode, "seconds": round(seconds, 2),
            "changed": sum(int(r[2]) for r in recap),
            "failed": sum(int(r[4]) + int(r[3]) for r in recap),
            "slowest_tasks": [[t.strip(), float(s)] for t, s in TASK_TIME.findall(tail)][:10],
            "log": log_path}


def baseline(scenario, out_dir):
    if scenario not in BASELINES:
        return {"skipped": "no hand-written baseline for %s in bench/baseline.py" % scenario}
    start = time.monotonic()
    res = subprocess.run([PYTHON, os.path.join(HERE, "baseline.py"), scenario], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    with open(os.path.join(out_dir, "baseline-%s.log" % scenario), "w", encoding="utf-8") as fh:
        fh.write(res.stdout + res.stderr)
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "bench/baseline.py %s failed (rc %d): %s" % (
            scenario, res.returncode, res.stderr.strip()[-500:]),
            "process_s": round(time.monotonic() - start, 2)}
    out["rc"] = res.returncode
    return out


def provision(scenario, out_dir, lock_wait):
    """The five figures of one scenario (see the module docstring)."""
    row = {"scenario": scenario}
    logp = lambda step: os.path.join(out_dir, "provision-%s-%s.log" % (scenario, step))  # noqa: E731
    with lab_lock("bench-baseline", lock_wait):
        log("provision %s: baseline" % scenario)
        row["baseline"] = baseline(scenario, out_dir)
    with lab_lock(scenario, lock_wait):
        log("provision %s: lab_down.yml" % scenario)
        down = playbook("lab_down.yml", "-e", "lab_group=%s" % scenario, log_path=logp("down"))
        if down["rc"] != 0:
            row["error"] = "lab_down.yml failed (rc %d), see %s" % (down["rc"], down["log"])
            return row
        steps = [("first", "%s.yml" % scenario, []), ("again", "%s.yml" % scenario, []),
                 ("configure", "configure.yml", ["-e", "scenario=%s" % scenario]),
                 ("check", "check.yml", ["-e", "scenario=%s" % scenario])]
        for step, name, extra in steps:
            log("provision %s: %s (%s)" % (scenario, step, name))
            res = playbook(name, *extra, log_path=logp(step))
            log("provision %s: %s rc=%d %.1f s changed=%d" % (scenario, step, res["rc"],
                                                              res["seconds"], res["changed"]))
            row[step] = res
            if res["rc"] != 0:
                row["error"] = "%s failed (rc %d), see %s" % (name, res["rc"], res["log"])
                break
    base = row["baseline"].get("seconds") if row["baseline"].get("passed") else None
    row["ratios_to_baseline"] = {
        step: round(row[step]["seconds"] / base, 2)
        for step in ("first", "again", "configure", "check")
        if base and step in row and row[step]["rc"] == 0}
    return row


def scale(counts, out_dir, lock_wait, ssh):
    """lab_up, configure and check of N pairs, for each N; the scale labs removed afterwards."""
    rows = []
    key = None
    tmp = tempfile.mkdtemp(prefix="mptcp-scale-")
    if ssh:
        key = os.path.join(tmp, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    transport = "ssh" if ssh else "docker"
    with lab_lock("scale", lock_wait):
        inv_all = scale_inventory.write(os.path.join(tmp, "all"), max(counts), key)
        for n in counts:
            inv = scale_inventory.write(os.path.join(tmp, "n%d" % n), n, key)
            logp = lambda step: os.path.join(  # noqa: E731
                out_dir, "scale-%s-%d-%s.log" % (transport, n, step))
            # from no scale lab at all (the largest inventory removes every pair)
            down = playbook("lab_down.yml", inventory=inv_all, log_path=logp("down"))
            row = {"pairs": n, "connection": transport}
            if down["rc"] != 0:
                row["error"] = "lab_down.yml failed, see %s" % down["log"]
                rows.append(row)
                break
            env = {"ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(tmp, "cp")} if ssh else {}
            for step, name, extra in (("lab_up", "lab_up.yml", ["-e", "lab_group=scale"]),
                                      ("configure", "configure.yml", ["-e", "scenario=scale"]),
                                      ("check", "check.yml", ["-e", "scenario=scale"])):
                res = playbook(name, *extra, inventory=inv, log_path=logp(step), env=env)
                log("scale %s N=%d %s rc=%d %.1f s" % (transport, n, step, res["rc"],
                                                      res["seconds"]))
                row[step] = res
                if res["rc"] != 0:
                    row["error"] = "%s failed (rc %d), see %s" % (name, res["rc"], res["log"])
                    break
            rows.append(row)
        playbook("lab_down.yml", inventory=inv_all,
                 log_path=os.path.join(out_dir, "scale-%s-down.log" % transport))
    # per step, against N = 1 of the same connection, wherever both runs of that step passed
    ok = lambda row, step: row.get(step, {}).get("rc") == 0  # noqa: E731
    first = rows[0] if rows and rows[0]["pairs"] == 1 else None
    for row in rows[1:] if first else []:
        steps = [step for step in ("lab_up", "configure", "check") if ok(first, step) and ok(row, step)]
        row["per_added_pair_s"] = {
            step: round((row[step]["seconds"] - first[step]["seconds"]) / (row["pairs"] - 1), 2)
            for step in steps}
        row["ratio_to_1"] = {step: round(row[step]["seconds"] / first[step]["seconds"], 2)
                             for step in steps}
    return rows


def table(prov, scale_rows):
    lines = ["Provisioning (wall s of the whole process; x = ratio to the hand-written baseline)"]
    lines.append("  %-8s %9s %16s %18s %18s %16s" % ("scenario", "baseline", "from no lab",
                                                     "again", "configure", "check"))
    for row in prov:
        if "skipped" in row:
            lines.append("  %-8s skipped: %s" % (row["scenario"], row["skipped"]))
            continue
        b = row.get("baseline", {})
        bs = ("%.1f" % b["seconds"]) if b.get("passed") else ("-" if "skipped" in b else "FAILED")
        cells = []
        for step in ("first", "again", "configure", "check"):
            r = row.get(step)
            if not r:
                cells.append("-")
                continue
            x = row["ratios_to_baseline"].get(step)
            cells.append(("%.1f" % r["seconds"] if r["rc"] == 0 else "rc=%d" % r["rc"])
                         + (" (%.1fx)" % x if x else "")
                         + (" c=%d" % r["changed"] if step in ("again", "configure") else ""))
        lines.append("  %-8s %9s %16s %18s %18s %16s" % ((row["scenario"], bs) + tuple(cells)))
        if row.get("error"):
            lines.append("    error: %s" % row["error"])
    for row in prov:
        for step in ("first", "again", "configure", "check"):
            if row.get(step, {}).get("slowest_tasks"):
                lines.append("  ten slowest tasks, %s %s:" % (row["scenario"], step))
                for task, sec in row[step]["slowest_tasks"]:
                    lines.append("    %6.2f s  %s" % (sec, task))
    if scale_rows:
        lines.append("")
        lines.append("Scale: N pairs of simple (wall s; per added pair = (t(N) - t(1)) / (N - 1))")
        lines.append("  %-7s %5s %9s %10s %9s %22s" % ("conn", "N", "lab_up", "configure",
                                                       "check", "configure per added pair"))
        fig = lambda row, step: ("%.1f" % row[step]["seconds"] if row[step]["rc"] == 0  # noqa: E731
                                 else "rc=%d" % row[step]["rc"]) if step in row else "-"
        for row in scale_rows:
            extra = row.get("per_added_pair_s", {}).get("configure")
            lines.append("  %-7s %5d %9s %10s %9s %22s" % (
                row["connection"], row["pairs"], fig(row, "lab_up"), fig(row, "configure"),
                fig(row, "check"), "-" if extra is None else "%.1f (N/1: %.2fx)" % (
                    extra, row["ratio_to_1"]["configure"])))
            if "error" in row:
                lines.append("    error: %s" % row["error"])
    return "\n".join(lines)


def run_all(out_dir, scenarios, scale_counts, ssh, lock_wait):
    os.makedirs(out_dir, exist_ok=True)
    result = {"provision": [], "scale": []}
    # The figures are from no lab with the image present: build or reuse it first, untimed.
    image = playbook("lab_image.yml", log_path=os.path.join(out_dir, "provision-image.log"))
    result["image"] = {"rc": image["rc"], "seconds": image["seconds"], "changed": image["changed"]}
    if image["rc"] != 0:
        result["error"] = "lab_image.yml failed (rc %d), see %s" % (image["rc"], image["log"])
        return result
    for scenario in scenarios:
        try:
            result["provision"].append(provision(scenario, out_dir, lock_wait))
        except TimeoutError as exc:
            result["provision"].append({"scenario": scenario, "skipped": str(exc)})
    for over_ssh in ((False, True) if ssh else (False,)):
        if scale_counts:
            try:
                result["scale"] += scale(scale_counts, out_dir, lock_wait, over_ssh)
            except TimeoutError as exc:
                result["scale"].append({"pairs": 0, "connection": "ssh" if over_ssh else "docker",
                                        "error": str(exc)})
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--scenarios", nargs="*", default=["simple", "sevpn"])
    parser.add_argument("--scale", nargs="*", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--no-ssh", action="store_true", help="scale over the Docker connection only")
    parser.add_argument("--lock-wait", type=int, default=600)
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root (Docker)")
    result = run_all(args.out, args.scenarios, args.scale, not args.no_ssh, args.lock_wait)
    with open(os.path.join(args.out, "provisioning.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    print(table(result["provision"], result["scale"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
