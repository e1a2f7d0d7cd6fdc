#!/usr/bin/env python3
"""Per-port traffic counters (issue 23, part 3), measured through the
daemon's socket: nicoffloadd on the simulated NIC with its kernel software
path in a namespace holding one representor netdev (a veth) per port, 500
ports with two addresses each (6 counted hardware rules per port) and, so
that the device is at fleet scale, 100 000 remotes. Needs root; everything
runs in a namespace this script creates and deletes.

  sweep       `traffic` with "refresh": one read of every port's hardware
              counters and every representor's: the loop thread's share
              (sweep.last_busy_ms), the sweep's wall time, the request's
              round trip. Goal: <= 10 ms per interval for 500 ports.
  plain read  `traffic` without refresh: the reply of 500 ports alone.
  stalls      `status` round trips while the daemon sweeps every 100 ms,
              against the same daemon config with sweeps off, interleaved
              (the daemon restarted between runs: it adopts what it holds).

usage: traffic_bench.py NICOFFLOADD SOURCE_DIR [--ports N] [--remotes N] [--rounds N]"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from nfo_testlib import Client, Daemon, run  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def timed(c, req, timeout=120):
    t0 = time.perf_counter()
    r = c.call(req, timeout=timeout)
    dt = time.perf_counter() - t0
    if not r or not r.get("ok"):
        raise RuntimeError(f"{req.get('op')}: {r}")
    return dt * 1000, r["result"]


def write_host(d, ns, n_ports, interval):
    cfg = {
        "name": "hv-bench",
        "hw_profile": "sim",
        "uplink": {"pci": "0000:03:00.0", "mac": "0c:42:a1:00:00:01", "vf_count": n_ports + 8},
        "gateway": {"ipv4": "169.254.1.1", "mac": "ee:ee:ee:ee:ee:ee"},
        "underlay": {"mode": "routed", "default_next_hop": "192.0.2.254",
                     "next_hops": [{"ipv4": "192.0.2.254", "mac": "0c:42:a1:ff:ff:fe"}]},
        "backends": {"flow": "sim", "software_path": "kernel", "vdpa": "none"},
        "kernel": {"netns": ns},
        "daemon": {"metrics_listen": "", "reconcile_interval_ms": 600000, "traffic_interval_ms": interval,
                   "sim_device_dir": f"{d}/simnic", "max_request_bytes": 64 << 20},
        "socket": f"{d}/ctl.sock",
        "state_dir": f"{d}/state",
    }
    path = f"{d}/host-{interval}.json"
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nicoffloadd")
    ap.add_argument("source_dir")
    ap.add_argument("--ports", type=int, default=500)
    ap.add_argument("--remotes", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the stall measurement")
    ap.add_argument("--sweeps", type=int, default=30, help="`traffic` refreshes measured")
    ap.add_argument("--probes", type=int, default=1500, help="status calls per round and config")
    a = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if os.geteuid() != 0:
        print("traffic_bench: needs root")
        return 1
    ns = f"nfo-tb{os.getpid()}"
    d = tempfile.mkdtemp(prefix="nfo-tb-")
    daemon = None
    try:
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
        batch = "".join(f"link add rep{i} type veth peer name vm{i}\nlink set rep{i} up\n" for i in range(a.ports))
        # The underlay: the remotes' next hop is on the uplink's subnet, so
        # that their kernel routes install.
        batch += ("link add uplink0 type veth peer name tor0\nlink set uplink0 up\nlink set tor0 up\n"
                  "addr add 192.0.2.1/24 dev uplink0\n")
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)
        profiles = f"{d}/profiles"
        shutil.copytree(os.path.join(a.source_dir, "hw-profiles"), profiles)
        prof = json.load(open(f"{profiles}/sim.json"))
        prof["sriov"]["max_vfs"] = a.ports + 8
        json.dump(prof, open(f"{profiles}/sim.json", "w"))
        hosts = {iv: write_host(d, ns, a.ports, iv) for iv in (0, 100)}

        def start(interval):
            dm = Daemon(a.nicoffloadd, hosts[interval], profiles, f"{d}/daemon.log")
            try:
                dm.start(timeout=120)
            except RuntimeError:
                print(open(f"{d}/daemon.log").read()[-2000:])
                raise
            return dm

        daemon = start(0)
        c = Client(f"{d}/ctl.sock")
        for i in range(a.ports):
            p = {"vm": f"00000000-0000-4000-8000-{i:012d}", "nic": 0, "mac": f"52:54:00:{i >> 8 & 255:02x}:{i & 255:02x}:01",
                 "addresses": [f"10.1.{i // 250}.{i % 250 + 1}/32", f"10.2.{i // 250}.{i % 250 + 1}/32"],
                 "representor": f"rep{i}", "vf": i}
            timed(c, {"op": "port.add", "port": p, "brief": True})
        if a.remotes:
            remotes = [{"address": f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}/32"} for i in range(a.remotes)]
            timed(c, {"op": "remote.sync", "origin": "bench", "remotes": remotes}, timeout=600)
        # Traffic on every port's rules, so that the counters are not all zero.
        for i in range(0, a.ports, 5):
            timed(c, {"op": "sim.send", "count": 10,
                      "packet": {"in": f"00000000-0000-4000-8000-{i:012d}/0",
                                 "dst_ip": f"10.1.{(i + 1) % a.ports // 250}.{(i + 1) % a.ports % 250 + 1}"}})
        st = timed(c, {"op": "status"})[1]
        print(f"machine: {os.cpu_count()} CPUs; {a.ports} ports, {a.remotes} remotes; rules hw "
              f"{st['rules']['hw']}, sw {st['rules']['sw']}")

        busy, wall, rtt = [], [], []
        for _ in range(a.sweeps):
            dt, r = timed(c, {"op": "traffic", "refresh": True})
            s = r["sweep"]
            busy.append(s["last_busy_ms"])
            wall.append(s["last_wall_ms"])
            rtt.append(dt)
        reads = r["sweep"]["last_rule_reads"]
        plain = [timed(c, {"op": "traffic"})[0] for _ in range(a.sweeps)]
        print(f"sweep of {a.ports} ports ({reads} hardware counters + {a.ports} representors), {a.sweeps} runs: "
              f"loop thread p50 {pct(busy, 50):.2f} ms, max {max(busy):.2f} ms; wall p50 {pct(wall, 50):.2f} ms, "
              f"max {max(wall):.2f} ms  (goal <= 10 ms per interval)")
        print(f"  `traffic` with refresh, round trip p50 {pct(rtt, 50):.2f} ms; without refresh "
              f"(the reply of {a.ports} ports alone) p50 {pct(plain, 50):.2f} ms")
        daemon.stop()
        daemon = None

        # Stalls: status while sweeping every 100 ms vs sweeps off, interleaved.
        lat = {0: [], 100: []}
        sweeps = 0
        for _ in range(a.rounds):
            for interval in (0, 100):
                daemon = start(interval)
                c = Client(f"{d}/ctl.sock")
                time.sleep(0.3)
                for _ in range(a.probes):
                    lat[interval].append(timed(c, {"op": "status"})[0])
                    time.sleep(0.001)
                if interval:
                    sweeps += timed(c, {"op": "traffic"})[1]["sweep"]["sweeps"]
                daemon.stop()
                daemon = None
        for interval in (0, 100):
            xs = lat[interval]
            if not xs:
                continue
            what = "sweeps off          " if interval == 0 else "sweep every 100 ms  "
            print(f"status round trip, {what}({len(xs)} calls): p50 {pct(xs, 50):.2f} ms, "
                  f"p99 {pct(xs, 99):.2f} ms, max {max(xs):.2f} ms")
        if a.rounds:
            print(f"  ({sweeps} sweeps ran during the probes with sweeps on)")
    finally:
        if daemon:
            daemon.stop(signal.SIGKILL)
        run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
