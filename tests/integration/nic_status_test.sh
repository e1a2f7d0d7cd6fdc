#!/usr/bin/env bash
# `nicoffloadctl nic status` against a fake sysfs tree built here (the layout
# of /sys: a PF with two VFs, representors, a vDPA device), on this kernel
# (no devlink: the eswitch mode is reported unknown, with the reason).
set -uo pipefail
ctl=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() {
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}

sys=$work/sys
pf=0000:03:00.0
d=$sys/devices/pci0000:00
mkdir -p "$d/$pf/net/enp3s0f0np0" "$sys/bus/pci/devices" "$sys/bus/pci/drivers/mlx5_core" "$sys/class/net" "$sys/bus/vdpa/devices"
printf '8\n' > "$d/$pf/sriov_totalvfs"; printf '2\n' > "$d/$pf/sriov_numvfs"; printf '1\n' > "$d/$pf/sriov_drivers_autoprobe"
printf 'p0\n' > "$d/$pf/net/enp3s0f0np0/phys_port_name"; printf 'b8cef60300aa01e2\n' > "$d/$pf/net/enp3s0f0np0/phys_switch_id"
ln -s "../../../devices/pci0000:00/$pf" "$sys/bus/pci/devices/$pf"
ln -s "../../devices/pci0000:00/$pf/net/enp3s0f0np0" "$sys/class/net/enp3s0f0np0"
for i in 0 1; do
  vf=0000:03:00.$((i + 2))
  mkdir -p "$d/$vf"
  ln -s "../$vf" "$d/$pf/virtfn$i"
  ln -s "../../../devices/pci0000:00/$vf" "$sys/bus/pci/devices/$vf"
  ln -s "../../../bus/pci/drivers/mlx5_core" "$d/$vf/driver"
  mkdir -p "$d/$pf/net/rep$i"
  printf 'pf0vf%s\n' "$i" > "$d/$pf/net/rep$i/phys_port_name"; printf 'b8cef60300aa01e2\n' > "$d/$pf/net/rep$i/phys_switch_id"
  ln -s "../../devices/pci0000:00/$pf/net/rep$i" "$sys/class/net/rep$i"
done
mkdir -p "$d/0000:03:00.3/mlx5_core.vnet.1/nfo0123456789ab/vhost-vdpa-5"
ln -s "../../../devices/pci0000:00/0000:03:00.3/mlx5_core.vnet.1/nfo0123456789ab" "$sys/bus/vdpa/devices/nfo0123456789ab"

check "--help nic status" bash -c "'$ctl' nic status --help | grep -q -- '--sysfs-root'"
out=$("$ctl" nic status --pci $pf --sysfs-root "$sys")
rc=$?
check "nic status exits 0" test "$rc" -eq 0
check "PF line" grep -q "^PF $pf netdev enp3s0f0np0: eswitch unknown, VFs 2 of 8, autoprobe on, switch id b8cef60300aa01e2" <<<"$out"
check "vf1 line" grep -q "vf1   0000:03:00.3 driver mlx5_core netdev - representor rep1 .* vdpa nfo0123456789ab" <<<"$out"
check "no devlink is said" grep -q "warning: generic netlink family 'devlink' not found" <<<"$out"
"$ctl" nic status --pci $pf --sysfs-root "$sys" --json > "$work/st.json"
check "json fields" python3 - "$work/st.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["pci"] == "0000:03:00.0" and s["eswitch_mode"] is None, s
assert s["total_vfs"] == 8 and s["num_vfs"] == 2, s
assert [v["representor"] for v in s["vfs"]] == ["rep0", "rep1"], s["vfs"]
assert s["vfs"][1]["vdpa_devices"] == ["nfo0123456789ab"], s["vfs"][1]
assert any("devlink" in w for w in s["warnings"]), s["warnings"]
PY
err=$("$ctl" nic status --pci 0000:99:00.0 --sysfs-root "$sys" 2>&1 >/dev/null); rc=$?
check "missing PF exits 3" test "$rc" -eq 3
check "missing PF is named" grep -qF "PF 0000:99:00.0 not found" <<<"$err"

echo "nic status: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
