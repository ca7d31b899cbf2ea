#!/usr/bin/env bash
# Sets up everything multipath.mptcp needs on a fresh Debian machine that may have only the
# docker client: Debian packages, a running Docker engine, the Python venv (.venv) from the
# pinned requirements.txt, pip for ansible-test sanity's own venvs, and the link that makes this
# checkout resolve as multipath.mptcp.
# Safe to re-run: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

log() { printf '[bootstrap] %s\n' "$*"; }

# 1. Debian packages (controller side: Docker engine, image build, the kernel test tools).
debs=(docker.io iptables nftables debootstrap iproute2 iperf3 mptcpize python3-venv shellcheck)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Docker engine: start it when the client cannot reach one.
if ! docker info >/dev/null 2>&1; then
  log "no Docker engine reachable: starting dockerd"
  if [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then
    systemctl start docker
  else
    nohup dockerd >/var/log/dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "Docker engine did not come up, see /var/log/dockerd.log"; exit 1; }
fi

# 2b. Room for many systemd containers at once (the test suite runs several labs side by side):
# each systemd takes inotify instances, and with the kernel's default of 128 per user new
# containers hang in "initializing". Only ever raised, never lowered.
if [ "$(sysctl -n fs.inotify.max_user_instances 2>/dev/null || echo 0)" -lt 1024 ]; then
  log "raising fs.inotify.max_user_instances to 1024 (systemd lab containers)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO sysctl -qw fs.inotify.max_user_instances=1024
fi

# 3. Python venv from the pinned requirements (reinstalled only when requirements.txt changes).
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating .venv from requirements.txt"
  python3 -m venv .venv
  # pip's notes about optional local package mirrors are noise here; real errors still show.
  .venv/bin/pip install -q -r requirements.txt 2> >(grep -v 'is ignored: it is neither' >&2)
  echo "$want" >"$stamp"
fi

# 3b. pip for the virtual environments of ansible-test sanity (its tests' requirements then come from
# PyPI): the pinned pip wheel and the get-pip script ansible-test looks for in ~/.ansible/test/cache.
.venv/bin/python scripts/ansible_test_pip.py 2> >(grep -v 'is ignored: it is neither' >&2)

# 4. This checkout as the collection multipath.mptcp (ansible.cfg's collections_path).
mkdir -p .collections/ansible_collections/multipath
ln -sfn "$top" .collections/ansible_collections/multipath/mptcp
log "ready: $(.venv/bin/ansible --version | sed -n 1p), $(docker version -f 'docker {{.Server.Version}}')"
