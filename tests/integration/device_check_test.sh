#!/usr/bin/env bash
# nicoffloadctl device-check end to end: host config -> plan -> flow backend
# (the simulated NIC, or DPDK with the EAL in the process on net_null/net_ring
# vdevs) -> apply-time placement -> report. The vdevs have no rte_flow: every
# hw-planned rule must come back sw, refused with the PMD's own message.
set -uo pipefail
ctl=$1
root=$2
work=$(mktemp -d)
prefix=nfo-devcheck-$$
trap 'rm -rf "$work" /var/run/dpdk/$prefix*' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

ports=$root/examples/ports.json
profiles=$root/hw-profiles

# 1. The simulated NIC takes every rule the sim profile allows.
out=$("$ctl" device-check --host "$root/examples/host.json" --ports "$ports" --profile-dir "$profiles"); rc=$?
[ "$rc" -eq 0 ] && ok || bad "sim: exit $rc"
grep -q '^# in effect: hw 27, sw 0$' <<<"$out" && ok || bad "sim: not all 27 rules in hw: $(tail -2 <<<"$out")"
grep -q '^# refused by the device: none$' <<<"$out" && ok || bad "sim: refusals reported"

# 2. DPDK on vdevs: host config with backends.flow = dpdk and EAL arguments.
make_host() {  # out-file, python expression run on the "dpdk" dict d
  python3 - "$root/examples/host.json" "$1" "$prefix" "$2" <<'PY'
import json, sys
src, dst, prefix, extra = sys.argv[1:5]
h = json.load(open(src))
h["backends"]["flow"] = "dpdk"
h["uplink"]["vf_count"] = 4
d = {"eal_args": ["--no-huge", "--no-pci", "-m", "512", "--no-shconf", "--file-prefix", prefix,
                  "--no-telemetry", "--log-level=*:error", "--vdev", "net_null0", "--vdev", "net_null1",
                  "--vdev", "net_null2", "--vdev", "net_null3", "--vdev", "net_ring0"],
     "uplink_port_id": 0, "first_representor_port_id": 1}
exec(extra)
h["dpdk"] = d
json.dump(h, open(dst, "w"))
PY
}
make_host "$work/dpdk.json" "pass"
out=$("$ctl" device-check --host "$work/dpdk.json" --ports "$ports" --profile-dir "$profiles" 2>"$work/err"); rc=$?
[ "$rc" -eq 0 ] && ok || bad "dpdk: exit $rc: $(cat "$work/err")"
grep -q '^# nicoffload device-check: host hv1, flow backend dpdk (net_null0)' <<<"$out" && ok || bad "dpdk: header"
grep -q '^# in effect: hw 0, sw 27, follows 10, device-refused 17$' <<<"$out" && ok || bad "dpdk: counts: $(grep '^# in effect' <<<"$out")"
grep -q '^# refused by the device: unsupported 17$' <<<"$out" && ok || bad "dpdk: refusals"
refused=$(grep -c 'in effect sw: the device refused the rule at install time (unsupported): .*Function not implemented (rte_flow_validate on port 0: ENOSYS)' <<<"$out")
[ "$refused" -eq 17 ] && ok || bad "dpdk: $refused rules carry the PMD's message, wanted 17"
grep -q 'no transfer proxy' <<<"$out" && ok || bad "dpdk: no note on the transfer proxy"
"$ctl" device-check --host "$work/dpdk.json" --ports "$ports" --profile-dir "$profiles" --json 2>/dev/null |
  python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["backend"] == "dpdk" and d["counts"]["hw"] == 0 and d["counts"]["refused"] == {"unsupported": 17}, d["counts"]
r = [x for x in d["rules"] if "device_error" in x]
assert len(r) == 17 and all(x["device_error"]["message"].startswith("Function not implemented") for x in r)
' && ok || bad "dpdk: --json"

# 3. Errors: an EAL argument the EAL refuses; a PF the EAL did not probe.
make_host "$work/bad-arg.json" 'd["eal_args"].append("--no-such-eal-option")'
"$ctl" device-check --host "$work/bad-arg.json" --ports "$ports" --profile-dir "$profiles" >/dev/null 2>"$work/err"; rc=$?
[ "$rc" -eq 4 ] && grep -q 'dpdk.eal_args: rte_eal_init failed: Invalid argument' "$work/err" && ok ||
  bad "bad EAL argument: exit $rc: $(tail -1 "$work/err")"
make_host "$work/no-pf.json" 'd["pf_devargs"] = "0000:03:00.0,representor=vf[0-3],dv_flow_en=1"'
"$ctl" device-check --host "$work/no-pf.json" --ports "$ports" --profile-dir "$profiles" >/dev/null 2>"$work/err"; rc=$?
[ "$rc" -eq 4 ] && grep -q 'dpdk.pf_devargs: no ethdev port for 0000:03:00.0' "$work/err" && ok ||
  bad "absent PF: exit $rc: $(tail -1 "$work/err")"

echo "device-check: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
