#!/usr/bin/env python3
"""nicoffloadctl trace end to end: nicoffloadd on the simulated NIC over its
real socket, with its kernel software path in a namespace of the test's own,
and real packets to check the kernel part of each trace. Needs root.

The world: a "hypervisor" namespace with two representors (veths whose
peers are the NICs of two "VM" namespaces) and an "ext0" veth to a third
namespace that a kernel route (10.0.99.0/24, not ours) reaches. The profile
is the sim's without dec_ttl, so that every local delivery rule sits in
software: VM to VM traffic misses in hardware and the kernel carries it.
For each trace whose hardware verdict is "to the representor", a real
packet is sent the same way and the device it leaves the hypervisor by
(tx counters) must be the trace's kernel route device; proxy ARP is checked
with a real ARP request from a VM's NIC. Traffic stays in these namespaces.

usage: trace_test.py NICOFFLOADD NICOFFLOADCTL SOURCE_DIR"""

import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, Client, Daemon, World, port, run, tear_down, write_host  # noqa: E402

GATEWAY_MAC = "ee:ee:ee:ee:ee:ee"


def vm_ns(world, rep):
    return f"{world.ns}-{rep}"


def setup_vm(world, rep, p):
    ns = vm_ns(world, rep)
    addr = p["addresses"][0]
    run("ip", "-n", ns, "link", "set", "lo", "up")
    run("ip", "-n", ns, "link", "set", "eth0", "address", p["mac"])
    run("ip", "-n", ns, "link", "set", "eth0", "up")
    run("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
    run("ip", "-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
    run("ip", "-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")


def tx_packets(ns, dev):
    out = run("ip", "-n", ns, "-j", "-s", "link", "show", dev).stdout
    return json.loads(out)[0]["stats64"]["tx"]["packets"]


def egress_of_real_packets(world, devs, src_ns, dst, count=5):
    """Pings dst from src_ns; the hypervisor devices among `devs` (not the
    one the VM sends on: replies and ICMP errors go back through it) whose
    tx counter grew by at least `count`: those that carried them."""
    before = {d: tx_packets(world.ns, d) for d in devs}
    ping = run("ip", "netns", "exec", src_ns, "ping", "-c", str(count), "-i", "0.2", "-W", "1", dst, check=False)
    after = {d: tx_packets(world.ns, d) for d in devs}
    grown = [d for d in devs if after[d] - before[d] >= count]
    return grown, ping.returncode == 0


ARP_SCRIPT = r"""
import socket, struct, sys, time
ifname, sha, spa, tpa = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', '')), socket.inet_aton(sys.argv[3]), socket.inet_aton(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0))
frame = b'\xff' * 6 + sha + b'\x08\x06' + struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + sha + spa + b'\x00' * 6 + tpa
s.send(frame)
s.settimeout(0.2)
deadline = time.time() + 1.5
while time.time() < deadline:
    try:
        f = s.recv(128)
    except socket.timeout:
        continue
    if len(f) >= 42 and f[12:14] == b'\x08\x06' and struct.unpack('!H', f[20:22])[0] == 2 and f[28:32] == tpa:
        print(f[22:28].hex(':'))
        sys.exit(0)
print('none')
"""


def real_arp(world, rep, p, tpa):
    """Sends a real ARP request from the VM's NIC; the MAC that answered, or None."""
    out = run("ip", "netns", "exec", vm_ns(world, rep), sys.executable, "-c", ARP_SCRIPT,
              "eth0", p["mac"], p["addresses"][0].split("/")[0], tpa, check=False)
    mac = out.stdout.strip()
    return None if mac in ("", "none") else mac


SNIFF_SCRIPT = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((sys.argv[1], 0))
s.settimeout(0.2)
print('ready', flush=True)
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    ihl = (f[14] & 0x0f) * 4
    if len(f) < 14 + ihl + 16 or f[23] != 17:
        continue
    udp = 14 + ihl
    dport = struct.unpack('!H', f[udp + 2:udp + 4])[0]
    vni = int.from_bytes(f[udp + 12:udp + 15], 'big')
    inner_ip = udp + 16 + 14
    print(socket.inet_ntoa(f[30:34]), dport, vni, socket.inet_ntoa(f[inner_ip + 16:inner_ip + 20]), flush=True)
    sys.exit(0)
print('none', flush=True)
"""


UDP_SCRIPT = r"""
import socket, struct, sys
ifname, src_mac, dst_mac, src, dst, count = sys.argv[1:7]
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
udp = struct.pack('!HHHH', 40000, 5001, 8 + 32, 0) + b'x' * 32
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
frame = bytes.fromhex(dst_mac.replace(':', '')) + bytes.fromhex(src_mac.replace(':', '')) + b'\x08\x00' + ip + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for _ in range(int(count)):
    s.send(frame)
"""


def send_udp(world, rep, p, src, dst, count=5):
    """Real UDP frames from the VM's NIC, with the source address given."""
    run("ip", "netns", "exec", vm_ns(world, rep), sys.executable, "-c", UDP_SCRIPT, "eth0", p["mac"],
        GATEWAY_MAC, src, dst, str(count))
    time.sleep(0.3)


def main():
    daemon_bin, ctl, root = sys.argv[1], sys.argv[2], sys.argv[3]
    if os.geteuid() != 0:
        print("FAIL: needs root (CI runs as root)")
        return 1
    t = Checks()
    world = World("trc")
    daemon = None
    dpdk_dirs = []
    try:
        # No IPv6 chatter (router solicitations, MLD) on the counted devices.
        run("ip", "netns", "exec", world.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1")
        p1, p2 = port(1, "rep1"), port(2, "rep2")
        for rep, p in (("rep1", p1), ("rep2", p2)):
            world.add_rep(rep)
            setup_vm(world, rep, p)
        # A network the kernel routes and the rules do not know.
        ext = f"{world.ns}-ext"
        run("ip", "netns", "add", ext)
        world.vm_ns.append(ext)
        run("ip", "-n", world.ns, "link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", ext)
        run("ip", "-n", world.ns, "addr", "add", "10.0.99.254/24", "dev", "ext0")
        run("ip", "-n", world.ns, "link", "set", "ext0", "up")
        run("ip", "-n", ext, "link", "set", "eth0", "up")
        run("ip", "-n", ext, "addr", "add", "10.0.99.1/24", "dev", "eth0")
        run("ip", "-n", ext, "route", "add", "default", "via", "10.0.99.254")

        # The sim profile without dec_ttl: delivery and egress rules go to software.
        profiles = f"{world.dir}/profiles"
        shutil.copytree(f"{root}/hw-profiles", profiles)
        prof = json.load(open(f"{profiles}/sim.json"))
        prof["name"] = "sim-no-dec-ttl"
        prof["actions"]["dec_ttl"] = {"supported": False, "source": "nicoffload: trace_test.py removes it on purpose"}
        json.dump(prof, open(f"{profiles}/sim-no-dec-ttl.json", "w"))
        host, cfg = write_host(world, hw_profile="sim-no-dec-ttl")
        daemon = Daemon(daemon_bin, host, profiles, f"{world.dir}/daemon.log")
        daemon.start()
        c = Client(cfg["socket"])
        for p in (p1, p2):
            r = c.call({"op": "port.add", "port": p})
            t.check(f"port.add {p['addresses'][0]}", r["ok"], r)
        sock = ["--socket", cfg["socket"]]
        rules_before = c.call({"op": "rules"})["result"]
        routes_before = world.routes()

        def trace(*args):
            out = run(ctl, "trace", *sock, "--json", *args, check=False)
            if out.returncode != 0:
                t.check(f"trace {' '.join(args)} exits 0", False, out.stderr)
                return None
            return json.loads(out.stdout)

        vm1 = p1["vm"] + "/0"
        # 1. VM to VM: the delivery rule is in software (no dec_ttl); the
        #    kernel routes it out of rep2, and so do real packets.
        tr = trace("--in", vm1, "--dst-ip", "10.0.2.1", "--proto", "icmp")
        if tr:
            hw = tr["hardware"]
            t.check("vm->vm: anti-spoofing allow in hw, then a miss",
                    hw["steps"][0]["class"] == "anti-spoofing" and hw["steps"][0]["placement"] == "hw"
                    and hw["steps"][1]["rule"] is None, hw["steps"])
            byp = hw["steps"][1]["bypassed"]
            t.check("vm->vm: the local delivery rule is named as placed sw with the profile's reason",
                    len(byp) == 1 and byp[0]["class"] == "local-delivery" and byp[0]["placement"] == "sw"
                    and "dec_ttl" in byp[0]["reason"], byp)
            t.check("vm->vm: hardware hands it to rep1", hw["verdict"]["kind"] == "representor"
                    and hw["verdict"]["representor"] == "rep1", hw["verdict"])
            k = tr["kernel"]
            t.check("vm->vm: kernel route via rep2", k["verdict"]["kind"] == "kernel-route"
                    and k["verdict"]["dev"] == "rep2", k)
            t.check("vm->vm: neighbour is the VM's MAC (permanent)",
                    any(s["step"] == "neighbour" and s["mac"] == p2["mac"] and s["state"] == "permanent"
                        for s in k["steps"]), k["steps"])
            grown, ok = egress_of_real_packets(world, ["rep2", "ext0"], vm_ns(world, "rep1"), "10.0.2.1")
            t.check("vm->vm: real packets leave by the trace's device", ok and grown == [k["verdict"]["dev"]],
                    (grown, ok))

        # 2. To a network only the kernel knows: out of ext0.
        tr = trace("--in", "rep1", "--dst-ip", "10.0.99.1")
        if tr:
            k = tr["kernel"]
            t.check("ext: kernel route via ext0", k["verdict"]["kind"] == "kernel-route"
                    and k["verdict"]["dev"] == "ext0", k)
            grown, ok = egress_of_real_packets(world, ["rep2", "ext0"], vm_ns(world, "rep1"), "10.0.99.1")
            t.check("ext: real packets leave by the trace's device", ok and grown == [k["verdict"]["dev"]],
                    (grown, ok))

        # 3. To nowhere: the kernel has no route; real packets go nowhere.
        tr = trace("--in", "rep1", "--dst-ip", "203.0.113.9")
        if tr:
            t.check("no route: the kernel says so", tr["kernel"]["verdict"]["kind"] == "no-route", tr["kernel"])
            grown, ok = egress_of_real_packets(world, ["rep2", "ext0"], vm_ns(world, "rep1"), "203.0.113.9")
            t.check("no route: real packets leave by no device", not ok and grown == [], (grown, ok))

        # 4. ARP: trapped in hardware, answered by proxy ARP with the gateway MAC, for real too.
        tr = trace("--in", vm1, "--tpa", "10.0.2.1")
        if tr:
            t.check("arp: trapped in hw", tr["hardware"]["steps"][0]["class"] == "arp-trap"
                    and tr["hardware"]["steps"][0]["placement"] == "hw", tr["hardware"])
            v = tr["kernel"]["verdict"]
            t.check("arp: proxy-ARP reply with the gateway MAC", v["kind"] == "proxy-arp-reply"
                    and v["mac"] == GATEWAY_MAC, v)
            answered = real_arp(world, "rep1", p1, "10.0.2.1")
            t.check("arp: the real kernel answers with the trace's MAC", answered == v.get("mac"), answered)
        tr = trace("--in", vm1, "--tpa", "203.0.113.9")
        if tr:
            v = tr["kernel"]["verdict"]
            t.check("arp to nowhere: no answer", v["kind"] == "no-answer", v)
            answered = real_arp(world, "rep1", p1, "203.0.113.9")
            t.check("arp to nowhere: the real kernel is silent", answered is None, answered)

        # 5. Spoofed source: dropped in hardware; the kernel is not reached.
        tr = trace("--in", vm1, "--src-ip", "10.0.7.7", "--dst-ip", "10.0.2.1")
        if tr:
            t.check("spoofed: dropped in hw", tr["hardware"]["verdict"]["kind"] == "drop"
                    and tr["kernel"] is None and tr["leaves"] == "dropped in hardware", tr)

        # 6. The text form names the rule, its placement and where it leaves.
        out = run(ctl, "trace", *sock, "--in", vm1, "--dst-ip", "10.0.2.1", check=False)
        t.check("text: exit 0", out.returncode == 0, out.stderr)
        t.check("text: hardware and kernel parts",
                "placed sw" in out.stdout and "kernel route via dev rep2" in out.stdout
                and out.stdout.rstrip().splitlines()[-1].startswith("leaves"), out.stdout)

        # 7. Bad input: a clear error naming the field, non-zero exit.
        for args, field, code in ((["--in", vm1, "--dst-ip", "10.0.2.1", "--src-mac", "52:54:zz"], "packet.src_mac", 2),
                                  (["--in", "nosuch", "--dst-ip", "10.0.2.1"], "packet.in", 3),
                                  (["--in", "uplink", "--outer-src-ip", "192.0.2.2", "--vni", "16777216",
                                    "--src-ip", "10.9.9.9", "--dst-ip", "10.0.1.1"], "packet.vni", 2),
                                  (["--in", vm1, "--dst-ip", "10.0.2.300"], "packet.dst_ip", 2)):
            out = run(ctl, "trace", *sock, *args, check=False)
            t.check(f"error names {field}, exit {code}", out.returncode == code and field in out.stderr,
                    (out.returncode, out.stderr))
        r = c.call({"op": "trace", "packet": {"in": vm1, "dst_ip": "10.0.2.1"}, "extra": 1})
        t.check("trace op: unknown request field refused", not r["ok"] and r["error"]["field"] == "extra", r)
        r = c.call({"op": "trace"})
        t.check("trace op: packet required", not r["ok"] and r["error"]["field"] == "packet", r)

        # Read-only: nothing installed changed.
        t.check("rules unchanged by traces", c.call({"op": "rules"})["result"] == rules_before)
        t.check("kernel routes unchanged by traces", world.routes() == routes_before)
        st = c.call({"op": "status"})
        t.check("daemon still answers", st["ok"], st)
        daemon.stop()

        # 8. VXLAN on UDP 8472 with the ConnectX-5 profile: the egress rule is
        #    in software (the profile encapsulates on 4789 only); the kernel
        #    routes via the VNI's VXLAN device, whose FDB names the remote
        #    VTEP, and a real packet leaves the uplink encapsulated to it.
        peer = f"{world.ns}-peer"
        run("ip", "netns", "add", peer)
        world.vm_ns.append(peer)
        run("ip", "-n", world.ns, "link", "add", "uplink0", "type", "veth", "peer", "name", "eth0", "netns", peer)
        run("ip", "-n", world.ns, "addr", "add", "192.0.2.1/24", "dev", "uplink0")
        run("ip", "-n", world.ns, "link", "set", "uplink0", "up")
        run("ip", "-n", peer, "addr", "add", "192.0.2.2/24", "dev", "eth0")
        run("ip", "-n", peer, "link", "set", "eth0", "up")
        host3, cfg3 = write_host(
            world, hw_profile="connectx-5",
            uplink={"pci": "0000:03:00.0", "netdev": "uplink0", "mac": "0c:42:a1:00:00:01", "vf_count": 8},
            underlay={"mode": "vxlan", "vtep": "192.0.2.1", "vxlan_udp_port": 8472, "default_vni": 100,
                      "default_next_hop": "192.0.2.254",
                      "next_hops": [{"ipv4": "192.0.2.254", "mac": "0c:42:a1:ff:ff:fe"}]},
            socket=f"{world.dir}/ctl3.sock", state_dir=f"{world.dir}/state3")
        daemon = Daemon(daemon_bin, host3, profiles, f"{world.dir}/daemon3.log")
        daemon.start()
        c = Client(cfg3["socket"])
        for p in (p1, p2):
            r = c.call({"op": "port.add", "port": p})
            t.check(f"vxlan: port.add {p['addresses'][0]}", r["ok"], r)
        r = c.call({"op": "remote.add", "remote": {"address": "10.20.1.1/32", "vtep": "192.0.2.2", "vni": 100}})
        t.check("vxlan: remote.add", r["ok"], r)
        out = run(ctl, "trace", "--socket", cfg3["socket"], "--json", "--in", vm1, "--dst-ip", "10.20.1.1",
                  check=False)
        t.check("vxlan: trace exits 0", out.returncode == 0, out.stderr)
        if out.returncode == 0:
            tr = json.loads(out.stdout)
            byp = tr["hardware"]["steps"][-1]["bypassed"]
            t.check("vxlan: the egress rule is sw for UDP 8472",
                    len(byp) == 1 and byp[0]["class"] == "vxlan-egress" and "8472" in byp[0]["reason"], byp)
            v = tr["kernel"]["verdict"]
            t.check("vxlan: kernel route via nfo-vx100 to VTEP 192.0.2.2",
                    v.get("dev") == "nfo-vx100" and v.get("remote_vtep") == "192.0.2.2", tr["kernel"])
            fdb = [s for s in tr["kernel"]["steps"] if s["step"] == "fdb"]
            t.check("vxlan: the FDB step names the VTEP", len(fdb) == 1 and fdb[0]["remote_vteps"] == ["192.0.2.2"],
                    tr["kernel"]["steps"])
            sniff = subprocess.Popen(["ip", "netns", "exec", peer, sys.executable, "-c", SNIFF_SCRIPT, "eth0", "4"],
                                     stdout=subprocess.PIPE, text=True)
            sniff.stdout.readline()  # ready
            run("ip", "netns", "exec", vm_ns(world, "rep1"), "ping", "-c", "2", "-i", "0.2", "-W", "1",
                "10.20.1.1", check=False)
            seen = sniff.stdout.readline().split()
            sniff.wait(timeout=10)
            t.check("vxlan: a real packet leaves encapsulated to the trace's VTEP, port and VNI, inner dst intact",
                    seen == [v.get("remote_vtep"), "8472", "100", "10.20.1.1"], seen)
        daemon.stop()

        # 9. The same host on backends.flow = dpdk (DPDK EAL on net_null
        #    vdevs, whose PMD refuses every rule): trace evaluates the rules
        #    as the daemon holds them, all in software now, whatever the backend.
        prefix = f"nfotrc{os.getpid()}"
        dpdk_dirs.append(f"/var/run/dpdk/{prefix}")
        eal = ["--no-huge", "--no-pci", "-m", "512", "--no-shconf", "--file-prefix", prefix, "--no-telemetry",
               "--log-level=*:error"] + sum((["--vdev", f"net_null{i}"] for i in range(5)), [])
        # A PCI address of its own: a daemon on DPDK takes the real-hardware
        # device lock (/run/nicoffload/<PCI>.lock), and other tests may run
        # one at the same time.
        host2, cfg2 = write_host(world, hw_profile="sim",
                                 uplink={"pci": "0000:7d:00.0", "mac": "0c:42:a1:00:00:01", "vf_count": 4},
                                 backends={"flow": "dpdk", "software_path": "kernel", "vdpa": "none"},
                                 dpdk={"eal_args": eal, "uplink_port_id": 0, "first_representor_port_id": 1},
                                 socket=f"{world.dir}/ctl2.sock", state_dir=f"{world.dir}/state2")
        daemon = Daemon(daemon_bin, host2, profiles, f"{world.dir}/daemon2.log")
        daemon.start(timeout=60)
        c = Client(cfg2["socket"])
        for p in (p1, p2):
            r = c.call({"op": "port.add", "port": p})
            t.check(f"dpdk: port.add {p['addresses'][0]}", r["ok"], r)
        out = run(ctl, "trace", "--socket", cfg2["socket"], "--json", "--in", vm1, "--dst-ip", "10.0.2.1",
                  check=False)
        t.check("dpdk: trace exits 0", out.returncode == 0, out.stderr)
        if out.returncode == 0:
            tr = json.loads(out.stdout)
            hw = tr["hardware"]
            t.check("dpdk: the backend is named", hw["backend"] == "dpdk", hw["backend"])
            byp = hw["steps"][0]["bypassed"] if hw["steps"] else []
            t.check("dpdk: group 0 misses; its anti-spoofing rule is sw, refused by the device",
                    len(hw["steps"]) == 1 and hw["steps"][0]["rule"] is None
                    and any(b["class"] == "anti-spoofing" and b["placement"] == "sw"
                            and "refused" in b["reason"] for b in byp), hw)
            t.check("dpdk: the kernel routes it via rep2", tr["kernel"]["verdict"].get("dev") == "rep2",
                    tr["kernel"])
        # A spoofed source: no hardware rule drops it here, the kernel's
        # strict reverse-path filter does; real frames agree.
        out = run(ctl, "trace", "--socket", cfg2["socket"], "--json", "--in", vm1, "--src-ip", "10.0.7.7",
                  "--dst-ip", "10.0.2.1", check=False)
        t.check("dpdk spoofed: trace exits 0", out.returncode == 0, out.stderr)
        if out.returncode == 0:
            v = json.loads(out.stdout)["kernel"]["verdict"]
            t.check("dpdk spoofed: dropped by the kernel", v["kind"] == "dropped" and "reverse-path" in v["text"], v)
            before = tx_packets(world.ns, "rep2")
            send_udp(world, "rep1", p1, "10.0.7.7", "10.0.2.1")
            spoofed_out = tx_packets(world.ns, "rep2") - before
            before = tx_packets(world.ns, "rep2")
            send_udp(world, "rep1", p1, "10.0.1.1", "10.0.2.1")
            legit_out = tx_packets(world.ns, "rep2") - before
            t.check("dpdk spoofed: real spoofed frames are dropped, legitimate ones pass",
                    spoofed_out == 0 and legit_out >= 5, (spoofed_out, legit_out))
    except Exception as e:  # noqa: BLE001 - reported as a failure, with the daemon's log
        t.check("the test ran to its end", False, repr(e))
    finally:
        tear_down(t, daemon, world)
        for d in dpdk_dirs:
            shutil.rmtree(d, ignore_errors=True)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
