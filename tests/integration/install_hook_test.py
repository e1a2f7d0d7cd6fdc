#!/usr/bin/env python3
"""install-hook.sh into a temporary hooks directory (--hooks-dir): without
--config the hook is a symlink to the binary (libvirt execs it directly);
with --config a bash wrapper that makes the hook read that hook.json (shown
by the hook's own error naming the configured socket); a relative --config is
refused; either form replaces the other; --uninstall removes it. The hook is
run on stdin as libvirt runs it.

usage: install_hook_test.py NICOFFLOAD_HOOK SOURCE_DIR"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import ONE_PORT_DOMAIN_XML, Checks, run  # noqa: E402

XML = ONE_PORT_DOMAIN_XML


def main():
    hook_bin, root = os.path.abspath(sys.argv[1]), sys.argv[2]
    installer = f"{root}/libvirt-hooks/install-hook.sh"
    t = Checks()
    with tempfile.TemporaryDirectory(prefix="nfo-insthook-") as d:
        hooks = f"{d}/hooks"
        target = f"{hooks}/qemu.d/50-nicoffload"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # libvirt's environment is almost empty

        r = run(installer, "--binary", hook_bin, "--hooks-dir", hooks, check=False)
        t.check("install without --config", r.returncode == 0, r.stderr)
        t.check("  a symlink to the binary", os.path.islink(target) and os.readlink(target) == hook_bin,
                os.readlink(target) if os.path.islink(target) else "not a symlink")
        # Run through the symlink with a config of ours (never the host's
        # default socket, where a real nicoffloadd may serve).
        cfg = f"{d}/my hook.json"  # a space: the wrapper below must quote it
        sock = f"{d}/no-daemon.sock"
        with open(cfg, "w") as f:
            json.dump({"socket": sock, "timeout_ms": 1000}, f)
        out = subprocess.run([target, "d", "prepare", "begin", "-"], input=XML, capture_output=True, text=True,
                             env=dict(env, NICOFFLOAD_HOOK_CONFIG=cfg))
        t.check("  runs the hook binary", out.returncode == 1 and sock in out.stderr, out.stderr)

        r = run(installer, "--binary", hook_bin, "--hooks-dir", hooks, "--config", cfg, check=False)
        t.check("install with --config over the symlink", r.returncode == 0, r.stderr)
        t.check("  a wrapper file, executable", not os.path.islink(target) and os.access(target, os.X_OK))
        out = subprocess.run([target, "d", "prepare", "begin", "-"], input=XML, capture_output=True, text=True,
                             env=env)
        t.check("  the hook reads that config (its error names the configured socket)",
                out.returncode == 1 and sock in out.stderr, out.stderr)
        out = subprocess.run([target, "d", "release", "end", "-"], input=XML, capture_output=True, text=True,
                             env=env)
        t.check("  release never fails", out.returncode == 0, out.stderr)

        r = run(installer, "--binary", hook_bin, "--hooks-dir", hooks, "--config", "relative.json", check=False)
        t.check("a relative --config is refused", r.returncode == 2 and "absolute" in r.stderr, r.stderr)
        t.check("  and the installed hook stays", os.path.exists(target) and not os.path.islink(target))

        r = run(installer, "--binary", hook_bin, "--hooks-dir", hooks, check=False)
        t.check("back to a symlink over the wrapper", r.returncode == 0 and os.path.islink(target), r.stderr)
        t.check("no temporary files left", sorted(os.listdir(f"{hooks}/qemu.d")) == ["50-nicoffload"],
                os.listdir(f"{hooks}/qemu.d"))

        r = run(installer, "--uninstall", "--hooks-dir", hooks, check=False)
        t.check("--uninstall removes it", r.returncode == 0 and not os.path.lexists(target), r.stderr)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
