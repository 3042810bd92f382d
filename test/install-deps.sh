#!/usr/bin/env bash
# Install the OS packages the tests talk to (real servers and clients), when root.
set -euo pipefail
# mosquitto(-clients): bridge peer and reference clients; rpm, debootstrap,
# binutils: building and checking the packages in test/packaging.
# iproute2 (ip, tc, ss): the network namespaces of test/cluster, socket options (ss -tm); nftables: their packet loss
# where the kernel has no sch_netem. chromium: the status page in a headless browser.
# postgresql, mariadb-server, redis-server, memcached: the databases of test/diversity (started
# by the tests on free ports in temp dirs; the services the packages may start are stopped).
packages=(mosquitto mosquitto-clients rpm debootstrap binutils iproute2 nftables chromium
          postgresql mariadb-server redis-server memcached)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "not root or no apt-get: tests needing ${missing[*]} will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a mosquitto service on 1883 when it can; the tests use their own ports.
for service in mosquitto postgresql mariadb redis-server memcached; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true
  fi
done
