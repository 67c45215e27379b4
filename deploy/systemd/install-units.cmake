# deploy/systemd/install-units.cmake runs at install time (cmake_install.cmake includes it,
# see install.cmake). It generates the units for the prefix this install writes to, which
# `cmake --install --prefix` may have changed since configure, and installs them.
#
# Set by install.cmake: CS_SYSTEMD_SOURCE_DIR, CS_SYSTEMD_STAGE_DIR, CS_SYSTEMD_UNITS,
# CS_SYSTEMD_UNITDIR, CS_SYSTEMD_BINDIR, CS_SYSTEMD_SYSCONFDIR, CS_SYSTEMD_DOCDIR.
# Set by CMake: CMAKE_INSTALL_PREFIX (the install-time prefix), $ENV{DESTDIR}.

# A directory under the prefix, the way this project's install() rules place their files:
# ${prefix}/${dir}, or ${dir} if it is absolute. The exception is SYSCONFDIR, which follows
# GNUInstallDirs' CMAKE_INSTALL_FULL_SYSCONFDIR: /etc for the prefixes / and /usr, and
# /etc/opt/... for /opt/...
function(_cs_systemd_dir out dir kind)
  if(IS_ABSOLUTE "${dir}")
    set(full "${dir}")
  else()
    string(REGEX REPLACE "/+$" "" prefix "${CMAKE_INSTALL_PREFIX}")
    if(kind STREQUAL "SYSCONFDIR" AND (prefix STREQUAL "" OR prefix STREQUAL "/usr"))
      set(full "/${dir}")
    elseif(kind STREQUAL "SYSCONFDIR" AND prefix MATCHES "^/opt/"
           AND NOT prefix MATCHES "^/opt/homebrew(/|$)")
      set(full "/${dir}${prefix}")
    else()
      set(full "${prefix}/${dir}")
    endif()
  endif()
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

_cs_systemd_dir(CMAKE_INSTALL_FULL_BINDIR "${CS_SYSTEMD_BINDIR}" BINDIR)
_cs_systemd_dir(CMAKE_INSTALL_FULL_SYSCONFDIR "${CS_SYSTEMD_SYSCONFDIR}" SYSCONFDIR)
_cs_systemd_dir(CMAKE_INSTALL_FULL_DOCDIR "${CS_SYSTEMD_DOCDIR}" DOCDIR)
_cs_systemd_dir(_cs_unitdir "${CS_SYSTEMD_UNITDIR}" UNITDIR)

# Staged in the build directory, one directory per destination so that installs to
# different prefixes from one build directory at the same time (the tests do that) don't
# overwrite each other's files. Removed once installed.
string(MD5 _cs_key "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
string(SUBSTRING "${_cs_key}" 0 12 _cs_key)
set(_cs_stage "${CS_SYSTEMD_STAGE_DIR}/install-${_cs_key}")

set(_cs_files "")
foreach(_cs_unit IN LISTS CS_SYSTEMD_UNITS)
  configure_file("${CS_SYSTEMD_SOURCE_DIR}/${_cs_unit}.in" "${_cs_stage}/${_cs_unit}" @ONLY)
  list(APPEND _cs_files "${_cs_stage}/${_cs_unit}")
endforeach()

# file(INSTALL) prepends $ENV{DESTDIR}, prints "-- Installing: ..." and adds the files to
# install_manifest.txt, as for the project's other files.
file(INSTALL DESTINATION "${_cs_unitdir}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES ${_cs_files})
file(REMOVE_RECURSE "${_cs_stage}")
