#!/usr/bin/env python3
"""The lintian overrides hold for any build type (issue 22).

lintian spell-checks `strings` of each whole ELF file, machine code included,
so which "misspellings" it finds (spelling-error-in-binary, e.g. "wTH" ->
"with") depends on the bytes the compiler emitted: a Release build has other
ones than a RelWithDebInfo build, in other binaries. An override that names
one of them is then unused while the tag fires: a mismatched-override
warning, and `tools/package --lintian` (the package_install test) fails.

This test builds the .deb from the build tree (tools/package --no-build), then
makes it look like another build's: every compiler fragment lintian finds in
it now is overwritten, and a new one ("teh") is put in a binary at the end
of its file (md5sums updated). lintian, run as tools/package runs it, must
pass on both packages. The rewritten .deb is never installed.

  package_lintian_build_type_test.py SOURCE_DIR BUILD_DIR
Prints 'N passed, M failed'."""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, run  # noqa: E402

SRC, BUILD = sys.argv[1], sys.argv[2]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("NICOFFLOAD_")}
HINT = re.compile(r"^\w: nicoffload: spelling-error-in-binary (\S+) \S+ \[([^\]]+)\]$")
NEW_FRAGMENT = "teh"  # lintian's corrections list: teh -> the
NEW_HOME = "usr/sbin/nicoffload-hook"


def lintian(deb):
    """lintian exactly as tools/package --lintian runs it."""
    return subprocess.run(["lintian", "--fail-on", "error,warning", "--info", deb],
                          capture_output=True, text=True, env=ENV)


def spelling_hints(deb):
    """(word, path) of every spelling-error-in-binary, overrides ignored."""
    r = subprocess.run(["lintian", "--no-override", "--tags", "spelling-error-in-binary", deb],
                       capture_output=True, text=True, env=ENV)
    return sorted({(m.group(1), m.group(2)) for m in map(HINT.match, r.stdout.splitlines()) if m})


def main():
    t = Checks()
    out = tempfile.mkdtemp(prefix="nfo-lintian-")
    try:
        r = subprocess.run([os.path.join(SRC, "tools/package"), "--no-build", "--lintian", "--out", out],
                           capture_output=True, text=True, env=dict(ENV, NICOFFLOAD_BUILD_DIR=BUILD))
        t.check("tools/package --lintian passes on this build's package", r.returncode == 0,
                r.stdout[-2000:] + r.stderr[-4000:])
        if r.returncode != 0:
            return t.finish()
        deb = r.stdout.strip().splitlines()[-1]
        before = spelling_hints(deb)

        # --- the same package as another build's: other fragments, elsewhere ---
        root = os.path.join(out, "root")
        run("dpkg-deb", "-R", deb, root)
        sums_path = os.path.join(root, "DEBIAN", "md5sums")
        sums = dict(reversed(line.split(None, 1)) for line in open(sums_path).read().splitlines())
        changed = set()
        for word, path in before:
            f = os.path.join(root, path)
            data = open(f, "rb").read()
            # All capitals, or a run of X: never a misspelling to lintian.
            open(f, "wb").write(data.replace(word.encode(), b"X" * len(word)))
            changed.add(path)
        with open(os.path.join(root, NEW_HOME), "ab") as f:
            f.write(b"\0 " + NEW_FRAGMENT.encode() + b" \0")
        changed.add(NEW_HOME)
        for path in changed:
            sums[path] = hashlib.md5(open(os.path.join(root, path), "rb").read()).hexdigest()
        with open(sums_path, "w") as f:
            f.writelines(f"{digest}  {path}\n" for path, digest in sorted(sums.items()))
        other = os.path.join(out, "other-build.deb")
        run("dpkg-deb", "--root-owner-group", "-b", root, other)

        after = spelling_hints(other)
        t.check("the rewritten package has other compiler fragments than the built one "
                f"(before {before}, after {after})",
                after == [(NEW_FRAGMENT, NEW_HOME)], str(after))
        r = lintian(other)
        t.check("lintian passes on it too (no mismatched-override: the overrides do not name a build's bytes)",
                r.returncode == 0 and "mismatched-override" not in r.stdout, r.stdout[-3000:] + r.stderr[-2000:])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
