#!/usr/bin/env python3
"""What install-hook.sh leaves in libvirt's hook directory must never stop a
domain, and --uninstall takes out only what it put there (issue 22).

- The --config wrapper, run as libvirt runs it, once its binary is gone (the
  package removed): exit 0, one line on stderr saying nicoffload-hook is not
  installed, nothing on stdout (libvirt keeps the domain XML). Before this
  fix it exec'd the missing binary: exit 127, and libvirt refused to start
  any domain on the host.
- --uninstall removes our wrapper, our symlink and the two-line wrapper of
  earlier versions; it leaves an operator's own file or symlink at
  qemu.d/50-nicoffload (exit 1, untouched), a hook of ours that runs another
  binary than --binary (the package's prerm passes /usr/sbin/nicoffload-hook),
  and every other file in the hooks directory.
- The SIGHUP that makes libvirt re-read its hooks reaches virtqemud (modular
  daemons), not only libvirtd, and the installer still succeeds when neither
  runs. This part runs in a private PID namespace with its own /proc, so that
  "neither runs" holds whatever runs on the machine, and no signal reaches
  the machine's own libvirt daemons. The stand-in virtqemud is a copy of
  sleep(1): SIGHUP ends it, so its exit status shows the signal arrived.

usage: install_hook_uninstall_test.py NICOFFLOAD_HOOK SOURCE_DIR"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import ONE_PORT_DOMAIN_XML, Checks, run  # noqa: E402

XML = ONE_PORT_DOMAIN_XML
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # libvirt runs hooks with an almost empty environment

# Run in the private PID namespace (argv: installer, hook, hooks dir, fake
# daemon dir). Fixed text: the paths arrive as arguments, never as code.
IN_PIDNS = r'''
set -u
installer=$1 hook=$2 hooks=$3 fake=$4
"$installer" --binary "$hook" --hooks-dir "$hooks"
echo "none-exit=$?"
"$fake/virtqemud" 60 &
q=$!
for _ in $(seq 100); do
  [ -n "$(pidof virtqemud)" ] && break
  sleep 0.05
done
echo "virtqemud-pid=$q"
"$installer" --binary "$hook" --hooks-dir "$hooks"
echo "virtqemud-install-exit=$?"
wait "$q"
echo "virtqemud-exit=$?"
'''


def hook_run(path, op="prepare", sub="begin"):
    return subprocess.run([path, "d", op, sub, "-"], input=XML, capture_output=True, text=True, env=ENV)


def main():
    hook_bin, root = os.path.abspath(sys.argv[1]), sys.argv[2]
    installer = f"{root}/libvirt-hooks/install-hook.sh"
    t = Checks()
    with tempfile.TemporaryDirectory(prefix="nfo-hookrm-") as d:
        hooks = f"{d}/hooks"
        qemu_d = f"{hooks}/qemu.d"
        target = f"{qemu_d}/50-nicoffload"
        # The operator's own hooks, which nothing here may touch.
        os.makedirs(qemu_d)
        own = {f"{hooks}/qemu": "#!/bin/sh\nexit 0\n", f"{qemu_d}/10-operator": "#!/bin/sh\n# mine\nexit 0\n"}
        for path, text in own.items():
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)

        def own_untouched():
            return all(os.path.isfile(p) and open(p).read() == text for p, text in own.items())

        # A hook binary that can go away, as the package's does on removal (a
        # space in its directory: the wrapper quotes it).
        bindir = f"{d}/bin dir"
        os.makedirs(bindir)
        copy = f"{bindir}/nicoffload-hook"
        shutil.copy2(hook_bin, copy)
        cfg = f"{d}/hook.json"
        sock = f"{d}/no-daemon.sock"
        with open(cfg, "w") as f:
            json.dump({"socket": sock, "timeout_ms": 1000}, f)

        # --- the wrapper outlives its binary ---------------------------------
        r = run(installer, "--binary", copy, "--hooks-dir", hooks, "--config", cfg, check=False)
        t.check("install --config writes the wrapper", r.returncode == 0 and os.path.isfile(target)
                and not os.path.islink(target), r.stdout + r.stderr)
        out = hook_run(target)
        t.check("  with the binary there, the wrapper runs it (its error names the configured socket)",
                out.returncode == 1 and sock in out.stderr, out.stderr)
        os.unlink(copy)
        for op, sub in (("prepare", "begin"), ("start", "begin"), ("migrate", "begin"), ("release", "end")):
            out = hook_run(target, op, sub)
            t.check(f"  binary gone: '{op} {sub}' exits 0 (the domain is allowed), not 127",
                    out.returncode == 0, f"exit {out.returncode}: {out.stderr}")
            t.check(f"  binary gone: '{op} {sub}' says on stderr that nicoffload-hook is not installed",
                    "nicoffload-hook is not installed" in out.stderr and out.stderr.count("\n") == 1, out.stderr)
            t.check(f"  binary gone: '{op} {sub}' prints nothing on stdout (libvirt keeps the XML)",
                    out.stdout == "", out.stdout)

        # --- --uninstall: ours goes, nobody else's ------------------------------
        r = run(installer, "--uninstall", "--binary", "/usr/sbin/nicoffload-hook", "--hooks-dir", hooks, check=False)
        t.check("--uninstall --binary /usr/sbin/nicoffload-hook leaves our wrapper for another binary",
                r.returncode == 0 and os.path.isfile(target) and "left in place" in r.stdout, r.stdout + r.stderr)
        r = run(installer, "--uninstall", "--binary", copy, "--hooks-dir", hooks, check=False)
        t.check("--uninstall --binary <its binary> removes our wrapper (binary already gone)",
                r.returncode == 0 and not os.path.lexists(target), r.stdout + r.stderr)
        r = run(installer, "--uninstall", "--hooks-dir", hooks, check=False)
        t.check("--uninstall with nothing installed succeeds", r.returncode == 0 and "nothing to remove" in r.stdout,
                r.stdout + r.stderr)

        shutil.copy2(hook_bin, copy)
        r = run(installer, "--binary", copy, "--hooks-dir", hooks, check=False)
        t.check("install without --config: our symlink", r.returncode == 0 and os.path.islink(target), r.stderr)
        r = run(installer, "--uninstall", "--hooks-dir", hooks, check=False)
        t.check("--uninstall removes our symlink", r.returncode == 0 and not os.path.lexists(target), r.stderr)

        # The wrapper earlier versions wrote (two lines, printf %q).
        legacy = run("bash", "-c", 'printf \'#!/bin/bash\\nNICOFFLOAD_HOOK_CONFIG=%q exec %q "$@"\\n\' "$1" "$2"',
                     "bash", cfg, copy).stdout
        with open(target, "w") as f:
            f.write(legacy)
        os.chmod(target, 0o755)
        r = run(installer, "--uninstall", "--binary", copy, "--hooks-dir", hooks, check=False)
        t.check("--uninstall removes the two-line wrapper of earlier versions",
                r.returncode == 0 and not os.path.lexists(target), legacy + r.stdout + r.stderr)

        operator_hook = "#!/bin/bash\n# the operator's own hook, named like ours\nexec /usr/sbin/nicoffload-hook \"$@\"\n"
        with open(target, "w") as f:
            f.write(operator_hook)
        os.chmod(target, 0o755)
        for extra in ((), ("--binary", "/usr/sbin/nicoffload-hook")):
            r = run(installer, "--uninstall", *extra, "--hooks-dir", hooks, check=False)
            t.check(f"--uninstall {' '.join(extra)} leaves an operator's own file at 50-nicoffload (exit 1)",
                    r.returncode == 1 and open(target).read() == operator_hook and "left alone" in r.stderr,
                    r.stdout + r.stderr)
        if os.path.lexists(target):
            os.unlink(target)
        os.symlink("/bin/true", target)
        r = run(installer, "--uninstall", "--hooks-dir", hooks, check=False)
        t.check("--uninstall leaves an operator's symlink at 50-nicoffload (exit 1)",
                r.returncode == 1 and os.path.islink(target) and os.readlink(target) == "/bin/true",
                r.stdout + r.stderr)
        if os.path.lexists(target):
            os.unlink(target)
        t.check("the operator's other hooks (hooks/qemu, qemu.d/10-operator) are untouched", own_untouched())
        t.check("no temporary files left in qemu.d", sorted(os.listdir(qemu_d)) == ["10-operator"],
                str(os.listdir(qemu_d)))

        # --- SIGHUP reaches virtqemud ----------------------------------------------
        fake = f"{d}/fake"
        os.makedirs(fake)
        shutil.copy2(shutil.which("sleep"), f"{fake}/virtqemud")
        ns = ["unshare", "--pid", "--fork", "--mount-proc"]
        if os.geteuid() != 0:
            ns[1:1] = ["--user", "--map-root-user"]
        r = subprocess.run(ns + ["bash", "-c", IN_PIDNS, "bash", installer, copy, f"{d}/hooks-ns", fake],
                           capture_output=True, text=True, timeout=60)
        out = r.stdout
        t.check("in a PID namespace where neither runs, the installer succeeds and says so",
                "none-exit=0" in out and "neither libvirtd nor virtqemud is running" in out, out + r.stderr)
        pid = next((line.split("=", 1)[1] for line in out.splitlines() if line.startswith("virtqemud-pid=")), "?")
        t.check("with virtqemud running, the installer sends it SIGHUP",
                "virtqemud-install-exit=0" in out and f"sent SIGHUP to virtqemud ({pid})" in out, out + r.stderr)
        t.check("  and virtqemud got it (ended by SIGHUP: status 129)", "virtqemud-exit=129" in out, out + r.stderr)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
