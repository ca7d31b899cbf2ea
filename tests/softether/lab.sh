#!/bin/sh
# Scratch lab for the SoftEther roles: VPN client -> VPN server (plain Docker network, no proxies)
# -> Linux bridge -> real server. Containers and networks are prefixed se-test-.
#   wan  10.210.0.0/24: se-test-server-vpn .3, se-test-client-vpn .5
#   back 10.210.1.0/24: se-test-server-vpn .2 (moved to br-vpn by the role), se-test-server-srv .3
#   VPN client address 10.210.1.5/24 (on the backend subnet, through the VPN)
set -eu
IMAGE=${IMAGE:-mptcp-lab:probe}
run() { # name network ip
  docker run -d --name "$1" --hostname "$1" --network "$2" --ip "$3" \
    --cap-add NET_ADMIN --cap-add SYS_ADMIN --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --security-opt systempaths=unconfined --device /dev/net/tun \
    "$IMAGE" /sbin/init >/dev/null
}
case "${1:-}" in
up)
  docker network create --subnet 10.210.0.0/24 se-test-wan >/dev/null
  docker network create --subnet 10.210.1.0/24 se-test-back >/dev/null
  run se-test-server-vpn se-test-wan 10.210.0.3
  docker network connect --ip 10.210.1.2 se-test-back se-test-server-vpn
  run se-test-client-vpn se-test-wan 10.210.0.5
  run se-test-server-srv se-test-back 10.210.1.3
  for c in se-test-server-vpn se-test-client-vpn se-test-server-srv; do
    until docker exec "$c" systemctl is-system-running --wait >/dev/null 2>&1 || \
          [ "$(docker exec "$c" systemctl is-system-running 2>/dev/null)" = degraded ]; do sleep 0.5; done
  done
  ;;
down)
  docker rm -f se-test-server-vpn se-test-client-vpn se-test-server-srv >/dev/null 2>&1 || true
  docker network rm se-test-wan se-test-back >/dev/null 2>&1 || true
  ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
