#!/usr/bin/env bash
# Runs every test of multipath.mptcp on this machine, from nothing: set-up (scripts/bootstrap.sh),
# the lab image, then one pytest run: unit tests, the modules against the kernel in network
# namespaces, the lab scenarios in Docker (molecule), lint, ansible-test sanity and the galaxy build.
# The test files run side by side on MULTIPATH_TEST_WORKERS pytest-xdist workers (default 3), one
# file per worker at a time: every Docker lab has subnets and names of its own and all tests of one
# lab are in one file. MULTIPATH_TEST_WORKERS=0 runs everything in this process, one test at a time.
# The 25 slowest tests are listed at the end. Extra arguments go to pytest (e.g.
# `scripts/test.sh -k monitor`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/ansible-playbook playbooks/lab_image.yml
workers=${MULTIPATH_TEST_WORKERS:-3}
parallel=()
[ "$workers" -gt 0 ] && parallel=(-n "$workers" --dist loadfile)
exec .venv/bin/pytest -ra -p no:cacheprovider --durations=25 "${parallel[@]}" "${@:-tests}"
