#!/usr/bin/env bash
# Runs every test of multipath.mptcp on this machine, from nothing: set-up (scripts/bootstrap.sh),
# the lab image, then one pytest run: unit tests, the modules against the kernel in network
# namespaces, the lab scenarios in Docker (molecule), lint, ansible-test sanity and the galaxy build.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k monitor`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/ansible-playbook playbooks/lab_image.yml
exec .venv/bin/pytest -ra -p no:cacheprovider "${@:-tests}"
