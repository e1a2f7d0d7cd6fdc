#!/usr/bin/env python3
"""Routes from the routing plane into the device (issue 13), measured
through what runs in production: kernel routes, FRR, nicoffloadd on the
simulated NIC with kernel.learn_routes. Needs root; everything runs in
namespaces this script creates and deletes.

  kernel -> device   one /32 at a time added to hv's kernel (`ip -batch -`
                     kept open, protocol bgp, via the ToR on the uplink) until
                     its egress rule is in the simulated device (the device's
                     rule journal grows): p50/p99. Goal p99 <= 20 ms.
  port.add -> fleet  3 hypervisors + ToR with FRR: port.add on hv1 until the
                     egress rule is in hv2's and hv3's devices, p50/p99 over N
                     ports; BGP's own share (route in hv2's kernel, from `ip
                     monitor`) and hv2's kernel -> device share. Goal: p99 <=
                     200 ms beyond BGP's propagation.
  burst              100 000 /32s at once: `ip -batch` under protocol bgp
                     (against the time `ip -batch` itself takes), and once
                     through FRR (hv1 announces them, hv2 learns them): time
                     until every rule is in the device, routes/s, the
                     daemon's peak RSS. Goal >= 100 000 routes/s.

usage: route_bench.py NICOFFLOADD SOURCE_DIR [--ports N] [--routes N] [--singles N] [--no-frr-burst]"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import bgp_fleet_test as fleet_mod  # noqa: E402
from nfo_testlib import Client, run  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def ms(x):
    return f"{x * 1000:.1f} ms"


def journal(fleet, h):
    """The simulated device's directory: its snapshot (rules.journal) and
    journal segments (rules.journal.<seq>)."""
    return os.path.join(fleet.dir, f"hv{h}", "simnic", "0000:03:00.0")


def size(path):
    """Bytes of the device's snapshot and journal segments: a created rule
    grows the last segment."""
    try:
        names = os.listdir(path)
    except OSError:
        return 0
    total = 0
    for n in names:
        if n.startswith("rules.journal"):
            try:
                total += os.stat(os.path.join(path, n)).st_size
            except OSError:
                pass
    return total


def wait_growth(path, base, timeout=10.0):
    """Busy-waits (sleeping 0.1 ms) until the file grows past `base`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if size(path) > base:
            return time.time()
        time.sleep(0.0001)
    return None


def rss_peak_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def hw_rules(fleet, h):
    return Client(fleet.daemons[h].socket).call({"op": "status"}, timeout=60)["result"]["rules"]["hw"]


def single_routes(fleet, n):
    """kernel -> device on hv2, one route at a time."""
    hv = fleet_mod.ns_name("hv2")
    path = journal(fleet, 2)
    ip = subprocess.Popen(["ip", "-n", hv, "-batch", "-"], stdin=subprocess.PIPE, text=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lat = []
    try:
        for i in range(n):
            base = size(path)
            t0 = time.time()
            ip.stdin.write(f"route add 10.200.{i // 250}.{i % 250 + 1}/32 via 192.168.2.254 dev uplink0 proto bgp\n")
            ip.stdin.flush()
            t1 = wait_growth(path, base)
            if t1 is None:
                print(f"  route {i}: no rule within 10 s")
                continue
            lat.append(t1 - t0)
            time.sleep(0.005)  # the device's journal settles before the next base
        for i in range(n):
            ip.stdin.write(f"route del 10.200.{i // 250}.{i % 250 + 1}/32 proto bgp\n")
        ip.stdin.close()
        ip.wait(timeout=30)
    finally:
        if ip.poll() is None:
            ip.kill()
    return lat


class Monitor:
    """`ip -n NS monitor route`: the wall time each route appears in NS's kernel."""

    def __init__(self, ns):
        self.seen = {}
        self.proc = subprocess.Popen(["ip", "-n", ns, "monitor", "route"], stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        for line in self.proc.stdout:
            now = time.time()
            parts = line.split()
            if parts and not line.startswith("Deleted") and "proto bgp" in line:
                self.seen.setdefault(parts[0], now)

    def close(self):
        self.proc.kill()
        self.proc.wait()


def port_convergence(fleet, n):
    mon = Monitor(fleet_mod.ns_name("hv2"))
    time.sleep(0.3)
    total, bgp, local = [], [], []
    try:
        for k in range(n):
            i = 100 + k
            addr = f"10.0.1.{100 + k}"
            fleet.add_vm(fleet_mod.ns_name("hv1"), i, addr)
            b2, b3 = size(journal(fleet, 2)), size(journal(fleet, 3))
            t0 = time.time()
            r = fleet.call(1, {"op": "port.add", "port": {
                "vm": f"00000000-0000-4000-8000-{i:012d}", "nic": 0, "mac": f"52:54:00:00:01:{k:02x}",
                "addresses": [f"{addr}/32"], "representor": f"rep{i}"}})
            if not r.get("ok"):
                raise RuntimeError(f"port.add: {r}")
            t2 = wait_growth(journal(fleet, 2), b2, 30)
            t3 = wait_growth(journal(fleet, 3), b3, 30)
            if t2 is None or t3 is None:
                print(f"  port {k}: no rule on hv2/hv3 within 30 s")
                continue
            total.append(max(t2, t3) - t0)
            # Removed again (hv1 has 8 VFs), and withdrawn from hv2 and hv3
            # before the next one.
            b2, b3 = size(journal(fleet, 2)), size(journal(fleet, 3))
            fleet.call(1, {"op": "port.remove", "vm": f"00000000-0000-4000-8000-{i:012d}", "nic": 0})
            wait_growth(journal(fleet, 2), b2, 30)
            wait_growth(journal(fleet, 3), b3, 30)
            time.sleep(0.02)
            deadline = time.time() + 2
            while addr not in mon.seen and time.time() < deadline:
                time.sleep(0.001)
            if addr in mon.seen:
                bgp.append(mon.seen.pop(addr) - t0)
                local.append(t2 - bgp[-1] - t0)
    finally:
        mon.close()
    return total, bgp, local


def burst_kernel(fleet, n):
    """n routes through `ip -batch` on hv2, against the batch's own time."""
    hv = fleet_mod.ns_name("hv2")
    base = hw_rules(fleet, 2)
    path = os.path.join(fleet.dir, "burst.batch")
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"route add 10.{64 + i // 65536}.{(i // 256) % 256}.{i % 256}/32 via 192.168.2.254 "
                    "dev uplink0 proto bgp\n")
    t0 = time.time()
    run("ip", "-n", hv, "-batch", path)
    t_ip = time.time() - t0
    while hw_rules(fleet, 2) < base + n and time.time() - t0 < 600:
        time.sleep(0.02)
    t_all = time.time() - t0
    got = hw_rules(fleet, 2) - base
    st = Client(fleet.daemons[2].socket).call({"op": "status"})["result"]["routes"]
    peak = rss_peak_kb(fleet.daemons[2].proc.pid)
    resync = resync_cost(fleet, n)
    # and away again
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"route del 10.{64 + i // 65536}.{(i // 256) % 256}.{i % 256}/32 proto bgp\n")
    t1 = time.time()
    run("ip", "-n", hv, "-batch", path)
    while hw_rules(fleet, 2) > base and time.time() - t1 < 600:
        time.sleep(0.02)
    t_del = time.time() - t1
    os.remove(path)
    return t_ip, t_all, got, peak, st, t_del, resync


def resync_cost(fleet, n):
    """With n learned routes in hv2: what comparing them with a fresh dump
    costs (issue 22). A full pass (SIGHUP) dumps on a worker thread; a
    client sending port.list meanwhile, one after the other, measures the
    wait. Then the reconcile op, which dumps inline before it answers."""
    d = fleet.daemons[2]
    c = Client(d.socket)
    before = c.call({"op": "status"})["result"]["routes"]["resyncs"]
    lat, stop = [], threading.Event()

    def probe():
        pc = Client(d.socket)
        while not stop.is_set():
            t = time.time()
            pc.call({"op": "port.list"})
            lat.append(time.time() - t)

    th = threading.Thread(target=probe)
    th.start()
    time.sleep(0.5)
    d.proc.send_signal(signal.SIGHUP)
    st = None
    deadline = time.time() + 120
    while time.time() < deadline:
        st = c.call({"op": "status"})["result"]["routes"]
        if st["resyncs"] > before and "full pass" in (st["last_resync"] or {}).get("reason", ""):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    stop.set()
    th.join()
    bg = st["last_resync"] if st else {}
    t0 = time.time()
    c.call({"op": "reconcile"}, timeout=120)
    t_reconcile = time.time() - t0
    inline = c.call({"op": "status"})["result"]["routes"]["last_resync"]
    return {"routes": n, "bg_dump_ms": bg.get("dump_ms"), "bg_merge_ms": bg.get("merge_ms"),
            "probe_n": len(lat), "probe_p50": pct(lat, 50) if lat else 0,
            "probe_p99": pct(lat, 99) if lat else 0, "probe_max": max(lat) if lat else 0,
            "reconcile_s": t_reconcile, "inline_dump_ms": inline.get("dump_ms"),
            "inline_merge_ms": inline.get("merge_ms")}


def burst_frr(fleet, n):
    """n /32s installed on hv1 on a representor, as nicoffloadd installs a
    local VM's, but with protocol 241: nicoffloadd's full pass removes
    routes of its own protocol (240) that nobody asked for, and zebra sees
    241 as a "kernel" route just the same. FRR announces them; hv2 learns
    them over BGP through the ToR."""
    hv1 = fleet_mod.ns_name("hv1")
    base = hw_rules(fleet, 2)
    path = os.path.join(fleet.dir, "frr.batch")
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"route add 10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}/32 dev rep1 proto 241\n")
    t0 = time.time()
    r = run("ip", "-n", hv1, "-batch", path, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"ip -batch on hv1: {r.stderr[-500:]}")
    kernel_done = None
    hv2 = fleet_mod.ns_name("hv2")
    while time.time() - t0 < 900:
        if kernel_done is None:
            out = run("ip", "-n", hv2, "route", "show", "proto", "bgp").stdout
            if out.count("\n") >= n:
                kernel_done = time.time() - t0
        if hw_rules(fleet, 2) >= base + n:
            break
        time.sleep(0.2)
    t_all = time.time() - t0
    got = hw_rules(fleet, 2) - base
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"route del 10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}/32 dev rep1 proto 241\n")
    run("ip", "-n", hv1, "-batch", path)
    os.remove(path)
    return t_all, kernel_done, got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nicoffloadd")
    ap.add_argument("source_dir")
    ap.add_argument("--ports", type=int, default=50)
    ap.add_argument("--singles", type=int, default=200)
    ap.add_argument("--routes", type=int, default=100000)
    ap.add_argument("--parts", default="singles,ports,burst,frr",
                    help="which measurements, comma-separated: singles, ports, burst, frr")
    a = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up on the way out
    if os.geteuid() != 0:
        print("route_bench: needs root")
        return 1
    fleet = fleet_mod.Fleet(a.nicoffloadd, "/bin/true", a.source_dir)
    try:
        fleet.build()
        fleet.start_fleet_frr()
        for h in fleet_mod.VMS:
            fleet.start_daemon(h)
        # The fleet converged (every hypervisor has the others' VMs in hw).
        for h in fleet_mod.VMS:
            want = sum(len(v) for hh, v in fleet_mod.VMS.items() if hh != h)
            deadline = time.time() + 60
            while time.time() < deadline:
                st = fleet.call(h, {"op": "status"})["result"]["routes"]
                if st["learned"] >= want:
                    break
                time.sleep(0.1)
        print(f"machine: {os.cpu_count()} CPUs; nicoffloadd {a.nicoffloadd}")

        parts = set(a.parts.split(","))
        lat = single_routes(fleet, a.singles) if "singles" in parts else []
        if lat:
            print(f"kernel -> device (hv2, {len(lat)} routes one at a time): p50 {ms(pct(lat, 50))}, "
                  f"p99 {ms(pct(lat, 99))}, max {ms(max(lat))}  (goal p99 <= 20 ms)")

        total, bgp, local = port_convergence(fleet, a.ports) if "ports" in parts else ([], [], [])
        if total:
            print(f"port.add on hv1 -> egress rule on hv2 and hv3 ({len(total)} ports): "
                  f"p50 {ms(pct(total, 50))}, p99 {ms(pct(total, 99))}")
        if bgp:
            beyond = [t - b for t, b in zip(total, bgp)]
            print(f"  BGP's propagation (port.add -> route in hv2's kernel): p50 {ms(pct(bgp, 50))}, "
                  f"p99 {ms(pct(bgp, 99))}")
            print(f"  hv2 kernel -> device: p50 {ms(pct(local, 50))}, p99 {ms(pct(local, 99))}")
            print(f"  beyond BGP (total - propagation): p50 {ms(pct(beyond, 50))}, "
                  f"p99 {ms(pct(beyond, 99))}  (goal p99 <= 200 ms)")

        if "burst" in parts:
            t_ip, t_all, got, peak, st, t_del, rs = burst_kernel(fleet, a.routes)
            print(f"burst via ip -batch ({a.routes} routes, protocol bgp, hv2): ip -batch {t_ip:.2f} s "
                  f"({a.routes / t_ip:,.0f} routes/s); every rule in the device after {t_all:.2f} s "
                  f"({got / t_all:,.0f} routes/s mirrored, {got} rules); overruns {st['overruns']}, "
                  f"resyncs {st['resyncs']}; withdrawal of all: {t_del:.2f} s; daemon peak RSS "
                  f"{peak / 1024:.0f} MiB  (goal >= 100 000 routes/s)")
            print(f"resync of {rs['routes']} learned routes (issue 22): full pass (SIGHUP), dump on "
                  f"a worker {rs['bg_dump_ms']:.0f} ms, merge on the loop {rs['bg_merge_ms']:.1f} ms; "
                  f"port.list meanwhile ({rs['probe_n']} calls): p50 {ms(rs['probe_p50'])}, p99 "
                  f"{ms(rs['probe_p99'])}, max {ms(rs['probe_max'])}  (goal: no wait > 50 ms); "
                  f"reconcile op (inline dump {rs['inline_dump_ms']:.0f} ms, merge "
                  f"{rs['inline_merge_ms']:.1f} ms): {rs['reconcile_s']:.2f} s")
        if "frr" in parts:
            t_all, kernel_done, got = burst_frr(fleet, a.routes)
            kd = f"{kernel_done:.1f} s" if kernel_done else "n/a"
            print(f"burst via FRR ({a.routes} /32s installed on hv1, learned by hv2): every rule in "
                  f"hv2's device after {t_all:.1f} s ({got} rules; all in hv2's kernel after {kd})")
    finally:
        fleet.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
