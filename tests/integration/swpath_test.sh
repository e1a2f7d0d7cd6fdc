#!/usr/bin/env bash
# The kernel software path, proven with real packets (needs root).
#
# Two "hypervisors" (network namespaces hv1, hv2) joined by a veth underlay
# (uplink0, 192.0.2.0/24), each with two "VMs" (namespaces with one veth as
# their virtio NIC, a /32 address and a default route to the gateway
# 169.254.1.1). The VM's veth peer in the hypervisor stands for the
# representor. nicoffloadctl programs each hypervisor's kernel; the test
# builds the world with `ip` (the product never runs it) and sends traffic
# only inside its own namespaces.
set -uo pipefail
ctl=$1
root=$2
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (CI runs as root)"; exit 1; }
command -v ping >/dev/null || { echo "FAIL: ping missing (tools/bootstrap installs iputils-ping)"; exit 1; }

T=nfo-it$$            # namespace prefix, unique per run
work=$(mktemp -d)
NS=()
cleanup() {
  for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

pass=0 fail=0
ok()   { pass=$((pass + 1)); }
bad()  { echo "FAIL: $*"; fail=$((fail + 1)); }
check() {
  local what=$1 out; shift
  if out=$("$@" 2>&1); then ok; else bad "$what"; printf '    %s\n' "$(tail -n 5 <<<"$out")"; fi
}
check_not() { local what=$1; shift; if "$@" >/dev/null 2>&1; then bad "$what"; else ok; fi; }
in_ns() { local ns=$1; shift; ip netns exec "$T-$ns" "$@"; }
reach() { in_ns "$1" ping -c 1 -W 1 "$2"; }   # reach VM ADDRESS

mkns() { ip netns add "$T-$1"; NS+=("$T-$1"); ip -n "$T-$1" link set lo up; }

# --- the world ---
mkns hv1; mkns hv2
ip -n "$T-hv1" link add uplink0 type veth peer name uplink0 netns "$T-hv2"
ip -n "$T-hv1" addr add 192.0.2.1/24 dev uplink0; ip -n "$T-hv1" link set uplink0 up
ip -n "$T-hv2" addr add 192.0.2.2/24 dev uplink0; ip -n "$T-hv2" link set uplink0 up

declare -A VM_IP VM_MAC
mkvm() {  # hv index, vm index
  local h=$1 v=$2 vm="vm$1$2"
  mkns "$vm"
  VM_IP[$vm]="10.$h.$v.1"
  VM_MAC[$vm]="52:54:00:0$h:0$v:01"
  ip -n "$T-hv$h" link add "rep$h$v" type veth peer name eth0 netns "$T-$vm"
  ip -n "$T-$vm" link set eth0 address "${VM_MAC[$vm]}" up
  ip -n "$T-$vm" addr add "${VM_IP[$vm]}/32" dev eth0
  ip -n "$T-$vm" route add 169.254.1.1 dev eth0 scope link
  ip -n "$T-$vm" route add default via 169.254.1.1 dev eth0
}
mkvm 1 1; mkvm 1 2; mkvm 2 1; mkvm 2 2

# --- configs, written by the test for its own world ---
host() {  # hv index, underlay mode, peer address
  local h=$1 mode=$2 peer=$3 extra
  if [ "$mode" = routed ]; then
    extra="\"default_next_hop\": \"$peer\""
  else
    extra="\"vtep\": \"192.0.2.$h\", \"default_vni\": 100, \"default_next_hop\": \"$peer\""
  fi
  cat > "$work/host$h-$mode.json" <<EOF
{ "name": "hv$h", "hw_profile": "sim",
  "uplink": { "pci": "0000:03:00.0", "netdev": "uplink0", "mac": "0c:42:a1:00:00:0$h", "vf_count": 8 },
  "gateway": { "ipv4": "169.254.1.1", "mac": "ee:ee:ee:ee:ee:ee" },
  "underlay": { "mode": "$mode", $extra },
  "backends": { "vdpa": "none" } }
EOF
}
port() {  # vm, vf [, addresses json] [, representor]
  local vm=$1 vf=$2 addrs=${3:-"[\"${VM_IP[$1]}/32\"]"} rep=${4:-rep${1#vm}}
  printf '{ "vm": "00000000-0000-4000-8000-0000000000%s", "nic": 0, "mac": "%s", "addresses": %s, "vf": %s, "representor": "%s" }' \
    "${vm#vm}" "${VM_MAC[$vm]}" "$addrs" "$vf" "$rep"
}
remote() {  # vm, mode, hv of the vm
  if [ "$2" = routed ]; then printf '{ "address": "%s/32" }' "${VM_IP[$1]}"
  else printf '{ "address": "%s/32", "vtep": "192.0.2.%s", "vni": 100 }' "${VM_IP[$1]}" "$3"; fi
}
ports() {  # file, ports..., --, remotes...
  local file=$1; shift; local p=() r=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do p+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  r=("$@")
  { echo '{ "ports": ['; (IFS=,; echo "${p[*]}"); echo '], "remotes": ['; (IFS=,; echo "${r[*]}"); echo '] }'; } > "$file"
}

apply() {  # hv, host file, ports file [, extra args]
  local h=$1 hostf=$2 portsf=$3; shift 3
  "$ctl" apply --sw-only --netns "$T-hv$h" --host "$hostf" --ports "$portsf" --profile-dir "$root/hw-profiles" "$@"
}

# Every VM's IPv6: "add" gives vmHV its /128 2001:db8:H:V::1 and a default
# route via the gateway fe80::1; "del" takes both away.
vms_ipv6() {
  local vm
  for vm in vm11 vm12 vm21 vm22; do
    if [ "$1" = add ]; then
      ip -n "$T-$vm" -6 addr add "2001:db8:${vm:2:1}:${vm:3:1}::1/128" dev eth0 nodad
      ip -n "$T-$vm" -6 route add default via fe80::1 dev eth0 onlink
    else
      ip -n "$T-$vm" -6 route del default via fe80::1 dev eth0
      ip -n "$T-$vm" -6 addr del "2001:db8:${vm:2:1}:${vm:3:1}::1/128" dev eth0
    fi
  done
}
# A port of VM with its IPv4 /32 and its IPv6 /128 (vm, vf).
v6port() { port "$1" "$2" "[\"${VM_IP[$1]}/32\", \"2001:db8:${1:2:1}:${1:3:1}::1/128\"]"; }

# Applying a plan again changes nothing and fails nothing (hv, host, ports).
unchanged_on_reapply() {
  local out; out=$(apply "$@" --json) || return 1
  python3 -c "
import json,sys; j=json.loads(sys.argv[1])
assert all(v['add']==0 and v['modify']==0 and v['remove']==0 for v in j['changes'].values()), j['changes']
assert not j['failures'], j['failures']" "$out"
}

run_underlay() {
  local mode=$1
  echo "--- $mode underlay ---"
  host 1 "$mode" 192.0.2.2; host 2 "$mode" 192.0.2.1
  ports "$work/p1-$mode.json" "$(port vm11 0)" "$(port vm12 1)" -- "$(remote vm21 "$mode" 2)" "$(remote vm22 "$mode" 2)"
  ports "$work/p2-$mode.json" "$(port vm21 0)" "$(port vm22 1)" -- "$(remote vm11 "$mode" 1)" "$(remote vm12 "$mode" 1)"
  check "$mode: apply hv1" apply 1 "$work/host1-$mode.json" "$work/p1-$mode.json"
  check "$mode: apply hv2" apply 2 "$work/host2-$mode.json" "$work/p2-$mode.json"

  check "$mode: vm11 -> vm12 (same hypervisor)" reach vm11 10.1.2.1
  check "$mode: vm11 -> vm21 (across)" reach vm11 10.2.1.1
  check "$mode: vm22 -> vm12 (across)" reach vm22 10.1.2.1
  check "$mode: vm21 -> vm22 (same hypervisor)" reach vm21 10.2.2.1
  # ARP for the gateway was answered by the hypervisor, with the gateway MAC.
  check "$mode: vm11 learnt the gateway MAC by ARP" bash -c \
    "ip -n $T-vm11 neigh show 169.254.1.1 | grep -q 'lladdr ee:ee:ee:ee:ee:ee'"
  # Proxy ARP: a VM that ARPs for another VM's address gets the gateway MAC.
  in_ns vm11 ip route add 10.1.2.1/32 dev eth0 scope link
  check "$mode: proxy ARP answers for a routed VM address" reach vm11 10.1.2.1
  check "$mode: ... with the gateway MAC" bash -c \
    "ip -n $T-vm11 neigh show 10.1.2.1 | grep -q 'lladdr ee:ee:ee:ee:ee:ee'"
  in_ns vm11 ip route del 10.1.2.1/32 dev eth0 scope link

  # Anti-spoofing: a source the port does not own is dropped (strict rp_filter).
  in_ns vm11 ip addr add 10.1.9.9/32 dev eth0
  check_not "$mode: spoofed source from vm11 must be dropped" in_ns vm11 ping -c 1 -W 1 -I 10.1.9.9 10.1.2.1
  check "$mode: vm11's own source still passes" in_ns vm11 ping -c 1 -W 1 -I 10.1.1.1 10.1.2.1
  in_ns vm11 ip addr del 10.1.9.9/32 dev eth0

  # Applying the same plan twice changes nothing; read-back shows the same objects.
  "$ctl" readback --netns "$T-hv1" --host "$work/host1-$mode.json" --ports "$work/p1-$mode.json" --profile-dir "$root/hw-profiles" > "$work/rb1.json"
  check "$mode: second apply changes nothing" unchanged_on_reapply 1 "$work/host1-$mode.json" "$work/p1-$mode.json"
  "$ctl" readback --netns "$T-hv1" --host "$work/host1-$mode.json" --ports "$work/p1-$mode.json" --profile-dir "$root/hw-profiles" > "$work/rb2.json"
  check "$mode: read-back identical after the second apply" cmp -s "$work/rb1.json" "$work/rb2.json"
  check "$mode: read-back holds the routes with our protocol" python3 -c "
import json,sys; j=json.load(open(sys.argv[1]))
got={r['dst'] for r in j['routes'] if r['protocol']==240}
want={'10.1.1.1/32','10.1.2.1/32','10.2.1.1/32','10.2.2.1/32'}
assert got==want, got" "$work/rb1.json"

  # Removing one VM's port removes exactly its objects; the others keep working.
  ports "$work/p1-less.json" "$(port vm11 0)" -- "$(remote vm21 "$mode" 2)" "$(remote vm22 "$mode" 2)"
  check "$mode: apply without vm12" apply 1 "$work/host1-$mode.json" "$work/p1-less.json"
  check_not "$mode: vm12's route is gone" bash -c "ip -n $T-hv1 route show 10.1.2.1 | grep -q ."
  check_not "$mode: vm12's neighbour is gone" bash -c "ip -n $T-hv1 neigh show 10.1.2.1 nud permanent | grep -q ."
  check "$mode: vm12's proxy_arp is back to the default" bash -c \
    "[ \"\$(ip netns exec $T-hv1 cat /proc/sys/net/ipv4/conf/rep12/proxy_arp)\" = 0 ]"
  check_not "$mode: vm11 -> vm12 stops" reach vm11 10.1.2.1
  check "$mode: vm11 -> vm21 keeps working" reach vm11 10.2.1.1
  check "$mode: vm11's route is still there" bash -c "ip -n $T-hv1 route show 10.1.1.1 | grep -q rep11"
  check "$mode: put vm12 back" apply 1 "$work/host1-$mode.json" "$work/p1-$mode.json"
  check "$mode: vm11 -> vm12 again" reach vm11 10.1.2.1

  # Bad input: an unknown interface fails with a clear error, the rest stays.
  ports "$work/p1-bad.json" "$(port vm11 0)" "$(port vm12 1)" \
    "$(printf '{ "vm": "00000000-0000-4000-8000-000000000099", "nic": 0, "mac": "52:54:00:09:09:09", "addresses": ["10.1.7.7/32"], "vf": 5, "representor": "nosuchdev" }')" \
    -- "$(remote vm21 "$mode" 2)" "$(remote vm22 "$mode" 2)"
  local err rc
  err=$(apply 1 "$work/host1-$mode.json" "$work/p1-bad.json" 2>&1 >/dev/null); rc=$?
  check "$mode: unknown interface -> exit 4 (partial)" test "$rc" -eq 4
  check "$mode: ... naming the interface" grep -q "unknown interface 'nosuchdev'" <<<"$err"
  check "$mode: ... others still reachable" reach vm11 10.2.1.1
  check "$mode: ... same-host still reachable" reach vm11 10.1.2.1

  # An address already routed by someone else is never taken over.
  ip -n "$T-hv1" route add 10.1.5.5/32 dev uplink0
  ports "$work/p1-taken.json" "$(port vm11 0 '["10.1.1.1/32", "10.1.5.5/32"]')" "$(port vm12 1)" \
    -- "$(remote vm21 "$mode" 2)" "$(remote vm22 "$mode" 2)"
  err=$(apply 1 "$work/host1-$mode.json" "$work/p1-taken.json" 2>&1 >/dev/null); rc=$?
  check "$mode: address routed elsewhere -> exit 4" test "$rc" -eq 4
  check "$mode: ... says so" grep -q "10.1.5.5/32 is already routed (dev uplink0" <<<"$err"
  check "$mode: ... the foreign route is untouched" bash -c "ip -n $T-hv1 route show 10.1.5.5 | grep -q uplink0"
  check "$mode: ... the others stay installed" reach vm11 10.2.1.1
  ip -n "$T-hv1" route del 10.1.5.5/32 dev uplink0

  # VXLAN specifics.
  if [ "$mode" = vxlan ]; then
    check "vxlan: nfo-vx100 exists, VNI 100, learning off" bash -c \
      "ip -d -n $T-hv1 link show nfo-vx100 | grep -q 'vxlan id 100 local 192.0.2.1.*dstport 4789.*nolearning'"
    check "vxlan: FDB entry for hv2's router MAC" bash -c \
      "ip netns exec $T-hv1 bridge fdb show dev nfo-vx100 | grep -q '02:00:c0:00:02:02 dst 192.0.2.2'"
  fi

  # Tear down: remove everything this plan put in.
  check "$mode: remove hv1" "$ctl" remove --sw-only --netns "$T-hv1" --host "$work/host1-$mode.json" --ports "$work/p1-$mode.json" --profile-dir "$root/hw-profiles"
  check "$mode: remove hv2" "$ctl" remove --sw-only --netns "$T-hv2" --host "$work/host2-$mode.json" --ports "$work/p2-$mode.json" --profile-dir "$root/hw-profiles"
  check_not "$mode: no route of ours left on hv1" bash -c "ip -n $T-hv1 route show proto 240 | grep -q ."
  check_not "$mode: no nfo-vx device left" bash -c "ip -n $T-hv1 link show | grep -q nfo-vx"
  check "$mode: removing again succeeds (idempotent)" "$ctl" remove --sw-only --netns "$T-hv1" --host "$work/host1-$mode.json" --ports "$work/p1-$mode.json" --profile-dir "$root/hw-profiles"
  check_not "$mode: after removal vm11 -> vm21 stops" reach vm11 10.2.1.1
}

# IPv6 (issue 23): gateway.ipv6 on both hypervisors, each VM with an IPv4 /32
# and an IPv6 /128 and a default route via fe80::1; each hypervisor has the
# other's VM /128s as remotes: routed, through the other's IPv6 address on the
# underlay; VXLAN, through its VTEP (the kernel path routes the /128 through
# the VTEP's link-local stand-in, fe80::<VTEP>, onlink, resolved by a
# permanent neighbour to the VTEP's router MAC).
remote6() {  # vm, mode, hv of the vm
  local a="2001:db8:${1:2:1}:${1:3:1}::1/128"
  if [ "$2" = routed ]; then printf '{ "address": "%s", "next_hop": "2001:db8:ff::%s" }' "$a" "$3"
  else printf '{ "address": "%s", "vtep": "192.0.2.%s", "vni": 100 }' "$a" "$3"; fi
}
run_ipv6() {
  local mode=$1
  echo "--- ipv6 ($mode underlay) ---"
  for h in 1 2; do
    ip -n "$T-hv$h" -6 addr add "2001:db8:ff::$h/64" dev uplink0 nodad
    sed 's|"gateway": { "ipv4": "169.254.1.1", |"gateway": { "ipv4": "169.254.1.1", "ipv6": "fe80::1", |' \
      "$work/host$h-$mode.json" > "$work/host$h-v6.json"
  done
  vms_ipv6 add
  ports "$work/p1-v6.json" "$(v6port vm11 0)" "$(v6port vm12 1)" -- "$(remote vm21 "$mode" 2)" "$(remote vm22 "$mode" 2)" \
    "$(remote6 vm21 "$mode" 2)" "$(remote6 vm22 "$mode" 2)"
  ports "$work/p2-v6.json" "$(v6port vm21 0)" "$(v6port vm22 1)" -- "$(remote vm11 "$mode" 1)" "$(remote vm12 "$mode" 1)" \
    "$(remote6 vm11 "$mode" 1)" "$(remote6 vm12 "$mode" 1)"
  check "ipv6/$mode: apply hv1" apply 1 "$work/host1-v6.json" "$work/p1-v6.json"
  check "ipv6/$mode: apply hv2" apply 2 "$work/host2-v6.json" "$work/p2-v6.json"
  reach6() { in_ns "$1" ping -6 -c 1 -W 2 "$2"; }
  check "ipv6/$mode: vm11 -> vm12 (same hypervisor)" reach6 vm11 2001:db8:1:2::1
  check "ipv6/$mode: vm11 -> vm21 (across)" reach6 vm11 2001:db8:2:1::1
  check "ipv6/$mode: vm22 -> vm12 (across)" reach6 vm22 2001:db8:1:2::1
  check "ipv6/$mode: IPv4 still flows" reach vm11 10.2.1.1
  check "ipv6/$mode: vm11 resolved fe80::1 to the gateway MAC (proxy NDP)" bash -c \
    "ip -n $T-vm11 -6 neigh show fe80::1 | grep -q 'lladdr ee:ee:ee:ee:ee:ee'"
  # The kernel path's IPv6 source check (IPv6 has no rp_filter): a source
  # the port does not own is dropped, its own passes.
  in_ns vm11 ip -6 addr add 2001:db8:1:9::9/128 dev eth0 nodad
  check_not "ipv6/$mode: spoofed source from vm11 must be dropped" in_ns vm11 ping -6 -c 1 -W 1 -I 2001:db8:1:9::9 2001:db8:2:1::1
  check "ipv6/$mode: vm11's own source still passes" in_ns vm11 ping -6 -c 1 -W 2 -I 2001:db8:1:1::1 2001:db8:2:1::1
  in_ns vm11 ip -6 addr del 2001:db8:1:9::9/128 dev eth0
  check "ipv6/$mode: hv1 holds vm12's /128 on rep12 with our protocol" bash -c \
    "ip -n $T-hv1 -6 route show 2001:db8:1:2::1 proto 240 | grep -q 'dev rep12'"
  if [ "$mode" = routed ]; then
    check "ipv6/routed: hv1 routes vm21's /128 through hv2's IPv6 address" bash -c \
      "ip -n $T-hv1 -6 route show 2001:db8:2:1::1 proto 240 | grep -q 'via 2001:db8:ff::2 dev uplink0'"
  else
    check "ipv6/vxlan: hv1 routes vm21's /128 through hv2's VTEP stand-in, onlink" bash -c \
      "ip -n $T-hv1 -6 route show 2001:db8:2:1::1 proto 240 | grep -q 'via fe80::c000:202 dev nfo-vx100.*onlink'"
    check "ipv6/vxlan: ... which resolves to hv2's router MAC" bash -c \
      "ip -n $T-hv1 -6 neigh show fe80::c000:202 dev nfo-vx100 | grep -q 'lladdr 02:00:c0:00:02:02 PERMANENT'"
  fi
  check "ipv6/$mode: second apply changes nothing" unchanged_on_reapply 1 "$work/host1-v6.json" "$work/p1-v6.json"
  # vm12 without its IPv6 address: its /128, neighbour, proxy entry and
  # proxy_ndp go; IPv4 to it keeps working.
  ports "$work/p1-v6less.json" "$(v6port vm11 0)" "$(port vm12 1)" -- "$(remote vm21 "$mode" 2)" "$(remote vm22 "$mode" 2)" \
    "$(remote6 vm21 "$mode" 2)" "$(remote6 vm22 "$mode" 2)"
  check "ipv6/$mode: apply with vm12 IPv4 only" apply 1 "$work/host1-v6.json" "$work/p1-v6less.json"
  check_not "ipv6/$mode: vm12's /128 is gone" bash -c "ip -n $T-hv1 -6 route show 2001:db8:1:2::1 | grep -q ."
  check_not "ipv6/$mode: vm12's proxy entry is gone" bash -c "ip -n $T-hv1 -6 neigh show proxy dev rep12 | grep -q ."
  check "ipv6/$mode: rep12's proxy_ndp is back to the default" bash -c \
    "[ \"\$(ip netns exec $T-hv1 cat /proc/sys/net/ipv6/conf/rep12/proxy_ndp)\" = 0 ]"
  check_not "ipv6/$mode: vm11 -> vm12 stops" reach6 vm11 2001:db8:1:2::1
  check "ipv6/$mode: vm11 -> vm12 over IPv4 still works" reach vm11 10.1.2.1
  check "ipv6/$mode: vm11 -> vm21 keeps working" reach6 vm11 2001:db8:2:1::1
  # An IPv6 address on a host without gateway.ipv6 is refused, naming the key.
  local err rc
  err=$(apply 1 "$work/host1-$mode.json" "$work/p1-v6.json" 2>&1 >/dev/null); rc=$?
  check "ipv6/$mode: refused without gateway.ipv6 (exit 2)" test "$rc" -eq 2
  check "ipv6/$mode: ... naming gateway.ipv6" grep -q "gateway.ipv6" <<<"$err"
  check "ipv6/$mode: remove hv1" "$ctl" remove --sw-only --netns "$T-hv1" --host "$work/host1-v6.json" --ports "$work/p1-v6.json" --profile-dir "$root/hw-profiles"
  check "ipv6/$mode: remove hv2" "$ctl" remove --sw-only --netns "$T-hv2" --host "$work/host2-v6.json" --ports "$work/p2-v6.json" --profile-dir "$root/hw-profiles"
  check_not "ipv6/$mode: no /128 of ours left on hv1" bash -c "ip -n $T-hv1 -6 route show proto 240 | grep -q ."
  check_not "ipv6/$mode: no proxy entry left on hv1" bash -c "ip -n $T-hv1 -6 neigh show proxy | grep -q ."
  check_not "ipv6/$mode: no source-check rule left on hv1" bash -c "ip -n $T-hv1 -6 rule show | grep -q 'proto 240'"
  check_not "ipv6/$mode: after removal vm11 -> vm21 stops" reach6 vm11 2001:db8:2:1::1
  for h in 1 2; do ip -n "$T-hv$h" -6 addr del "2001:db8:ff::$h/64" dev uplink0; done
  vms_ipv6 del
}

# VXLAN over an IPv6 underlay (issue 23): the VTEPs are the hypervisors'
# IPv6 addresses on the underlay; each VM has an IPv4 /32 and an IPv6 /128,
# and both cross in VXLAN over IPv6. The kernel path routes a remote /32
# through the VTEP's link-local stand-in (an IPv6 gateway of an IPv4 route),
# resolved by a permanent neighbour to the VTEP's router MAC (02:00 + the
# VTEP's last 32 bits), whose FDB entry names the IPv6 VTEP.
run_vxlan6() {
  echo "--- vxlan over an ipv6 underlay ---"
  for h in 1 2; do
    ip -n "$T-hv$h" -6 addr add "2001:db8:ff::$h/64" dev uplink0 nodad
    cat > "$work/host$h-vx6.json" <<EOF
{ "name": "hv$h", "hw_profile": "sim",
  "uplink": { "pci": "0000:03:00.0", "netdev": "uplink0", "mac": "0c:42:a1:00:00:0$h", "vf_count": 8 },
  "gateway": { "ipv4": "169.254.1.1", "ipv6": "fe80::1", "mac": "ee:ee:ee:ee:ee:ee" },
  "underlay": { "mode": "vxlan", "vtep": "2001:db8:ff::$h", "default_vni": 100 },
  "backends": { "vdpa": "none" } }
EOF
  done
  vms_ipv6 add
  rem6() {  # vm, hv of the vm: its /32 and its /128 behind that hv's IPv6 VTEP
    printf '{ "address": "%s/32", "vtep": "2001:db8:ff::%s", "vni": 100 }, ' "${VM_IP[$1]}" "$2"
    printf '{ "address": "2001:db8:%s:%s::1/128", "vtep": "2001:db8:ff::%s", "vni": 100 }' "${1:2:1}" "${1:3:1}" "$2"
  }
  ports "$work/p1-vx6.json" "$(v6port vm11 0)" "$(v6port vm12 1)" -- "$(rem6 vm21 2)" "$(rem6 vm22 2)"
  ports "$work/p2-vx6.json" "$(v6port vm21 0)" "$(v6port vm22 1)" -- "$(rem6 vm11 1)" "$(rem6 vm12 1)"
  check "vxlan6: apply hv1" apply 1 "$work/host1-vx6.json" "$work/p1-vx6.json"
  check "vxlan6: apply hv2" apply 2 "$work/host2-vx6.json" "$work/p2-vx6.json"
  check "vxlan6: vm11 -> vm21 over IPv4 (across, VXLAN over IPv6)" reach vm11 10.2.1.1
  check "vxlan6: vm22 -> vm12 over IPv4 (across)" reach vm22 10.1.2.1
  check "vxlan6: vm11 -> vm21 over IPv6 (across)" in_ns vm11 ping -6 -c 1 -W 2 2001:db8:2:1::1
  check "vxlan6: vm11 -> vm12 (same hypervisor)" reach vm11 10.1.2.1
  check "vxlan6: nfo-vx100 has the IPv6 local VTEP and takes zero UDP checksums" bash -c \
    "ip -d -n $T-hv1 link show nfo-vx100 | grep -q 'vxlan id 100 local 2001:db8:ff::1.*dstport 4789.*nolearning.*udp6zerocsumrx'"
  check "vxlan6: ... its MAC is the router MAC of ::1" bash -c \
    "ip -n $T-hv1 link show nfo-vx100 | grep -q 'link/ether 02:00:00:00:00:01'"
  check "vxlan6: FDB entry for hv2's router MAC to its IPv6 VTEP" bash -c \
    "ip netns exec $T-hv1 bridge fdb show dev nfo-vx100 | grep -q '02:00:00:00:00:02 dst 2001:db8:ff::2'"
  check "vxlan6: vm21's /32 goes through hv2's VTEP stand-in (an IPv6 gateway)" bash -c \
    "ip -n $T-hv1 route show 10.2.1.1 proto 240 | grep -q 'via inet6 fe80::2 dev nfo-vx100'"
  check "vxlan6: ... which resolves to hv2's router MAC" bash -c \
    "ip -n $T-hv1 -6 neigh show fe80::2 dev nfo-vx100 | grep -q 'lladdr 02:00:00:00:00:02 PERMANENT'"
  check "vxlan6: the VXLAN packets crossed the underlay in UDP over IPv6" bash -c \
    "ip netns exec $T-hv2 awk '\$1==\"Udp6InDatagrams\" && \$2>0 {f=1} END {exit !f}' /proc/net/snmp6"
  "$ctl" readback --netns "$T-hv1" --host "$work/host1-vx6.json" --ports "$work/p1-vx6.json" --profile-dir "$root/hw-profiles" > "$work/rb6a.json"
  check "vxlan6: second apply changes nothing (read-back of the IPv6 VTEP, FDB and RTA_VIA routes)" unchanged_on_reapply 1 "$work/host1-vx6.json" "$work/p1-vx6.json"
  "$ctl" readback --netns "$T-hv1" --host "$work/host1-vx6.json" --ports "$work/p1-vx6.json" --profile-dir "$root/hw-profiles" > "$work/rb6b.json"
  check "vxlan6: read-back identical after the second apply" cmp -s "$work/rb6a.json" "$work/rb6b.json"
  check "vxlan6: read-back holds the IPv6 VTEP and the IPv6 gateways" python3 -c "
import json,sys; j=json.load(open(sys.argv[1]))
assert any(d['local']=='2001:db8:ff::1' for d in j['vxlan_devices']), j['vxlan_devices']
assert any(f['dst']=='2001:db8:ff::2' for f in j['fdb']), j['fdb']
assert any(r['dst']=='10.2.1.1/32' and r.get('via')=='fe80::2' for r in j['routes']), j['routes']" "$work/rb6a.json"
  # An IPv4 remote VTEP on an IPv6 underlay is refused, naming the field.
  ports "$work/p1-vx6bad.json" "$(v6port vm11 0)" -- "$(remote vm21 vxlan 2)"
  local err rc
  err=$(apply 1 "$work/host1-vx6.json" "$work/p1-vx6bad.json" 2>&1 >/dev/null); rc=$?
  check "vxlan6: an IPv4 remote VTEP is refused (exit 2)" test "$rc" -eq 2
  check "vxlan6: ... naming remotes[0].vtep" grep -q "remotes\[0\].vtep" <<<"$err"
  check "vxlan6: ... and nothing installed is lost" reach vm11 10.2.1.1
  check "vxlan6: remove hv1" "$ctl" remove --sw-only --netns "$T-hv1" --host "$work/host1-vx6.json" --ports "$work/p1-vx6.json" --profile-dir "$root/hw-profiles"
  check "vxlan6: remove hv2" "$ctl" remove --sw-only --netns "$T-hv2" --host "$work/host2-vx6.json" --ports "$work/p2-vx6.json" --profile-dir "$root/hw-profiles"
  check_not "vxlan6: no nfo-vx device left on hv1" bash -c "ip -n $T-hv1 link show | grep -q nfo-vx"
  check_not "vxlan6: no route of ours left on hv1" bash -c "ip -n $T-hv1 route show proto 240 | grep -q ."
  check_not "vxlan6: after removal vm11 -> vm21 stops" reach vm11 10.2.1.1
  for h in 1 2; do ip -n "$T-hv$h" -6 addr del "2001:db8:ff::$h/64" dev uplink0; done
  vms_ipv6 del
}

run_underlay routed
run_underlay vxlan
run_ipv6 routed
run_ipv6 vxlan
run_vxlan6

# Errors before any kernel work.
err=$("$ctl" apply --sw-only --netns "$T-nonexistent" --host "$work/host1-routed.json" --ports "$work/p1-routed.json" --profile-dir "$root/hw-profiles" 2>&1); rc=$?
check "missing namespace -> exit 2" test "$rc" -eq 2
check "... named" grep -q "no such network namespace" <<<"$err"
err=$("$ctl" apply --netns "$T-hv1" --host "$work/host1-routed.json" --ports "$work/p1-routed.json" 2>&1); rc=$?
check "apply without --sw-only is refused" test "$rc" -eq 2

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
