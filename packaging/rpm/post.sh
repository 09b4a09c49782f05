# pgpivot %post: home and log directories; the service is not started on a fresh install
# (edit /etc/pgpivot/pgpivot.ini first, then `systemctl enable --now pgpivot`) unless
# PGPIVOT_ENABLE=1 is set in rpm's environment. $1 is 1 on install, 2 on upgrade.
[ -d /var/lib/pgpivot ] || install -d -o pgpivot -g pgpivot -m 0750 /var/lib/pgpivot
if [ ! -d /var/log/pgpivot ]; then
  if getent group adm >/dev/null; then
    install -d -o pgpivot -g adm -m 2750 /var/log/pgpivot
  else
    install -d -o pgpivot -g pgpivot -m 0750 /var/log/pgpivot
  fi
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
  if [ "$1" -eq 1 ] && [ "${PGPIVOT_ENABLE:-0}" = 1 ]; then
    systemctl enable --now pgpivot.service >/dev/null 2>&1 || :
  fi
fi
exit 0
