#!/usr/bin/env bash
# A fresh machine has only what tools/bootstrap installs. Fails when a system
# header this build compiled against (from the compiler's dependency files in
# BUILD_DIR) or a program the tests and tools call comes from a Debian package
# that tools/bootstrap does not install: neither listed in its PACKAGES array
# nor pulled in by one listed (Depends/Pre-Depends, recursively, as
# `apt-get install --no-install-recommends` would), nor Essential.
#
#   bootstrap_covers_build.sh [--bootstrap FILE] [--without PKG]... SOURCE_DIR BUILD_DIR
#     --bootstrap FILE  check another bootstrap script (e.g. an older one:
#                       git show 213de07^:tools/bootstrap > /tmp/old-bootstrap)
#     --without PKG     drop PKG from the list first (the guard's own test)
set -euo pipefail

bootstrap="" without=()
while [ $# -gt 2 ]; do
  case $1 in
    --bootstrap) bootstrap=$2; shift 2 ;;
    --without) without+=("$2"); shift 2 ;;
    *) echo "usage: $0 [--bootstrap FILE] [--without PKG]... SOURCE_DIR BUILD_DIR" >&2; exit 2 ;;
  esac
done
[ $# -eq 2 ] || { echo "usage: $0 [--bootstrap FILE] [--without PKG]... SOURCE_DIR BUILD_DIR" >&2; exit 2; }
src=$1 build=$2
bootstrap=${bootstrap:-$src/tools/bootstrap}

# Programs the tests and tools run (tests/, tools/, fuzz/).
programs=(ip bridge ping timeout virsh libvirtd virtlogd qemu-system-x86_64 dpdk-testpmd python3
  cmake ctest clang clang++ cpack dpkg-shlibdeps dpkg-deb lintian systemd-analyze apt-get help2man)

# The PACKAGES=(...) array, read by bash itself (comments and line breaks as
# bash sees them), without running the rest of the script.
mapfile -t listed < <(bash -c 'eval "$(sed -n "/^PACKAGES=(/,/^)/p" "$1")"; printf "%s\n" "${PACKAGES[@]}"' _ "$bootstrap")
[ "${#listed[@]}" -gt 0 ] || { echo "no PACKAGES=(...) array in $bootstrap" >&2; exit 2; }
for w in "${without[@]}"; do
  mapfile -t listed < <(printf '%s\n' "${listed[@]}" | grep -vxF -- "$w")
done

# What a fresh machine holds: the listed packages, the Essential ones, and
# everything they depend on. One apt-cache call (its own cache for the run).
mapfile -t essential < <(dpkg-query -W -f='${Package} ${Essential}\n' | awk '$2 == "yes" {print $1}')
covered=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances "${listed[@]}" "${essential[@]}" apt 2>/dev/null |
          grep -vE '^ |^<' | sed 's/:.*//' | sort -u)

# Files the build read outside the source and build trees.
mapfile -t headers < <(find "$build" \( -name '*.d' -o -name compiler_depend.make \) -type f -print0 |
  xargs -0 -r grep -hoE '(^|[ :])/usr/[^ :\\]+' | sed -E 's/^[ :]//' | xargs -r realpath -ms | sort -u)
if [ "${#headers[@]}" -eq 0 ]; then
  echo "no compiler dependency files under $build: build it first" >&2
  exit 2
fi

# path -> package; a path dpkg does not know under one spelling of merged
# /usr is retried under the other, then with symlinks resolved.
declare -A owner=()
unowned=()
lookup() {
  local f=$1 p
  for p in "$f" "${f#/usr}" "$(realpath -m "$f")" "/usr$f"; do
    if out=$(dpkg -S "$p" 2>/dev/null); then
      sed -E 's/: .*//; s/, /\n/g; s/:[a-z0-9]+$//' <<<"$out" | sed 's/:.*//' | head -n 1
      return 0
    fi
  done
  return 1
}
# Headers in one dpkg call (fast); misses go through lookup() one by one.
while IFS= read -r line; do
  pkg=${line%%: *} path=${line#*: }
  owner[$path]=${pkg%%,*}
done < <(dpkg -S "${headers[@]}" 2>/dev/null | grep -v '^diversion' || true)
needed=()
for h in "${headers[@]}"; do
  if [ -n "${owner[$h]:-}" ]; then
    needed+=("${owner[$h]%%:*}|$h")
  elif pkg=$(lookup "$h"); then
    needed+=("$pkg|$h")
  else
    unowned+=("$h")
  fi
done
# The system's PATH, not the caller's (a pyenv or /usr/local python3 here says
# nothing about a fresh machine).
for prog in "${programs[@]}"; do
  if ! path=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$prog"); then
    unowned+=("program $prog (not installed here)")
  elif pkg=$(lookup "$path"); then
    needed+=("$pkg|program $prog")
  else
    unowned+=("program $prog ($path, from no package)")
  fi
done

declare -A is_covered=()
while IFS= read -r p; do is_covered[$p]=1; done <<<"$covered"
declare -A missing=()
for n in "${needed[@]}"; do
  pkg=${n%%|*}
  [ -n "${is_covered[$pkg]:-}" ] || missing[$pkg]="${missing[$pkg]:-}${missing[$pkg]:+, }${n#*|}"
done

status=0
if [ "${#missing[@]}" -gt 0 ]; then
  status=1
  echo "Packages the build or the tests use that $bootstrap does not install (a fresh machine fails):"
  for pkg in $(printf '%s\n' "${!missing[@]}" | sort); do
    echo "  $pkg: $(cut -c1-300 <<<"${missing[$pkg]}")"
  done
  echo "missing: $(printf '%s\n' "${!missing[@]}" | sort | tr '\n' ' ')"
fi
if [ "${#unowned[@]}" -gt 0 ]; then
  status=1
  echo "Used by the build or the tests but installed by no Debian package:"
  printf '  %s\n' "${unowned[@]}"
fi
[ "$status" -eq 0 ] && echo "ok: ${#headers[@]} system files and ${#programs[@]} programs, all from the ${#listed[@]} packages $bootstrap installs (or their dependencies)"
exit "$status"
