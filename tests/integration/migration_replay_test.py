#!/usr/bin/env python3
"""Live migration as libvirt drives the qemu hook, replayed with the real
nicoffload-hook binary against two real nicoffloadd (a source and a
destination hypervisor, each on its own simulated NIC with a warm vDPA
pool). Two libvirtd instances cannot migrate a domain to the same host
(libvirt refuses a destination with the source's host UUID), so the hook
calls are replayed in libvirt's order (docs: hooks.html, "migrate"):

  destination: migrate begin (the domain XML in, the XML QEMU will use out)
               -> prepare begin -> start begin -> started begin
  source, when the migration succeeded: stopped end -> release end
  destination, when it failed:          stopped end -> release end

Checks: the destination claims a pool device at `migrate`, before QEMU
starts, and its rewritten XML names that device; the later operations
change nothing; the source keeps its device until `stopped`/`release`,
which give it back to its pool; a failed migration leaves the source
untouched and returns the destination's device to its pool.

Issue 22: an aborted migration where libvirt never sends `stopped`/
`release` to the destination (it fails before QEMU starts): the ports
`migrate` claimed are tentative and go away after the destination's
daemon.tentative_ttl_ms (short here), a kill -9 of its daemon meanwhile
included; and a hook that timed out against a stalled (SIGSTOP) daemon
leaves no ghost port once the daemon resumes (the requests carry a
deadline). Needs root.

usage: migration_replay_test.py NICOFFLOADD NICOFFLOAD_HOOK SOURCE_DIR"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, Client, Daemon, World, tear_down, write_host  # noqa: E402

NS = "http://nicoffload.org/xmlns/ports/1"
POOL = 4
TTL_MS = 3000  # daemon.tentative_ttl_ms: how long an unconfirmed migrate claim lives


def domain_xml(name, dom_uuid, nics):
    """A domain as libvirt hands it to the hook: vdpa interfaces on the
    source's device paths, nicoffload metadata for each."""
    ifaces = "".join(
        f"<interface type='vdpa'><mac address='{mac}'/><source dev='{path}'/>"
        f"<model type='virtio'/><alias name='net{i}'/></interface>" for i, (mac, _, path) in enumerate(nics))
    ports = "".join(f"<nfo:port mac='{mac}'><nfo:address>{a}</nfo:address></nfo:port>" for mac, a, _ in nics)
    return (f"<domain type='kvm'><name>{name}</name><uuid>{dom_uuid}</uuid>"
            f"<metadata><nfo:ports xmlns:nfo='{NS}'>{ports}</nfo:ports></metadata>"
            "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
            f"<devices>{ifaces}</devices></domain>")


class Hypervisor:
    def __init__(self, tag, daemon_bin, root, t):
        self.world = World(tag)
        self.host, self.cfg = write_host(
            self.world,
            backends={"flow": "sim", "software_path": "none", "nic": "sim", "vdpa": "sim"},
            vdpa={"pool": {"size": POOL, "low_water": 1}},
            daemon={"metrics_listen": "", "reconcile_interval_ms": 60000,
                    "sim_device_dir": f"{self.world.dir}/simnic", "max_request_bytes": 65536,
                    "tentative_ttl_ms": TTL_MS})
        self.daemon = Daemon(daemon_bin, self.host, f"{root}/hw-profiles", f"{self.world.dir}/daemon.log")
        try:
            self.daemon.start()
        except Exception:
            print(open(f"{self.world.dir}/daemon.log").read()[-2000:])
            tear_down(t, self.daemon, self.world)
            raise
        self.client = Client(self.cfg["socket"])
        self.hook_cfg = f"{self.world.dir}/hook.json"
        with open(self.hook_cfg, "w") as f:
            json.dump({"socket": self.cfg["socket"], "timeout_ms": 5000}, f)
        self.t = t

    def status(self):
        return self.client.call({"op": "status"})["result"]

    def pool(self):
        return self.status()["vdpa_pool"]

    def vdpa_ops(self):
        return self.client.call({"op": "counters"})["result"]["vdpa"]["operations"]

    def wait_pool(self, ready, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.pool()["ready"] == ready:
                return True
            time.sleep(0.05)
        return False

    def port(self, vm, nic):
        r = self.client.call({"op": "port.get", "vm": vm, "nic": nic})
        return r["result"] if r["ok"] else None

    def hook(self, hook_bin, domain, op, sub, xml, config=None):
        """The hook as libvirtd runs it: argv, the XML on stdin, a fresh process."""
        env = dict(os.environ, NICOFFLOAD_HOOK_CONFIG=config or self.hook_cfg)
        return subprocess.run([hook_bin, domain, op, sub, "-"], input=xml, capture_output=True, text=True,
                              env=env, timeout=30)


def main():
    daemon_bin, hook_bin, root = sys.argv[1], sys.argv[2], sys.argv[3]
    if os.geteuid() != 0:
        print("FAIL: needs root (CI runs as root)")
        return 1
    t = Checks()
    src = dst = None
    try:
        src = Hypervisor("msrc", daemon_bin, root, t)
        dst = Hypervisor("mdst", daemon_bin, root, t)
        t.check("source pool filled", src.wait_pool(POOL), src.pool())
        t.check("destination pool filled", dst.wait_pool(POOL), dst.pool())

        name = f"nfo-mig-{os.getpid()}"
        dom_uuid = str(uuid.uuid4())
        nics = [(f"52:54:00:6d:00:0{i}", f"10.77.0.{i + 1}/32") for i in range(2)]
        # Start on the source, as defined (the stable link paths are what a
        # domain definition names; the hook does not rewrite at prepare).
        defined = domain_xml(name, dom_uuid, [(m, a, "/dev/null") for m, a in nics])
        for op in ("prepare", "start", "started"):
            r = src.hook(hook_bin, name, op, "begin", defined)
            t.check(f"source {op} exits 0", r.returncode == 0, r.stderr)
        src_ports = [src.port(dom_uuid, i) for i in range(2)]
        t.check("source ports installed with pool devices",
                all(p and p["state"] == "installed" and p["devices"]["vdpa"]["name"].startswith("nfovf")
                    for p in src_ports), src_ports)
        src_paths = [p["devices"]["vdpa"]["path"] for p in src_ports]
        live = domain_xml(name, dom_uuid, [(m, a, p) for (m, a), p in zip(nics, src_paths)])

        # Destination: `migrate` claims the devices before QEMU starts.
        dst_ops = dst.vdpa_ops()
        r = dst.hook(hook_bin, name, "migrate", "begin", live)
        t.check("destination migrate exits 0", r.returncode == 0, r.stderr)
        dst_ports = [dst.port(dom_uuid, i) for i in range(2)]
        t.check("destination ports exist after migrate", all(dst_ports), dst_ports)
        t.check("migrate claims them tentatively, for the configured time",
                all(p and 0 < p.get("tentative", {}).get("expires_in_s", 0) <= TTL_MS / 1000 for p in dst_ports),
                dst_ports)
        dst_paths = [p["devices"]["vdpa"]["path"] for p in dst_ports] if all(dst_ports) else []
        t.check("destination devices came from its pool (a MAC set each, nothing created)",
                dst.vdpa_ops() - dst_ops == 2 and dst.pool()["claimed"] == 2, (dst.vdpa_ops() - dst_ops, dst.pool()))
        try:
            doc = ET.fromstring(r.stdout)
            out_paths = [i.find("source").get("dev") for i in doc.iter("interface")]
            t.check("migrate prints the XML with the destination's device paths",
                    out_paths == dst_paths and out_paths != src_paths, (out_paths, dst_paths, src_paths))
            t.check("the rest of the XML is kept", [i.find("alias").get("name") for i in doc.iter("interface")]
                    == ["net0", "net1"])
        except ET.ParseError as e:
            t.check("migrate prints a domain XML", False, f"{e}: {r.stdout[:300]}")
            doc = None
        migrated = r.stdout
        ops_before = dst.vdpa_ops()
        for op in ("prepare", "start", "started"):
            r = dst.hook(hook_bin, name, op, "begin", migrated)
            t.check(f"destination {op} exits 0", r.returncode == 0, r.stderr)
        t.check("prepare/start/started after migrate change no device", dst.vdpa_ops() == ops_before,
                dst.vdpa_ops() - ops_before)
        t.check("prepare confirmed the claims", all("tentative" not in dst.port(dom_uuid, i) for i in range(2)))
        t.check("the source keeps its ports and devices during the migration",
                [src.port(dom_uuid, i)["devices"]["vdpa"]["path"] for i in range(2)] == src_paths)

        # Success: the source releases at stopped/release only.
        for op, sub in (("stopped", "end"), ("release", "end")):
            r = src.hook(hook_bin, name, op, sub, live)
            t.check(f"source {op} exits 0", r.returncode == 0, r.stderr)
        t.check("source ports gone after release", src.port(dom_uuid, 0) is None and src.port(dom_uuid, 1) is None)
        t.check("source devices back in its pool", src.wait_pool(POOL), src.pool())
        t.check("destination still runs the domain", all(dst.port(dom_uuid, i) for i in range(2)))

        # A failed migration of a second domain: the destination cleans up,
        # the source is untouched.
        name2 = name + "-b"
        uuid2 = str(uuid.uuid4())
        nics2 = [("52:54:00:6d:01:01", "10.77.1.1/32")]
        xml2 = domain_xml(name2, uuid2, [(m, a, "/dev/null") for m, a in nics2])
        for op in ("prepare", "start", "started"):
            src.hook(hook_bin, name2, op, "begin", xml2)
        before = src.port(uuid2, 0)
        ready = dst.pool()["ready"]
        r = dst.hook(hook_bin, name2, "migrate", "begin", xml2)
        t.check("second migrate exits 0", r.returncode == 0, r.stderr)
        dst.hook(hook_bin, name2, "prepare", "begin", r.stdout)
        t.check("the destination claimed a pool device", dst.pool()["ready"] == ready - 1, dst.pool())
        for op in ("stopped", "release"):
            r = dst.hook(hook_bin, name2, op, "end", xml2)
            t.check(f"failed migration: destination {op} exits 0", r.returncode == 0, r.stderr)
        t.check("failed migration: destination port gone", dst.port(uuid2, 0) is None)
        t.check("failed migration: destination device back in its pool",
                dst.pool()["ready"] == ready, dst.pool())
        after = src.port(uuid2, 0)
        t.check("failed migration: the source port is untouched",
                after is not None and after["devices"] == before["devices"], (before, after))

        # Issue 22: a migration aborted before QEMU starts on the destination:
        # libvirt sends it no stopped/release. Its claims expire after the TTL,
        # a kill -9 of the destination's daemon meanwhile included.
        name3 = name + "-c"
        uuid3 = str(uuid.uuid4())
        nics3 = [("52:54:00:6d:02:01", "10.77.2.1/32")]
        xml3 = domain_xml(name3, uuid3, [(m, a, "/dev/null") for m, a in nics3])
        for op in ("prepare", "start", "started"):
            src.hook(hook_bin, name3, op, "begin", xml3)
        before = src.port(uuid3, 0)
        ready = dst.pool()["ready"]
        r = dst.hook(hook_bin, name3, "migrate", "begin", xml3)
        t.check("aborted migration: migrate exits 0", r.returncode == 0, r.stderr)
        claimed = dst.port(uuid3, 0)
        t.check("aborted migration: the destination holds a tentative port with a pool device",
                claimed is not None and "tentative" in claimed and dst.pool()["ready"] == ready - 1,
                (claimed, dst.pool()))
        dst.daemon.stop(signal.SIGKILL)
        dst.daemon.start()
        kept = dst.port(uuid3, 0)
        t.check("the claim and its expiry survive a kill -9 of the daemon",
                kept is not None and 0 < kept.get("tentative", {}).get("expires_in_s", 0) <= TTL_MS / 1000, kept)
        deadline = time.time() + TTL_MS / 1000 + 10
        while time.time() < deadline and dst.port(uuid3, 0) is not None:
            time.sleep(0.1)
        t.check("aborted migration: the destination's port is gone after the TTL", dst.port(uuid3, 0) is None)
        t.check("aborted migration: its device is back in the pool", dst.wait_pool(ready), (ready, dst.pool()))
        st = dst.status()
        t.check("aborted migration: counted, its VF free",
                st["ports_tentative"]["expired"] == 1 and st["ports_tentative"]["held"] == 0
                and st["vfs"]["assigned"] == 2, (st["ports_tentative"], st["vfs"]))
        t.check("aborted migration: the confirmed domain is untouched", all(dst.port(dom_uuid, i) for i in range(2)))
        after = src.port(uuid3, 0)
        t.check("aborted migration: the source port is untouched",
                after is not None and after["devices"] == before["devices"], (before, after))

        # Issue 22: a hook that timed out against a stalled daemon leaves no
        # ghost port when the daemon resumes: its requests carried a deadline.
        name4 = name + "-d"
        uuid4 = str(uuid.uuid4())
        xml4 = domain_xml(name4, uuid4, [("52:54:00:6d:03:01", "10.77.3.1/32", "/dev/null")])
        quick_cfg = f"{dst.world.dir}/hook-quick.json"
        with open(quick_cfg, "w") as f:
            json.dump({"socket": dst.cfg["socket"], "timeout_ms": 500}, f)
        dst.daemon.proc.send_signal(signal.SIGSTOP)
        try:
            r = dst.hook(hook_bin, name4, "prepare", "begin", xml4, config=quick_cfg)
        finally:
            dst.daemon.proc.send_signal(signal.SIGCONT)
        t.check("stalled daemon: prepare fails on its time bound", r.returncode == 1 and "nicoffloadd" in r.stderr,
                (r.returncode, r.stderr))
        time.sleep(0.5)  # the daemon resumes and reads the queued requests
        t.check("stalled daemon: no ghost port once it resumes", dst.port(uuid4, 0) is None, dst.port(uuid4, 0))
        log = open(f"{dst.world.dir}/daemon.log").read()
        t.check("stalled daemon: the late request was refused for its deadline", "deadline_ms" in log, log[-1500:])

        # Restarting the destination (a daemon upgrade mid-life) adopts all.
        dst.daemon.stop()
        dst.daemon.start()
        t.check("restarted destination: no device operation",
                dst.vdpa_ops() == 0 and dst.port(dom_uuid, 0) is not None, dst.vdpa_ops())
    finally:
        for hv in (dst, src):
            if hv:
                tear_down(t, hv.daemon, hv.world)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
