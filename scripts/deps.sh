#!/usr/bin/env bash
# Installs the Debian 12 packages pgpivot needs to build, test, demo and benchmark.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libuv1-dev libssl-dev libpq-dev libspdlog-dev libfmt-dev libinih-dev libcli11-dev
  libexpected-dev catch2
  libhttp-parser-dev libsystemd-dev nlohmann-json3-dev
  postgresql-15 postgresql-client-15 pgbouncer python3-psycopg strace
  rpm lintian rpmlint debootstrap logrotate
  util-linux e2fsprogs iproute2 iptables
)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" != 0 ]; then
  echo "pgpivot needs these packages; run: sudo ${cmd[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q || true
"${cmd[@]}" </dev/null
# The Debian packages start their own clusters/services; pgpivot's tests run private
# servers, so the packaged ones are not needed (and must not hold 5432/6432).
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop pgbouncer 2>/dev/null || true
fi
