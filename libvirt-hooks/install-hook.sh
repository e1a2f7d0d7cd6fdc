#!/usr/bin/env bash
# Installs nicoffload-hook as libvirt's qemu hook and makes libvirt notice it.
#
#   install-hook.sh [--binary PATH] [--config PATH] [--hooks-dir DIR]
#   install-hook.sh --uninstall [--binary PATH] [--hooks-dir DIR]
#
# --binary    the hook executable (default: nicoffload-hook next to this
#             script's install prefix, else on PATH). With --uninstall: only a
#             hook that runs this binary is removed (the package's prerm
#             passes /usr/sbin/nicoffload-hook, so it never removes a hook
#             that runs a build from source)
# --config    a hook.json other than /etc/nicoffload/hook.json: the installed
#             hook is then a small bash wrapper that sets
#             NICOFFLOAD_HOOK_CONFIG (it costs a bash start per hook call;
#             without --config the hook is a symlink to the binary). When the
#             binary is gone (the package removed), the wrapper says so on
#             stderr and exits 0: libvirt refuses to start a domain whose
#             hook fails, so a dangling wrapper would stop every domain
# --hooks-dir libvirt's hook directory (default /etc/libvirt/hooks)
#
# --uninstall removes qemu.d/50-nicoffload only when this script put it
# there (our symlink to a nicoffload-hook, or our wrapper); an operator's own
# file at that path is left alone (exit 1), as is everything else in the
# hooks directory.
#
# libvirt reads its hook directory at start and on SIGHUP: a running
# libvirtd (monolithic) and virtqemud (modular daemons) get SIGHUP (no
# systemd needed).
set -euo pipefail

binary="" config="" hooks_dir=/etc/libvirt/hooks uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --hooks-dir) hooks_dir=$2; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    *) echo "install-hook: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
target=$hooks_dir/qemu.d/50-nicoffload
# The wrapper's second line: how --uninstall knows the file is ours.
marker='# nicoffload-install-hook wrapper: remove with nicoffload-install-hook --uninstall'

# The pids of a daemon, by its fixed process name (never from input).
daemon_pids() {
  if command -v pidof >/dev/null 2>&1; then
    pidof "$1" || true
  elif command -v pgrep >/dev/null 2>&1; then
    pgrep -x "$1" | tr '\n' ' ' || true
  fi
}

reload_libvirt() {
  local name pids sent=""
  for name in libvirtd virtqemud; do
    pids=$(daemon_pids "$name")
    pids=${pids% }
    [ -n "$pids" ] || continue
    # A daemon that exits meanwhile is not an error.
    # shellcheck disable=SC2086
    kill -HUP $pids 2>/dev/null || true
    echo "install-hook: sent SIGHUP to $name ($pids)"
    sent=1
  done
  if [ -z "$sent" ]; then
    echo "install-hook: neither libvirtd nor virtqemud is running; libvirt will find the hook when it starts"
  fi
}

# What --uninstall may remove: "ours" (installed by this script, running
# $binary when --binary is given), "other" (ours, for another binary),
# "foreign" (someone else's file), "absent".
hook_kind() {
  local first second want
  if [ -L "$target" ]; then
    local link
    link=$(readlink "$target")
    case "$link" in */nicoffload-hook|nicoffload-hook) ;; *) echo foreign; return ;; esac
    if [ -n "$binary" ] && [ "$link" != "$binary" ]; then echo other; else echo ours; fi
    return
  fi
  [ -e "$target" ] || { echo absent; return; }
  [ -f "$target" ] || { echo foreign; return; }
  { IFS= read -r first || true; IFS= read -r second || true; } <"$target"
  [ "$first" = '#!/bin/bash' ] || { echo foreign; return; }
  if [ "$second" = "$marker" ]; then
    # Current wrapper: the binary is on the line hook=<quoted path>.
    grep -q '^hook=' "$target" || { echo foreign; return; }
    if [ -n "$binary" ]; then
      want=$(printf 'hook=%q' "$binary")
      grep -qxF -- "$want" "$target" || { echo other; return; }
    fi
    echo ours
    return
  fi
  # The two-line wrapper of earlier versions:
  #   NICOFFLOAD_HOOK_CONFIG=<quoted> exec <quoted binary> "$@"
  if [ "$(wc -l <"$target")" = 2 ] && [[ "$second" == NICOFFLOAD_HOOK_CONFIG=*' exec '*' "$@"' ]]; then
    if [ -n "$binary" ]; then
      want=$(printf ' exec %q "$@"' "$binary")
      [[ "$second" == *"$want" ]] || { echo other; return; }
    fi
    echo ours
    return
  fi
  echo foreign
}

if [ "$uninstall" = 1 ]; then
  # The same absolute form as an install writes.
  if [ -n "$binary" ] && [ -d "$(dirname "$binary")" ]; then
    binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
  fi
  case "$(hook_kind)" in
    absent)
      echo "install-hook: no $target; nothing to remove" ;;
    ours)
      rm -f "$target"
      echo "install-hook: removed $target"
      reload_libvirt ;;
    other)
      echo "install-hook: $target runs another nicoffload-hook than $binary; left in place" ;;
    foreign)
      echo "install-hook: $target was not installed by this script; left alone (remove it by hand)" >&2
      exit 1 ;;
  esac
  exit 0
fi

if [ -z "$binary" ]; then
  here=$(cd "$(dirname "$0")" && pwd)
  for c in "$here/../../sbin/nicoffload-hook" "$(command -v nicoffload-hook || true)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then binary=$c; break; fi
  done
fi
[ -n "$binary" ] && [ -x "$binary" ] || { echo "install-hook: no executable nicoffload-hook (use --binary)" >&2; exit 1; }
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")

mkdir -p "$hooks_dir/qemu.d"
if [ -n "$config" ]; then
  case "$config" in /*) ;; *) echo "install-hook: --config must be an absolute path" >&2; exit 2 ;; esac
  tmp=$(mktemp "$hooks_dir/qemu.d/.50-nicoffload.XXXXXX")
  # %q quotes the paths (bash syntax, hence bash): nothing from the command
  # line is run as shell code. Without the binary (the package removed and
  # this file left behind) the hook allows the domain: exit 127 would make
  # libvirt refuse to start any domain on the host.
  {
    printf '#!/bin/bash\n%s\nhook=%q\n' "$marker" "$binary"
    cat <<'WRAPPER'
if [ ! -x "$hook" ]; then
  echo "nicoffload: $hook: nicoffload-hook is not installed; domain allowed, its nicoffload ports not set up" >&2
  exit 0
fi
WRAPPER
    # shellcheck disable=SC2016 # "$hook" and "$@" are the wrapper's, not ours
    printf 'NICOFFLOAD_HOOK_CONFIG=%q exec "$hook" "$@"\n' "$config"
  } >"$tmp"
  chmod 0755 "$tmp"
  mv -f "$tmp" "$target"
else
  # A symlink: libvirt execs the binary itself, no shell in between.
  ln -sfn "$binary" "$hooks_dir/qemu.d/.50-nicoffload.new"
  mv -fT "$hooks_dir/qemu.d/.50-nicoffload.new" "$target"
fi
echo "install-hook: installed $target -> $binary${config:+ (config $config)}"
reload_libvirt
