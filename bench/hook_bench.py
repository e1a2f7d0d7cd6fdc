#!/usr/bin/env python3
"""Hook latency: `prepare` + `start` of a 4-NIC domain, run as libvirt runs
it (a fresh nicoffload-hook process per operation, domain XML on stdin),
against nicoffloadd on the simulated NIC (software path "none"), 32 domains
at once; p50 / p99 over many rounds. Then, if libvirtd and QEMU are there,
`virsh start` of a diskless TCG domain with and without the hook, in the same
run. Needs root. Prints the figures (docs/benchmarks.md).

usage: hook_bench.py NICOFFLOADD NICOFFLOAD_HOOK SOURCE_DIR [ROUNDS] [--no-virsh]"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from nfo_testlib import Daemon, World, run, write_host  # noqa: E402

NS = "http://nicoffload.org/xmlns/ports/1"
CONCURRENCY = 32
NICS = 4


def domain_xml(name, dom_uuid, nics):
    ifaces = "".join(
        f"<interface type='ethernet'><mac address='{mac}'/><target dev='{tap}' managed='yes'/>"
        f"<model type='virtio'/></interface>" for mac, tap, _ in nics)
    ports = "".join(f"<nfo:port mac='{mac}'><nfo:address>{a}</nfo:address></nfo:port>" for mac, _, a in nics)
    return (f"<domain type='qemu'><name>{name}</name><uuid>{dom_uuid}</uuid>"
            f"<metadata><nfo:ports xmlns:nfo='{NS}'>{ports}</nfo:ports></metadata>"
            "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
            f"<devices>{ifaces}<console type='pty'/></devices></domain>")


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def hook(binary, env, name, op, sub, xml):
    r = subprocess.run([binary, name, op, sub, "-"], input=xml, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"hook {op} {name}: exit {r.returncode}: {r.stderr.strip()}")


def hook_latency(hook_bin, env, rounds):
    doms = []
    for v in range(CONCURRENCY):
        nics = [(f"52:54:00:bb:{v:02x}:{n:02x}", f"bt{v}n{n}", f"10.88.{v}.{n + 1}/32") for n in range(NICS)]
        name = f"bench-{v}"
        doms.append((name, domain_xml(name, str(uuid.uuid4()), nics)))
    lat, prep = [], []
    lock = threading.Lock()
    errors = []

    def vm(name, xml, barrier):
        try:
            barrier.wait()
            t0 = time.perf_counter()
            hook(hook_bin, env, name, "prepare", "begin", xml)
            t1 = time.perf_counter()
            hook(hook_bin, env, name, "start", "begin", xml)
            t2 = time.perf_counter()
            with lock:
                lat.append((t2 - t0) * 1000)
                prep.append((t1 - t0) * 1000)
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))

    for _ in range(rounds):
        barrier = threading.Barrier(CONCURRENCY)
        threads = [threading.Thread(target=vm, args=(n, x, barrier)) for n, x in doms]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise RuntimeError(errors[0])
        # Untimed: release, so that every round starts from the same state.
        rel = [threading.Thread(target=hook, args=(hook_bin, env, n, "release", "end", x)) for n, x in doms]
        for th in rel:
            th.start()
        for th in rel:
            th.join()
    # The hook process alone: the same 32 x 2 runs on a domain without
    # nicoffload metadata (no daemon call): what spawning the hook costs.
    bare, bare_lock = [], threading.Lock()

    def bare_vm(xml, barrier):
        x = xml.replace(NS, "http://example.org/not-ours")
        barrier.wait()
        t0 = time.perf_counter()
        hook(hook_bin, env, "bare", "prepare", "begin", x)
        hook(hook_bin, env, "bare", "start", "begin", x)
        with bare_lock:
            bare.append((time.perf_counter() - t0) * 1000)

    for _ in range(max(1, rounds // 3)):
        barrier = threading.Barrier(CONCURRENCY)
        threads = [threading.Thread(target=bare_vm, args=(x, barrier)) for _, x in doms]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    # One domain alone, as a reference without contention.
    solo = []
    for _ in range(rounds * 4):
        name, xml = doms[0]
        t0 = time.perf_counter()
        hook(hook_bin, env, name, "prepare", "begin", xml)
        hook(hook_bin, env, name, "start", "begin", xml)
        solo.append((time.perf_counter() - t0) * 1000)
        hook(hook_bin, env, name, "release", "end", xml)
    return lat, prep, solo, bare


def virsh(*args):
    return subprocess.run(["virsh", "-c", "qemu:///system"] + list(args), capture_output=True, text=True,
                          timeout=120)


def virsh_start_times(root, hook_bin, hook_cfg, workdir, n):
    started = []
    if not shutil.which("libvirtd") or not shutil.which("qemu-system-x86_64"):
        print("virsh start: libvirtd or QEMU missing, not measured")
        return None
    for d in ("virtlogd", "libvirtd"):
        if not run("pidof", d, check=False).stdout.strip():
            run(d, "-d")
            started.append(d)
    for _ in range(100):
        if virsh("list").returncode == 0:
            break
        time.sleep(0.2)
    installer = f"{root}/libvirt-hooks/install-hook.sh"
    hook_path = "/etc/libvirt/hooks/qemu.d/50-nicoffload"
    if os.path.lexists(hook_path):
        print("virsh start: a hook is installed already, not measured")
        return None
    name = f"nfo-bench-{os.getpid()}"
    tap = f"nfbench{os.getpid() % 10000}"
    path = f"{workdir}/{name}.xml"
    with open(path, "w") as f:
        f.write(domain_xml(name, str(uuid.uuid4()), [("52:54:00:bc:00:01", tap, "10.89.0.1/32")]))
    virsh("define", path)
    out = {}
    try:
        for label in ("without hook", "with hook"):
            if label == "with hook":
                run(installer, "--binary", hook_bin, "--config", hook_cfg)
                time.sleep(1)
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                r = virsh("start", name)
                if r.returncode != 0:
                    raise RuntimeError(f"virsh start: {r.stderr.strip()}")
                times.append((time.perf_counter() - t0) * 1000)
                virsh("destroy", name)
            out[label] = times
    finally:
        virsh("destroy", name)
        virsh("undefine", name)
        run(installer, "--uninstall", check=False)
        for d in started:
            for p in run("pidof", d, check=False).stdout.split():
                os.kill(int(p), signal.SIGTERM)
    return out


def main():
    daemon_bin, hook_bin, root = sys.argv[1], sys.argv[2], sys.argv[3]
    rest = sys.argv[4:]
    rounds = int(rest[0]) if rest and rest[0].isdigit() else 50
    world = World("hbench")
    daemon = None
    try:
        profile = json.load(open(f"{root}/hw-profiles/sim.json"))
        profile["sriov"]["max_vfs"] = 256  # 32 domains x 4 NICs need 128 VFs
        profile_path = f"{world.dir}/sim.json"
        with open(profile_path, "w") as f:
            json.dump(profile, f)
        host, cfg = write_host(world, hw_profile=profile_path,
                               uplink={"pci": "0000:03:00.0", "mac": "0c:42:a1:00:00:01", "vf_count": 256},
                               backends={"flow": "sim", "software_path": "none", "vdpa": "none"})
        daemon = Daemon(daemon_bin, host, f"{root}/hw-profiles", f"{world.dir}/daemon.log")
        daemon.start()
        hook_cfg = f"{world.dir}/hook.json"
        with open(hook_cfg, "w") as f:
            json.dump({"socket": cfg["socket"], "timeout_ms": 5000}, f)
        env = dict(os.environ, NICOFFLOAD_HOOK_CONFIG=hook_cfg)
        lat, prep, solo, bare = hook_latency(hook_bin, env, rounds)
        print(f"hook prepare+start, {NICS} NICs, {CONCURRENCY} domains at once, {rounds} rounds "
              f"({len(lat)} samples): p50 {pct(lat, 50):.2f} ms, p99 {pct(lat, 99):.2f} ms, "
              f"max {max(lat):.2f} ms (target p99 <= 10 ms)")
        print(f"  of which prepare: p50 {pct(prep, 50):.2f} ms, p99 {pct(prep, 99):.2f} ms")
        print(f"  the same 32 x (prepare+start) without metadata (hook processes only, no daemon call): "
              f"p50 {pct(bare, 50):.2f} ms, p99 {pct(bare, 99):.2f} ms")
        print(f"hook prepare+start, one domain alone ({len(solo)} samples): p50 {pct(solo, 50):.2f} ms, "
              f"p99 {pct(solo, 99):.2f} ms")
        if "--no-virsh" not in rest:
            v = virsh_start_times(root, hook_bin, hook_cfg, world.dir, 10)
            if v:
                a, b = statistics.median(v["without hook"]), statistics.median(v["with hook"])
                print(f"virsh start (diskless TCG, 1 NIC), median of 10: without hook {a:.0f} ms, "
                      f"with hook {b:.0f} ms, difference {b - a:+.0f} ms")
    finally:
        if daemon:
            daemon.stop()
        world.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
