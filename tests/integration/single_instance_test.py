#!/usr/bin/env python3
"""One daemon per host (issue 11, item 3), against the real nicoffloadd on
the simulated NIC: with a daemon running and holding rules, VF MACs and vDPA
devices, a second nicoffloadd started with the same socket and device dir
but another state_dir, and a third with the same state_dir, each exit
non-zero naming the lock and its holder's pid, and touch nothing: the
simulated device tree (rules, VF settings, vDPA devices) is byte for byte
what it was, and the first daemon still answers with the same rules.
Needs root.

usage: single_instance_test.py NICOFFLOADD NICOFFLOADCTL SIMNIC_TOOL SOURCE_DIR"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, Client, Daemon, World, port, run, tear_down, write_host  # noqa: E402


def tree(path):
    """Every file under `path`: relative path -> bytes."""
    out = {}
    for d, _, files in os.walk(path):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


def start_second(daemon_bin, root, world, name, cfg):
    path = f"{world.dir}/{name}.json"
    with open(path, "w") as f:
        json.dump(cfg, f)
    try:
        return subprocess.run([daemon_bin, "--config", path, "--profile-dir", f"{root}/hw-profiles"],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired as e:  # it started serving: reported as a failure below
        return subprocess.CompletedProcess(e.cmd, 0, e.stdout or "", f"still running after 20 s: {e.stderr}")


def main():
    daemon_bin, ctl, simtool, root = sys.argv[1:5]
    if os.geteuid() != 0:
        print("FAIL: needs root (CI runs as root)")
        return 1
    t = Checks()
    world = World("one")
    daemon = None
    try:
        for rep in ("rep1", "rep2", "rep3"):
            world.add_rep(rep)
        simdir = f"{world.dir}/simnic"
        host, cfg = write_host(world, backends={"flow": "sim", "software_path": "kernel", "vdpa": "sim",
                                                "nic": "sim"})
        daemon = Daemon(daemon_bin, host, f"{root}/hw-profiles", f"{world.dir}/daemon.log")
        daemon.start()
        sock = cfg["socket"]
        c = Client(sock)
        for i in (1, 2, 3):
            r = c.call({"op": "port.add", "port": port(i, f"rep{i}")})
            t.check(f"port {i} added, installed", r["ok"] and r["result"]["status"]["state"] == "installed", r)
            t.check(f"port {i} has its vDPA device", r["ok"] and "vdpa" in r["result"]["status"]["devices"], r)

        pci = cfg["uplink"]["pci"]
        rules_before = json.loads(run(ctl, "rules", "--socket", sock, "--json").stdout)
        device_before = json.loads(run(simtool, "dump", f"{simdir}/{pci}").stdout)["rules"]
        tree_before = tree(simdir)
        counters_before = c.call({"op": "counters"})["result"]
        routes_before = world.routes()
        t.check("the device holds rules", len(device_before) >= 15, len(device_before))
        t.check("VF MACs set", counters_before["nic"]["vf_macs_set"] == 3, counters_before["nic"])
        t.check("vDPA devices exist", counters_before["vdpa"]["devices"] == 3, counters_before["vdpa"])
        t.check("the sim NIC tree is not empty", len(tree_before) > 3, sorted(tree_before)[:5])

        # Same socket and device dir, another state_dir.
        other = dict(cfg, state_dir=f"{world.dir}/state-b")
        out = start_second(daemon_bin, root, world, "second", other)
        t.check("second (other state_dir): exits non-zero", out.returncode != 0, out.returncode)
        t.check("  ...names the device lock", f"nic-{pci}.lock" in out.stderr, out.stderr[-1000:])
        t.check("  ...names the holder's pid", f"pid {daemon.proc.pid}" in out.stderr, out.stderr[-1000:])
        t.check("  ...opened no backend", not any(w in out.stderr for w in (
            "software path:", "nic backend", "state loaded", "adopted", "flow:", "vdpa:")), out.stderr[-1000:])
        t.check("  ...created no state dir", not os.path.exists(other["state_dir"]))
        tree_after = tree(simdir)
        changed = sorted(k for k in set(tree_before) | set(tree_after) if tree_before.get(k) != tree_after.get(k))
        t.check("  ...the simulated NIC is byte for byte unchanged (rules, VF MACs, vDPA devices)", not changed,
                changed)

        # The same state_dir, with another device dir and socket.
        third = dict(cfg, socket=f"{world.dir}/third.sock",
                     daemon=dict(cfg["daemon"], sim_device_dir=f"{world.dir}/simnic-third"))
        out = start_second(daemon_bin, root, world, "third", third)
        t.check("third (same state_dir): exits non-zero", out.returncode != 0, out.returncode)
        t.check("  ...names the state directory lock", f"{cfg['state_dir']}/lock" in out.stderr, out.stderr[-1000:])
        t.check("  ...names the holder's pid", f"pid {daemon.proc.pid}" in out.stderr, out.stderr[-1000:])
        t.check("  ...left no socket", not os.path.exists(third["socket"]))

        # Identical config (what a second `systemctl start` would do).
        out = start_second(daemon_bin, root, world, "same", cfg)
        t.check("same config: exits non-zero", out.returncode != 0, out.returncode)

        # Nothing touched: the device tree, the first daemon's view, the kernel.
        t.check("first daemon alive", daemon.proc.poll() is None, daemon.proc.returncode)
        t.check("socket still there", os.path.exists(sock))
        tree_after = tree(simdir)
        changed = sorted(k for k in set(tree_before) | set(tree_after) if tree_before.get(k) != tree_after.get(k))
        t.check("the simulated NIC is byte for byte unchanged (rules, VF MACs, vDPA devices)", not changed, changed)
        device_after = json.loads(run(simtool, "dump", f"{simdir}/{pci}").stdout)["rules"]
        t.check("device rules unchanged", device_after == device_before, (len(device_before), len(device_after)))
        rules_after = json.loads(run(ctl, "rules", "--socket", sock, "--json").stdout)
        t.check("nicoffloadctl rules unchanged", rules_after == rules_before)
        t.check("kernel routes unchanged", world.routes() == routes_before, world.routes())
        r = c.call({"op": "reconcile"})
        t.check("first daemon reconciles with no failure", r["ok"] and r["result"]["failures"] == 0, r)
        counters = c.call({"op": "counters"})["result"]
        t.check("  ...and had nothing to redo", counters["flow"]["creations"] == counters_before["flow"]["creations"]
                and counters["vdpa"]["operations"] == counters_before["vdpa"]["operations"]
                and counters["nic"]["operations"] == counters_before["nic"]["operations"], counters)
        t.check("  ...still 3 vDPA devices and VF MACs", counters["vdpa"]["devices"] == 3
                and counters["nic"]["vf_macs_set"] == 3, counters)

        # Once the first one stops, the lock is free again.
        t.check("first daemon stops cleanly", daemon.stop() == 0)
        daemon.start()
        st = c.call({"op": "status"})
        t.check("a new daemon starts after it and adopts", st["ok"] and st["result"]["ports"] == 3, st)
    except Exception as e:  # noqa: BLE001
        t.check("test ran to the end", False, repr(e))
    finally:
        tear_down(t, daemon, world)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
