#!/usr/bin/env python3
"""The Debian package, installed for real (issue 16): tools/package builds the
.deb from the build tree and runs lintian; apt-get installs it; the installed
unit verifies (systemd-analyze) and is neither enabled nor started, no libvirt
hook appears; the installed nicoffloadd --check passes on the shipped
host.json and host-check tells the truth about this machine; the installed
daemon runs on the simulated backends (its own socket, state and netns) and
the installed nicoffloadctl drives it; then apt-get purge, and nothing the
package installed or made is left (files, directories, the unit, users).

Removal and the libvirt hook (issue 22): `dpkg -r` takes out the --config
wrapper that nicoffload-install-hook wrote in /etc/libvirt/hooks/qemu.d and
nothing else there. It runs in a private mount and PID namespace where
/etc/libvirt/hooks is an empty tmpfs, so the machine's own hooks and libvirt
daemons are never touched. A wrapper left in another hooks directory, run as
libvirt runs it once the package is gone, exits 0 (the domain may start) and
says that nicoffload-hook is not installed.

The installed binaries run in a private mount namespace where the source
tree's hw-profiles/ is an empty tmpfs, so they can only have found the
profiles in /usr/share/nicoffload/hw-profiles.

Refuses (fails, touching nothing) when nicoffload is already installed or
/etc/nicoffload, /var/lib/nicoffload or /run/nicoffload exist: the test must
never remove an operator's install, config or state.

  package_install_test.py SOURCE_DIR BUILD_DIR
Needs root. Prints 'N passed, M failed'."""

import ctypes
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, World, run, write_host  # noqa: E402

SRC, BUILD = sys.argv[1], sys.argv[2]
PKG = "nicoffload"
UNIT = "/lib/systemd/system/nicoffloadd.service"
OURS = ["/etc/nicoffload", "/var/lib/nicoffload", "/run/nicoffload"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("NICOFFLOAD_")}
ENV["DEBIAN_FRONTEND"] = "noninteractive"
# Capability numbers (linux/capability.h), for the daemon's CapBnd.
CAPS = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_SYS_RAWIO": 17, "CAP_SYS_ADMIN": 21,
        "CAP_SYS_NICE": 23}

# A domain with nicoffload ports (so the hook has to reach the daemon).
DOMAIN_XML = ("<domain type='qemu'><name>d</name><uuid>6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b</uuid>"
              "<metadata><nfo:ports xmlns:nfo='http://nicoffload.org/xmlns/ports/1'>"
              "<nfo:port mac='52:54:00:aa:00:01'><nfo:address>10.0.0.1</nfo:address></nfo:port></nfo:ports>"
              "</metadata><devices><interface type='ethernet'><mac address='52:54:00:aa:00:01'/></interface>"
              "</devices></domain>")
# dpkg -r with the hooks directory a private tmpfs (argv: the hook.json for
# the wrapper). Fixed text: the path arrives as an argument, never as code.
REMOVE_IN_NAMESPACE = r'''
set -u
cfg=$1
h=/etc/libvirt/hooks
mount -t tmpfs nfo-hooks "$h" || { echo "mount-failed"; exit 1; }
mkdir -p "$h/qemu.d"
printf '#!/bin/sh\nexit 0\n' >"$h/qemu"
printf '#!/bin/sh\n# mine\nexit 0\n' >"$h/qemu.d/10-operator"
chmod 0755 "$h/qemu" "$h/qemu.d/10-operator"
/usr/share/nicoffload/nicoffload-install-hook --config "$cfg" >/dev/null
[ -f "$h/qemu.d/50-nicoffload" ] && ! [ -L "$h/qemu.d/50-nicoffload" ] && echo "wrapper-installed"
log=$(dpkg -r nicoffload 2>&1)
rc=$?
printf '%s\n' "$log" | sed 's/^/dpkg: /'
echo "remove-exit=$rc"
echo "left=$(cd "$h" && find . -mindepth 1 | sort | tr '\n' ' ')"
[ "$(cat "$h/qemu.d/10-operator")" = "$(printf '#!/bin/sh\n# mine\nexit 0')" ] && echo "operator-hook-intact"
'''

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 0x4000, 1 << 18


def hide_source_profiles():
    """preexec_fn: a private mount namespace with the source tree's profiles
    replaced by an empty tmpfs."""
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    target = os.path.join(SRC, "hw-profiles").encode()
    if libc.mount(b"tmpfs", target, b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "mount tmpfs over the source profiles")


def installed(*argv, **kw):
    """Runs an installed program (fixed argv) with the source profiles hidden."""
    return subprocess.run(list(argv), capture_output=True, text=True, env=ENV,
                          preexec_fn=hide_source_profiles, **kw)


def kernel_has_genl_family(name):
    """CTRL_CMD_GETFAMILY on a raw generic netlink socket, independently of
    host-check's libnl code."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)  # NETLINK_GENERIC
    try:
        s.bind((0, 0))
        payload = name.encode() + b"\0"
        attr = struct.pack("HH", 4 + len(payload), 2) + payload  # CTRL_ATTR_FAMILY_NAME
        attr += b"\0" * ((4 - len(attr) % 4) % 4)
        genl = struct.pack("BBH", 3, 1, 0)  # CTRL_CMD_GETFAMILY, version 1
        msg = genl + attr
        hdr = struct.pack("IHHII", 16 + len(msg), 0x10, 1, 1, 0)  # GENL_ID_CTRL, NLM_F_REQUEST
        s.sendto(hdr + msg, (0, 0))
        reply = s.recv(8192)
        mtype = struct.unpack("IHHII", reply[:16])[1]
        if mtype == 2:  # NLMSG_ERROR
            return struct.unpack("i", reply[16:20])[0] == 0
        return mtype == 0x10
    finally:
        s.close()


def unit_value(text, key):
    for line in text.splitlines():
        if line.startswith(key + "="):
            return line[len(key) + 1:]
    return None


def tree(path):
    out = set()
    for base, dirs, files in os.walk(path):
        for n in dirs + files:
            out.add(os.path.join(base, n))
    return out


def stale_locks_only(path):
    """True when `path` is a directory holding only *.lock files that no
    process holds (flock(2) would be granted)."""
    if not os.path.isdir(path) or os.path.islink(path):
        return False
    for name in os.listdir(path):
        f = os.path.join(path, name)
        if not name.endswith(".lock") or os.path.islink(f) or not os.path.isfile(f):
            return False
        with open(f, "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fh, fcntl.LOCK_UN)
            except OSError:
                return False
    return True


def main():
    t = Checks()
    if os.geteuid() != 0:
        print("package_install_test: needs root (apt-get, dpkg)")
        return 1
    state = run("dpkg-query", "-W", "-f=${Status}", PKG, check=False).stdout
    if "installed" in state and "not-installed" not in state:
        print(f"package_install_test: {PKG} is installed on this machine ({state}); "
              "refusing to replace or purge it")
        return 1
    if stale_locks_only("/run/nicoffload"):
        # Left by daemons and nicoffload-hwtest runs of the other tests (a
        # device lock file stays when its holder exits, by design): no state,
        # and nobody holds them.
        print("package_install_test: removing /run/nicoffload: only lock files nobody holds")
        shutil.rmtree("/run/nicoffload")
    present = [p for p in OURS if os.path.lexists(p)]
    if present:
        print(f"package_install_test: {', '.join(present)} exist(s): an install from source or an "
              "operator's config/state; refusing to touch it")
        return 1

    passwd_before = open("/etc/passwd").read()
    group_before = open("/etc/group").read()
    systemd_etc_before = tree("/etc/systemd/system")
    hooks_before = tree("/etc/libvirt/hooks")
    out = tempfile.mkdtemp(prefix="nfo-pkg-")
    world = None
    daemon = None
    files = []
    try:
        # --- build and lint ------------------------------------------------
        r = subprocess.run([os.path.join(SRC, "tools/package"), "--no-build", "--lintian", "--out", out],
                           capture_output=True, text=True, env=dict(ENV, NICOFFLOAD_BUILD_DIR=BUILD))
        t.check("tools/package --lintian succeeds (no unexplained lintian error or warning)",
                r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:])
        if r.returncode != 0:
            return t.finish()
        deb = r.stdout.strip().splitlines()[-1]
        t.check("the .deb is named nicoffload_<version>_<arch>.deb",
                os.path.basename(deb).startswith("nicoffload_") and deb.endswith(".deb"), deb)
        depends = run("dpkg-deb", "-f", deb, "Depends").stdout
        t.check("Depends is computed from the binaries (shlibdeps: DPDK, libnl, spdlog)",
                all(d in depends for d in ("librte-eal", "libnl-genl-3-200", "libspdlog")), depends)
        ctrl = tempfile.mkdtemp(dir=out)
        run("dpkg-deb", "-e", deb, ctrl)
        t.check("host.json is a conffile",
                open(os.path.join(ctrl, "conffiles")).read().split() == ["/etc/nicoffload/host.json"])

        # --- install ---------------------------------------------------------
        r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", deb],
                           capture_output=True, text=True, env=ENV)
        t.check("apt-get install ./nicoffload_*.deb", r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:])
        if r.returncode != 0:
            return t.finish()
        files = run("dpkg", "-L", PKG).stdout.split()
        for f in ("/usr/sbin/nicoffloadd", "/usr/sbin/nicoffloadctl", "/usr/sbin/nicoffload-hook",
                  "/usr/sbin/nicoffload-hwtest", "/usr/share/man/man8/nicoffload-hwtest.8.gz",
                  "/usr/share/nicoffload/hw-profiles/connectx-6dx.json", "/usr/share/nicoffload/nicoffload-install-hook",
                  UNIT, "/etc/nicoffload/host.json", "/usr/share/doc/nicoffload/copyright"):
            t.check(f"installed: {f}", f in files and os.path.exists(f))
        t.check("nothing under /usr/local", not any(f.startswith("/usr/local") for f in files))
        t.check("installing enabled no unit (no change under /etc/systemd/system)",
                tree("/etc/systemd/system") == systemd_etc_before)
        t.check("installing added no libvirt hook (a documented step does)",
                tree("/etc/libvirt/hooks") == hooks_before)
        t.check("installing made no user or group",
                open("/etc/passwd").read() == passwd_before and open("/etc/group").read() == group_before)

        # --- the unit --------------------------------------------------------
        r = run("systemd-analyze", "verify", UNIT, check=False)
        t.check("systemd-analyze verify of the installed unit", r.returncode == 0, r.stdout + r.stderr)
        unit = open(UNIT).read()
        t.check("unit: ExecStart runs /usr/sbin/nicoffloadd",
                unit_value(unit, "ExecStart") == "/usr/sbin/nicoffloadd --config /etc/nicoffload/host.json")
        caps = (unit_value(unit, "CapabilityBoundingSet") or "").split()
        t.check("unit: capabilities bounded, CAP_NET_ADMIN and CAP_SYS_ADMIN kept",
                "CAP_NET_ADMIN" in caps and "CAP_SYS_ADMIN" in caps and set(caps) <= set(CAPS), str(caps))
        for key, value in (("RuntimeDirectory", "nicoffload"), ("StateDirectory", "nicoffload"),
                           ("NoNewPrivileges", "yes"), ("ProtectSystem", "full"), ("KillMode", "process")):
            t.check(f"unit: {key}={value}", unit_value(unit, key) == value, str(unit_value(unit, key)))
        # The start gate, run as systemd would: skip (exit 1..254) while
        # host.json is the shipped default, go (0) once it was edited.
        cond = shlex.split(unit_value(unit, "ExecCondition") or "false")
        r = run(*cond, check=False)
        t.check("unit: ExecCondition skips the start while host.json is the shipped default",
                1 <= r.returncode <= 254, str(r.returncode))
        shipped = open("/etc/nicoffload/host.json").read()
        with open("/etc/nicoffload/host.json", "w") as f:
            f.write(shipped.replace("CHANGE-ME-hypervisor-name", "hv-edited"))
        r = run(*cond, check=False)
        t.check("unit: ExecCondition lets an edited host.json start", r.returncode == 0, str(r.returncode))
        with open("/etc/nicoffload/host.json", "w") as f:
            f.write(shipped)

        # --- the installed binaries, source profiles hidden --------------------
        r = installed("ls", "-A", os.path.join(SRC, "hw-profiles"))
        t.check("the source tree's profiles are hidden from the installed binaries",
                r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr)
        r = installed("/usr/sbin/nicoffloadd", "--config", "/etc/nicoffload/host.json", "--check")
        t.check("installed nicoffloadd --check passes on the shipped host.json (profile from /usr/share)",
                r.returncode == 0 and "profile connectx-6dx" in r.stdout, r.stdout + r.stderr)

        r = installed("/usr/sbin/nicoffloadctl", "host-check", "--config", "/etc/nicoffload/host.json", "--json")
        try:
            report = json.loads(r.stdout)
            lines = {c["id"]: c for c in report["checks"]}
        except (ValueError, KeyError, TypeError):
            report, lines = {}, {}
        t.check("host-check --json prints the report", bool(lines), r.stdout[-1000:] + r.stderr[-1000:])
        for family in ("devlink", "vdpa"):
            has = kernel_has_genl_family(family)
            line = lines.get(f"genl.{family}", {})
            t.check(f"host-check says {family} is {'ok' if has else 'missing'}, as the kernel does",
                    line.get("status") == ("ok" if has else "missing"), json.dumps(line))
        t.check("host-check exits 1 on this machine (no ConnectX: mlx5_core, the PF missing)",
                r.returncode == 1 and report.get("ready") is False
                and lines.get("module.mlx5_core", {}).get("status") == ("ok" if os.path.isdir("/sys/module/mlx5_core") else "missing")
                and lines.get("pf.pci", {}).get("status") != "ok", f"exit {r.returncode}")

        # --- the installed daemon on the simulated backends ---------------------
        # Started as the unit would: only the unit's capabilities in the
        # bounding set (root gets no others), no new privileges.
        world = World("pkg")
        world.add_rep("rep0")
        host, cfg = write_host(world)
        log = open(os.path.join(world.dir, "daemon.log"), "w")
        bounding = "-all," + ",".join("+" + c.lower().removeprefix("cap_") for c in caps)
        daemon = subprocess.Popen(["setpriv", "--bounding-set", bounding, "--no-new-privs",
                                   "/usr/sbin/nicoffloadd", "--config", host], stdout=log, stderr=log,
                                  env=ENV, preexec_fn=hide_source_profiles)
        ctl = ["/usr/sbin/nicoffloadctl"]
        sock = ["--socket", cfg["socket"]]
        up = False
        deadline = time.time() + 20
        while time.time() < deadline and daemon.poll() is None:
            if installed(*ctl, "status", *sock).returncode == 0:
                up = True
                break
            time.sleep(0.1)
        t.check("the installed nicoffloadd starts (no --profile-dir) and answers", up,
                open(log.name).read()[-2000:])
        if up:
            r = installed(*ctl, "port", "add", *sock, "--vm", "00000000-0000-4000-8000-000000000001", "--nic", "0",
                          "--mac", "52:54:00:00:00:01", "--address", "10.0.1.1/32", "--representor", "rep0",
                          "--vf", "0")
            t.check("installed nicoffloadctl port add", r.returncode == 0, r.stdout + r.stderr)
            t.check("the port's /32 is in the kernel path", world.routes() == ["10.0.1.1"], str(world.routes()))
            r = installed(*ctl, "port", "list", *sock, "--json")
            t.check("port list shows it", r.returncode == 0 and "52:54:00:00:00:01" in r.stdout, r.stdout + r.stderr)
            status = open(f"/proc/{daemon.pid}/status").read()
            capbnd = int(next(l.split()[1] for l in status.splitlines() if l.startswith("CapBnd:")), 16)
            t.check("the daemon ran with the unit's capability bounding set only",
                    capbnd == sum(1 << CAPS[c] for c in caps), hex(capbnd))

            # An upgrade (the same .deb again: prerm upgrade, postrm upgrade,
            # postinst configure <old>) with the daemon running: its rules and
            # state stay, the daemon keeps serving; /var/lib/nicoffload stays.
            os.makedirs("/var/lib/nicoffload", exist_ok=True)
            with open("/var/lib/nicoffload/upgrade-marker", "w") as f:
                f.write("state")
            r = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True, env=ENV)
            t.check("upgrade (dpkg -i of the package again) succeeds", r.returncode == 0, r.stdout + r.stderr)
            t.check("the upgrade left the running daemon alone", daemon.poll() is None)
            t.check("the upgrade flushed nothing: the /32 is still in the kernel", world.routes() == ["10.0.1.1"],
                    str(world.routes()))
            t.check("the upgrade kept /var/lib/nicoffload", os.path.exists("/var/lib/nicoffload/upgrade-marker"))
            r = installed(*ctl, "port", "list", *sock, "--json")
            t.check("the daemon still holds the port after the upgrade",
                    r.returncode == 0 and "52:54:00:00:00:01" in r.stdout, r.stdout + r.stderr)
            r = installed(*ctl, "port", "del", *sock, "--vm", "00000000-0000-4000-8000-000000000001", "--nic", "0")
            t.check("installed nicoffloadctl port del", r.returncode == 0, r.stdout + r.stderr)
            t.check("the /32 is gone", world.routes() == [], str(world.routes()))
        daemon.send_signal(signal.SIGTERM)
        try:
            rc = daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            rc = None
        t.check("SIGTERM stops it cleanly", rc == 0, str(rc))
        daemon = None

        # The documented hook step, into a scratch hooks directory (the real
        # one belongs to the machine's libvirtd): a symlink to /usr/sbin.
        hooks = os.path.join(out, "hooks")
        r = installed("/usr/share/nicoffload/nicoffload-install-hook", "--hooks-dir", hooks)
        link = os.path.join(hooks, "qemu.d", "50-nicoffload")
        t.check("nicoffload-install-hook links the installed hook",
                r.returncode == 0 and os.path.islink(link) and os.readlink(link) == "/usr/sbin/nicoffload-hook",
                r.stdout + r.stderr)

        # --config: a wrapper, in another scratch directory, that outlives the
        # package (the removal below only looks at /etc/libvirt/hooks).
        hook_cfg = os.path.join(out, "hook.json")
        hook_sock = os.path.join(out, "no-daemon.sock")
        with open(hook_cfg, "w") as f:
            json.dump({"socket": hook_sock, "timeout_ms": 1000}, f)
        wrapper_hooks = os.path.join(out, "hooks-wrapper")
        wrapper = os.path.join(wrapper_hooks, "qemu.d", "50-nicoffload")
        r = installed("/usr/share/nicoffload/nicoffload-install-hook", "--hooks-dir", wrapper_hooks,
                      "--config", hook_cfg)
        t.check("nicoffload-install-hook --config writes a wrapper",
                r.returncode == 0 and os.path.isfile(wrapper) and not os.path.islink(wrapper), r.stdout + r.stderr)
        h = subprocess.run([wrapper, "d", "prepare", "begin", "-"], input=DOMAIN_XML, capture_output=True,
                           text=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        t.check("  it runs the installed hook (whose error names the configured socket)",
                h.returncode == 1 and hook_sock in h.stderr, h.stderr)

        # --- removal (issue 22): prerm takes our hook out of /etc/libvirt/hooks,
        # and only ours. Private mount + PID namespace, the hooks dir a tmpfs.
        if not os.path.isdir("/etc/libvirt/hooks"):
            t.check("/etc/libvirt/hooks exists (libvirt-daemon-system; the removal check mounts over it)", False)
        else:
            r = subprocess.run(["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc",
                                "bash", "-c", REMOVE_IN_NAMESPACE, "bash", hook_cfg],
                               capture_output=True, text=True, env=ENV, timeout=300)
            t.check("in the namespace, nicoffload-install-hook --config put its wrapper in /etc/libvirt/hooks",
                    "wrapper-installed" in r.stdout, r.stdout + r.stderr)
            t.check("dpkg -r nicoffload succeeds", "remove-exit=0" in r.stdout, r.stdout + r.stderr)
            left = next((line[5:].split() for line in r.stdout.splitlines() if line.startswith("left=")), None)
            t.check("prerm removed our wrapper and left the operator's hooks (qemu, qemu.d/10-operator)",
                    left == ["./qemu", "./qemu.d", "./qemu.d/10-operator"], str(left))
            t.check("  the operator's hook unchanged", "operator-hook-intact" in r.stdout, r.stdout)
            state = run("dpkg-query", "-W", "-f=${Status}", PKG, check=False).stdout
            t.check("the package is removed (config files left for purge)", "config-files" in state, state)
            for op, sub in (("prepare", "begin"), ("start", "begin"), ("release", "end")):
                h = subprocess.run([wrapper, "d", op, sub, "-"], input=DOMAIN_XML, capture_output=True, text=True,
                                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
                t.check(f"the wrapper left behind, binary gone: '{op} {sub}' exits 0 (was 127: no domain could start)",
                        h.returncode == 0, f"exit {h.returncode}: {h.stderr}")
                t.check("  and says on stderr that nicoffload-hook is not installed, stdout empty",
                        "nicoffload-hook is not installed" in h.stderr and h.stdout == "", h.stdout + h.stderr)
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if world is not None:
            world.close()
        if files or run("dpkg-query", "-W", PKG, check=False).returncode == 0:
            r = subprocess.run(["apt-get", "purge", "-y", "-q", PKG], capture_output=True, text=True, env=ENV)
            t.check("apt-get purge nicoffload", r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:])
        shutil.rmtree(out, ignore_errors=True)

    # --- nothing left behind -------------------------------------------------
    state = run("dpkg-query", "-W", "-f=${Status}", PKG, check=False)
    t.check("dpkg knows nicoffload no more", state.returncode != 0 or "not-installed" in state.stdout, state.stdout)
    left = [f for f in files if not os.path.isdir(f) and os.path.lexists(f)]
    t.check("every file the package installed is gone", not left, str(left))
    own_dirs = ["/etc/nicoffload", "/usr/share/nicoffload", "/usr/share/doc/nicoffload"] + OURS
    left = [d for d in own_dirs if os.path.lexists(d)]
    t.check("its directories, state and runtime dirs are gone", not left, str(left))
    t.check("no unit file or enablement left",
            not os.path.exists(UNIT) and tree("/etc/systemd/system") == systemd_etc_before)
    t.check("no user or group left",
            open("/etc/passwd").read() == passwd_before and open("/etc/group").read() == group_before)
    t.check("libvirt's hooks untouched", tree("/etc/libvirt/hooks") == hooks_before)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
