#!/usr/bin/env python3
"""backends.vdpa = dpdk driven by nicoffloadd, under a real DPDK EAL
(--no-huge --no-pci: no PCI device, so no mlx5 VF to probe). Two hosts:

  1. flow sim + vdpa dpdk: nicoffloadd starts an EAL for the vhost-user
     backend itself;
  2. flow dpdk (net_null/net_ring vdevs) + vdpa dpdk: both in the one EAL of
     the process (DPDK starts once per process).

On this machine every device creation must fail with DPDK's own refusal
(rte_dev_probe of "<VF>,class=vdpa"): the warm pool says it is empty, each
port is reported degraded naming the VF and the probe, no vhost-user socket
is left behind, and the daemon keeps serving and stops cleanly. What needs an
mlx5 VF (the probe succeeding, QEMU connecting) is in docs/operator-guide.md,
"NIC and vDPA management".
Needs root.

usage: daemon_vdpa_dpdk_test.py NICOFFLOADD SOURCE_DIR"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, Client, Daemon, World, port, tear_down, write_host  # noqa: E402


def eal_args(prefix, vdevs):
    args = ["--no-huge", "--no-pci", "-m", "512", "--no-shconf", "--file-prefix", prefix,
            "--no-telemetry", "--log-level=*:error"]
    for v in vdevs:
        args += ["--vdev", v]
    return args


def run_case(t, daemon_bin, root, tag, flow, vdevs, pci):
    world = World(tag)
    daemon = None
    try:
        host, cfg = write_host(
            world,
            # A PCI address of its own: a daemon on DPDK takes the device lock
            # /run/nicoffload/<PCI>.lock, and other tests may hold theirs.
            uplink={"pci": pci, "mac": "0c:42:a1:00:00:01", "vf_count": 4},
            backends={"flow": flow, "software_path": "none", "nic": "sim", "vdpa": "dpdk"},
            vdpa={"pool": {"size": 2, "low_water": 1}},
            dpdk={"eal_args": eal_args(f"nfovd{tag}{os.getpid()}", vdevs),
                  "uplink_port_id": 0, "first_representor_port_id": 1})
        daemon = Daemon(daemon_bin, host, f"{root}/hw-profiles", f"{world.dir}/daemon.log")
        try:
            daemon.start()
        except RuntimeError as e:
            t.check(f"{tag}: nicoffloadd starts with backends.vdpa dpdk", False, e)
            return
        c = Client(cfg["socket"])
        st = c.call({"op": "status"})["result"]
        t.check(f"{tag}: flow backend {flow}", st["backends"]["flow"].startswith(flow), st)
        counters = c.call({"op": "counters"})["result"]
        t.check(f"{tag}: vdpa backend is dpdk", counters["vdpa"]["backend"] == "dpdk", counters["vdpa"])
        # The pool tries every free VF once and gives up, saying so.
        deadline = time.time() + 10
        pool = {}
        while time.time() < deadline:
            pool = c.call({"op": "status"})["result"]["vdpa_pool"]
            if pool["state"] == "empty":
                break
            time.sleep(0.05)
        t.check(f"{tag}: the pool is empty (no vDPA device to probe)",
                pool.get("state") == "empty" and pool.get("ready") == 0 and pool.get("made_ahead") == 0, pool)
        log = open(f"{world.dir}/daemon.log").read()
        t.check(f"{tag}: the log names DPDK's refusal of the probe",
                "rte_dev_probe" in log and "class=vdpa" in log, log[-1500:])

        r = c.call({"op": "port.add", "port": port(1, vdpa="dpdk")})
        t.check(f"{tag}: port.add answers", r["ok"], r)
        status = r["result"]["status"] if r["ok"] else {}
        t.check(f"{tag}: the port is degraded", status.get("state") == "degraded", status)
        failures = status.get("software_path_failures", [])
        vdpa_failure = [f for f in failures if f["object"].startswith("vdpa vf ")]
        t.check(f"{tag}: the failure names the VF, the probe and DPDK's reason",
                len(vdpa_failure) == 1 and "could not probe VF" in vdpa_failure[0]["error"]["message"]
                and vdpa_failure[0]["error"]["code"] == "not-found", failures)
        t.check(f"{tag}: no vDPA device in the reply", "vdpa" not in status.get("devices", {}), status)
        vhost_dir = os.path.join(os.path.dirname(cfg["socket"]), "vhost")
        left = os.listdir(vhost_dir) if os.path.isdir(vhost_dir) else []
        t.check(f"{tag}: no vhost-user socket left behind", left == [], left)
        # Still serving, and the removal is clean.
        r = c.call({"op": "port.remove", "vm": port(1)["vm"], "nic": 0})
        t.check(f"{tag}: port.remove", r["ok"], r)
        t.check(f"{tag}: SIGTERM exits 0", daemon.stop() == 0)
    finally:
        tear_down(t, daemon, world)


def main():
    daemon_bin, root = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        print("FAIL: needs root (CI runs as root)")
        return 1
    t = Checks()
    run_case(t, daemon_bin, root, "vdsim", "sim", [], "0000:7e:00.0")
    run_case(t, daemon_bin, root, "vddpdk", "dpdk",
             ["net_null0", "net_null1", "net_null2", "net_null3", "net_ring0"], "0000:7f:00.0")
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
