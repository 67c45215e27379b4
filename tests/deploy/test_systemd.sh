#!/usr/bin/env bash
# Checks the systemd units (deploy/systemd) as `cmake --install` writes them. It installs
# $CS_BUILD_DIR into a temporary prefix and then, for each unit:
#   - runs `systemd-analyze verify` on the installed file. That runs offline: systemd is
#     not PID 1 on the development machines, so nothing here starts a unit. It fails on a
#     non-zero exit, or on any line of output that names one of our units or the
#     temporary tree. Lines about unrelated system units are only shown;
#   - checks the settings the programs depend on: Type=notify, WatchdogSec, DynamicUser,
#     ProtectSystem=strict, NoNewPrivileges, RestartPreventExitStatus=2, ...;
#   - checks that ExecStart names the installed program and configuration, and that no
#     secret is given on it as a value. A secret may only appear as `<key>.file=%d/<id>`,
#     with a LoadCredential=<id>:... line for that <id>.
# Needs cmake and systemd-analyze (Debian package systemd). Takes a few seconds.
#
#   CS_BUILD_DIR=build bash tests/deploy/test_systemd.sh
#
# CS_BUILD_DIR (required): a configured and built build directory.
# CS_SOURCE_DIR: the source tree (default: the one holding this script).
# Exits 0 only if every unit passes. The last line is the summary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=${CS_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
SYSTEMD_ANALYZE=${SYSTEMD_ANALYZE:-systemd-analyze}

fail_early() {
  printf 'systemd units: %s\n' "$@" >&2
  echo "systemd units: 0 passed, 1 failed"
  exit 1
}

[ -n "${CS_BUILD_DIR:-}" ] || fail_early "CS_BUILD_DIR is not set (a configured, built build directory)"
[ -f "$CS_BUILD_DIR/CMakeCache.txt" ] || fail_early "$CS_BUILD_DIR is not a CMake build directory"
command -v cmake >/dev/null 2>&1 || fail_early "cmake not found"
command -v "$SYSTEMD_ANALYZE" >/dev/null 2>&1 ||
  fail_early "$SYSTEMD_ANALYZE not found (Debian package systemd)"

# The units we ship, from their templates: deploy/systemd/<unit>.in
templates=("$source_dir"/deploy/systemd/*.in)
[ -e "${templates[0]}" ] || fail_early "no unit templates in $source_dir/deploy/systemd"
units=()
for t in "${templates[@]}"; do
  u=$(basename "$t" .in)
  units+=("$u")
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cs-systemd-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"

# Where install.cmake puts them: ${prefix}/${CS_SYSTEMD_UNITDIR}, default lib/systemd/system
cache_value() {
  sed -n "s/^$1:[A-Z]*=//p" "$CS_BUILD_DIR/CMakeCache.txt" | head -n 1
}
unitdir_rel=$(cache_value CS_SYSTEMD_UNITDIR)
unitdir_rel=${unitdir_rel:-lib/systemd/system}
case $unitdir_rel in
  /*) fail_early "CS_SYSTEMD_UNITDIR=$unitdir_rel is absolute: an install into a temporary" \
        "prefix would write the units to $unitdir_rel. Test a build with a relative one." ;;
esac
unitdir="$prefix/$unitdir_rel"

if ! out=$(cmake --install "$CS_BUILD_DIR" --prefix "$prefix" 2>&1); then
  printf '%s\n' "$out" | sed 's/^/     /' >&2
  fail_early "cmake --install $CS_BUILD_DIR --prefix $prefix failed (output above)"
fi

missing=()
for u in "${units[@]}"; do
  [ -f "$unitdir/$u" ] || missing+=("$u")
done
if [ "${#missing[@]}" -gt 0 ]; then
  {
    echo "systemd units: not in the install tree: ${missing[*]}"
    echo "  looked in $unitdir after: cmake --install $CS_BUILD_DIR --prefix $prefix"
    if ! grep -q '^CS_INSTALL_SYSTEMD_UNITS:' "$CS_BUILD_DIR/CMakeCache.txt"; then
      echo "  $CS_BUILD_DIR was not configured with deploy/systemd/install.cmake: the"
      echo "  top-level CMakeLists.txt needs include(deploy/systemd/install.cmake) (after"
      echo "  include(GNUInstallDirs)), then re-run cmake on $CS_BUILD_DIR"
    elif [ "$(cache_value CS_INSTALL_SYSTEMD_UNITS)" != ON ]; then
      echo "  $CS_BUILD_DIR has CS_INSTALL_SYSTEMD_UNITS=$(cache_value CS_INSTALL_SYSTEMD_UNITS)"
    fi
  } >&2
  echo "systemd units: 0 passed, ${#units[@]} failed"
  exit 1
fi

# One logical line per setting: continuation lines (trailing backslash) joined, comments
# and blank lines dropped.
logical_lines() {
  awk '
    /^[ \t]*[#;]/ && cont == "" { next }
    {
      line = cont $0
      if (line ~ /\\$/) { sub(/\\$/, " ", line); cont = line; next }
      cont = ""
      if (line ~ /^[ \t]*$/) next
      print line
    }
    END { if (cont != "") print cont }' "$1"
}

# The value of the last KEY= line (the one that counts), or nothing.
setting() {
  logical_lines "$1" | sed -n "s/^$2=//p" | tail -n 1
}

# Any of our unit names, or the temporary tree: a verify line naming one is about us.
ours_re="$(printf '%s\n' "${units[@]}" | sed 's/[.[\*^$]/\\&/g' | paste -sd'|')|$(printf '%s' "$tmp" | sed 's/[.[\*^$]/\\&/g')"

problems=()
problem() { problems+=("$*"); }

# KEY VALUE-REGEX DESCRIPTION: the last KEY= line of $f is set and its value matches.
expect() {
  local v
  if ! logical_lines "$f" | grep -qE -- "^$1="; then
    problem "$1 is not set: expected $3"
    return
  fi
  v=$(setting "$f" "$1")
  if ! printf '%s\n' "$v" | grep -qE -- "^($2)\$"; then
    problem "$1=${v:-<empty>}: expected $3"
  fi
}

passed=0
failed=0
declare -A port_of=()

for u in "${units[@]}"; do
  f="$unitdir/$u"
  problems=()

  # --- systemd-analyze verify, offline. --man=no: Documentation=man: pages need not be
  # installed. --recursive-errors=no: only this unit's errors count, not those of units it
  # names (network-online.target, ...). --generators=no is the default. Log to the console
  # (stderr) without colour, at info (systemd's default level).
  rc=0
  vout=$(SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_COLOR=0 SYSTEMD_LOG_LEVEL=info \
         SYSTEMD_PAGER=cat "$SYSTEMD_ANALYZE" verify --man=no --recursive-errors=no \
         --no-pager "$f" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    problem "systemd-analyze verify exited $rc"
  fi
  ours=$(printf '%s\n' "$vout" | grep -E -- "$ours_re" || true)
  if [ -n "$ours" ]; then
    problem "systemd-analyze verify reported on our unit:"
    while IFS= read -r l; do problem "  $l"; done <<<"$ours"
  fi
  others=$(printf '%s\n' "$vout" | grep -v -E -- "$ours_re" | grep -v '^$' || true)

  case $u in
    *.service)
      name=${u%.service}
      expect Type notify "notify (the program sends READY=1)"
      expect NotifyAccess main "main"
      expect WatchdogSec '[1-9][0-9]*(s)?' "a watchdog in seconds (the loop pings every half)"
      expect Restart on-failure "on-failure"
      expect RestartPreventExitStatus '(.* )?2( .*)?' "to list 2 (bad configuration)"
      expect KillMode mixed "mixed"
      expect TimeoutStopSec '([3-9][0-9]|[1-9][0-9]{2,})(s)?' \
        "at least 30 s (the drain takes up to 20 s)"
      expect DynamicUser yes "yes"
      expect ProtectSystem strict "strict"
      expect ProtectHome yes "yes"
      expect PrivateTmp yes "yes"
      expect PrivateDevices yes "yes"
      expect NoNewPrivileges yes "yes"
      expect CapabilityBoundingSet '' "empty (no capabilities)"
      expect SystemCallArchitectures native "native"
      expect UMask 0077 "0077"
      expect PartOf caresignal.target "caresignal.target"
      if [ "$name" = caresignal-normalise ]; then
        # shellcheck disable=SC2016 # a literal $MAINPID
        expect ExecReload '/(usr/)?bin/kill -HUP \$MAINPID' "a SIGHUP (directory reload)"
      fi

      execs=$(logical_lines "$f" | grep -E '^ExecStart=' || true)
      if [ "$(printf '%s\n' "$execs" | grep -c .)" -ne 1 ]; then
        problem "expected exactly one ExecStart= line"
      fi
      read -r -a argv <<<"${execs#ExecStart=}"
      bin=${argv[0]:-}
      if [ "$bin" != "$prefix/bin/$name" ]; then
        problem "ExecStart runs '$bin', not the installed $prefix/bin/$name"
      elif [ ! -x "$bin" ]; then
        problem "ExecStart: $bin is not an executable file"
      fi

      # credentials the unit loads: LoadCredential=ID:PATH
      declare -A cred=()
      while IFS= read -r l; do
        [ -n "$l" ] || continue
        id=${l#LoadCredential=}
        id=${id%%:*}
        cred[$id]=1
      done < <(logical_lines "$f" | grep -E '^LoadCredential=.' || true)
      declare -A used=()

      config="" listen=""
      for ((i = 1; i < ${#argv[@]}; i++)); do
        a=${argv[$i]}
        case $a in
          --config) config=${argv[$((i + 1))]:-}; continue ;;
          --config=*) config=${a#--config=}; continue ;;
          --set) kv=${argv[$((i + 1))]:-}; i=$((i + 1)) ;;
          --set=*) kv=${a#--set=} ;;
          *) continue ;;
        esac
        key=${kv%%=*}
        val=${kv#*=}
        [ "$key" = metrics.listen ] && listen=$val
        # a secret: any key naming a password, secret, key password or user info
        if printf '%s' "$key" | grep -qiE 'pass(word)?|secret|user\.info|token|credential'; then
          case $key in
            *.file)
              # shellcheck disable=SC2016 # literal ${CREDENTIALS_DIRECTORY}
              case $val in
                %d/* | '${CREDENTIALS_DIRECTORY}/'* | '$CREDENTIALS_DIRECTORY/'*)
                  id=${val#*/}
                  used[$id]=1
                  if [ -z "${cred[$id]:-}" ]; then
                    problem "ExecStart: $key=$val, but no LoadCredential=$id:... line"
                  fi
                  ;;
                *) problem "ExecStart: $key=$val: a secret file that is not a credential (%d/...)" ;;
              esac
              ;;
            *) problem "ExecStart: --set $key=<value>: a secret value on the command line (use $key.file=%d/...)" ;;
          esac
        fi
      done
      for id in "${!cred[@]}"; do
        [ -n "${used[$id]:-}" ] || problem "LoadCredential=$id is loaded but ExecStart never names %d/$id"
      done
      unset cred used

      if [ -z "$config" ]; then
        problem "ExecStart has no --config"
      elif [ ! -f "$config" ]; then
        problem "ExecStart --config $config: the install did not create that file"
      fi
      if [ -z "$listen" ]; then
        problem "ExecStart has no --set metrics.listen=..."
      elif [ -n "${port_of[$listen]:-}" ]; then
        problem "metrics.listen=$listen is also ${port_of[$listen]}'s"
      else
        port_of[$listen]=$name
      fi

      # no secret value anywhere else either (Environment= is visible to every local user)
      if logical_lines "$f" | grep -E '^Environment=' | grep -qiE 'pass(word)?|secret'; then
        problem "an Environment= line mentions a password or secret"
      fi
      ;;
    *.target)
      wanted=$(setting "$f" WantedBy)
      [ "$wanted" = multi-user.target ] || problem "WantedBy=${wanted:-<unset>}: expected multi-user.target"
      also=$(setting "$f" Also)
      for s in "${units[@]}"; do
        case $s in
          *.service)
            case " $also " in
              *" $s "*) ;;
              *) problem "Also= does not name $s" ;;
            esac
            ;;
        esac
      done
      # what `systemctl enable` makes of [Install], offline: the install prefix as the
      # root (its lib/systemd/system is a unit directory there); symlinks go to its etc/
      if command -v systemctl >/dev/null 2>&1; then
        if eout=$(SYSTEMD_LOG_COLOR=0 systemctl --root="$prefix" enable "$u" 2>&1); then
          wants="$prefix/etc/systemd/system"
          [ -L "$wants/multi-user.target.wants/$u" ] ||
            problem "systemctl enable $u: no multi-user.target.wants/$u"
          for s in "${units[@]}"; do
            case $s in
              *.service)
                [ -L "$wants/$u.wants/$s" ] ||
                  problem "systemctl enable $u: $s not enabled with it ($u.wants/$s)"
                ;;
            esac
          done
        else
          problem "systemctl --root enable $u failed:"
          while IFS= read -r l; do problem "  $l"; done <<<"$eout"
        fi
      fi
      ;;
  esac

  if [ "${#problems[@]}" -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok   $u"
  else
    failed=$((failed + 1))
    echo "FAIL $u"
    printf '     %s\n' "${problems[@]}"
  fi
  if [ -n "$others" ]; then
    echo "     (systemd-analyze verify, about other units; not counted:)"
    printf '%s\n' "$others" | sed 's/^/       /'
  fi
done

echo "systemd units: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
