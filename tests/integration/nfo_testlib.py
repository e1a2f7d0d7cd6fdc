"""Helpers for the daemon integration tests: a throwaway world (network
namespace, representor veths, temp dirs), a nicoffloadd under test, and a
client of its control socket. Standard library only. Needs root."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time


class Checks:
    """Counts assertions and prints 'N passed, M failed' at the end."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, what, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}" + (f": {detail}" if detail else ""), flush=True)
        return cond

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


def run(*args, check=True, **kw):
    """Runs a fixed argv (never a shell string)."""
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


class World:
    """A network namespace standing in for the hypervisor's kernel, with one
    veth per port (the representor; its peer in a 'VM' namespace)."""

    def __init__(self, tag):
        self.ns = f"nfo-{tag}{os.getpid()}"
        self.vm_ns = []
        self.dir = tempfile.mkdtemp(prefix=f"nfo-{tag}-")
        run("ip", "netns", "add", self.ns)
        run("ip", "-n", self.ns, "link", "set", "lo", "up")

    def add_rep(self, name):
        vm = f"{self.ns}-{name}"
        run("ip", "netns", "add", vm)
        self.vm_ns.append(vm)
        run("ip", "-n", self.ns, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", vm)
        run("ip", "-n", self.ns, "link", "set", name, "up")

    def routes(self, proto=240):
        out = run("ip", "-n", self.ns, "-j", "route", "show", "proto", str(proto)).stdout
        return sorted(r["dst"] for r in json.loads(out or "[]"))

    def close(self):
        for ns in [self.ns] + self.vm_ns:
            run("ip", "netns", "del", ns, check=False)
        run("rm", "-rf", self.dir, check=False)


def write_host(world, **overrides):
    cfg = {
        "name": "hv-test",
        "hw_profile": "sim",
        "uplink": {"pci": "0000:03:00.0", "mac": "0c:42:a1:00:00:01", "vf_count": 8},
        "gateway": {"ipv4": "169.254.1.1", "mac": "ee:ee:ee:ee:ee:ee"},
        "underlay": {"mode": "routed", "default_next_hop": "192.0.2.254",
                     "next_hops": [{"ipv4": "192.0.2.254", "mac": "0c:42:a1:ff:ff:fe"}]},
        "backends": {"flow": "sim", "software_path": "kernel", "vdpa": "none"},
        "kernel": {"netns": world.ns},
        "daemon": {"metrics_listen": "", "reconcile_interval_ms": 60000,
                   "sim_device_dir": f"{world.dir}/simnic", "max_request_bytes": 65536},
        "socket": f"{world.dir}/ctl.sock",
        "state_dir": f"{world.dir}/state",
    }
    for k, v in overrides.items():
        cfg[k] = v
    path = f"{world.dir}/host.json"
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path, cfg


class Daemon:
    def __init__(self, binary, config, profile_dir, log, extra_args=()):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.config = config
        self.profile_dir = profile_dir
        self.log = log
        self.proc = None

    def start(self, timeout=20):
        with open(self.config) as f:
            sock = json.load(f)["socket"]
        self.socket = sock
        logf = open(self.log, "a")
        self.proc = subprocess.Popen([self.binary, "--config", self.config, "--profile-dir", self.profile_dir]
                                     + self.extra_args,
                                     stdout=logf, stderr=logf)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nicoffloadd exited with {self.proc.returncode}; log: {self.log}")
            try:
                Client(sock).call({"op": "status"}, timeout=2)
                return
            except (OSError, ValueError):
                time.sleep(0.05)
        raise RuntimeError("nicoffloadd did not come up")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        return self.proc.returncode if self.proc else None


class Client:
    def __init__(self, path):
        self.path = path

    def raw(self, data, timeout=10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.path)
        try:
            s.sendall(data)
        except OSError:
            pass
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
        return json.loads(buf.split(b"\n")[0]) if buf else None

    def call(self, request, timeout=10):
        return self.raw((json.dumps(request) + "\n").encode(), timeout)


def port(i, rep=None, **kw):
    p = {"vm": f"00000000-0000-4000-8000-{i:012d}", "nic": 0, "mac": f"52:54:00:00:00:{i:02x}",
         "addresses": [f"10.0.{i}.1/32"]}
    if rep:
        p["representor"] = rep
    p.update(kw)
    return p


def tear_down(t, daemon, world, log_tail=3000):
    """The end of every daemon test: SIGKILL the daemon if it still runs,
    print the end of its log when a check failed, remove the test's world."""
    if daemon:
        daemon.stop(signal.SIGKILL)
        if t.failed:
            print(open(daemon.log).read()[-log_tail:])
    world.close()


# A one-port domain as libvirt hands it to the qemu hook on stdin.
PORTS_NS = "http://nicoffload.org/xmlns/ports/1"
ONE_PORT_DOMAIN_XML = (
    "<domain type='qemu'><name>d</name><uuid>6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b</uuid>"
    f"<metadata><nfo:ports xmlns:nfo='{PORTS_NS}'><nfo:port mac='52:54:00:aa:00:01'>"
    "<nfo:address>10.0.0.1</nfo:address></nfo:port></nfo:ports></metadata>"
    "<devices><interface type='ethernet'><mac address='52:54:00:aa:00:01'/></interface></devices></domain>")
