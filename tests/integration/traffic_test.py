#!/usr/bin/env python3
"""Per-port traffic counters end to end (issue 23, part 3): nicoffloadd on
the simulated NIC over its real socket, its kernel software path in a
namespace of the test's own. Needs root.

Hardware share: packets sent into the simulated NIC with `sim.send` (the
sim counts them on the rules they match, as a device's COUNT does); the
daemon's sweep reads those counters. Software share: real pings between two
"VM" namespaces through their representors (veths), counted by the kernel
on the representor netdevs. Checked through `traffic`, `port.get`,
/metrics and `nicoffloadctl top`; totals must never go back when a rule
leaves. Traffic stays in these namespaces.

usage: traffic_test.py NICOFFLOADD NICOFFLOADCTL SOURCE_DIR"""

import json
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, Client, Daemon, World, port, run, tear_down, write_host  # noqa: E402


def setup_vm(world, rep, p):
    ns = f"{world.ns}-{rep}"
    run("ip", "-n", ns, "link", "set", "lo", "up")
    run("ip", "-n", ns, "link", "set", "eth0", "address", p["mac"])
    run("ip", "-n", ns, "link", "set", "eth0", "up")
    run("ip", "-n", ns, "addr", "add", p["addresses"][0], "dev", "eth0")
    run("ip", "-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
    run("ip", "-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")


def traffic_of(reply, p):
    for e in reply["result"]["ports"]:
        if e["vm"] == p["vm"] and e["nic"] == p["nic"]:
            return e["traffic"]
    return None


def main():
    daemon_bin, ctl, root = sys.argv[1], sys.argv[2], sys.argv[3]
    if os.geteuid() != 0:
        print("FAIL: needs root (CI runs as root)")
        return 1
    t = Checks()
    world = World("trf")
    daemon = None
    try:
        # No IPv6 chatter on the counted devices.
        for ns in (world.ns,):
            run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1")
        p1, p2 = port(1, "rep1"), port(2, "rep2", addresses=["10.0.2.1/32", "10.0.2.2/32"])
        for rep, p in (("rep1", p1), ("rep2", p2)):
            world.add_rep(rep)
            run("ip", "netns", "exec", f"{world.ns}-{rep}", "sysctl", "-qw",
                "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            setup_vm(world, rep, p)
        metrics_port = 21000 + os.getpid() % 20000
        host, cfg = write_host(world, daemon={"metrics_listen": f"127.0.0.1:{metrics_port}",
                                              "reconcile_interval_ms": 60000,
                                              "traffic_interval_ms": 300,
                                              "sim_device_dir": f"{world.dir}/simnic"})
        daemon = Daemon(daemon_bin, host, f"{root}/hw-profiles", f"{world.dir}/daemon.log")
        daemon.start()
        c = Client(cfg["socket"])
        for p in (p1, p2):
            r = c.call({"op": "port.add", "port": p})
            t.check(f"port.add {p['vm'][-1]}", r["ok"], r)
        vm1, vm2 = p1["vm"] + "/0", p2["vm"] + "/0"

        # 1. Hardware: 10 packets vm1 -> vm2 go through vm1's anti-spoofing
        #    allow rule (tx hw) and vm2's delivery rule (rx hw); 3 spoofed
        #    ones are dropped (tx_dropped).
        r = c.call({"op": "sim.send", "packet": {"in": vm1, "dst_ip": "10.0.2.1", "payload": 100}, "count": 10})
        t.check("sim.send: delivered to vf1 (vm2) in hardware", r["ok"] and r["result"]["sent"] == 10
                and r["result"]["delivery"] == "out of vf1" and not r["result"]["miss"], r)
        r = c.call({"op": "sim.send", "packet": {"in": vm1, "src_ip": "10.9.9.9", "dst_ip": "10.0.2.1"},
                    "count": 3})
        t.check("sim.send: a spoofed source is dropped", r["ok"] and r["result"]["delivery"] == "dropped", r)
        r = c.call({"op": "traffic", "refresh": True})
        t.check("traffic: answers", r["ok"], r)
        a, b = traffic_of(r, p1), traffic_of(r, p2)
        t.check("vm1: 10 packets taken in by hardware", a and a["tx"]["hw"]["packets"] == 10, a)
        t.check("vm1: 3 dropped by anti-spoofing", a and a["tx_dropped"]["packets"] == 3, a)
        t.check("vm2: 10 packets delivered by hardware", b and b["rx"]["hw"]["packets"] == 10, b)
        t.check("vm2: bytes counted as matched (L2 header included)",
                b and b["rx"]["hw"]["bytes"] == 10 * (14 + 20 + 8 + 100), b)
        t.check("vm1's hardware rules read: 1 allow + 2 drops + 1 delivery",
                a and a["hw_rules_read"] == 4 and a["representor_read"], a)
        t.check("vm2's: 2 allows + 2 drops + 2 deliveries", b and b["hw_rules_read"] == 6, b)
        sweep = r["result"]["sweep"]
        t.check("sweep figures", sweep["last_ports"] == 2 and sweep["last_rule_reads"] == 10
                and sweep["read_failures"] == 0 and sweep["last_error"] == "", sweep)

        # 2. Software: real pings vm1 -> vm2 through the kernel (the
        #    representors), counted on the representor netdevs.
        ping = run("ip", "netns", "exec", f"{world.ns}-rep1", "ping", "-c", "5", "-i", "0.2", "-W", "1",
                   "10.0.2.1", check=False)
        t.check("ping vm1 -> vm2 through the kernel path", ping.returncode == 0, ping.stdout + ping.stderr)
        r = c.call({"op": "traffic", "refresh": True})
        a, b = traffic_of(r, p1), traffic_of(r, p2)
        t.check("vm1: at least 5 packets reached the kernel (tx sw)", a and a["tx"]["sw"]["packets"] >= 5, a)
        t.check("vm1: at least 5 replies from the kernel (rx sw)", a and a["rx"]["sw"]["packets"] >= 5, a)
        t.check("vm2: at least 5 requests from the kernel (rx sw)", b and b["rx"]["sw"]["packets"] >= 5, b)
        t.check("vm2: rx total is hw + sw", b and b["rx"]["packets"] == b["rx"]["hw"]["packets"]
                + b["rx"]["sw"]["packets"], b)
        t.check("the hardware figures did not move with kernel traffic",
                a and a["tx"]["hw"]["packets"] == 10 and b and b["rx"]["hw"]["packets"] == 10, (a, b))

        # 3. The periodic sweep (every 300 ms) without asking; port.get shows it.
        sweeps = r["result"]["sweep"]["sweeps"]
        c.call({"op": "sim.send", "packet": {"in": vm1, "dst_ip": "10.0.2.2"}, "count": 7})
        deadline = time.time() + 5
        g = None
        while time.time() < deadline:
            g = c.call({"op": "port.get", "vm": p2["vm"], "nic": 0})
            if g["ok"] and g["result"]["traffic"] and g["result"]["traffic"]["rx"]["hw"]["packets"] == 17:
                break
            time.sleep(0.1)
        t.check("port.get: the periodic sweep saw the 7 new packets",
                g["ok"] and g["result"]["traffic"]["rx"]["hw"]["packets"] == 17, g)
        st = c.call({"op": "traffic"})["result"]["sweep"]
        t.check("periodic sweeps ran", st["sweeps"] > sweeps and 0 <= st["age_ms"] < 5000, st)

        # 4. Totals never go back: vm2 drops 10.0.2.2 (its delivery rule
        #    leaves, with 7 packets counted), then gets it again (a new rule
        #    counting from 0).
        p2b = dict(p2, addresses=["10.0.2.1/32"])
        r = c.call({"op": "port.add", "port": p2b})
        t.check("port.add: vm2 without 10.0.2.2", r["ok"], r)
        r = c.call({"op": "traffic", "refresh": True, "vm": p2["vm"]})
        b = traffic_of(r, p2)
        t.check("traffic vm filter: only vm2", len(r["result"]["ports"]) == 1, r)
        t.check("a rule that left keeps its packets in the total", b and b["rx"]["hw"]["packets"] == 17
                and b["hw_rules_read"] == 4, b)
        r = c.call({"op": "port.add", "port": p2})
        c.call({"op": "sim.send", "packet": {"in": vm1, "dst_ip": "10.0.2.2"}, "count": 2})
        b = traffic_of(c.call({"op": "traffic", "refresh": True}), p2)
        t.check("the rule made again counts on top", b and b["rx"]["hw"]["packets"] == 19, b)

        # 5. Prometheus.
        body = ""
        deadline = time.time() + 5
        want = f'nicoffload_port_rx_packets_total{{vm="{p2["vm"]}",nic="0",path="hw"}} 19'
        while time.time() < deadline:
            body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            if want in body:
                break
            time.sleep(0.2)
        t.check("metrics: rx packets hw per VM NIC", want in body,
                [line for line in body.splitlines() if "port_rx_packets" in line])
        t.check("metrics: tx dropped", f'nicoffload_port_tx_dropped_packets_total{{vm="{p1["vm"]}",nic="0"}} 3'
                in body, [line for line in body.splitlines() if "dropped" in line])
        t.check("metrics: sw path series", re.search(
            r'nicoffload_port_tx_packets_total\{vm="%s",nic="0",path="sw"\} [1-9]' % p1["vm"], body), "")
        t.check("metrics: TYPE counter", "# TYPE nicoffload_port_rx_packets_total counter" in body, "")

        # 6. nicoffloadctl top.
        sock = ["--socket", cfg["socket"]]
        out = run(ctl, "top", *sock, "--once", check=False)
        t.check("top --once: exit 0, both VMs, totals", out.returncode == 0 and p1["vm"] in out.stdout
                and p2["vm"] in out.stdout and "totals" in out.stdout, out.stdout + out.stderr)
        out = run(ctl, "top", *sock, "--count", "1", "--interval", "0.3", "--vm", p1["vm"], check=False)
        t.check("top --count 1: rates of one VM", out.returncode == 0 and "rates over" in out.stdout
                and p1["vm"] in out.stdout and p2["vm"] not in out.stdout, out.stdout + out.stderr)
        out = run(ctl, "top", *sock, "--once", "--json", check=False)
        t.check("top --json: the traffic reply", out.returncode == 0 and "ports" in json.loads(out.stdout),
                out.stdout + out.stderr)
        out = run(ctl, "sim", "send", *sock, "--in", vm1, "--dst-ip", "10.0.2.1", "--count", "4", check=False)
        t.check("sim send: text", out.returncode == 0 and "sent 4" in out.stdout and "vf1" in out.stdout,
                out.stdout + out.stderr)

        # 7. Bad input names the field.
        for req, field in (({"op": "sim.send", "packet": {"in": vm1, "dst_ip": "10.0.2.1"}, "count": 0}, "count"),
                           ({"op": "sim.send", "packet": {"in": vm1, "dst_ip": "10.0.2.1"}, "count": -1}, "count"),
                           ({"op": "sim.send", "packet": {"in": vm1, "dst_ip": "10.0.2.1"}, "count": "x"}, "count"),
                           ({"op": "sim.send"}, "packet"),
                           ({"op": "sim.send", "packet": {"in": "nosuch", "dst_ip": "10.0.2.1"}}, "packet.in"),
                           ({"op": "traffic", "refresh": 1}, "refresh"),
                           ({"op": "traffic", "extra": 1}, "extra")):
            r = c.call(req)
            t.check(f"refused, naming {field}", not r["ok"] and r["error"]["field"] == field, (req, r))

        # 8. A removed port leaves the figures and the metrics.
        r = c.call({"op": "port.remove", "vm": p1["vm"], "nic": 0})
        t.check("port.remove vm1", r["ok"], r)
        r = c.call({"op": "traffic", "refresh": True})
        t.check("traffic: vm1 gone", traffic_of(r, p1) is None and len(r["result"]["ports"]) == 1, r)
        deadline = time.time() + 5
        while time.time() < deadline:
            body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            if p1["vm"] not in body:
                break
            time.sleep(0.2)
        t.check("metrics: vm1's series gone", p1["vm"] not in body, "")
        t.check("daemon alive", c.call({"op": "status"})["ok"])
    finally:
        tear_down(t, daemon, world)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
