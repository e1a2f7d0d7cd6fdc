#!/usr/bin/env bash
# nicoffloadctl as a user meets it: --help on every command, plan in text and
# JSON, explain of a planned rule, and the exit codes and messages on bad input.
set -uo pipefail
ctl=$1
root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0

check() {  # description, then a command that must succeed
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}
# expect_error DESCRIPTION EXIT_CODE STDERR_SUBSTRING -- COMMAND...
expect_error() {
  local what=$1 code=$2 needle=$3; shift 4
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" -ne "$code" ]; then echo "FAIL: $what: exit $rc, wanted $code ($err)"; fail=$((fail + 1)); return; fi
  if ! grep -qF -- "$needle" <<<"$err"; then echo "FAIL: $what: stderr lacks '$needle': $err"; fail=$((fail + 1)); return; fi
  pass=$((pass + 1))
}

host=$root/examples/host.json
ports=$root/examples/ports.json
profiles=$root/hw-profiles

for cmd in "" plan explain profile-check apply remove readback; do
  check "--help $cmd" bash -c "'$ctl' $cmd --help | grep -q 'Usage'"
done
check "plan prints counts" bash -c "'$ctl' plan --host '$host' --ports '$ports' --profile-dir '$profiles' | grep -q '^# rules: 27 (hw 27, sw 0)'"
check "plan --json is JSON with counts" bash -c "'$ctl' plan --host '$host' --ports '$ports' --profile-dir '$profiles' --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"counts\"][\"rules\"]==27, d[\"counts\"]'"

id=$("$ctl" plan --host "$host" --ports "$ports" --profile-dir "$profiles" | awk '/^# ve-/{print $2; exit}')
check "a vxlan-egress rule id is printed" test -n "$id"
check "explain names class and placement" bash -c "'$ctl' explain '$id' --host '$host' --ports '$ports' --profile-dir '$profiles' | grep -q 'vxlan-egress rule in group 1, priority 0, placed hw'"

# ConnectX-5 with VXLAN on 8472 and no vDPA: the VXLAN rules go to software and explain says why.
python3 - "$host" "$work/host-cx5.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
h["underlay"]["vxlan_udp_port"] = 8472
h["backends"]["vdpa"] = "none"
h["hw_profile"] = "connectx-5"
json.dump(h, open(sys.argv[2], "w"))
PY
python3 - "$ports" "$work/ports-novdpa.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
for port in p["ports"]: port.pop("vdpa", None)
json.dump(p, open(sys.argv[2], "w"))
PY
id=$("$ctl" plan --host "$work/host-cx5.json" --ports "$work/ports-novdpa.json" --profile-dir "$profiles" | awk '/^# ve-/{print $2; exit}')
check "cx5 explain says 4789" bash -c "'$ctl' explain '$id' --host '$work/host-cx5.json' --ports '$work/ports-novdpa.json' --profile-dir '$profiles' | grep -q 'placed sw: profile connectx-5: vxlan_encap only on UDP port 4789, rule needs 8472'"

# Bad input: exit code 2, the file and field named.
sed 's/"52:54:00:00:01:01"/"52:54:00:zz:01:01"/' "$ports" > "$work/badmac.json"
expect_error "bad MAC" 2 "ports[0].mac: '52:54:00:zz:01:01' is not a MAC address" -- "$ctl" plan --host "$host" --ports "$work/badmac.json" --profile-dir "$profiles"
sed 's|"10.10.2.1/32"|"10.10.1.1/32"|' "$ports" > "$work/dupip.json"
expect_error "duplicate IP" 2 "ports[2].addresses[0]: 10.10.1.1 is already the address of port" -- "$ctl" plan --host "$host" --ports "$work/dupip.json" --profile-dir "$profiles"
echo '{"ports": [' > "$work/broken.json"
expect_error "malformed JSON" 2 "not valid JSON" -- "$ctl" plan --host "$host" --ports "$work/broken.json" --profile-dir "$profiles"
sed 's/"hw_profile": "sim"/"hw_profile": "connectx-5"/' "$host" > "$work/host-cx5-vdpa.json"
expect_error "vDPA on ConnectX-5" 2 "ports[0].vdpa: vDPA 'sim' requested, but profile connectx-5" -- "$ctl" plan --host "$work/host-cx5-vdpa.json" --ports "$ports" --profile-dir "$profiles"
expect_error "unknown profile" 105 "File does not exist: $work/no-such-nic.json" -- "$ctl" plan --host "$host" --ports "$ports" --profile "$work/no-such-nic.json"
expect_error "bad rule id" 2 "RULE-ID: 'xyz' is not a rule id" -- "$ctl" explain xyz --host "$host" --ports "$ports" --profile-dir "$profiles"
expect_error "unknown rule id" 3 "no rule ld-0000000000000000" -- "$ctl" explain ld-0000000000000000 --host "$host" --ports "$ports" --profile-dir "$profiles"
expect_error "missing --host" 106 "--host is required" -- "$ctl" plan --ports "$ports"
echo '{"schema_version": 1, "name": "x"}' > "$work/x.json"
expect_error "broken profile" 2 "x.json: model: required field is missing" -- "$ctl" profile-check "$work/x.json"

# The shipped default config parses and plans.
check "packaging/host.json plans" bash -c "'$ctl' plan --host '$root/packaging/host.json' --ports '$root/examples/ports-routed.json' --profile-dir '$profiles' | grep -q '^# rules: '"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
