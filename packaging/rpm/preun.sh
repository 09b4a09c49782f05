# pgpivot %preun: stop and disable the service when the package is erased ($1 is 0), not
# on an upgrade ($1 is 1).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
  systemctl --no-reload disable --now pgpivot.service >/dev/null 2>&1 || :
fi
exit 0
