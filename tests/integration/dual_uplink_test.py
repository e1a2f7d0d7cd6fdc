#!/usr/bin/env python3
"""Two uplinks with ECMP (issue 23, part 2; seed 000's dual-homed host).

Two top-of-rack switches (tor1, tor2) and two hypervisors, each a network
namespace with FRR (zebra + bgpd, packaging/frr/). Each hypervisor has two
uplinks, uplink0 to tor1 and uplink1 to tor2, no bonding: one eBGP session
per link, so that zebra installs every remote /32 with two next hops. On
each hypervisor nicoffloadd runs on the simulated NIC (a multiport eswitch:
both uplinks reachable from a VF's rule) with the kernel path in its
namespace and kernel.learn_routes on.

Checks:
  - every remote /32 is learned with both next hops; the daemon spreads the
    remotes over both uplinks by destination, each egress rule in hardware
    out of the uplink its next hop is on, from that uplink's MAC;
  - a ping between the hypervisors' VMs runs throughout;
  - one link cut (hv1's uplink1 down): every remote moves to uplink0, the
    rules follow, the ping keeps flowing; the link back, they spread again;
  - one session cut (hv1's session to tor1 shut down in bgpd): every remote
    moves to uplink1; the session back, they spread again;
  - the same host on a ConnectX-6 Dx profile (no multiport eswitch): the
    remotes through uplink1 take the kernel path, reason uplink-other-eswitch.
Traffic stays inside the test's namespaces. Every daemon it started is
stopped, also on failure.

usage: dual_uplink_test.py NICOFFLOADD NICOFFLOAD_SIMNIC SOURCE_DIR"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, Daemon, run  # noqa: E402
import bgp_fleet_test as fleet_lib  # noqa: E402

PID = os.getpid()
# hypervisor -> its VMs (index, address): hv2 has several, so that hv1's
# remotes land on both uplinks (the choice is a hash of the destination).
VMS = {1: [(1, "10.0.1.1")], 2: [(i, f"10.0.2.{i - 1}") for i in range(2, 10)]}
TOR_MAC = {1: "02:00:00:00:f1:01", 2: "02:00:00:00:f2:01"}


def ns_name(tag):
    return f"nfo-dual{PID}-{tag}"


def link_ip(tor, h, side):
    """The /24 between ToR `tor` and hypervisor h: .1 the host, .254 the ToR."""
    return f"192.168.{tor}{h}.{1 if side == 'hv' else 254}"


class DualFleet(fleet_lib.Fleet):
    def __init__(self, binary, simnic, src):
        super().__init__(binary, simnic, src)
        self.tors = {1: ns_name("tor1"), 2: ns_name("tor2")}

    def build(self):
        for t, tor in self.tors.items():
            self.add_ns(tor)
            run("ip", "netns", "exec", tor, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for h in VMS:
            hv = ns_name(f"hv{h}")
            self.add_ns(hv)
            for t, tor in self.tors.items():
                up = f"uplink{t - 1}"
                tor_if = f"tor{t}-hv{h}"
                run("ip", "-n", tor, "link", "add", tor_if, "type", "veth", "peer", "name", up,
                    "netns", hv)
                run("ip", "-n", tor, "link", "set", tor_if, "address", TOR_MAC[t])
                run("ip", "-n", tor, "addr", "add", f"{link_ip(t, h, 'tor')}/24", "dev", tor_if)
                run("ip", "-n", tor, "link", "set", tor_if, "up")
                run("ip", "-n", hv, "link", "set", up, "address", f"0c:42:a1:00:0{h}:0{t}")
                run("ip", "-n", hv, "addr", "add", f"{link_ip(t, h, 'hv')}/24", "dev", up)
                run("ip", "-n", hv, "link", "set", up, "up")
            # The kernel's own ECMP hashes by flow (L4), as a host would.
            run("ip", "netns", "exec", hv, "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1")
            for i, addr in VMS[h]:
                self.add_vm(hv, i, addr, f"2001:db8:{h}::{i}")

    def start_fleet_frr(self):
        # Both ToRs in one AS: a remote's two paths have the same AS path,
        # so that bgpd installs both (ECMP) without multipath-relax.
        for t, tor in self.tors.items():
            neighbors = "\n".join(f" neighbor {link_ip(t, h, 'hv')} peer-group HV" for h in VMS)
            conf = self.frr_conf(f"tor{t}", "tor.conf", {
                "HOSTNAME": f"tor{t}", "ASN": "65000", "ROUTER_ID": f"192.168.0.{t}",
                "HV_NEIGHBORS": neighbors})
            self.start_frr(tor, conf)
        for h in VMS:
            hv = ns_name(f"hv{h}")
            conf = self.frr_conf(f"hv{h}", "frr.conf", {
                "HOSTNAME": f"hv{h}", "ASN": str(65000 + h), "ROUTER_ID": link_ip(1, h, "hv"),
                "UPLINK": "uplink0", "TOR": link_ip(1, h, "tor")})
            # The second uplink and its switch, as frr.conf's comments say.
            text = open(conf).read()
            text = text.replace(
                f" neighbor {link_ip(1, h, 'tor')} peer-group TOR\n",
                f" neighbor {link_ip(1, h, 'tor')} peer-group TOR\n"
                f" neighbor {link_ip(2, h, 'tor')} peer-group TOR\n")
            for rm in ("NFO-LOCAL-VMS", "NFO-LOCAL-VMS6"):
                text = text.replace(f"route-map {rm} permit 20\n",
                                    f"route-map {rm} deny 11\n match interface uplink1\nexit\n"
                                    f"route-map {rm} permit 20\n")
            with open(conf, "w") as f:
                f.write(text)
            self.start_frr(hv, conf)

    def host_config(self, h, profile="sim"):
        d = os.path.join(self.dir, f"hv{h}")
        os.makedirs(d, exist_ok=True)
        cfg = {
            "name": f"hv{h}", "hw_profile": profile,
            "uplinks": [
                {"pci": "0000:03:00.0", "netdev": "uplink0", "mac": f"0c:42:a1:00:0{h}:01",
                 "vf_count": 16},
                {"pci": "0000:03:00.1", "netdev": "uplink1", "mac": f"0c:42:a1:00:0{h}:02"},
            ],
            "gateway": {"ipv4": "169.254.1.1", "mac": "ee:ee:ee:ee:ee:ee"},
            "underlay": {"mode": "routed"},
            "kernel": {"netns": ns_name(f"hv{h}"), "learn_routes": True, "learn_protocols": ["bgp"]},
            "backends": {"flow": "sim", "software_path": "kernel", "vdpa": "none"},
            "daemon": {"metrics_listen": "", "reconcile_interval_ms": 60000,
                       "sim_device_dir": f"{d}/simnic-{profile}"},
            "socket": f"{d}/ctl.sock", "state_dir": f"{d}/state-{profile}",
        }
        path = os.path.join(d, "host.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def start_daemon(self, h, profile="sim"):
        d = os.path.join(self.dir, f"hv{h}")
        path = self.host_config(h, profile)
        daemon = fleet_lib.Daemon(self.binary, path, os.path.join(self.src, "hw-profiles"),
                                  f"{d}/daemon.log")
        daemon.start()
        self.daemons[h] = daemon
        for i, addr in VMS[h]:
            r = self.call(h, {"op": "port.add", "port": {
                "vm": f"00000000-0000-4000-8000-{i:012d}", "nic": 0,
                "mac": f"52:54:00:00:00:{i:02x}", "addresses": [f"{addr}/32"],
                "representor": f"rep{i}"}})
            if not r.get("ok"):
                raise RuntimeError(f"port.add on hv{h}: {r}")

    def egress(self, h):
        """remote /32 -> (placement, uplink index, source MAC, destination MAC)
        of hv h's routed egress rules, as the daemon reports them."""
        out = {}
        for r in self.call(h, {"op": "rules"}).get("result", []):
            if r["class"] != "routed-egress":
                continue
            dst = next((p["spec"]["dst"] for p in r["pattern"] if p.get("type") == "ipv4"), None)
            port = next((a for a in r["actions"] if a["type"] == "represented_port"), {})
            spec = port.get("spec", port)
            src = next((a["mac"] for a in r["actions"] if a["type"] == "set_mac_src"), None)
            mac = next((a["mac"] for a in r["actions"] if a["type"] == "set_mac_dst"), None)
            out[dst] = (r["placement"], spec.get("uplink", 0), src, mac, r.get("reason", ""))
        return out

    def vtysh(self, ns, *commands):
        vty = os.path.join(self.dir, f"{ns}.vty")
        args = ["ip", "netns", "exec", ns, "vtysh", "--vty_socket", vty]
        for c in commands:
            args += ["-c", c]
        return run(*args, check=False)


def remotes_of(h):
    return sorted(a for hh, lst in VMS.items() if hh != h for _, a in lst)


def spread_ok(egress, remotes, h):
    """Every remote in hardware, out of the uplink whose ToR MAC it writes,
    from that uplink's MAC; and both uplinks used."""
    if sorted(egress) != remotes:
        return False
    used = set()
    for dst, (placement, uplink, src, mac, _) in egress.items():
        if placement != "hw" or mac != TOR_MAC[uplink + 1] or src != f"0c:42:a1:00:0{h}:0{uplink + 1}":
            return False
        used.add(uplink)
    return used == {0, 1}


def all_on(egress, remotes, uplink):
    return sorted(egress) == remotes and all(
        e[0] == "hw" and e[1] == uplink and e[3] == TOR_MAC[uplink + 1] for e in egress.values())


class Pinger:
    """A ping that runs while the links change: 20 per second."""

    def __init__(self, src_ns, dst):
        self.proc = subprocess.Popen(["ip", "netns", "exec", src_ns, "ping", "-n", "-i", "0.05",
                                      "-W", "1", dst], stdout=subprocess.PIPE, text=True)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        sent = recv = 0
        for line in out.splitlines():
            if "packets transmitted" in line:
                parts = line.split(",")
                sent = int(parts[0].split()[0])
                recv = int(parts[1].split()[0])
        return sent, recv


def main():
    binary, simnic, src = sys.argv[1:4]
    if os.geteuid() != 0:
        print("FAIL: needs root (network namespaces, FRR)")
        return 1
    if not os.access(f"{fleet_lib.FRR}/bgpd", os.X_OK):
        print(f"FAIL: FRR is not installed ({fleet_lib.FRR}/bgpd); tools/bootstrap installs it")
        return 1
    t = Checks()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    fleet = DualFleet(binary, simnic, src)
    pinger = None
    try:
        fleet.build()
        fleet.start_fleet_frr()
        for h in VMS:
            fleet.start_daemon(h)
        remotes = remotes_of(1)
        hv1 = ns_name("hv1")

        def ecmp_routes():
            out = run("ip", "-n", hv1, "route", "show", "proto", "bgp", check=False).stdout
            return out.count("nexthop via")

        n = fleet_lib.wait_for(lambda: ecmp_routes() >= 2 * len(remotes), 60)
        t.check("hv1: zebra installs every remote /32 with two next hops (ECMP over both links)",
                n, run("ip", "-n", hv1, "route", "show", "proto", "bgp", check=False).stdout)
        got = fleet_lib.wait_for(lambda: spread_ok(fleet.egress(1), remotes, 1), 30)
        t.check("hv1: the remotes spread over both uplinks by destination, each egress rule in "
                "hardware out of its next hop's uplink, with its ToR's and its uplink's MACs",
                got, json.dumps(fleet.egress(1)))
        before = {dst: e[1] for dst, e in fleet.egress(1).items()}
        st = fleet.call(1, {"op": "status"})["result"]["routes"]
        t.check("hv1: status counts the remotes per uplink",
                [u["netdev"] for u in st["uplinks"]] == ["uplink0", "uplink1"] and
                sum(u["remotes"] for u in st["uplinks"]) == len(remotes) and
                all(u["remotes"] > 0 for u in st["uplinks"]), json.dumps(st["uplinks"]))
        # Deterministic: a restart of the daemon chooses the same uplinks.
        fleet.daemons[1].stop()
        fleet.daemons[1].start()
        again = fleet_lib.wait_for(lambda: spread_ok(fleet.egress(1), remotes, 1), 30)
        t.check("hv1: a restart chooses the same uplink for every remote",
                again and {d: e[1] for d, e in fleet.egress(1).items()} == before,
                json.dumps(fleet.egress(1)))

        src_ns = f"{hv1}-vm1"
        for _, addr in VMS[2]:
            p = run("ip", "netns", "exec", src_ns, "ping", "-c1", "-W2", addr, check=False)
            t.check(f"vm1 (hv1) pings {addr}", p.returncode == 0, p.stdout[-200:])
        target = VMS[2][0][1]
        pinger = Pinger(src_ns, target)

        # 1. One link cut: hv1's uplink1 (to tor2) goes down.
        time.sleep(1)
        cut = time.monotonic()
        run("ip", "-n", hv1, "link", "set", "uplink1", "down")
        moved = fleet_lib.wait_for(lambda: all_on(fleet.egress(1), remotes, 0), 30)
        took = time.monotonic() - cut
        t.check(f"link cut: every remote's rule moves to uplink0 (in {took * 1000:.0f} ms, "
                "polled through the socket)", moved, json.dumps(fleet.egress(1)))
        time.sleep(1)
        run("ip", "-n", hv1, "link", "set", "uplink1", "up")
        back = fleet_lib.wait_for(lambda: spread_ok(fleet.egress(1), remotes, 1), 90)
        t.check("link back: the BGP session comes up again and the remotes spread again",
                back and {d: e[1] for d, e in fleet.egress(1).items()} == before,
                json.dumps(fleet.egress(1)))

        # 2. One session cut: hv1's session to tor1 shut down in bgpd.
        tor1_ip = link_ip(1, 1, "tor")
        r = fleet.vtysh(hv1, "configure terminal", "router bgp 65001",
                        f"neighbor {tor1_ip} shutdown")
        t.check("vtysh shuts the session to tor1 down", r.returncode == 0, r.stdout + r.stderr)
        moved = fleet_lib.wait_for(lambda: all_on(fleet.egress(1), remotes, 1), 30)
        t.check("session cut: every remote's rule moves to uplink1, in hardware (multiport "
                "eswitch)", moved, json.dumps(fleet.egress(1)))
        fleet.vtysh(hv1, "configure terminal", "router bgp 65001", f"no neighbor {tor1_ip} shutdown")
        back = fleet_lib.wait_for(lambda: spread_ok(fleet.egress(1), remotes, 1), 90)
        t.check("session back: the remotes spread again", back, json.dumps(fleet.egress(1)))
        time.sleep(2)  # traffic after the last change too
        sent, recv = pinger.stop()
        pinger = None
        # A link cut loses what was in flight on it; the rest flows through
        # the other uplink. At 20 per second, a loss of 2 s is 40 packets.
        t.check(f"the ping kept flowing through both cuts ({recv} of {sent} answered)",
                sent >= 60 and sent - recv <= 40 and recv * 2 > sent, f"{recv}/{sent}")

        # 3. Without a multiport eswitch (ConnectX-6 Dx): the remotes through
        #    uplink1 take the kernel path, and say why.
        fleet.daemons[1].stop()
        fleet.start_daemon(1, "connectx-6dx")

        def dx_ok():
            e = fleet.egress(1)
            return sorted(e) == remotes and all(
                (v[0] == "hw") if v[1] == 0 else (v[0] == "sw" and "multiport" in v[4])
                for v in e.values()) and {v[1] for v in e.values()} == {0, 1}
        ok = fleet_lib.wait_for(dx_ok, 30)
        t.check("connectx-6dx: a remote through uplink1 is placed sw, reason uplink-other-eswitch",
                ok, json.dumps(fleet.egress(1)))
        ex = fleet.call(1, {"op": "status"})["result"]["rules"]
        t.check("connectx-6dx: status counts those rules in sw",
                ex["sw"] >= sum(1 for e in fleet.egress(1).values() if e[1] == 1), json.dumps(ex))
        p = run("ip", "netns", "exec", src_ns, "ping", "-c1", "-W2", target, check=False)
        t.check("connectx-6dx: the kernel path carries the traffic", p.returncode == 0,
                p.stdout[-200:])
    except Exception as e:  # noqa: BLE001 - the test's edge: report, then clean up
        import traceback
        traceback.print_exc()
        t.check("no exception", False, repr(e))
    finally:
        if pinger:
            pinger.stop()
        if t.failed:
            fleet_lib.print_failure_state(fleet, {h: ns_name(f"hv{h}") for h in fleet.daemons})
        fleet.close()
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
