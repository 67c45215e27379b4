# deploy/systemd/install.cmake: the systemd units of the three consumers. The top-level
# CMakeLists.txt includes this after include(GNUInstallDirs):
#
#   include(deploy/systemd/install.cmake)
#
# Configure: the templates (*.in, placeholders @CMAKE_INSTALL_FULL_BINDIR@,
# @CMAKE_INSTALL_FULL_SYSCONFDIR@, @CMAKE_INSTALL_FULL_DOCDIR@) become
# ${CMAKE_CURRENT_BINARY_DIR}/systemd/<unit>, for the configured CMAKE_INSTALL_PREFIX.
# You can read them there. They are not the files that get installed.
#
# Install: `cmake --install` generates the units again for the prefix it installs to, so
# `cmake --install build --prefix /usr` of a build configured for /usr/local still
# writes ExecStart=/usr/bin/... (install-units.cmake). It installs them to
# ${prefix}/${CS_SYSTEMD_UNITDIR}, which defaults to lib/systemd/system. For prefix /usr
# that is /usr/lib/systemd/system: Debian's unit directory for packaged units (the same
# directory as /lib/systemd/system on a merged-/usr Debian 12). For /usr/local it is
# /usr/local/lib/systemd/system, which systemd also searches. DESTDIR is honoured.
# Component: systemd (`cmake --install build --component systemd` installs only the
# units and their README).

option(CS_INSTALL_SYSTEMD_UNITS "Install the systemd units of the consumers" ON)
set(CS_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd units go: relative to the install prefix, or absolute")

set(CS_SYSTEMD_UNITS
    caresignal-normalise.service
    caresignal-score.service
    caresignal-page.service
    caresignal.target)

foreach(_cs_unit IN LISTS CS_SYSTEMD_UNITS)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${_cs_unit}.in
                 ${CMAKE_CURRENT_BINARY_DIR}/systemd/${_cs_unit} @ONLY)
endforeach()
unset(_cs_unit)

if(CS_INSTALL_SYSTEMD_UNITS)
  # The install-time script gets everything it needs here: paths as configured, the
  # GNUInstallDirs directories relative to the prefix (or absolute, if set so).
  install(CODE "
    set(CS_SYSTEMD_SOURCE_DIR [[${CMAKE_CURRENT_LIST_DIR}]])
    set(CS_SYSTEMD_STAGE_DIR [[${CMAKE_CURRENT_BINARY_DIR}/systemd]])
    set(CS_SYSTEMD_UNITS [[${CS_SYSTEMD_UNITS}]])
    set(CS_SYSTEMD_UNITDIR [[${CS_SYSTEMD_UNITDIR}]])
    set(CS_SYSTEMD_BINDIR [[${CMAKE_INSTALL_BINDIR}]])
    set(CS_SYSTEMD_SYSCONFDIR [[${CMAKE_INSTALL_SYSCONFDIR}]])
    set(CS_SYSTEMD_DOCDIR [[${CMAKE_INSTALL_DOCDIR}]])
    include([[${CMAKE_CURRENT_LIST_DIR}/install-units.cmake]])
  " COMPONENT systemd)
  # Documentation= in every unit points here.
  install(FILES ${CMAKE_CURRENT_LIST_DIR}/README.md
          DESTINATION ${CMAKE_INSTALL_DOCDIR}/systemd COMPONENT systemd)
endif()
