# pgpivot %post: the service is not started on a fresh install (edit
# /etc/pgpivot/pgpivot.ini first, then `systemctl enable --now pgpivot`) unless
# PGPIVOT_ENABLE=1 is set in rpm's environment. $1 is 1 on install, 2 on upgrade.
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
  if [ "$1" -eq 1 ] && [ "${PGPIVOT_ENABLE:-0}" = 1 ]; then
    systemctl enable --now pgpivot.service >/dev/null 2>&1 || :
  fi
fi
exit 0
