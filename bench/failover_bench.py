#!/usr/bin/env python3
"""Failover over two uplinks (issue 23, part 2), measured through what runs
in production: kernel routes (as a routing daemon installs them), nicoffloadd
on the simulated NIC (a multiport eswitch) with kernel.learn_routes and two
uplinks, read through its control socket. Needs root; everything runs in a
network namespace this script creates and deletes.

The host: uplink0 and uplink1 (veth pairs, both ends in the namespace), a
next hop on each (a permanent neighbour), and N remote /32s, each an ECMP
route (protocol bgp) through both. nicoffloadd spreads the remotes over the
two uplinks. Each event below is timed from the command that makes it to
the first `status` reply whose `routes.uplinks` shows every remote moved (a
reply comes after the loop turn that applied the change and reconciled its
rules into the device), polled every millisecond; then the opposite event
is timed until the remotes are spread as before. Repeated --cycles times:
p50, p99 and max per event.

  link      uplink1's peer set down (carrier lost), then up again
  neighbour uplink1's next hop deleted from the neighbour table, then back
  route     every route replaced without uplink1's next hop (what zebra does
            when a BGP session goes), then with it again (--route-cycles)

usage: failover_bench.py NICOFFLOADD SOURCE_DIR [--routes N] [--cycles C]"""

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from nfo_testlib import Client, Daemon, run  # noqa: E402

HOP = {0: "192.168.1.254", 1: "192.168.2.254"}
HOP_MAC = {0: "02:00:00:00:f1:01", 1: "02:00:00:00:f2:01"}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def remote(i):
    return f"10.{64 + i // 65536}.{(i // 256) % 256}.{i % 256}"


class Host:
    def __init__(self, binary, src, routes):
        self.binary, self.src, self.n = binary, src, routes
        self.ns = f"nfo-fobench{os.getpid()}"
        self.dir = tempfile.mkdtemp(prefix="nfo-fobench-")
        self.daemon = None

    def ip_batch(self, lines):
        run("ip", "-n", self.ns, "-batch", "-", input="\n".join(lines) + "\n")

    def build(self):
        run("ip", "netns", "add", self.ns)
        lines = ["link set lo up"]
        for u in (0, 1):
            lines += [f"link add uplink{u} type veth peer name peer{u}",
                      f"link set uplink{u} up", f"link set peer{u} up",
                      f"addr add 192.168.{u + 1}.1/24 dev uplink{u}",
                      f"neigh replace {HOP[u]} lladdr {HOP_MAC[u]} dev uplink{u} nud permanent"]
        self.ip_batch(lines)

    def routes(self, uplinks):
        hops = " ".join(f"nexthop via {HOP[u]} dev uplink{u}" for u in uplinks)
        return [f"route replace {remote(i)}/32 proto bgp {hops}" for i in range(self.n)]

    def start(self):
        cfg = {
            "name": "fobench", "hw_profile": "sim",
            "uplinks": [
                {"pci": "0000:03:00.0", "netdev": "uplink0", "mac": "0c:42:a1:00:00:01", "vf_count": 8},
                {"pci": "0000:03:00.1", "netdev": "uplink1", "mac": "0c:42:a1:00:00:02"},
            ],
            "gateway": {"ipv4": "169.254.1.1", "mac": "ee:ee:ee:ee:ee:ee"},
            "underlay": {"mode": "routed"},
            "kernel": {"netns": self.ns, "learn_routes": True, "learn_protocols": ["bgp"]},
            "backends": {"flow": "sim", "software_path": "kernel", "vdpa": "none"},
            "daemon": {"metrics_listen": "", "reconcile_interval_ms": 3600000,
                       "sim_device_dir": f"{self.dir}/simnic"},
            "socket": f"{self.dir}/ctl.sock", "state_dir": f"{self.dir}/state",
        }
        path = os.path.join(self.dir, "host.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.daemon = Daemon(self.binary, path, os.path.join(self.src, "hw-profiles"),
                             f"{self.dir}/daemon.log")
        self.daemon.start()
        self.client = Client(self.daemon.socket)

    def per_uplink(self):
        st = self.client.call({"op": "status"}, timeout=30)["result"]["routes"]
        return [u["remotes"] for u in st["uplinks"]]

    def wait(self, cond, timeout=120):
        """Polls status every millisecond until cond(per_uplink); seconds."""
        t0 = time.monotonic()
        while True:
            if cond(self.per_uplink()):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"not reached in {timeout} s: {self.per_uplink()}")
            time.sleep(0.001)

    def close(self):
        if self.daemon:
            self.daemon.stop(signal.SIGKILL)
        run("ip", "netns", "del", self.ns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("src")
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--route-cycles", type=int, default=3)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("failover_bench: needs root (a network namespace)", file=sys.stderr)
        return 1
    host = Host(a.binary, a.src, a.routes)
    try:
        host.build()
        host.start()
        t0 = time.monotonic()
        host.ip_batch(host.routes((0, 1)))
        host.wait(lambda u: sum(u) == a.routes and all(u))
        spread = host.per_uplink()
        print(f"failover_bench: {a.routes} ECMP remotes learned and spread in "
              f"{time.monotonic() - t0:.2f} s: uplink0 {spread[0]}, uplink1 {spread[1]}")
        moved = lambda u: u[1] == 0 and u[0] == a.routes  # noqa: E731
        back = lambda u: u == spread  # noqa: E731
        results = {}

        def cycle(name, down, up, n):
            for _ in range(n):
                t = time.monotonic()
                down()
                host.wait(moved)
                results.setdefault(f"{name} lost", []).append(time.monotonic() - t)
                t = time.monotonic()
                up()
                host.wait(back)
                results.setdefault(f"{name} back", []).append(time.monotonic() - t)

        ns = ("ip", "-n", host.ns)
        cycle("link", lambda: run(*ns, "link", "set", "peer1", "down"),
              lambda: run(*ns, "link", "set", "peer1", "up"), a.cycles)
        cycle("neighbour", lambda: run(*ns, "neigh", "del", HOP[1], "dev", "uplink1"),
              lambda: run(*ns, "neigh", "replace", HOP[1], "lladdr", HOP_MAC[1], "dev", "uplink1",
                          "nud", "permanent"), a.cycles)
        one, both = host.routes((0,)), host.routes((0, 1))
        cycle("route", lambda: host.ip_batch(one), lambda: host.ip_batch(both), a.route_cycles)

        print(f"failover_bench: {a.routes} remotes, {spread[1]} of them on uplink1; "
              "event -> every remote's rule moved (status polled every 1 ms):")
        for name, xs in results.items():
            print(f"  {name:15s} n={len(xs):3d}  p50 {statistics.median(xs) * 1000:8.1f} ms  "
                  f"p99 {pct(xs, 99) * 1000:8.1f} ms  max {max(xs) * 1000:8.1f} ms")
        st = host.client.call({"op": "status"})["result"]
        print(f"failover_bench: rules hw {st['rules']['hw']}, sw {st['rules']['sw']}; "
              f"resyncs {st['routes']['resyncs']}, overruns {st['routes']['overruns']}")
        return 0
    finally:
        host.close()


if __name__ == "__main__":
    sys.exit(main())
