#!/usr/bin/env bash
# Feeds every rule nicoffloadctl renders for the example plans to the real
# dpdk-testpmd (DPDK 22.11, net_null vdev, no hugepages, no PCI) and fails on
# any "Bad arguments". Each "flow create" must get through the parser to the
# PMD, which answers "Function not implemented" (net_null has no rte_flow):
# that answer proves the whole line parsed.
set -euo pipefail
ctl=$1
root=$2
command -v dpdk-testpmd >/dev/null || { echo "FAIL: dpdk-testpmd not installed (tools/bootstrap installs dpdk-dev)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work" "/var/run/dpdk/nfo-testpmd-$$"' EXIT

run_testpmd() {  # $1 = command file; output to stdout
  { cat "$1"; echo quit; } | timeout 120 dpdk-testpmd --no-huge --no-pci --no-shconf --file-prefix "nfo-testpmd-$$" -m 512 \
    --vdev net_null0 --log-level=lib.eal:error -- -i --total-num-mbufs=2048 2>&1
}

# Control: a malformed line must be reported, or this test could not fail.
echo 'flow create 0 transfer pattern no_such_item / end actions drop / end' > "$work/bad.txt"
bad=$(run_testpmd "$work/bad.txt" | grep -c 'Bad arguments' || true)
if [ "$bad" -ne 1 ]; then
  echo "FAIL: control line not reported by testpmd (got $bad 'Bad arguments')"; exit 1
fi

status=0
check_plan() {  # name host ports profile
  local name=$1 host=$2 ports=$3 profile=$4
  "$ctl" plan --host "$host" --ports "$ports" --profile "$profile" --testpmd > "$work/$name.txt"
  local creates encaps out bad reached
  creates=$(grep -c '^flow create' "$work/$name.txt")
  encaps=$(grep -c '^set vxlan' "$work/$name.txt" || true)
  out=$(run_testpmd "$work/$name.txt")
  bad=$(grep -c 'Bad arguments' <<<"$out" || true)
  reached=$(grep -c 'Function not implemented' <<<"$out" || true)
  echo "$name: $creates flow create + $encaps set vxlan lines; bad arguments: $bad; reached the PMD: $reached"
  if [ "$bad" -ne 0 ]; then
    echo "FAIL: testpmd refused lines of $name:"; grep -B1 'Bad arguments' <<<"$out" | grep 'testpmd>' | head
    status=1
  fi
  if [ "$reached" -ne "$creates" ] || [ "$creates" -eq 0 ]; then
    echo "FAIL: $name: $reached of $creates flow create lines reached the PMD"; status=1
  fi
}

check_plan vxlan-sim "$root/examples/host.json" "$root/examples/ports.json" "$root/hw-profiles/sim.json"
check_plan routed-cx6dx "$root/examples/host-routed.json" "$root/examples/ports-routed.json" "$root/hw-profiles/connectx-6dx.json"
check_plan routed-cx7 "$root/examples/host-routed.json" "$root/examples/ports-routed.json" "$root/hw-profiles/connectx-7.json"
[ "$status" -eq 0 ] && echo "PASS: dpdk-testpmd accepted every rendered rule"
exit "$status"
