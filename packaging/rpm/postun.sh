# pgpivot %postun: after an upgrade ($1 is 1) restart the service if it runs. On erase
# ($1 is 0) rpm keeps edited configuration files as .rpmsave; the logs and the pgpivot
# user stay.
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
  if [ "$1" -ge 1 ]; then
    systemctl try-restart pgpivot.service >/dev/null 2>&1 || :
  fi
fi
exit 0
