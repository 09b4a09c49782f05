#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2016,SC2015
# (SC2016: '${Status}' is dpkg-query's format, not the shell's. SC2015: `a && b || fail`.)
# The package test: builds pgpivot's .deb and .rpm from BUILD_DIR, lints them, checks their
# metadata and that they hold the same paths, then installs the .deb, runs the installed
# pgpivot as the pgpivot user against a throwaway PostgreSQL, upgrades it in place to a
# rebuilt package with a higher version, removes it and purges it.
#
#   packaging/test-packages.sh BUILD_DIR [--chroot | --host]
#
# Where the .deb is installed:
#   --chroot  into a fresh Debian root made with debootstrap (minbase, from the mirror the
#             machine's apt uses): apt must resolve every dependency from the package's
#             own metadata, as on a new machine. The root is cached in
#             BUILD_DIR/packaging-test/ (PGPIVOT_PKG_TEST_CACHE=0: no cache).
#   --host    with dpkg on this machine. Refuses to run when a pgpivot package is
#             installed; compares a snapshot of everything the package touches before
#             and after, and deletes the pgpivot user if it created it.
#   default   --chroot where debootstrap is installed and the mirror answers, else --host.
#
# Needs root. Safe for CI: it stops only the processes it started (by pid), unmounts what
# it mounted, leaves the machine as it found it, and the whole run is bounded
# (PGPIVOT_PKG_TEST_TIMEOUT seconds, default 1500). Ends with "packages: N passed, N failed".
# PGPIVOT_PKG_TEST_KEEP=1 keeps the logs and packages of the run in /tmp/pgpivot-pkgtest.*.
set -euo pipefail

usage() {
  echo "usage: $0 BUILD_DIR [--chroot | --host]" >&2
  exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
mode=${2:-auto}
case $mode in
  auto | --chroot | --host) mode=${mode#--} ;;
  *) usage ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "$0: needs root (it installs packages)" >&2
  exit 1
fi

# Bound the whole run: run again under timeout(1), once.
if [ -z "${PGPIVOT_PKG_TEST_BOUNDED:-}" ]; then
  export PGPIVOT_PKG_TEST_BOUNDED=1
  exec timeout --signal=TERM --kill-after=60 "${PGPIVOT_PKG_TEST_TIMEOUT:-1500}" "$0" "$@"
fi

src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
[ -f "$build/CPackConfig.cmake" ] || {
  echo "$0: $build has no CPackConfig.cmake (configure it with cmake first)" >&2
  exit 1
}
# shellcheck source=../tests/support/pg_common.sh
. "$src/tests/support/pg_common.sh"

export LC_ALL=C.UTF-8
export DEBIAN_FRONTEND=noninteractive
umask 022
started=$SECONDS
passed=0
failed=0

work=$(mktemp -d /tmp/pgpivot-pkgtest.XXXXXX)
chmod 755 "$work" # the pgpivot user reaches the notify socket in it (host mode)
root=""           # the target's root directory: "" on the host, $work/root in a chroot
target=()         # the command prefix that runs a command on the target: chroot ROOT, or none
proc_mounted=0
pg_data=""
pgpivot_pid=""
notify_pid=""
created_user=0
snapshot_before=""

log() { printf '%s\n' "$*"; }
step() { printf '\n== %s  [%ds]\n' "$*" "$((SECONDS - started))"; }
ok() {
  passed=$((passed + 1))
  printf 'ok   %s\n' "$*"
}
fail() {
  failed=$((failed + 1))
  printf 'FAIL %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null || fail "$1 is not installed (scripts/deps.sh installs it)"; }

# Runs a command on the target: in the chroot, or here.
on_target() { "${target[@]}" "$@"; }

# ---- cleanup: only what this run started or made ------------------------------------------
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  stop_pid "$pgpivot_pid"
  stop_pid "$notify_pid"
  [ -n "$pg_data" ] && pg_stop "$pg_data" && rm -rf "$pg_data" "$pg_data".*.log
  if [ -n "$root" ]; then
    # Processes whose root is the chroot (a maintainer script's daemon, say) are this run's.
    local p
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null
    done
    [ "$proc_mounted" = 1 ] && umount "$root/proc"
    if grep -q " $root/" /proc/mounts; then
      echo "cleanup: something is still mounted below $root; not deleting $work" >&2
    elif [ "${PGPIVOT_PKG_TEST_KEEP:-0}" = 1 ]; then
      rm -rf "$root"
      echo "kept $work"
    else
      rm -rf "$work"
    fi
  else
    if [ -n "$snapshot_before" ] && ! restore_host; then
      echo "cleanup: the machine differs from before the test:" >&2
      diff <(printf '%s\n' "$snapshot_before") <(host_snapshot) >&2
      if [ "$rc" = 0 ]; then
        rc=1
        failed=$((failed + 1))
      fi
    fi
    if [ "${PGPIVOT_PKG_TEST_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
  fi
  printf '\npackage test took %ds\n' "$((SECONDS - started))"
  [ "$rc" != 0 ] && [ "$failed" = 0 ] && failed=1
  printf 'packages: %d passed, %d failed\n' "$passed" "$failed"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "FAIL interrupted" >&2; exit 130' INT
trap 'echo "FAIL terminated (the time limit, PGPIVOT_PKG_TEST_TIMEOUT?)" >&2; exit 143' TERM

# Host mode: purge what is left, delete the user if this run created it; true when the
# machine is as it was.
restore_host() {
  if dpkg-query -W -f='${Status}' pgpivot 2>/dev/null | grep -qv "not-installed"; then
    dpkg --purge pgpivot >/dev/null 2>&1
  fi
  if [ "$created_user" = 1 ]; then
    if getent passwd pgpivot >/dev/null; then userdel pgpivot; fi
    if getent group pgpivot >/dev/null; then groupdel pgpivot; fi
  fi
  [ "$(host_snapshot)" = "$snapshot_before" ]
}

# Everything on the host that installing pgpivot touches.
host_snapshot() {
  dpkg-query -W -f='${Status} ${Version}\n' pgpivot 2>&1 || true
  getent passwd pgpivot || true
  getent group pgpivot || true
  ls -ld /etc/pgpivot /var/log/pgpivot /var/lib/pgpivot /etc/logrotate.d/pgpivot \
    /usr/bin/pgpivot /usr/lib/systemd/system/pgpivot.service 2>&1 || true
  find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
    /var/lib/systemd/deb-systemd-helper-masked -name 'pgpivot*' 2>/dev/null || true
  dpkg-statoverride --list 2>/dev/null | grep pgpivot || true
}

# ---- 1. build both packages -----------------------------------------------------------------
step "build pgpivot and both packages"
for tool in cmake cpack dpkg-deb dpkg-shlibdeps rpm rpmbuild lintian; do need "$tool"; done
timeout 1200 cmake --build "$build" -j "$(nproc)" --target pgpivot pgpivot_package_files \
  >"$work/build.log" 2>&1 || {
  tail -n 30 "$work/build.log" >&2
  fail "build"
}
timeout 300 cpack --config "$build/CPackConfig.cmake" -B "$work/v1" >"$work/cpack-v1.log" 2>&1 || {
  cat "$work/cpack-v1.log" >&2
  fail "cpack"
}
deb1=$(ls "$work"/v1/pgpivot_*.deb)
rpm1=$(ls "$work"/v1/pgpivot-*.rpm)
version1=$(dpkg-deb -f "$deb1" Version)
release1=${version1##*-}
[[ $release1 =~ ^[0-9]+$ ]] || fail "release of $version1 is not a number"
release2=$((release1 + 1))
timeout 300 cpack --config "$build/CPackConfig.cmake" -B "$work/v2" \
  -D CPACK_DEBIAN_PACKAGE_RELEASE="$release2" -D CPACK_RPM_PACKAGE_RELEASE="$release2" \
  >"$work/cpack-v2.log" 2>&1 || {
  cat "$work/cpack-v2.log" >&2
  fail "cpack (bumped release)"
}
deb2=$(ls "$work"/v2/pgpivot_*.deb)
rpm2=$(ls "$work"/v2/pgpivot-*.rpm)
version2=$(dpkg-deb -f "$deb2" Version)
dpkg --compare-versions "$version2" gt "$version1" || fail "$version2 is not newer than $version1"
ok "built $(basename "$deb1"), $(basename "$rpm1") and $(basename "$deb2"), $(basename "$rpm2")"

# ---- 2. metadata -------------------------------------------------------------------------
step "package metadata"
depends=$(dpkg-deb -f "$deb1" Depends)
for lib in libc6 libuv1 libpq5 libssl3 libsystemd0 libspdlog adduser; do
  [[ $depends == *"$lib"* ]] || fail "deb Depends lacks $lib (dpkg-shlibdeps): $depends"
done
ok "deb Depends (dpkg-shlibdeps): $depends"
conffiles=$(dpkg-deb --info "$deb1" conffiles)
for f in /etc/pgpivot/pgpivot.ini /etc/pgpivot/userlist.txt /etc/logrotate.d/pgpivot; do
  grep -qx "$f" <<<"$conffiles" || fail "deb: $f is not a conffile"
done
ok "deb conffiles: $(tr '\n' ' ' <<<"$conffiles")"
for script in postinst prerm postrm; do
  dpkg-deb --info "$deb1" "$script" >/dev/null || fail "deb has no $script"
done
ok "deb maintainer scripts: postinst prerm postrm"
requires=$(rpm -qp --requires "$rpm1" 2>/dev/null)
for lib in libuv.so.1 libpq.so.5 libsystemd.so.0 libc.so.6 logrotate shadow-utils; do
  grep -q "^$lib" <<<"$requires" || fail "rpm Requires lacks $lib (autoreq)"
done
ok "rpm Requires (autoreq): $(grep -c . <<<"$requires") entries, libuv, libpq, libsystemd among them"
rpm_config=$(rpm -qp --configfiles "$rpm1" 2>/dev/null)
for f in /etc/pgpivot/pgpivot.ini /etc/pgpivot/userlist.txt /etc/logrotate.d/pgpivot; do
  grep -qx "$f" <<<"$rpm_config" || fail "rpm: $f is not %config"
done
ok "rpm %config files match the deb conffiles"
rpm -qp --scripts "$rpm1" 2>/dev/null | grep -q 'useradd -r' || fail "rpm %pre does not create the user"
rpm -qp --changelog "$rpm1" 2>/dev/null | grep -q "$version1" || fail "rpm changelog lacks $version1"
[ "$(rpm -qp --qf '%{LICENSE}' "$rpm1" 2>/dev/null)" = MIT ] || fail "rpm license"
ok "rpm scriptlets, changelog ($version1) and license"

# ---- 3. the .rpm holds the paths of the .deb --------------------------------------------
step "the .rpm: the paths of the .deb; install, upgrade, erase"
dpkg-deb -c "$deb1" | awk '{ p = $6; sub(/^\.\//, "/", p); sub(/\/$/, "", p)
  if (p != "" && p != "/") print substr($1, 1, 1), p }' | sort >"$work/deb.paths"
rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm1" 2>/dev/null |
  awk '{ print substr($1, 1, 1), $2 }' | sort >"$work/rpm.paths"
if ! diff <(grep -v '^d' "$work/deb.paths") <(grep -v '^d' "$work/rpm.paths") >"$work/files.diff"; then
  cat "$work/files.diff" >&2
  fail "the .deb and the .rpm hold different files (< deb, > rpm)"
fi
# Directories: the .rpm owns only pgpivot's own; the others belong to filesystem, systemd,
# man-db and logrotate there.
shared_dirs='^d /(etc|etc/logrotate\.d|usr|usr/bin|usr/lib|usr/lib/systemd|usr/lib/systemd/system|usr/share|usr/share/doc|usr/share/man|usr/share/man/man[15]|var|var/lib|var/log)$'
if ! diff <(grep '^d' "$work/deb.paths" | grep -Ev "$shared_dirs") <(grep '^d' "$work/rpm.paths") \
  >"$work/dirs.diff"; then
  cat "$work/dirs.diff" >&2
  fail "the .deb and the .rpm own different directories (< deb, > rpm)"
fi
ok "same $(grep -vc '^d' "$work/deb.paths") files and $(grep -c '^d' "$work/rpm.paths") own directories"
log "$(grep -v '^d' "$work/rpm.paths" | cut -c3- | sed 's/^/     /')"

# RPM's own conffile handling, in a scratch rpm database: without the scriptlets (no RPM
# system to run them in), as rpm -i, -U and -e treat %config(noreplace).
rpmroot="$work/rpmroot"
rpm_in_root() { rpm --root "$rpmroot" --nodeps --noscripts --force-debian "$@" >>"$work/rpm.log" 2>&1; }
mkdir -p "$rpmroot"
rpm --root "$rpmroot" --initdb
rpm_in_root -i "$rpm1" || { cat "$work/rpm.log" >&2; fail "rpm -i"; }
echo "; edited by test-packages.sh" >>"$rpmroot/etc/pgpivot/pgpivot.ini"
cp "$rpmroot/etc/pgpivot/pgpivot.ini" "$work/rpm-edited.ini"
rpm_in_root -U "$rpm2" || { cat "$work/rpm.log" >&2; fail "rpm -U"; }
[ "$(rpm --root "$rpmroot" -q pgpivot)" = "$(rpm -qp --qf '%{NVRA}' "$rpm2" 2>/dev/null)" ] ||
  fail "rpm -U: $(rpm --root "$rpmroot" -q pgpivot)"
cmp -s "$work/rpm-edited.ini" "$rpmroot/etc/pgpivot/pgpivot.ini" || fail "rpm -U replaced the edited pgpivot.ini"
[ -z "$(find "$rpmroot/etc" -name '*.rpmnew')" ] || fail "rpm -U left .rpmnew files"
rpm_in_root -e pgpivot || { cat "$work/rpm.log" >&2; fail "rpm -e"; }
[ ! -e "$rpmroot/usr/bin/pgpivot" ] || fail "rpm -e left /usr/bin/pgpivot"
cmp -s "$work/rpm-edited.ini" "$rpmroot/etc/pgpivot/pgpivot.ini.rpmsave" ||
  fail "rpm -e did not keep the edited pgpivot.ini as pgpivot.ini.rpmsave"
ok "rpm -i, -U (edited %config kept), -e (edited %config kept as .rpmsave) in a scratch root"

# ---- 4. lint -----------------------------------------------------------------------------
step "lintian and rpmlint"
# initial-upload-closes-no-bugs: a rule for uploads to Debian's archive (the first upload
# closes an ITP bug); this package is not uploaded there.
lintian_rc=0
timeout 300 lintian --fail-on error --suppress-tags initial-upload-closes-no-bugs "$deb1" \
  >"$work/lintian.out" 2>&1 || lintian_rc=$?
lintian_out=$(grep -v '^running with root privileges' "$work/lintian.out" || true)
if [ "$lintian_rc" != 0 ]; then
  printf '%s\n' "$lintian_out" >&2
  fail "lintian reports errors"
fi
if [ -n "$lintian_out" ]; then printf '%s\n' "$lintian_out" | sed 's/^/     /'; fi
ok "lintian: no errors, $(grep -c '^W:' <<<"$lintian_out" || true) warnings"
if command -v rpmlint >/dev/null; then
  rpmlint_out=$(timeout 300 rpmlint -c "$src/packaging/rpm/rpmlint.toml" "$rpm1" 2>&1) || {
    printf '%s\n' "$rpmlint_out" >&2
    fail "rpmlint reports errors"
  }
  ok "rpmlint: $(tail -n 1 <<<"$rpmlint_out" | sed 's/^ *//')"
else
  log "skip rpmlint: not installed"
fi

# ---- 5. man pages --------------------------------------------------------------------------
step "man pages"
mkdir -p "$work/deb-tree"
dpkg-deb -x "$deb1" "$work/deb-tree"
man1="$work/deb-tree/usr/share/man/man1/pgpivot.1.gz"
man5="$work/deb-tree/usr/share/man/man5/pgpivot.ini.5.gz"
for page in "$man1" "$man5"; do
  warnings=$(MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
  [ -z "$warnings" ] || fail "groff warnings in $(basename "$page"): $warnings"
done
ok "pgpivot.1 and pgpivot.ini.5 render without groff warnings"
# pgpivot(1) names every option of --help; pgpivot.ini(5) every key of the reference.
while read -r opt; do
  zcat "$man1" | grep -qF -- "${opt//-/\\-}" || fail "pgpivot(1) does not document $opt"
done < <("$build/src/pgpivot" --help | grep -oE -- '(^|[ ,])--?[A-Za-z][A-Za-z-]*' | tr -d ' ,' | sort -u)
ok "pgpivot(1) documents every option of pgpivot --help"
while read -r key; do
  zcat "$man5" | grep -qF "\\fB${key}\\fR" || fail "pgpivot.ini(5) does not document $key"
done < <(sed -n '/^\[cluster\./,$p' "$src/conf/pgpivot.ini" | grep -oE '^;?[a-z_]+ =' | tr -d ';=' | sort -u)
ok "pgpivot.ini(5) documents every key of conf/pgpivot.ini"

# ---- 6. the target: a fresh Debian root, or this machine -----------------------------------
host_suite() { . /etc/os-release && echo "${VERSION_CODENAME:-}"; }
# The mirror this machine's apt uses for a suite: "URL" from apt-cache policy.
host_mirror() {
  apt-cache policy 2>/dev/null |
    awk -v s="$1/main" '$3 == s && $2 ~ /^https?:/ { print $2; exit }'
}

make_chroot() {
  local suite cache mirror s url
  suite=$(host_suite)
  [ -n "$suite" ] || return 1
  need debootstrap
  root="$work/root"
  mkdir -p "$root"
  cache="$build/packaging-test/$suite-minbase.tar"
  if [ "${PGPIVOT_PKG_TEST_CACHE:-1}" = 1 ] && [ -f "$cache" ]; then
    tar -xpf "$cache" -C "$root" || return 1
    log "     root from the cache $cache"
  else
    mirror=$(host_mirror "$suite")
    [ -n "$mirror" ] || { log "     no apt mirror for $suite on this machine"; return 1; }
    log "     debootstrap --variant=minbase $suite (from the mirror apt uses)"
    timeout 900 debootstrap --variant=minbase "$suite" "$root" "$mirror" \
      >"$work/debootstrap.log" 2>&1 || { tail -n 5 "$work/debootstrap.log"; return 1; }
    if [ "${PGPIVOT_PKG_TEST_CACHE:-1}" = 1 ]; then
      mkdir -p "$(dirname "$cache")"
      tar -cpf "$cache.tmp" -C "$root" . && mv "$cache.tmp" "$cache"
    fi
  fi
  # The suite and its updates, from the mirrors this machine uses (as a new machine would).
  : >"$root/etc/apt/sources.list"
  for s in "$suite" "$suite-updates" "$suite-security"; do
    url=$(host_mirror "$s")
    [ -n "$url" ] && echo "deb $url $s main" >>"$root/etc/apt/sources.list"
  done
  [ -f /etc/resolv.conf ] && cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # No daemon of any package starts in the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  mount -t proc proc "$root/proc" && proc_mounted=1
  timeout 300 chroot "$root" apt-get update -q >"$work/apt-update.log" 2>&1 ||
    { tail -n 5 "$work/apt-update.log"; return 1; }
}

drop_chroot() {
  if [ "$proc_mounted" = 1 ]; then umount "$root/proc" && proc_mounted=0; fi
  rm -rf "$root"
  root=""
}

if [ "$mode" != host ]; then
  step "make a fresh Debian root"
  if command -v debootstrap >/dev/null && make_chroot; then
    mode=chroot
    target=(chroot "$root")
    ok "fresh $(host_suite) root in $root"
  elif [ "$mode" = chroot ]; then
    fail "could not make a Debian root with debootstrap"
  else
    log "     falling back to installing on this machine"
    if [ -n "$root" ]; then drop_chroot; fi
    mode=host
  fi
fi
if [ "$mode" = host ]; then
  step "check this machine"
  if dpkg-query -W -f='${Status}' pgpivot 2>/dev/null | grep -qv not-installed; then
    fail "a pgpivot package is installed here; not touching it (use --chroot)"
  fi
  [ -e /etc/pgpivot ] && fail "/etc/pgpivot exists here; not touching it (use --chroot)"
  getent passwd pgpivot >/dev/null || created_user=1
  snapshot_before=$(host_snapshot)
  ok "no pgpivot installed on this machine; installing here with dpkg"
fi
t() { printf '%s%s' "$root" "$1"; } # a path on the target, seen from here
# The packages as the target sees them.
if [ "$mode" = chroot ]; then
  cp "$deb1" "$deb2" "$root/tmp/"
  deb1_on_target=/tmp/$(basename "$deb1")
  deb2_on_target=/tmp/$(basename "$deb2")
else
  deb1_on_target=$deb1
  deb2_on_target=$deb2
fi

# ---- 7. throwaway PostgreSQL ------------------------------------------------------------
step "start a throwaway PostgreSQL"
pg_data=$(pg_make_datadir)
pg_port=$(pg_free_port)
pg_init "$pg_data"
pg_configure "$pg_data" "$pg_port"
pg_start "$pg_data"
pg_create_test_roles "$pg_data" "$pg_port"
ok "PostgreSQL on 127.0.0.1:$pg_port"

# ---- 8. install ----------------------------------------------------------------------------
step "install $(basename "$deb1")"
if [ "$mode" = chroot ]; then
  # apt resolves the dependencies from the package's metadata alone.
  timeout 600 chroot "$root" apt-get install -y -q --no-install-recommends \
    "$deb1_on_target" logrotate >"$work/install.log" 2>&1 </dev/null || {
    tail -n 30 "$work/install.log" >&2
    fail "apt-get install of the .deb in a fresh root"
  }
  ok "apt-get installed it and its dependencies into the fresh root:$(
    sed -n 's/^Setting up \([^ ]*\) .*/\1/p' "$work/install.log" | tr '\n' ' ' | cut -c1-300 |
      sed 's/^/ /')"
else
  timeout 300 dpkg -i "$deb1_on_target" >"$work/install.log" 2>&1 </dev/null || {
    cat "$work/install.log" >&2
    fail "dpkg -i"
  }
  ok "dpkg -i"
fi
[ "$(on_target dpkg-query -W -f='${Version}' pgpivot)" = "$version1" ] || fail "installed version"
on_target /usr/bin/pgpivot --version | grep -qF "pgpivot ${version1%-*}" || fail "pgpivot --version"
ok "installed $version1; $(on_target /usr/bin/pgpivot --version)"

IFS=: read -r _ _ uid _ _ home shell < <(on_target getent passwd pgpivot) || fail "no pgpivot user"
[ "$uid" -lt 1000 ] && [ "$home" = /var/lib/pgpivot ] && [[ $shell == */nologin ]] ||
  fail "pgpivot user: uid $uid, home $home, shell $shell"
ok "system user pgpivot (uid $uid, home $home, shell $shell)"
expect_stat() { # PATH "OWNER:GROUP MODE", names as the target knows them
  local got
  got=$(on_target stat -c '%U:%G %a' "$1")
  [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}
expect_stat /var/log/pgpivot "pgpivot:adm 2750"
expect_stat /var/lib/pgpivot "pgpivot:pgpivot 750"
expect_stat /etc/pgpivot/pgpivot.ini "root:pgpivot 640"
expect_stat /etc/pgpivot/userlist.txt "root:pgpivot 640"
ok "/var/log/pgpivot pgpivot:adm 2750, /var/lib/pgpivot 750, configuration root:pgpivot 640"
if on_target setpriv --reuid=nobody --regid=nogroup --clear-groups cat /etc/pgpivot/userlist.txt \
  >/dev/null 2>&1; then
  fail "other users can read /etc/pgpivot/userlist.txt"
fi
ok "other users cannot read the configuration"
on_target setpriv --reuid=pgpivot --regid=pgpivot --init-groups \
  /usr/bin/pgpivot --check /etc/pgpivot/pgpivot.ini >"$work/check.out" 2>&1 ||
  { cat "$work/check.out"; fail "pgpivot --check of the packaged configuration"; }
ok "the packaged configuration passes pgpivot --check as the pgpivot user"
[ ! -e "$(t /etc/systemd/system/multi-user.target.wants/pgpivot.service)" ] ||
  fail "the service was enabled on install"
for p in /proc/[0-9]*; do
  if [ "$(readlink "$p/exe" 2>/dev/null)" = "$(t /usr/bin/pgpivot)" ]; then
    fail "pgpivot started on install"
  fi
done
ok "the service is neither enabled nor started on install"

if command -v systemd-analyze >/dev/null; then
  # On the host, against the installed unit; from a chroot, /usr/bin/pgpivot is not here.
  sa_out=$(systemd-analyze verify --man=no "$(t /usr/lib/systemd/system/pgpivot.service)" 2>&1 |
    grep -v 'Command /usr/bin/pgpivot is not executable' || true)
  [ -z "$sa_out" ] || fail "systemd-analyze verify: $sa_out"
  grep -qx 'Type=notify' "$(t /usr/lib/systemd/system/pgpivot.service)" || fail "unit is not Type=notify"
  ok "systemd-analyze verify accepts pgpivot.service (Type=notify)"
fi

# ---- 9. configure and run as the pgpivot user ----------------------------------------------
step "run the installed pgpivot as the pgpivot user"
port=$(pg_free_port)
# An edit of both conffiles, as an administrator would; the upgrade must keep it.
cat >"$(t /etc/pgpivot/pgpivot.ini)" <<INI
;; edited by packaging/test-packages.sh
[databases]
appdb = host=127.0.0.1 port=$pg_port dbname=appdb

[pgpivot]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
admin_port = 0
auth_type = scram-sha-256
auth_file = userlist.txt
logfile = /var/log/pgpivot/pgpivot.log
INI
echo '"pgpivot_scram" "secret"' >>"$(t /etc/pgpivot/userlist.txt)"
cp "$(t /etc/pgpivot/pgpivot.ini)" "$work/edited.ini"
cp "$(t /etc/pgpivot/userlist.txt)" "$work/edited-userlist.txt"

# systemd's side of Type=notify: a datagram socket that records what pgpivot sends.
notify_log="$work/notify.log"
: >"$notify_log"
notify_env=()
if command -v python3 >/dev/null; then
  notify_sock="$(t /tmp)/pgpivot-test-notify.$$.sock"
  python3 - "$notify_sock" "$notify_log" <<'PY' &
import os, socket, sys, time
path, out = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
sock.settimeout(0.5)
deadline = time.monotonic() + 1200
with open(out, "a", buffering=1) as f:
    while time.monotonic() < deadline:
        try:
            f.write(sock.recv(4096).decode(errors="replace").replace("\n", " ") + "\n")
        except socket.timeout:
            pass
PY
  notify_pid=$!
  for ((i = 0; i < 50; i++)); do [ -S "$notify_sock" ] && break; sleep 0.1; done
  [ -S "$notify_sock" ] || fail "notify socket"
  notify_env=(NOTIFY_SOCKET="/tmp/$(basename "$notify_sock")")
  [ -z "$root" ] && notify_env=(NOTIFY_SOCKET="$notify_sock")
else
  log "     python3 missing: Type=notify messages are not checked"
fi
notify_count() { grep -c "$1" "$notify_log" || true; }
wait_notify() { # PATTERN COUNT: until PATTERN was sent COUNT times
  local i
  [ -n "$notify_pid" ] || return 0
  for ((i = 0; i < 100; i++)); do
    [ "$(notify_count "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  fail "pgpivot did not send $1 (sent: $(tr '\n' '|' <"$notify_log"))"
}

# Starts /usr/bin/pgpivot as the pgpivot user, with a clean environment, as systemd would.
start_pgpivot() {
  local ready i
  ready=$(notify_count READY=1)
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${notify_env[@]}" \
    ${root:+chroot "$root"} setpriv --reuid=pgpivot --regid=pgpivot --init-groups \
    /usr/bin/pgpivot /etc/pgpivot/pgpivot.ini >>"$work/pgpivot.out" 2>&1 </dev/null &
  pgpivot_pid=$!
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pgpivot_pid" 2>/dev/null || { cat "$work/pgpivot.out"; fail "pgpivot exited"; }
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  wait_notify READY=1 $((ready + 1))
  [ "$(stat -c %u "/proc/$pgpivot_pid")" = "$uid" ] || fail "pgpivot does not run as pgpivot"
  [ "$(readlink "/proc/$pgpivot_pid/exe")" = "$(t /usr/bin/pgpivot)" ] || fail "not the installed binary"
}
stop_pgpivot() {
  local stopping
  stopping=$(notify_count STOPPING=1)
  stop_pid "$pgpivot_pid"
  pgpivot_pid=""
  wait_notify STOPPING=1 $((stopping + 1))
}
query() { # prints what a query through pgpivot returns
  PGPASSWORD=secret PGCONNECT_TIMEOUT=10 timeout 30 "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$port" \
    -U pgpivot_scram -d appdb -c "$1"
}
expect_query() {
  local got
  got=$(query "SELECT 'through pgpivot', current_user, $1") || fail "psql through pgpivot"
  [ "$got" = "through pgpivot|pgpivot_scram|$1" ] || fail "psql through pgpivot returned '$got'"
}

start_pgpivot
ok "pgpivot runs as the pgpivot user from /usr/bin/pgpivot (pid $pgpivot_pid)"
if [ -n "$notify_pid" ]; then ok "it sent READY=1 to NOTIFY_SOCKET once listening"; fi
expect_query 1
ok "psql through the installed pgpivot: SCRAM login and a query"
expect_stat /var/log/pgpivot/pgpivot.log "pgpivot:adm 644"
grep -q "listening on port $port" "$(t /var/log/pgpivot/pgpivot.log)" || fail "nothing in the log"
ok "it logs to /var/log/pgpivot/pgpivot.log (group adm from the setgid directory)"

reloading=$(notify_count RELOADING=1)
ready=$(notify_count READY=1)
kill -HUP "$pgpivot_pid"
wait_notify RELOADING=1 $((reloading + 1))
wait_notify READY=1 $((ready + 1))
expect_query 2
ok "SIGHUP (the unit's ExecReload) reloads: RELOADING=1, READY=1, still serving"

if on_target sh -c 'command -v logrotate' >/dev/null; then
  before=$(stat -c %s "$(t /var/log/pgpivot/pgpivot.log)")
  on_target logrotate -f -s "/tmp/pgpivot-test-logrotate.$$.state" /etc/logrotate.d/pgpivot ||
    fail "logrotate"
  rm -f "$(t "/tmp/pgpivot-test-logrotate.$$.state")"
  [ -s "$(t /var/log/pgpivot/pgpivot.log.1)" ] || fail "logrotate did not rotate pgpivot.log"
  after=$(stat -c %s "$(t /var/log/pgpivot/pgpivot.log)")
  [ "$after" -lt "$before" ] || fail "logrotate did not truncate pgpivot.log ($before -> $after)"
  expect_query 3
  sleep 0.5
  [ -s "$(t /var/log/pgpivot/pgpivot.log)" ] || fail "pgpivot stopped logging after the rotation"
  [ "$(head -c 1 "$(t /var/log/pgpivot/pgpivot.log)" | od -An -c | tr -d ' ')" != '\0' ] ||
    fail "pgpivot.log starts with NUL bytes: the log is not opened in append mode"
  ok "logrotate (copytruncate) rotates the log and pgpivot goes on writing to it"
else
  log "skip logrotate: not installed on the target"
fi

# ---- 10. upgrade in place ---------------------------------------------------------------
step "upgrade in place to $(basename "$deb2"), pgpivot running"
timeout 300 "${target[@]}" dpkg -i "$deb2_on_target" >"$work/upgrade.log" 2>&1 </dev/null ||
  { cat "$work/upgrade.log" >&2; fail "dpkg -i (upgrade)"; }
[ "$(on_target dpkg-query -W -f='${Version}' pgpivot)" = "$version2" ] || fail "version after upgrade"
ok "upgraded $version1 -> $version2"
cmp -s "$work/edited.ini" "$(t /etc/pgpivot/pgpivot.ini)" || fail "the upgrade changed the edited pgpivot.ini"
cmp -s "$work/edited-userlist.txt" "$(t /etc/pgpivot/userlist.txt)" || fail "the upgrade changed userlist.txt"
leftovers=$(find "$(t /etc/pgpivot)" -name '*.dpkg-*')
[ -z "$leftovers" ] || fail "the upgrade left $leftovers"
expect_stat /etc/pgpivot/pgpivot.ini "root:pgpivot 640"
expect_stat /var/log/pgpivot "pgpivot:adm 2750"
ok "the edited conffiles are kept, unprompted, with their permissions"
expect_query 4
ok "the running pgpivot kept serving through the upgrade"
stop_pgpivot
ok "SIGTERM stops it (STOPPING=1)"
start_pgpivot
expect_query 5
ok "the upgraded pgpivot starts with the kept configuration and serves psql"
stop_pgpivot

# ---- 11. remove, then purge ---------------------------------------------------------------
step "remove (configuration kept), then purge (configuration gone)"
timeout 300 "${target[@]}" dpkg -r pgpivot >"$work/remove.log" 2>&1 </dev/null ||
  { cat "$work/remove.log" >&2; fail "dpkg -r"; }
[ ! -e "$(t /usr/bin/pgpivot)" ] || fail "dpkg -r left /usr/bin/pgpivot"
[ ! -e "$(t /usr/lib/systemd/system/pgpivot.service)" ] || fail "dpkg -r left the unit"
on_target dpkg-query -W -f='${Status}' pgpivot | grep -q config-files || fail "status after remove"
cmp -s "$work/edited.ini" "$(t /etc/pgpivot/pgpivot.ini)" || fail "dpkg -r changed /etc/pgpivot/pgpivot.ini"
[ -f "$(t /etc/logrotate.d/pgpivot)" ] || fail "dpkg -r deleted the logrotate conffile"
[ -s "$(t /var/log/pgpivot/pgpivot.log)" ] || fail "dpkg -r deleted the logs"
ok "dpkg -r: binary and unit gone; /etc/pgpivot (edited), logrotate conffile and logs kept"
timeout 300 "${target[@]}" dpkg --purge pgpivot >"$work/purge.log" 2>&1 </dev/null ||
  { cat "$work/purge.log" >&2; fail "dpkg --purge"; }
for path in /etc/pgpivot /etc/logrotate.d/pgpivot /var/log/pgpivot /var/lib/pgpivot; do
  [ ! -e "$(t "$path")" ] || fail "dpkg --purge left $path"
done
status=$(on_target dpkg-query -W -f='${Status}' pgpivot 2>/dev/null || true)
[[ -z $status || $status == *not-installed ]] || fail "status after purge: $status"
leftover=$(find "$(t /etc/systemd/system)" "$(t /var/lib/systemd)" -name 'pgpivot*' 2>/dev/null || true)
[ -z "$leftover" ] || fail "dpkg --purge left $leftover"
ok "dpkg --purge: /etc/pgpivot, logs, home and systemd state gone"

step "PGPIVOT_ENABLE=1 enables the service on a first install"
wants=/etc/systemd/system/multi-user.target.wants/pgpivot.service
timeout 300 env PGPIVOT_ENABLE=1 "${target[@]}" dpkg -i "$deb1_on_target" >"$work/enable.log" 2>&1 \
  </dev/null || { cat "$work/enable.log" >&2; fail "PGPIVOT_ENABLE=1 dpkg -i"; }
[ -L "$(t "$wants")" ] || fail "PGPIVOT_ENABLE=1 did not enable pgpivot.service"
timeout 300 "${target[@]}" dpkg --purge pgpivot >>"$work/enable.log" 2>&1 </dev/null ||
  { cat "$work/enable.log" >&2; fail "dpkg --purge"; }
leftover=$(find "$(t /etc/systemd/system)" "$(t /var/lib/systemd)" -name 'pgpivot*' 2>/dev/null || true)
[ -z "$leftover" ] || fail "dpkg --purge left $leftover"
ok "PGPIVOT_ENABLE=1 dpkg -i: enabled ($wants); purge: no systemd state left"

if [ "$mode" = host ]; then
  restore_host || fail "the machine differs from before the test"
  snapshot_before=""
  ok "this machine is as it was: no package, user, directory or systemd state left"
fi
