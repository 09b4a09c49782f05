#!/bin/sh
# Generates, at build time, the files the packages install that are made from other
# sources, so that each fact has one source:
#   man/pgpivot.1.gz         packaging/man/pgpivot.1.in (version and date filled in)
#   man/pgpivot.ini.5.gz     conf/pgpivot.ini + conf/userlist.txt (packaging/man/ini2man.awk)
#   etc/pgpivot.ini          conf/pgpivot.ini, logging to /var/log/pgpivot/pgpivot.log
#   etc/userlist.txt         conf/userlist.txt without its example users
#   changelog.Debian.gz      packaging/debian/changelog
#   rpm-changelog            the same changelog in RPM's %changelog format
# The man pages' date is the date of the newest changelog entry, not the build date.
#
# Usage: mkfiles.sh SOURCE_DIR OUTPUT_DIR VERSION
set -eu
src=$1
out=$2
version=$3
pkg=$src/packaging
changelog=$pkg/debian/changelog

mkdir -p "$out/man" "$out/etc"

stamp=$(sed -n 's/^ -- .*>  //p' "$changelog" | head -n 1)
date=$(LC_ALL=C date -u -d "$stamp" +%Y-%m-%d)

awk -v version="$version" -v date="$date" -f "$pkg/man/ini2man.awk" \
  "$src/conf/pgpivot.ini" "$src/conf/userlist.txt" >"$out/man/pgpivot.ini.5"
sed -e "s/@VERSION@/$version/g" -e "s/@DATE@/$date/g" "$pkg/man/pgpivot.1.in" \
  >"$out/man/pgpivot.1"
for page in pgpivot.1 pgpivot.ini.5; do
  gzip -9 -n -c "$out/man/$page" >"$out/man/$page.gz"
done

# The service's configuration: the commented reference, logging to a file that logrotate
# rotates. Fails the build if the reference no longer has the line this relies on.
grep -q '^;logfile =$' "$src/conf/pgpivot.ini" || {
  echo "mkfiles.sh: conf/pgpivot.ini has no ';logfile =' line to set" >&2
  exit 1
}
awk '{ print } /^;logfile =$/ { print "logfile = /var/log/pgpivot/pgpivot.log" }' \
  "$src/conf/pgpivot.ini" >"$out/etc/pgpivot.ini"

# The authentication file: the format description only; no user can log in until one is
# added. The example users stay in /usr/share/doc/pgpivot/examples/userlist.txt.
{
  grep '^;' "$src/conf/userlist.txt"
  echo ';;'
  echo ';; The package installs this file without users; the example entries described above'
  echo ';; are in /usr/share/doc/pgpivot/examples/userlist.txt.'
} >"$out/etc/userlist.txt"

gzip -9 -n -c "$changelog" >"$out/changelog.Debian.gz"

# Debian changelog -> RPM %changelog:
#   pgpivot (0.1.0-1) unstable; urgency=medium      * Fri Nov 27 2026 Name <mail> - 0.1.0-1
#     * item                                    ->  - item
#       continued                                     continued
#    -- Name <mail>  Fri, 27 Nov 2026 12:00:00 +0000
awk '
  /^[a-z0-9][a-z0-9.+-]* \(/ { v = $2; gsub(/[()]/, "", v); n = 0; next }
  /^  \* / { items[++n] = "- " substr($0, 5); next }
  /^    [^ ]/ { items[++n] = "  " substr($0, 5); next }
  /^ -- / {
    who = $0
    sub(/^ -- /, "", who)
    sub(/>  .*/, ">", who)
    split(substr($0, index($0, ">  ") + 3), d, " ")
    sub(/,$/, "", d[1])
    if (printed++) print ""
    print "* " d[1] " " d[3] " " d[2] " " d[4] " " who " - " v
    for (i = 1; i <= n; i++) print items[i]
  }
' "$changelog" >"$out/rpm-changelog"
