# Install rules and the CPack configuration of pgpivot's .deb and .rpm packages.
#
#   cmake --build build && (cd build && cpack)      # both packages, in build/
#   packaging/test-packages.sh build                # build, lint, install, run, remove
#
# Included from the top-level CMakeLists.txt after add_subdirectory(src) (which installs
# the pgpivot binary to bin/). Everything the packages install besides the binary:
#
#   /etc/pgpivot/pgpivot.ini, userlist.txt     conffiles (kept on upgrade and remove)
#   /etc/logrotate.d/pgpivot                   conffile
#   /usr/lib/systemd/system/pgpivot.service
#   /usr/share/man/man1/pgpivot.1.gz, man5/pgpivot.ini.5.gz
#   /usr/share/doc/pgpivot/                    copyright, changelog, examples/
#
#   /var/lib/pgpivot/, /var/log/pgpivot/       empty: the pgpivot user's home and logs
#
# The maintainer scripts create the pgpivot user, give it those two directories (RPM's
# file list does that for the .rpm), and on purge (.deb) delete them and /etc/pgpivot.
#
# Version: PROJECT_VERSION; the package release (Debian revision, RPM release) and the
# maintainer come from the newest entry of packaging/debian/changelog, whose upstream
# version must be PROJECT_VERSION. A rebuilt package with another release, without
# reconfiguring: cpack -D CPACK_DEBIAN_PACKAGE_RELEASE=2 -D CPACK_RPM_PACKAGE_RELEASE=2
include_guard(GLOBAL)
include(GNUInstallDirs)

set(PGPIVOT_PKG_SRC ${PROJECT_SOURCE_DIR}/packaging)
set(PGPIVOT_PKG_GEN ${PROJECT_BINARY_DIR}/packaging)

# ---- version, release and maintainer from the changelog ----------------------------------
file(STRINGS ${PGPIVOT_PKG_SRC}/debian/changelog _pgpivot_changelog)
list(GET _pgpivot_changelog 0 _pgpivot_head)
if(NOT _pgpivot_head MATCHES "^pgpivot \\(([^()]+)-([^()-]+)\\) ")
  message(FATAL_ERROR "packaging/debian/changelog: the first line is not "
                      "'pgpivot (VERSION-RELEASE) ...': ${_pgpivot_head}")
endif()
set(_pgpivot_upstream ${CMAKE_MATCH_1})
set(_pgpivot_release ${CMAKE_MATCH_2})
if(NOT _pgpivot_upstream STREQUAL PROJECT_VERSION)
  message(WARNING "packaging/debian/changelog is for pgpivot ${_pgpivot_upstream}, the "
                  "project is ${PROJECT_VERSION}: add a changelog entry for the new version")
endif()
set(_pgpivot_maintainer "")
foreach(_line IN LISTS _pgpivot_changelog)
  if(_line MATCHES "^ -- (.+>)  ")
    set(_pgpivot_maintainer "${CMAKE_MATCH_1}")
    break()
  endif()
endforeach()

# ---- hardening of the shipped binary ------------------------------------------------------
# What Debian's dpkg-buildflags adds and lintian looks for: _FORTIFY_SOURCE (optimized
# builds only: glibc warns without optimization; not with the sanitizers, which replace
# the same functions) and full RELRO (-z relro -z now).
option(PGPIVOT_HARDENING "Build with _FORTIFY_SOURCE=2 and full RELRO" ON)
if(PGPIVOT_HARDENING AND NOT PGPIVOT_SANITIZE)
  foreach(_target pgpivot_core pgpivot)
    target_compile_options(${_target} PRIVATE
      "$<$<NOT:$<CONFIG:Debug>>:-U_FORTIFY_SOURCE;-D_FORTIFY_SOURCE=2>")
  endforeach()
  target_link_options(pgpivot PRIVATE "LINKER:-z,relro,-z,now")
endif()

# ---- files generated at build time (see packaging/mkfiles.sh) -----------------------------
set(_pgpivot_generated
  ${PGPIVOT_PKG_GEN}/man/pgpivot.1.gz
  ${PGPIVOT_PKG_GEN}/man/pgpivot.ini.5.gz
  ${PGPIVOT_PKG_GEN}/etc/pgpivot.ini
  ${PGPIVOT_PKG_GEN}/etc/userlist.txt
  ${PGPIVOT_PKG_GEN}/changelog.Debian.gz
  ${PGPIVOT_PKG_GEN}/rpm-changelog)
add_custom_command(
  OUTPUT ${_pgpivot_generated}
  COMMAND sh ${PGPIVOT_PKG_SRC}/mkfiles.sh ${PROJECT_SOURCE_DIR} ${PGPIVOT_PKG_GEN}
          ${PROJECT_VERSION}
  DEPENDS ${PGPIVOT_PKG_SRC}/mkfiles.sh
          ${PGPIVOT_PKG_SRC}/man/ini2man.awk
          ${PGPIVOT_PKG_SRC}/man/pgpivot.1.in
          ${PGPIVOT_PKG_SRC}/debian/changelog
          ${PROJECT_SOURCE_DIR}/conf/pgpivot.ini
          ${PROJECT_SOURCE_DIR}/conf/userlist.txt
  COMMENT "Generating man pages, packaged configuration and changelogs"
  VERBATIM)
add_custom_target(pgpivot_package_files ALL DEPENDS ${_pgpivot_generated})

# dpkg's list of conffiles (RPM marks them with %config in CPACK_RPM_USER_FILELIST).
file(WRITE ${PGPIVOT_PKG_GEN}/conffiles
  "/etc/pgpivot/pgpivot.ini\n/etc/pgpivot/userlist.txt\n/etc/logrotate.d/pgpivot\n")

# ---- install rules ----------------------------------------------------------------------
# /etc is absolute on purpose: CPack installs below CPACK_PACKAGING_INSTALL_PREFIX (/usr),
# and the configuration belongs in /etc, not /usr/etc.
install(FILES ${PGPIVOT_PKG_GEN}/etc/pgpivot.ini ${PGPIVOT_PKG_GEN}/etc/userlist.txt
        DESTINATION /etc/pgpivot)
install(FILES ${PGPIVOT_PKG_SRC}/logrotate/pgpivot DESTINATION /etc/logrotate.d)
install(DIRECTORY DESTINATION /var/lib/pgpivot)
install(DIRECTORY DESTINATION /var/log/pgpivot)
install(FILES ${PGPIVOT_PKG_SRC}/systemd/pgpivot.service DESTINATION lib/systemd/system)
install(FILES ${PGPIVOT_PKG_GEN}/man/pgpivot.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PGPIVOT_PKG_GEN}/man/pgpivot.ini.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${PGPIVOT_PKG_SRC}/debian/copyright ${PGPIVOT_PKG_GEN}/changelog.Debian.gz
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/conf/pgpivot.ini ${PROJECT_SOURCE_DIR}/conf/pgpivot-minimal.ini
              ${PROJECT_SOURCE_DIR}/conf/userlist.txt
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# ---- CPack: common ------------------------------------------------------------------------
set(CPACK_GENERATOR "DEB;RPM")
set(CPACK_PACKAGE_NAME pgpivot)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "the pgpivot authors")
set(CPACK_PACKAGE_CONTACT "${_pgpivot_maintainer}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "connection-pooling PostgreSQL proxy with failover routing")
# The long description, in lines of at most 79 characters (lintian); Debian separates
# paragraphs with a "." line, RPM with an empty one.
set(_pgpivot_description_1
    "pgpivot sits between applications and PostgreSQL and pools their connections
onto a small number of server connections. It speaks the PostgreSQL wire
protocol, authenticates clients with SCRAM-SHA-256, md5 or auth_query, and
reads a PgBouncer configuration unchanged. For a cluster of PostgreSQL nodes
it watches every node, notices when the primary is dead or stuck, and moves
traffic to the new primary while clients stay connected, logging every
failover step.")
set(_pgpivot_description_2
    "The package runs pgpivot as a systemd service under its own system user.
The service is not started on installation: edit /etc/pgpivot/pgpivot.ini,
then enable it.")
set(CPACK_PACKAGE_DESCRIPTION "${_pgpivot_description_1}\n.\n${_pgpivot_description_2}")
set(CPACK_RESOURCE_FILE_LICENSE ${PGPIVOT_PKG_SRC}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

# ---- CPack: Debian ------------------------------------------------------------------------
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${_pgpivot_release})
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies come from dpkg-shlibdeps; the maintainer scripts need adduser.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "logrotate")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql-client")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PGPIVOT_PKG_GEN}/conffiles
    ${PGPIVOT_PKG_SRC}/debian/postinst
    ${PGPIVOT_PKG_SRC}/debian/prerm
    ${PGPIVOT_PKG_SRC}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# /var/lib/pgpivot and /var/log/pgpivot are in the package so that dpkg knows whose they
# are; dpkg cannot give them to a user that does not exist yet: postinst does.
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)

# ---- CPack: RPM ---------------------------------------------------------------------------
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_RELEASE ${_pgpivot_release})
set(CPACK_RPM_PACKAGE_SUMMARY "Connection-pooling PostgreSQL proxy with failover routing")
set(CPACK_RPM_PACKAGE_DESCRIPTION "${_pgpivot_description_1}\n\n${_pgpivot_description_2}")
set(CPACK_RPM_PACKAGE_LICENSE MIT)
set(CPACK_RPM_PACKAGE_GROUP "Applications/Databases")
set(CPACK_RPM_PACKAGE_AUTOREQ ON)
set(CPACK_RPM_PACKAGE_AUTOPROV ON)
set(CPACK_RPM_PACKAGE_REQUIRES_PRE "shadow-utils")
set(CPACK_RPM_PACKAGE_REQUIRES "logrotate")
set(CPACK_PACKAGE_RELOCATABLE OFF)
set(CPACK_RPM_PRE_INSTALL_SCRIPT_FILE ${PGPIVOT_PKG_SRC}/rpm/pre.sh)
set(CPACK_RPM_POST_INSTALL_SCRIPT_FILE ${PGPIVOT_PKG_SRC}/rpm/post.sh)
set(CPACK_RPM_PRE_UNINSTALL_SCRIPT_FILE ${PGPIVOT_PKG_SRC}/rpm/preun.sh)
set(CPACK_RPM_POST_UNINSTALL_SCRIPT_FILE ${PGPIVOT_PKG_SRC}/rpm/postun.sh)
set(CPACK_RPM_CHANGELOG_FILE ${PGPIVOT_PKG_GEN}/rpm-changelog)
set(CPACK_RPM_USER_FILELIST
    "%config(noreplace) %attr(0640,root,pgpivot) /etc/pgpivot/pgpivot.ini"
    "%config(noreplace) %attr(0640,root,pgpivot) /etc/pgpivot/userlist.txt"
    "%config(noreplace) /etc/logrotate.d/pgpivot"
    "%dir %attr(0750,pgpivot,pgpivot) /var/lib/pgpivot"
    "%dir %attr(2750,pgpivot,adm) /var/log/pgpivot"
    "%license /usr/share/doc/pgpivot/copyright")
# Directories other packages own (filesystem, systemd, man-db, logrotate).
list(APPEND CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
     /etc/logrotate.d /usr/lib/systemd /usr/lib/systemd/system /usr/share/man
     /usr/share/man/man1 /usr/share/man/man5 /var /var/lib /var/log)
# The same file list as the .deb: no /usr/lib/.build-id links, no debuginfo package.
set(CPACK_RPM_SPEC_MORE_DEFINE "%define _build_id_links none\n%define packager ${_pgpivot_maintainer}")

include(CPack)
