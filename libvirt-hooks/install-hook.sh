#!/usr/bin/env bash
# Installs nicoffload-hook as libvirt's qemu hook and makes libvirtd notice it.
#
#   install-hook.sh [--binary PATH] [--config PATH] [--hooks-dir DIR]
#   install-hook.sh --uninstall [--hooks-dir DIR]
#
# --binary    the hook executable (default: nicoffload-hook next to this
#             script's install prefix, else on PATH)
# --config    a hook.json other than /etc/nicoffload/hook.json: the installed
#             hook is then a two-line bash wrapper that sets
#             NICOFFLOAD_HOOK_CONFIG (it costs a bash start per hook call;
#             without --config the hook is a symlink to the binary)
# --hooks-dir libvirt's hook directory (default /etc/libvirt/hooks)
#
# libvirtd reads its hook directory at start and on SIGHUP: a running
# libvirtd gets SIGHUP (no systemd needed).
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

reload_libvirtd() {
  local pids
  pids=$(pidof libvirtd || true)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -HUP $pids
    echo "install-hook: sent SIGHUP to libvirtd ($pids)"
  else
    echo "install-hook: libvirtd is not running; it will find the hook when it starts"
  fi
}

if [ "$uninstall" = 1 ]; then
  rm -f "$target"
  echo "install-hook: removed $target"
  reload_libvirtd
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
  # line is run as shell code.
  printf '#!/bin/bash\nNICOFFLOAD_HOOK_CONFIG=%q exec %q "$@"\n' "$config" "$binary" >"$tmp"
  chmod 0755 "$tmp"
  mv -f "$tmp" "$target"
else
  # A symlink: libvirt execs the binary itself, no shell in between.
  ln -sfn "$binary" "$hooks_dir/qemu.d/.50-nicoffload.new"
  mv -fT "$hooks_dir/qemu.d/.50-nicoffload.new" "$target"
fi
echo "install-hook: installed $target -> $binary${config:+ (config $config)}"
reload_libvirtd
