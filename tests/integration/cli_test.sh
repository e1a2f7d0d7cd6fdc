#!/usr/bin/env bash
# nicoffloadctl as a user meets it: --help on every command, plan in text and
# JSON, explain of a planned rule, and the exit codes and messages on bad input.
set -uo pipefail
ctl=$1
root=$2
simnic=${3:-}  # nicoffload-simnic, optional: its checks are skipped without it
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

# --- issue 11: no input crashes the CLI; each error names the field ---
routed_host=$root/examples/host-routed.json
routed_ports=$root/examples/ports-routed.json
# edit IN OUT PYTHON: OUT = IN as JSON, changed by the Python statement on `d`.
edit() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); $3; json.dump(d, open(sys.argv[2],'w'))" "$1" "$2"; }

# Nesting: 100 000 nested arrays/objects are refused with a clear error, not SIGSEGV.
python3 -c "print('[' * 100000 + ']' * 100000)" > "$work/deep-arrays.json"
python3 -c "print('{\"a\":' * 100000 + '1' + '}' * 100000)" > "$work/deep-objects.json"
expect_error "100 000 nested arrays as ports" 2 "deep-arrays.json: JSON nested deeper than the limit of 64 levels" -- \
  "$ctl" plan --host "$host" --ports "$work/deep-arrays.json" --profile-dir "$profiles"
expect_error "100 000 nested objects as host" 2 "deep-objects.json: JSON nested deeper than the limit of 64 levels" -- \
  "$ctl" plan --host "$work/deep-objects.json" --ports "$ports" --profile-dir "$profiles"
expect_error "100 000 nested arrays as profile" 2 "nested deeper than the limit" -- \
  "$ctl" profile-check "$work/deep-arrays.json"

# Duplicate keys are refused, naming the key (they were accepted, last wins).
sed 's/"name": "hv1",/"name": "hv1", "name": "hv2",/' "$host" > "$work/dupkey-host.json"
expect_error "duplicate key in host.json" 2 'dupkey-host.json: name: key "name" appears twice' -- \
  "$ctl" plan --host "$work/dupkey-host.json" --ports "$ports" --profile-dir "$profiles"
sed '0,/"mac": "52:54:00:00:01:01",/s//"mac": "52:54:00:00:01:01", "mac": "52:54:00:00:09:09",/' "$ports" > "$work/dupkey-ports.json"
expect_error "duplicate key in the ports file" 2 'dupkey-ports.json: ports[0].mac: key "mac" appears twice' -- \
  "$ctl" plan --host "$host" --ports "$work/dupkey-ports.json" --profile-dir "$profiles"

# Huge values are cut in the message, a NUL does not cut it short.
python3 -c "
import json, sys
d = json.load(open(sys.argv[1])); d['ports'][0]['mac'] = 'x' * 50_000_000
json.dump(d, open(sys.argv[2], 'w'))" "$ports" "$work/huge-mac.json"
err=$("$ctl" plan --host "$host" --ports "$work/huge-mac.json" --profile-dir "$profiles" 2>&1 >/dev/null)
check "a 50 MB value gives a short message" test "${#err}" -lt 5000
check "the cut message still names the field" grep -qF "ports[0].mac: '" <<<"$err"
edit "$ports" "$work/nul-mac.json" "d['ports'][0]['mac'] = '52:54\u0000:00:00:01:01'"
expect_error "a NUL in a value is escaped, the message goes on" 2 '52:54\x00:00:00:01:01'"' is not a MAC address" -- \
  "$ctl" plan --host "$host" --ports "$work/nul-mac.json" --profile-dir "$profiles"

# Integers: out of range, not "a number with a fraction".
sed '0,/"nic": 0,/s//"nic": 99999999999999999999,/' "$ports" > "$work/bignic.json"
expect_error "nic beyond 64 bits" 2 "ports[0].nic: is out of range: must be an integer between 0 and 65535" -- \
  "$ctl" plan --host "$host" --ports "$work/bignic.json" --profile-dir "$profiles"

# vf_count 0 blames the host config, an unknown hw_profile names the field.
edit "$host" "$work/host-novf.json" "d['uplink']['vf_count'] = 0"
expect_error "vf_count 0 blames the host config" 2 "host-novf.json: uplink.vf_count:" -- \
  "$ctl" plan --host "$work/host-novf.json" --ports "$ports" --profile-dir "$profiles"
edit "$host" "$work/host-noprofile.json" "d['hw_profile'] = 'connectx-99'"
expect_error "unknown hw_profile names the field" 2 "host-noprofile.json: hw_profile: no hardware profile 'connectx-99'" -- \
  "$ctl" plan --host "$work/host-noprofile.json" --ports "$ports" --profile-dir "$profiles"

# Underlay addresses are never VM or remote /32s; the error names both uses.
edit "$routed_ports" "$work/port-is-nexthop.json" "d['ports'][0]['addresses'].append('192.0.2.254/32')"
expect_error "port address is the next hop" 2 "ports[0].addresses[1]: 192.0.2.254 is the underlay next hop underlay.next_hops[0]" -- \
  "$ctl" plan --host "$routed_host" --ports "$work/port-is-nexthop.json" --profile-dir "$profiles"
edit "$ports" "$work/port-is-remote-vtep.json" "d['ports'][1]['addresses'].append('192.0.2.3/32')"
expect_error "port address is a remote VTEP" 2 "ports[1].addresses[2]: 192.0.2.3 is the VTEP of remote 10.20.2.1 (remotes[2].vtep)" -- \
  "$ctl" plan --host "$host" --ports "$work/port-is-remote-vtep.json" --profile-dir "$profiles"
edit "$ports" "$work/remote-is-own-vtep.json" "d['remotes'][0]['address'] = '192.0.2.1/32'"
expect_error "remote is the own VTEP" 2 "remotes[0].address: the remote address 192.0.2.1 is this host's VTEP address (underlay.vtep)" -- \
  "$ctl" plan --host "$host" --ports "$work/remote-is-own-vtep.json" --profile-dir "$profiles"
edit "$ports" "$work/remote-is-vtep.json" "d['remotes'][0]['address'] = '192.0.2.3/32'"
expect_error "remote is another remote's VTEP" 2 "remotes[0].address: the remote address 192.0.2.3 is the VTEP of remote 10.20.2.1 (remotes[2].vtep)" -- \
  "$ctl" plan --host "$host" --ports "$work/remote-is-vtep.json" --profile-dir "$profiles"
edit "$routed_ports" "$work/remote-is-nexthop.json" "d['remotes'][0]['address'] = '192.0.2.254/32'"
expect_error "remote is the next hop" 2 "remotes[0].address: the remote address 192.0.2.254 is the underlay next hop underlay.next_hops[0]" -- \
  "$ctl" plan --host "$routed_host" --ports "$work/remote-is-nexthop.json" --profile-dir "$profiles"
edit "$host" "$work/vtep-is-gateway.json" "d['underlay']['vtep'] = '169.254.1.1'"
expect_error "host VTEP is the gateway" 2 "vtep-is-gateway.json: underlay.vtep: 169.254.1.1 is the gateway address (gateway.ipv4)" -- \
  "$ctl" plan --host "$work/vtep-is-gateway.json" --ports "$ports" --profile-dir "$profiles"

# plan --testpmd: hardware rules only as commands; sw rules commented with
# their reason (an unresolved next hop rendered set_mac_dst 00:00:00:00:00:00).
edit "$routed_ports" "$work/unresolved.json" "d['remotes'][1]['next_hop'] = '192.0.2.77'"
"$ctl" plan --host "$routed_host" --ports "$work/unresolved.json" --profile-dir "$profiles" --testpmd > "$work/unresolved.txt"
check "testpmd: no zero MAC outside a comment" bash -c "! grep -v '^#' '$work/unresolved.txt' | grep -q '00:00:00:00:00:00'"
check "testpmd: the unresolved next hop's rule is commented with its reason" \
  bash -c "grep -q '^# sw, not for the hardware: .*192.0.2.77' '$work/unresolved.txt' && grep -q '^# flow create .*set_mac_dst mac_addr 00:00:00:00:00:00' '$work/unresolved.txt'"
check "testpmd: every other line is a command" bash -c "grep -v '^#' '$work/unresolved.txt' | grep -qv '^flow create\|^set vxlan' && exit 1 || true"
check "testpmd: hardware rules are still commands" grep -q '^flow create' "$work/unresolved.txt"
check "text plan comments sw rules too" bash -c "! '$ctl' plan --host '$routed_host' --ports '$work/unresolved.json' --profile-dir '$profiles' | grep -v '^#' | grep -q '00:00:00:00:00:00'"

# plan --json streams the same document (100 remotes here; the benchmark is in the report).
edit "$routed_ports" "$work/ports-100.json" "d['remotes'] = [{'address': '10.30.0.%d/32' % i} for i in range(1, 101)]"
check "plan --json is one JSON document with every rule" bash -c "'$ctl' plan --host '$routed_host' --ports '$work/ports-100.json' --profile-dir '$profiles' --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"counts\"][\"rules\"] == len(d[\"rules\"]), d[\"counts\"]
assert len([r for r in d[\"rules\"] if r[\"class\"] == \"routed-egress\"]) == 100
assert set(d) == {\"counts\", \"profile\", \"rules\", \"software_path\", \"vdpa_devices\", \"vfs\"}, set(d)
assert len(d[\"software_path\"][\"routes\"]) >= 100'"

# Help: port add says what it needs; the long footer only at the top level.
check "port add --help names the required options" bash -c "'$ctl' port add --help | grep -qF 'give --file, or --vm, --nic, --mac and --address'"
expect_error "port add without a port" 2 "port add: give --file, or --vm, --nic, --mac and --address (missing: --vm, --nic, --mac, --address)" -- \
  "$ctl" port add --socket "$work/none.sock"
expect_error "port add with --file and --vm" 108 "excludes" -- "$ctl" port add --file "$ports" --vm x --socket "$work/none.sock"
check "top-level --help has the footer" bash -c "'$ctl' --help | grep -q '^Exit status'"
for cmd in plan "port add" "remote add" status explain; do
  check "$cmd --help has no footer" bash -c "! '$ctl' $cmd --help | grep -q 'Exit status'"
done

# The command edge: a reply of an unexpected shape is an error line and exit 6, not an abort.
python3 - "$work/fake.sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
for reply in [b'{"ok":true,"result":{"port":7,"removed":"yes"}}\n', b'{"ok":true,"result":{"status":[]}}\n']:
    c, _ = s.accept(); c.recv(65536); c.sendall(reply); c.close()
PY
fake=$!
for _ in $(seq 50); do [ -S "$work/fake.sock" ] && break; sleep 0.1; done
expect_error "port del: unexpected reply shape" 6 "nicoffloadctl: error: internal: " -- \
  "$ctl" port del --vm 6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001 --nic 0 --socket "$work/fake.sock"
expect_error "port show: unexpected reply shape" 6 "nicoffloadctl: error: internal: " -- \
  "$ctl" port show --vm 6f1c2a9e-3b41-4f0a-9c5e-2d7b8a1e0001 --nic 0 --socket "$work/fake.sock"
kill "$fake" 2>/dev/null; wait "$fake" 2>/dev/null

# Issue 22: files a user names are read bounded, as regular files; a config
# that its profile cannot carry is refused by host-check; usage errors exit
# with the documented codes; remote add --file.
expect_error "host-check --config /dev/zero" 2 "/dev/zero is a character device, not a regular file" -- \
  timeout 20 "$ctl" host-check --config /dev/zero
expect_error "plan --host /dev/zero" 2 "/dev/zero is a character device, not a regular file" -- \
  timeout 20 "$ctl" plan --host /dev/zero --ports "$ports" --profile-dir "$profiles"
edit "$host" "$work/host-devzero-profile.json" "d['hw_profile'] = '/dev/zero'"
expect_error "hw_profile /dev/zero names the field" 2 "host-devzero-profile.json: hw_profile: /dev/zero is a character device" -- \
  timeout 20 "$ctl" plan --host "$work/host-devzero-profile.json" --ports "$ports" --profile-dir "$profiles"
edit "$host" "$work/host-dirprofile.json" "d['hw_profile'] = '$work/'"
expect_error "hw_profile a directory says so" 2 "hw_profile: $work/ is a directory" -- \
  timeout 20 "$ctl" host-check --config "$work/host-dirprofile.json" --profile-dir "$profiles"
edit "$host" "$work/host-manyvfs.json" "d['uplink']['vf_count'] = 200; d['hw_profile'] = 'connectx-6dx'"
expect_error "host-check: vf_count above max_vfs" 2 "host-manyvfs.json: uplink.vf_count: 200 VFs requested, but profile connectx-6dx" -- \
  timeout 20 "$ctl" host-check --config "$work/host-manyvfs.json" --profile-dir "$profiles"
edit "$host" "$work/host-cx5-simvdpa.json" "d['hw_profile'] = 'connectx-5'; d['backends']['vdpa'] = 'sim'"
expect_error "host-check: vDPA backend on ConnectX-5" 2 "host-cx5-simvdpa.json: backends.vdpa: vDPA backend 'sim', but profile connectx-5" -- \
  timeout 20 "$ctl" host-check --config "$work/host-cx5-simvdpa.json" --profile-dir "$profiles"
edit "$host" "$work/host-cx5-pool.json" "d['hw_profile'] = 'connectx-5'; d['backends']['vdpa'] = 'kernel'; d['vdpa'] = {'pool': {'size': 2}}"
expect_error "host-check: vDPA pool on ConnectX-5" 2 "host-cx5-pool.json: vdpa.pool.size: a pool of 2 vDPA devices" -- \
  timeout 20 "$ctl" host-check --config "$work/host-cx5-pool.json" --profile-dir "$profiles"
expect_error "a missing option value is a usage error" 105 "nicoffloadctl: error: command line: --timeout" -- \
  "$ctl" status --timeout
expect_error "a missing value of a subcommand option" 105 "command line:" -- "$ctl" remote list --origin
expect_error "remote add without --address or --file" 2 "remote add: give --file, or --address" -- \
  "$ctl" remote add --socket "$work/none.sock"
expect_error "remote add --file /dev/zero" 2 "/dev/zero is a character device, not a regular file" -- \
  timeout 20 "$ctl" remote add --file /dev/zero --socket "$work/none.sock"
expect_error "remote add --file and --address" 108 "excludes" -- \
  "$ctl" remote add --file "$ports" --address 10.1.1.1 --socket "$work/none.sock"
check "remote add --help names --file" bash -c "'$ctl' remote add --help | grep -qF -- '--file'"
# remote add --file sends one remote.add, or a batch of them for a list.
printf '{"address": "10.70.0.1/32", "next_hop": "192.0.2.254"}' > "$work/one-remote.json"
printf '{"remotes": [{"address": "10.70.0.2/32"}, {"address": "10.70.0.3/32"}]}' > "$work/two-remotes.json"
python3 - "$work/rec.sock" "$work/requests" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
with open(sys.argv[2], "w") as out:
    for _ in range(2):
        c, _ = s.accept(); data = b""
        while not data.endswith(b"\n"):
            data += c.recv(65536)
        out.write(data.decode()); out.flush()
        c.sendall(b'{"ok":true,"result":{}}\n'); c.close()
PY
rec=$!
for _ in $(seq 50); do [ -S "$work/rec.sock" ] && break; sleep 0.1; done
check "remote add --file with one remote" "$ctl" remote add --file "$work/one-remote.json" --socket "$work/rec.sock"
check "remote add --file with a list" "$ctl" remote add --file "$work/two-remotes.json" --socket "$work/rec.sock"
wait "$rec" 2>/dev/null
check "remote add --file: remote.add, then a batch of two remote.add" python3 -c "
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert reqs[0]['op'] == 'remote.add' and reqs[0]['remote']['address'] == '10.70.0.1/32', reqs[0]
assert reqs[1]['op'] == 'batch', reqs[1]
assert [o['op'] for o in reqs[1]['ops']] == ['remote.add'] * 2, reqs[1]
assert [o['remote']['address'] for o in reqs[1]['ops']] == ['10.70.0.2/32', '10.70.0.3/32'], reqs[1]
" "$work/requests"

# nicoffload-simnic: --help exits 0; dump on a directory that is no device is an error.
if [ -n "$simnic" ]; then
  check "nicoffload-simnic --help exits 0" bash -c "'$simnic' --help | grep -q 'usage: nicoffload-simnic dump DEVICE_DIR'"
  check "nicoffload-simnic --help documents --verbose" bash -c "'$simnic' --help | grep -q -- '--verbose'"
  expect_error "nicoffload-simnic dump with an unknown option" 2 "unknown option '--verbos'" -- "$simnic" dump --verbos "$work"
  expect_error "nicoffload-simnic without arguments" 2 "usage:" -- "$simnic"
  # A device directory as the simulated NIC leaves it: <sim_device_dir>/<PF>/rules.journal
  # (an empty journal holds no rules).
  mkdir -p "$work/simnic/0000:03:00.0" && : > "$work/simnic/0000:03:00.0/rules.journal"
  check "dump of the device dir is a rule list" bash -c "'$simnic' dump '$work/simnic/0000:03:00.0' | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"rules\"] == []'"
  check "dump --verbose of the device dir is a rule list" bash -c "'$simnic' dump '$work/simnic/0000:03:00.0' --verbose | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"rules\"] == []'"
  expect_error "dump of sim_device_dir names the device in it" 1 "holds no simulated NIC (no rules.journal); the device directories in it: $work/simnic/0000:03:00.0" -- \
    "$simnic" dump "$work/simnic"
  expect_error "dump of a missing dir" 1 "not a directory" -- "$simnic" dump "$work/nowhere"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
