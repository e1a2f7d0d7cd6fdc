#!/usr/bin/env python3
"""The qemu hook end to end with a real libvirtd and QEMU (TCG): install the
hook, start diskless domains carrying nicoffload metadata, check the ports and
rules in nicoffloadd; destroy and check they are gone; a port nicoffloadd
refuses makes `virsh start` fail with the hook's message and leaves nothing
behind; a slow and a dead daemon give a bounded, clear failure (and "allow"
lets the domain start); a libvirtd restart runs `reconnect`, which re-asserts
the ports and keeps the domain running; `virsh save` + `virsh restore` runs
the `restore` XML filter; a reconnect in which nicoffloadd refuses a port
leaves the domain running; a <target dev> that is no interface name is
refused by the hook, and nicoffloadd keeps running. (`migrate` needs a second
host: unit tests only.) Needs root, libvirtd, virtlogd and
qemu-system-x86 (tools/bootstrap installs them).

The daemon runs with backends.software_path "none": libvirt creates the taps
(which stand for the representors) in the root namespace, and a test may only
program kernel objects into namespaces it owns. The software path itself is
covered by swpath_namespaces_packets and daemon_socket_lifecycle; here the
kernel object checked is libvirt's tap.

usage: libvirt_hook_test.py NICOFFLOADD NICOFFLOAD_HOOK NICOFFLOADCTL SOURCE_DIR"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, Client, Daemon, World, run, write_host  # noqa: E402

VIRSH = ["virsh", "-c", "qemu:///system"]
HOOK_PATH = "/etc/libvirt/hooks/qemu.d/50-nicoffload"
NS = "http://nicoffload.org/xmlns/ports/1"


def virsh(*args, timeout=120):
    return subprocess.run(VIRSH + list(args), capture_output=True, text=True, timeout=timeout)


def pids_of(name):
    out = run("pidof", name, check=False).stdout.split()
    return [int(p) for p in out]


def wait_libvirtd(timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if virsh("list", timeout=10).returncode == 0:
            return True
        time.sleep(0.2)
    return False


def domain_xml(name, dom_uuid, nics):
    """nics: [(mac, tap, [addresses])]. A diskless TCG domain, 64 MiB."""
    ifaces = "".join(
        f"<interface type='ethernet'><mac address='{mac}'/><target dev='{tap}' managed='yes'/>"
        f"<model type='virtio'/></interface>" for mac, tap, _ in nics)
    ports = "".join(
        f"<nfo:port mac='{mac}'>" + "".join(f"<nfo:address>{a}</nfo:address>" for a in addrs) + "</nfo:port>"
        for mac, _, addrs in nics)
    return (f"<domain type='qemu'><name>{name}</name><uuid>{dom_uuid}</uuid>"
            f"<metadata><nfo:ports xmlns:nfo='{NS}'>{ports}</nfo:ports></metadata>"
            "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
            f"<devices>{ifaces}<console type='pty'/></devices></domain>")


def link_exists(name):
    return run("ip", "link", "show", name, check=False).returncode == 0


def main():
    daemon_bin, hook_bin, ctl, root = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    if os.geteuid() != 0:
        print("FAIL: needs root (CI runs as root)")
        return 1
    for tool in ("virsh", "libvirtd", "virtlogd", "qemu-system-x86_64"):
        if not shutil.which(tool):
            print(f"FAIL: {tool} is missing (tools/bootstrap installs libvirt-daemon-system and qemu-system-x86)")
            return 1
    t = Checks()
    world = World("lvh")
    pid = os.getpid() % 100000
    daemon = None
    started_virtlogd = started_libvirtd = False
    domains = []
    hook_backup = None
    installer = f"{root}/libvirt-hooks/install-hook.sh"
    try:
        host, cfg = write_host(world, backends={"flow": "sim", "software_path": "none", "vdpa": "none"})
        daemon = Daemon(daemon_bin, host, f"{root}/hw-profiles", f"{world.dir}/daemon.log")
        daemon.start()
        c = Client(cfg["socket"])

        if not pids_of("virtlogd"):
            run("virtlogd", "-d")
            started_virtlogd = True
        if not pids_of("libvirtd"):
            run("libvirtd", "-d")
            started_libvirtd = True
        t.check("libvirtd answers", wait_libvirtd())

        hook_cfg = f"{world.dir}/hook.json"

        def write_hook_cfg(policy="fail", timeout_ms=2000):
            with open(hook_cfg, "w") as f:
                json.dump({"socket": cfg["socket"], "timeout_ms": timeout_ms, "on_daemon_down": policy}, f)

        write_hook_cfg()
        if os.path.lexists(HOOK_PATH):
            hook_backup = f"{world.dir}/50-nicoffload.orig"
            shutil.copy2(HOOK_PATH, hook_backup, follow_symlinks=False)
        inst = run(installer, "--binary", hook_bin, "--config", hook_cfg, check=False)
        t.check("install-hook.sh installs the hook", inst.returncode == 0 and os.access(HOOK_PATH, os.X_OK),
                inst.stderr)
        t.check("install-hook.sh signals libvirtd", "SIGHUP" in inst.stdout, inst.stdout)
        time.sleep(1)  # libvirtd re-reads its hook directory on SIGHUP
        t.check("libvirtd survives SIGHUP", wait_libvirtd())

        def define(tag, nics):
            name = f"nfo-hook-{tag}-{pid}"
            dom_uuid = str(uuid.uuid4())
            path = f"{world.dir}/{name}.xml"
            with open(path, "w", encoding="utf-8") as f:
                f.write(domain_xml(name, dom_uuid, nics))
            r = virsh("define", path)
            if r.returncode == 0:
                domains.append(name)
            t.check(f"define {name}", r.returncode == 0, r.stderr)
            return name, dom_uuid

        def ports_of(dom_uuid):
            r = c.call({"op": "port.list"})
            return sorted((p["port"]["nic"], p["port"].get("representor")) for p in r["result"]
                          if p["port"]["vm"] == dom_uuid)

        tap_a = [f"nfa{pid}0", f"nfa{pid}1"]
        a_nics = [("52:54:00:7a:00:01", tap_a[0], ["10.77.0.1/32"]),
                  ("52:54:00:7a:00:02", tap_a[1], ["10.77.1.1/32", "10.77.1.2"])]
        a, a_uuid = define("a", a_nics)

        # --- start: the ports, their rules, the taps ---
        r = virsh("start", a)
        t.check("virsh start with the hook", r.returncode == 0, r.stderr)
        t.check("both ports exist in nicoffloadd, keyed by the domain UUID and interface index",
                ports_of(a_uuid) == [(0, tap_a[0]), (1, tap_a[1])], ports_of(a_uuid))
        g = c.call({"op": "port.get", "vm": a_uuid, "nic": 1})
        t.check("port 1 installed with its hardware rules",
                g["ok"] and g["result"]["state"] == "installed" and g["result"]["rules"]["hw"] >= 5, g)
        rules = c.call({"op": "rules"})["result"]
        a_addrs = ("10.77.0.1", "10.77.1.1", "10.77.1.2")

        def delivered(rules):
            return sorted(str(item.get("spec", {}).get("dst")) for x in rules if x["class"] == "local-delivery"
                          for item in x["pattern"] if str(item.get("spec", {}).get("dst")) in a_addrs)

        t.check("local delivery rules for every address", delivered(rules) == sorted(a_addrs), delivered(rules))
        t.check("anti-spoofing rules for the ports", any(x["class"] == "anti-spoofing" for x in rules))
        t.check("libvirt's taps (the representors) exist", all(link_exists(x) for x in tap_a))

        # --- destroy: everything gone ---
        r = virsh("destroy", a)
        t.check("virsh destroy", r.returncode == 0, r.stderr)
        t.check("ports gone after destroy", ports_of(a_uuid) == [], ports_of(a_uuid))
        rules = c.call({"op": "rules"})["result"]
        t.check("rules gone after destroy", delivered(rules) == [] and not any(
            x["class"] == "anti-spoofing" for x in rules), rules)
        t.check("taps gone after destroy", not any(link_exists(x) for x in tap_a))

        # --- a domain defined from what `nicoffloadctl domain-xml` prints ---
        c_name, c_uuid, c_tap = f"nfo-hook-c-{pid}", str(uuid.uuid4()), f"nfc{pid}0"
        out = run(ctl, "domain-xml", "--vm", c_uuid, "--mac", "52:54:00:7c:00:01", "--address", "10.77.5.1/32",
                  "--source", c_tap, check=False)
        t.check("nicoffloadctl domain-xml", out.returncode == 0 and "<metadata>" in out.stdout, out.stderr)
        iface, _, meta = out.stdout.partition("<metadata>")
        c_path = f"{world.dir}/{c_name}.xml"
        with open(c_path, "w") as f:
            f.write(f"<domain type='qemu'><name>{c_name}</name><uuid>{c_uuid}</uuid><metadata>{meta}"
                    "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                    "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
                    f"<devices>{iface}<console type='pty'/></devices></domain>")
        r = virsh("define", c_path)
        if r.returncode == 0:
            domains.append(c_name)
        t.check("libvirt accepts the domain-xml snippets", r.returncode == 0, r.stderr)
        r = virsh("start", c_name)
        t.check("the domain-xml domain starts with its port", r.returncode == 0 and ports_of(c_uuid) == [(0, c_tap)],
                r.stderr + str(ports_of(c_uuid)))
        virsh("destroy", c_name)
        t.check("and stops without it", ports_of(c_uuid) == [])

        # --- a port nicoffloadd refuses: the start fails with the hook's message ---
        r = virsh("start", a)
        t.check("start again", r.returncode == 0, r.stderr)
        b_nics = [("52:54:00:7b:00:01", f"nfb{pid}0", ["10.77.9.1/32"]),
                  ("52:54:00:7b:00:02", f"nfb{pid}1", ["10.77.0.1/32"])]  # A's address
        b, b_uuid = define("b", b_nics)
        r = virsh("start", b)
        t.check("a domain whose IP is taken does not start", r.returncode != 0, r.stdout)
        t.check("virsh shows the hook's line", f"nicoffload: {b}: port 52:54:00:7b:00:02" in r.stderr
                and "10.77.0.1" in r.stderr, r.stderr)
        t.check("nothing left of the refused domain", ports_of(b_uuid) == [], ports_of(b_uuid))
        t.check("the refused domain is not running", virsh("domstate", b).stdout.strip() == "shut off")
        t.check("the other domain's ports are intact", len(ports_of(a_uuid)) == 2)

        # --- a <target dev> that is no interface name: the hook refuses it, nicoffloadd never sees it ---
        e_name, e_uuid = define("e", [("52:54:00:7e:00:01", "\u00e9" * 60, ["10.77.8.1/32"])])
        r = virsh("start", e_name)
        t.check("a domain whose tap name is no interface name does not start", r.returncode != 0, r.stdout)
        t.check("virsh shows the hook's line naming the target dev",
                f"nicoffload: {e_name}:" in r.stderr and "interface[0].target.dev" in r.stderr, r.stderr)
        status = c.call({"op": "status"})
        t.check("nicoffloadd still answers after that domain's start", status.get("ok") is True, status)
        t.check("nicoffloadd is still running", daemon.proc.poll() is None)
        t.check("nothing of that domain in nicoffloadd", ports_of(e_uuid) == [], ports_of(e_uuid))

        # --- libvirtd restart: reconnect re-asserts the ports, the VM keeps running ---
        for n in (0, 1):
            c.call({"op": "port.remove", "vm": a_uuid, "nic": n})
        t.check("ports removed behind libvirt's back", ports_of(a_uuid) == [])
        # Meanwhile another VM took the address of A's first port: reconnect
        # gets a refusal for it, which must not make libvirt kill A.
        thief = {"vm": str(uuid.uuid4()), "nic": 0, "mac": "52:54:00:7f:00:01", "addresses": ["10.77.0.1/32"]}
        r = c.call({"op": "port.add", "port": thief})
        t.check("another VM's port takes 10.77.0.1", r.get("ok") is True, r)
        for p in pids_of("libvirtd"):
            os.kill(p, signal.SIGTERM)
        deadline = time.time() + 20
        while pids_of("libvirtd") and time.time() < deadline:
            time.sleep(0.1)
        run("libvirtd", "-d")
        t.check("libvirtd restarted", wait_libvirtd())
        deadline = time.time() + 10
        while ports_of(a_uuid) != [(1, tap_a[1])] and time.time() < deadline:
            time.sleep(0.1)
        t.check("reconnect re-asserted the port nicoffloadd accepts", ports_of(a_uuid) == [(1, tap_a[1])],
                ports_of(a_uuid))
        time.sleep(1)  # libvirt kills a domain whose reconnect hook fails: give it the time to
        t.check("the domain survived a reconnect with a refused port (degraded, not killed)",
                virsh("domstate", a).stdout.strip() == "running", virsh("domstate", a).stdout)
        c.call({"op": "port.remove", "vm": thief["vm"], "nic": 0})

        # --- save / restore: `restore begin` is an XML filter (as `migrate begin`) ---
        save = f"{world.dir}/a.save"
        r = virsh("save", a, save)
        t.check("virsh save", r.returncode == 0, r.stderr)
        t.check("ports gone while the domain is saved", ports_of(a_uuid) == [], ports_of(a_uuid))
        r = virsh("restore", save)
        t.check("virsh restore through the hook's XML filter", r.returncode == 0, r.stderr)
        t.check("ports back after restore", ports_of(a_uuid) == [(0, tap_a[0]), (1, tap_a[1])], ports_of(a_uuid))
        t.check("the restored domain runs", virsh("domstate", a).stdout.strip() == "running")
        os.unlink(save)

        # --- a slow daemon: bounded failure ---
        virsh("destroy", a)
        daemon.proc.send_signal(signal.SIGSTOP)
        t0 = time.time()
        r = virsh("start", a)
        slow = time.time() - t0
        t.check("start fails while nicoffloadd does not answer", r.returncode != 0)
        t.check("the hook says the daemon did not answer", "did not answer" in r.stderr, r.stderr)
        # prepare, then stopped and release (which never fail), each at most timeout_ms
        t.check("bounded: prepare+stopped+release within 3 x timeout_ms + slack", slow < 12, f"{slow:.1f} s")
        daemon.proc.send_signal(signal.SIGKILL)  # it never saw a request
        daemon.proc.send_signal(signal.SIGCONT)
        daemon.proc.wait(timeout=20)

        # --- a dead daemon ---
        t0 = time.time()
        r = virsh("start", a)
        t.check("start fails when nicoffloadd is not running", r.returncode != 0)
        t.check("the hook says nicoffloadd is not running",
                f"nicoffload: {a}: nicoffloadd unavailable" in r.stderr and "not running" in r.stderr, r.stderr)
        t.check("fails fast when nothing listens", time.time() - t0 < 5, f"{time.time() - t0:.1f} s")
        write_hook_cfg(policy="allow")
        r = virsh("start", a)
        t.check("on_daemon_down=allow: the domain starts without offload", r.returncode == 0, r.stderr)
        r = virsh("destroy", a)
        t.check("destroy succeeds with the daemon down (stopped/release never fail)", r.returncode == 0, r.stderr)
    except Exception as e:  # noqa: BLE001 — report and clean up
        t.check("no exception", False, repr(e))
    finally:
        for name in domains:
            virsh("destroy", name)
            virsh("undefine", name)
        if hook_backup:
            shutil.copy2(hook_backup, HOOK_PATH, follow_symlinks=False)
            run("kill", "-HUP", *map(str, pids_of("libvirtd")), check=False)
        else:
            run(installer, "--uninstall", check=False)
        if daemon and daemon.proc and daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGCONT)
            daemon.stop()
        if started_libvirtd:
            for p in pids_of("libvirtd"):
                os.kill(p, signal.SIGTERM)
        if started_virtlogd:
            for p in pids_of("virtlogd"):
                os.kill(p, signal.SIGTERM)
        world.close()
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
