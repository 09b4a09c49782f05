# pgpivot %pre: the system user, before the files that belong to it are unpacked.
getent group pgpivot >/dev/null || groupadd -r pgpivot
getent passwd pgpivot >/dev/null ||
  useradd -r -g pgpivot -d /var/lib/pgpivot -s /sbin/nologin -c "pgpivot PostgreSQL proxy" pgpivot
exit 0
