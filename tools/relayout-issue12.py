#!/usr/bin/env python3
"""Issue 12, item 5: the daemon's layout shows its flow.

Run once, at the top of a clean checkout:

    python3 tools/relayout-issue12.py            # apply (git mv + rewrites, staged)
    python3 tools/relayout-issue12.py --dry-run  # print the plan, write nothing

What it does (every step found by paths, target names, include lines, section
markers and identifiers, never by line numbers or whole-file contents):

  daemon/      nicoffloadd, the controller (split by flow into controller.cc,
               admission.cc, reconcile.cc, reads.cc + the private
               request_fields.h), control socket, state store, instance lock,
               metrics: from offload/src and offload/include/nicoffload/offload
               (headers now nicoffload/daemon/*.h; namespaces unchanged).
  cli/         nicoffloadctl.
  offload/kernel/  the kernel software path (nicoffload_swpath_kernel), headers
               keeping their include path nicoffload/offload/*.h.
  simulators   simnic/.../sim_nic.{h,cc} -> sim_eswitch.{h,cc}, simnic::SimNic ->
               simnic::SimEswitch; offload/nic_sim/.../sim_nic.{h,cc} ->
               sim_pf.{h,cc}, offload::SimNic -> offload::SimPf (SimNicOptions ->
               SimPfOptions); tests/nic/sim_nic_test.cc -> sim_pf_test.cc.
  text         every CMakeLists.txt path, include line, README/docs/tools/tests
               mention of a moved file; README's Layout table.

All is computed before anything is written: a missing piece stops the script
with a message and an untouched tree. Moves go through `git mv` (history
follows); new and rewritten files are staged; nothing is committed. At the end
it prints what it did and what it could not find or decide.

Decisions and limits (all printed when met):
  - controller.cc is split by its four section markers ("// --- admission ---",
    "// --- requests ---", "// --- reconciliation ---", "// --- incremental
    reconciliation ---"), each expected once and in that order, or nothing is
    written. A member goes by its section; in "requests", the read ops (read,
    portJson, statusJson, planned*, portVnis, any *Json) go to reads.cc, the
    rest to controller.cc; tick, untilNextTick, metricsText and the
    constructor/destructor go to controller.cc. The first anonymous namespace
    goes to request_fields.h (functions made inline); later helpers go with
    their only user (or to request_fields.h if several files use them);
    `struct Controller::X` definitions go to controller_types.h.
  - The daemon, CLI and kernel files are the sources of the targets
    nicoffload_control/metrics/daemon, nicoffloadd, nicoffloadctl and
    nicoffload_swpath_kernel as offload/CMakeLists.txt lists them, plus the
    offload/src/<stem>.h and offload/include/nicoffload/offload/<stem>.h of
    each (and software_path.h, netns.h).
  - An unqualified SimNic in a file that includes both simulators' headers, or
    neither and has no hint on its line, is left and listed.
  - CMake target names are kept (nicoffload_simnic, nicoffload_nic_sim, ...).
  - Line numbers in prose (e.g. "controller.cc:440") are not updated.

Refuses to run twice (daemon/ present or offload/src/controller.cc gone) and on
a tree with uncommitted changes to tracked files (--allow-dirty overrides).
Python 3 standard library only.
"""

import argparse
import os
import posixpath
import re
import subprocess
import sys

# --- what moves ---------------------------------------------------------------

OFFLOAD_CMAKE = "offload/CMakeLists.txt"
ROOT_CMAKE = "CMakeLists.txt"
OFF_SRC = "offload/src"
OFF_INC = "offload/include/nicoffload/offload"

DAEMON_TARGETS = ["nicoffload_control", "nicoffload_metrics", "nicoffload_daemon", "nicoffloadd"]
CLI_TARGETS = ["nicoffloadctl"]
KERNEL_TARGETS = ["nicoffload_swpath_kernel"]
# Headers of the kernel path besides those named like one of its sources.
KERNEL_HEADERS = ["software_path.h", "netns.h"]

CONTROLLER_OLD = OFF_SRC + "/controller.cc"
CONTROLLER_NEW_DIR = "daemon/src"
SHARED_HEADER = "request_fields.h"
# The Controller's nested types defined out of line (struct Controller::FullPass,
# ...): every split file needs them complete (the constructor and destructor
# destroy the unique_ptr that holds one).
TYPES_HEADER = "controller_types.h"

# Programs whose build directory changes (scripts that run them from a build).
BUILT_PROGRAMS = {"nicoffloadd": "daemon", "nicoffloadctl": "cli"}

# The two simulators.
SIM_RENAMES = [
    ("simnic/src/sim_nic.cc", "simnic/src/sim_eswitch.cc"),
    ("simnic/include/nicoffload/simnic/sim_nic.h", "simnic/include/nicoffload/simnic/sim_eswitch.h"),
    ("offload/nic_sim/src/sim_nic.cc", "offload/nic_sim/src/sim_pf.cc"),
    ("offload/nic_sim/include/nicoffload/offload/sim_nic.h",
     "offload/nic_sim/include/nicoffload/offload/sim_pf.h"),
    ("tests/nic/sim_nic_test.cc", "tests/nic/sim_pf_test.cc"),
]
ESW, PF = "SimEswitch", "SimPf"
# Unqualified SimNic in a file that includes neither header nor sits in either
# tree: decided here, by path (whole file) or by a word on the same line.
SIM_FILE_DEFAULT = {
    "offload/include/nicoffload/offload/flow_backends.h": ESW,  # the flow backend factory
    "offload/include/nicoffload/offload/nic_backend.h": PF,     # NicBackend implementations
    "docs/benchmarks.md": ESW,                                   # restart: journal replay
    "bench/restart_bench.cc": ESW,
}
SIM_LINE_HINTS = [(re.compile(r"nic_sim|nicoffload_nic_sim|offload::|sysfs|SysfsNicBackend|\bPF\b"), PF),
                  (re.compile(r"nicoffload_simnic|simnic::|eswitch|FlowBackend|journal|device directory"), ESW)]

# Controller split: which file each member function goes to.
SECTIONS = ["admission", "requests", "reconciliation", "incremental reconciliation"]
READS = {"read", "portJson", "statusJson", "plannedRules", "plannedRule", "plannedRuleCount", "portVnis"}
CONTROLLER_IN_RECONCILE = {"tick", "untilNextTick", "metricsText"}
SPLIT_FILES = {
    "controller.cc": "start-up, requests and batches (handle/handleBatch), the timer (tick) and metrics",
    "admission.cc": "admission: the intent changed in place, undone when a request is refused",
    "reconcile.cc": "reconciliation: the incremental pass over what a batch touched, and the full "
                    "pass, the safety net",
    "reads.cc": "the read ops: status, ports, planned rules, memory",
}

TEXT_EXT = (".cc", ".h", ".hpp", ".cpp", ".txt", ".cmake", ".md", ".py", ".sh", ".in")
SKIP_PREFIXES = ("fuzz/seeds/", "fuzz/corpus/")
SELF = "tools/relayout-issue12.py"


class Abort(Exception):
    pass


def git(*args, check=True):
    r = subprocess.run(["git", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise Abort("git %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


# --- a small C++ scanner: code with comments and literals blanked ---------------

def blank_code(text):
    """Returns text of the same length in which comments, string and char
    literals are replaced by spaces (newlines kept): braces and semicolons left
    are code."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif c == '"' and i > 0 and text[i - 1] == "R" and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_") or text[i - 2] in "uUL8"):
            m = re.match(r'"([^()\\ ]{0,16})\(', text[i:])
            if not m:
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            blank(i, j)
            i = j
        elif c == '"' or (c == "'" and not (i > 0 and (text[i - 1].isalnum() and not _char_prefix(text, i)))):
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            blank(i, min(j + 1, n))
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _char_prefix(text, i):
    # u'x', U'x', L'x', u8'x': a prefix, not a digit separator.
    return text[i - 1] in "uUL" and (i < 2 or not text[i - 2].isalnum()) or text[max(0, i - 2):i] == "u8"


def wrap_comment(text, width=100):
    out, line = [], "//"
    for w in text.split():
        if len(line) + 1 + len(w) > width:
            out.append(line)
            line = "//"
        line += " " + w
    return "\n".join(out + [line]) + "\n"


def clang_format(paths):
    """Formats the files the split wrote, when clang-format and .clang-format
    are there (the `inline` added shifts continuation lines)."""
    import shutil
    exe = shutil.which("clang-format")
    if not exe or not os.path.exists(".clang-format") or not paths:
        return "clang-format not run (%s)" % ("no clang-format" if not exe else "no .clang-format")
    r = subprocess.run([exe, "-i", "--style=file", *paths], capture_output=True, text=True)
    if r.returncode != 0:
        return "clang-format failed: " + r.stderr.strip()
    return "clang-format -i: " + " ".join(paths)


def split_items(text):
    """Splits a namespace body into top-level items: each item is the comment
    and blank lines before a declaration plus the declaration up to its closing
    `}` or `;` at depth 0. Returns (items, trailing) as lists of strings."""
    code = blank_code(text)
    lines = text.splitlines(keepends=True)
    clines = code.splitlines(keepends=True)
    items, cur = [], []
    depth = paren = 0
    for line, cl in zip(lines, clines):
        cur.append(line)
        for ch in cl:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "(":
                paren += 1
            elif ch == ")":
                paren -= 1
        stripped = cl.strip()
        if depth < 0:
            raise Abort("unbalanced braces while splitting")
        if depth == 0 and paren == 0 and stripped and (stripped.endswith("}") or stripped.endswith(";")):
            items.append("".join(cur))
            cur = []
    return items, "".join(cur)


def code_of(item):
    return blank_code(item).strip()


def is_anon_namespace(item):
    return re.match(r"namespace\s*\{", code_of(item)) is not None


def member_name(item):
    head = code_of(item).split("{", 1)[0]
    m = re.search(r"\bController::(~?\w+)\s*\(", head)
    return m.group(1) if m else None


def defined_names(item):
    """Names an anon-namespace block (or a loose item) defines."""
    body = item
    if is_anon_namespace(item):
        code = blank_code(item)
        body = item[code.index("{") + 1:code.rindex("}")]
    names = set()
    subs, _ = split_items(body)
    for s in subs:
        c = code_of(s)
        m = re.match(r"(?:template\s*<[^>]*>\s*)?(?:struct|class|enum(?:\s+class)?|union)\s+(\w+)", c)
        if m:
            names.add(m.group(1))
            continue
        m = re.match(r"using\s+(\w+)\s*=", c)
        if m:
            names.add(m.group(1))
            continue
        if c.startswith("using "):
            continue
        head = re.split(r"[{=;]", c, 1)[0]
        if "(" in head:
            m = re.search(r"(\w+)\s*$", head.split("(", 1)[0])
        else:
            m = re.search(r"(\w+)\s*(?:\[[^\]]*\])?\s*$", head)
        if m:
            names.add(m.group(1))
    return names


def inline_functions(block_body):
    """Marks each function definition of a namespace body `inline` (a header
    included by several files; unused inline functions draw no warning)."""
    subs, trailing = split_items(block_body)
    out = []
    for s in subs:
        c = code_of(s)
        brace, paren_i = c.find("{"), c.find("(")
        eq = c.find("=")
        is_func = (c.endswith("}") and not c.endswith("};") and 0 <= paren_i and (brace < 0 or paren_i < brace)
                   and (eq < 0 or paren_i < eq)
                   and not re.match(r"(template|struct|class|enum|union|using|namespace|typedef|inline|constexpr)\b", c))
        if is_func:
            # The first code line: the one holding the first code character.
            code = blank_code(s)
            k = len(code) - len(code.lstrip())
            if s.startswith("static ", k):
                s = s[:k] + "inline " + s[k + len("static "):]
            else:
                s = s[:k] + "inline " + s[k:]
        out.append(s)
    return "".join(out) + trailing


# --- CMake: commands found by name and target ----------------------------------

def cmake_commands(text):
    """Yields (start, end, name, args) of each top-level command; end is past
    the closing parenthesis."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        m = re.compile(r"([A-Za-z_]\w*)\s*\(").match(text, i)
        if m and (i == 0 or text[i - 1] in " \t\n"):
            depth, j = 0, m.end() - 1
            while j < n:
                ch = text[j]
                if ch == '"':
                    j += 1
                    while j < n and text[j] != '"':
                        j += 2 if text[j] == "\\" else 1
                elif ch == "#":
                    while j < n and text[j] != "\n":
                        j += 1
                    continue
                elif ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            yield i, j + 1, m.group(1), text[m.end():j]
            i = j + 1
            continue
        i += 1


def command_target(name, args):
    words = args.split()
    if not words:
        return None
    if name in ("add_library", "add_executable", "set_target_properties", "add_dependencies") or name.startswith("target_"):
        return words[0]
    if name == "install" and words[0] == "TARGETS" and len(words) > 1:
        return words[1]
    return None


def with_leading_comments(text, start):
    """Extends `start` backwards over the comment lines directly above it."""
    line_start = text.rfind("\n", 0, start) + 1
    while line_start > 0:
        prev_start = text.rfind("\n", 0, line_start - 1) + 1
        prev = text[prev_start:line_start]
        if prev.lstrip().startswith("#"):
            line_start = prev_start
        else:
            break
    return line_start


def extract_target_blocks(text, targets):
    """Returns (blocks, remaining_text, first_position): the commands defining
    and configuring `targets`, each with the comments directly above it."""
    spans = []
    for s, e, name, args in cmake_commands(text):
        if command_target(name, args) in targets:
            spans.append((with_leading_comments(text, s), e))
    if not spans:
        return [], text, None
    blocks, kept, pos = [], [], 0
    prev_end = None
    for s, e in spans:
        adjacent = prev_end is not None and text[prev_end:s].strip() == "" and text[prev_end:s].count("\n") <= 1
        blocks.append((text[s:e], adjacent))
        kept.append(text[pos:s])
        pos = e
        if pos < len(text) and text[pos] == "\n":
            pos += 1
        prev_end = e
    kept.append(text[pos:])
    first = spans[0][0]
    remaining = "".join(kept)
    return blocks, remaining, first


def join_blocks(blocks):
    out = ""
    for b, adjacent in blocks:
        out += ("" if not out else ("\n" if adjacent else "\n\n")) + b
    return out + "\n"


def marker_re(marker):
    # PkgConfig::LIBNL must not match PkgConfig::LIBNL_GENL; spdlog:: is a prefix.
    return re.escape(marker) + ("" if marker.endswith("::") else r"(?!\w)")


def package_lookups(text):
    """pkg_check_modules(PREFIX ...) and find_package(NAME ...) commands of a
    CMakeLists: {'PkgConfig::PREFIX' or 'NAME::': command text}."""
    out = {}
    for s, e, name, args in cmake_commands(text):
        w = args.split()
        if name == "pkg_check_modules" and w:
            out["PkgConfig::" + w[0]] = text[s:e]
        elif name == "find_package" and w and w[0] != "PkgConfig":
            out[w[0] + "::"] = text[s:e]
    return out


def sources_of(blocks, cmake_dir):
    """Repo paths of the .cc/.h files named in add_library/add_executable."""
    out = []
    for b, _ in blocks:
        for s, e, name, args in cmake_commands(b):
            if name in ("add_library", "add_executable", "target_sources"):
                for w in args.split()[1:]:
                    if re.search(r"\.(cc|cpp|h)$", w) and "$" not in w:
                        out.append(posixpath.normpath(posixpath.join(cmake_dir, w)))
    return out


def rewrite_rel_paths(text, cmake_dir, new_dir, moves):
    """Rewrites each path written relative to `cmake_dir` that names a file in
    `moves` (old -> new) as a path relative to `new_dir`."""
    def repl(m):
        word = m.group(0)
        full = posixpath.normpath(posixpath.join(cmake_dir, word))
        if full in moves:
            return posixpath.relpath(moves[full], new_dir)
        if new_dir != cmake_dir and os.path.exists(full):
            return posixpath.relpath(full, new_dir)
        return word
    return re.sub(r"(?<![\w/.${}-])[\w][\w./-]*\.(?:cc|cpp|h)\b", repl, text)


# --- the plan -----------------------------------------------------------------

class Plan:
    def __init__(self):
        self.moves = {}        # old -> new (git mv)
        self.files = {}        # path (after moves) -> new content
        self.new_files = set()
        self.notes = []        # what was done
        self.missing = []      # what could not be found or decided

    def read(self, path):
        """Content of `path` as the plan leaves it (path after the moves)."""
        if path in self.files:
            return self.files[path]
        old = {v: k for k, v in self.moves.items()}.get(path, path)
        with open(old, encoding="utf-8") as f:
            return f.read()

    def write(self, path, content, new=False):
        self.files[path] = content
        if new:
            self.new_files.add(path)

    def move(self, old, new):
        if not os.path.exists(old):
            raise Abort("missing: %s" % old)
        if os.path.exists(new):
            raise Abort("already exists: %s" % new)
        self.moves[old] = new


def plan_cmake(plan):
    text = plan.read(OFFLOAD_CMAKE)
    lookups = package_lookups(text)
    groups = {}
    for key, targets in (("kernel", KERNEL_TARGETS), ("daemon", DAEMON_TARGETS), ("cli", CLI_TARGETS)):
        blocks, text2, first = extract_target_blocks(text, set(targets))
        found = set()
        for b, _ in blocks:
            for s, e, name, args in cmake_commands(b):
                if name in ("add_library", "add_executable"):
                    found.add(args.split()[0])
        lost = [t for t in targets if t not in found]
        if lost:
            raise Abort("%s: no add_library/add_executable for %s" % (OFFLOAD_CMAKE, ", ".join(lost)))
        groups[key] = blocks
        if key == "kernel":
            # The kernel path's subdirectory where its target was.
            text = text2[:first] + "add_subdirectory(kernel)\n" + ("\n" if not text2[first:].startswith("\n") else "") + text2[first:]
        else:
            text = text2
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text, groups, lookups


def plan_moves(plan, groups):
    moves = {}
    srcs = {k: sources_of(v, "offload") for k, v in groups.items()}
    dest = {"daemon": ("daemon/src", "daemon/include/nicoffload/daemon"),
            "cli": ("cli/src", None),
            "kernel": ("offload/kernel/src", "offload/kernel/include/nicoffload/offload")}
    for key, (src_dir, inc_dir) in dest.items():
        stems = []
        for s in srcs[key]:
            if not s.startswith(OFF_SRC + "/"):
                plan.missing.append("%s source %s is not in %s: left where it is" % (key, s, OFF_SRC))
                continue
            base = posixpath.basename(s)
            moves[s] = src_dir + "/" + base
            stems.append(os.path.splitext(base)[0])
        for stem in stems:
            private = "%s/%s.h" % (OFF_SRC, stem)
            if os.path.exists(private):
                moves[private] = "%s/%s.h" % (src_dir, stem)
        if inc_dir:
            headers = ["%s.h" % s for s in stems] + (KERNEL_HEADERS if key == "kernel" else [])
            for h in headers:
                p = "%s/%s" % (OFF_INC, h)
                if os.path.exists(p):
                    moves[p] = "%s/%s" % (inc_dir, h)
                elif h in KERNEL_HEADERS:
                    plan.missing.append("kernel header %s not found" % p)
    if CONTROLLER_OLD not in moves:
        raise Abort("%s is not a source of nicoffload_daemon in %s" % (CONTROLLER_OLD, OFFLOAD_CMAKE))
    for old, new in SIM_RENAMES:
        if os.path.exists(old):
            moves[old] = new
        else:
            plan.missing.append("simulator file %s not found: not renamed" % old)
    for old, new in sorted(moves.items()):
        plan.move(old, new)
    # What stays in offload/src.
    for f in sorted(os.listdir(OFF_SRC)):
        p = OFF_SRC + "/" + f
        if p not in moves:
            plan.notes.append("stays: %s" % p)


def plan_new_cmakelists(plan, offload_text, groups, lookups):
    moves = plan.moves
    headers = {
        "kernel": ("offload/kernel", "# Beside dpdk/ and nic/: the kernel backend of the software path. Its\n"
                   "# headers keep their include path, nicoffload/offload/*.h.\n"),
        "daemon": ("daemon", "# nicoffloadd: request -> admission -> plan -> reconcile -> backends. The\n"
                   "# controller (controller.cc, admission.cc, reconcile.cc, reads.cc), the\n"
                   "# control socket, the state store and the metrics endpoint.\n"),
        "cli": ("cli", "# nicoffloadctl, the operator's command line.\n"),
    }
    remaining = offload_text
    for key, (d, head) in headers.items():
        body = join_blocks([(rewrite_rel_paths(b, "offload", d, moves), adj) for b, adj in groups[key]])
        # Package lookups made in offload/ for imported targets these blocks use.
        needed = []
        for marker, cmd in lookups.items():
            if re.search(marker_re(marker), body):
                needed.append(cmd)
        pre = ""
        if any(c.startswith("pkg_check_modules") for c in needed):
            pre += "find_package(PkgConfig REQUIRED)\n"
        pre += "".join(c + "\n" for c in needed)
        if key == "daemon":
            body = re.sub(r"(?<![\w/])src/controller\.cc\b",
                          "src/controller.cc src/admission.cc src/reconcile.cc src/reads.cc", body, count=1)
        plan.write(d + "/CMakeLists.txt", head + (pre + "\n" if pre else "") + body, new=True)
        plan.notes.append("%s/CMakeLists.txt: %s" % (d, ", ".join(
            sorted({args.split()[0] for b, _ in groups[key] for s, e, n, args in cmake_commands(b)
                    if n in ("add_library", "add_executable")}))))
    # Lookups offload/ no longer uses: dropped there.
    for marker, cmd in lookups.items():
        rest = remaining.replace(cmd, "")
        if cmd in remaining and not re.search(marker_re(marker), rest):
            remaining = remaining.replace(cmd + "\n", "", 1)
            plan.notes.append("%s: dropped %s (used only by what moved)" % (OFFLOAD_CMAKE, cmd.split("(")[0] + "(" + cmd.split("(")[1].split()[0] + ")"))
    remaining = rewrite_rel_paths(remaining, "offload", "offload", moves)
    remaining = re.sub(r"\n{3,}", "\n\n", remaining)
    plan.write(OFFLOAD_CMAKE, remaining)

    root = plan.read(ROOT_CMAKE)
    m = re.search(r"^add_subdirectory\(offload\)[^\n]*\n", root, re.M)
    if not m:
        raise Abort("%s: no add_subdirectory(offload)" % ROOT_CMAKE)
    root = root[:m.end()] + "add_subdirectory(daemon)\n" + root[m.end():]
    # nicoffloadctl links nicoffload_hook_lib: after libvirt-hooks when there.
    m2 = re.search(r"^add_subdirectory\(libvirt-hooks\)[^\n]*\n", root, re.M)
    at = m2.end() if m2 else root.index("add_subdirectory(daemon)\n") + len("add_subdirectory(daemon)\n")
    root = root[:at] + "add_subdirectory(cli)\n" + root[at:]
    plan.write(ROOT_CMAKE, root)
    plan.notes.append("%s: add_subdirectory(daemon) after offload, add_subdirectory(cli) after %s"
                      % (ROOT_CMAKE, "libvirt-hooks" if m2 else "daemon"))


# --- the controller split -------------------------------------------------------

def plan_controller_split(plan):
    text = plan.read(CONTROLLER_NEW_DIR + "/controller.cc")
    m = re.search(r"^namespace nicoffload::offload \{[^\n]*\n", text, re.M)
    if not m:
        raise Abort("controller.cc: no `namespace nicoffload::offload {` line")
    preamble = text[:m.start()]
    close = list(re.finditer(r"^\}\s*//\s*namespace nicoffload::offload[^\n]*\n?", text, re.M))
    if not close:
        raise Abort("controller.cc: no `}  // namespace nicoffload::offload` line")
    body, epilogue = text[m.end():close[-1].start()], text[close[-1].end():]
    items, trailing = split_items(body)
    if trailing.strip():
        raise Abort("controller.cc: text after the last declaration in the namespace not understood")

    marker_res = {s: re.compile(r"^// --- %s ---[ \t]*\n" % re.escape(s), re.M) for s in SECTIONS}
    section_of, section, seen = [], "start", []
    for it in items:
        lead = it[:len(it) - len(blank_code(it).lstrip())]
        for s in SECTIONS:
            if marker_res[s].search(lead):
                seen.append(s)
                section = s
        section_of.append(section)
    if seen != SECTIONS:
        raise Abort("controller.cc: section markers %s expected once each, in this order; found %s"
                    % (", ".join('"// --- %s ---"' % s for s in SECTIONS), seen or "none"))

    dest = [None] * len(items)
    where = []
    first_anon = next((i for i, it in enumerate(items) if is_anon_namespace(it)), None)
    if first_anon is None or section_of[first_anon] != "start":
        raise Abort("controller.cc: no anonymous namespace of helpers before the admission section")
    dest[first_anon] = SHARED_HEADER
    for i, it in enumerate(items):
        m_t = re.match(r"(?:struct|class)\s+Controller::(\w+)", code_of(it))
        if m_t and not dest[i]:
            dest[i] = TYPES_HEADER
            where.append("struct Controller::%s -> %s" % (m_t.group(1), TYPES_HEADER))
    for i, it in enumerate(items):
        if dest[i]:
            continue
        name = member_name(it)
        if name is None:
            continue
        sec = section_of[i]
        if sec == "start" or name in ("Controller", "~Controller"):
            f = "controller.cc"
        elif sec == "admission":
            f = "admission.cc"
        elif sec == "requests":
            f = "reads.cc" if (name in READS or name.endswith("Json")) else "controller.cc"
        else:
            f = "controller.cc" if name in CONTROLLER_IN_RECONCILE else "reconcile.cc"
        dest[i] = f
        where.append("%s -> %s" % (name, f))
    # Other items (helpers in later anonymous namespaces, loose declarations):
    # with their only user, or the shared header when several files use them.
    for i, it in enumerate(items):
        if dest[i]:
            continue
        names = defined_names(it)
        users = set()
        for j, other in enumerate(items):
            if j != i and dest[j] and dest[j] not in (SHARED_HEADER, TYPES_HEADER):
                oc = blank_code(other)
                if any(re.search(r"\b%s\b" % re.escape(nm), oc) for nm in names):
                    users.add(dest[j])
        if len(users) == 1:
            dest[i] = users.pop()
        elif not users:
            nxt = next((dest[j] for j in range(i + 1, len(items))
                        if dest[j] and dest[j] not in (SHARED_HEADER, TYPES_HEADER)),
                       "controller.cc")
            dest[i] = nxt
            plan.missing.append("controller.cc: helpers %s used by no member: put in %s" % (sorted(names), nxt))
        else:
            dest[i] = SHARED_HEADER
            plan.missing.append("controller.cc: helpers %s used by %s: put in %s (inline)"
                                % (sorted(names), sorted(users), SHARED_HEADER))
        where.append("helpers %s -> %s" % (", ".join(sorted(names)) or "?", dest[i]))

    marker_line = re.compile(r"^// --- (%s) ---[ \t]*\n" % "|".join(re.escape(s) for s in SECTIONS), re.M)
    out = {f: [] for f in list(SPLIT_FILES) + [SHARED_HEADER, TYPES_HEADER]}
    for it, f in zip(items, dest):
        it = marker_line.sub("", it)
        out[f].append(it.lstrip("\n") if not out[f] else it)

    includes = re.findall(r"^#include[^\n]*\n", preamble, re.M)
    last_inc = list(re.finditer(r"^#include[^\n]*\n", preamble, re.M))[-1]
    self_inc = '#include "nicoffload/offload/controller.h"\n'
    for f, role in SPLIT_FILES.items():
        if not out[f]:
            plan.missing.append("controller.cc: nothing went to %s" % f)
        own = '\n#include "%s"\n' % SHARED_HEADER
        if out[TYPES_HEADER]:
            own += '#include "%s"\n' % TYPES_HEADER
        pre = preamble[:last_inc.end()] + own + preamble[last_inc.end():]
        head = wrap_comment("Controller: %s." % role + (
            " Admission, reconciliation and the read ops: admission.cc, reconcile.cc, reads.cc; the "
            "helpers they share: %s." % SHARED_HEADER if f == "controller.cc" else ""))
        content = (head + pre + m.group(0) + "\n" +
                   "".join(out[f]).strip("\n") + "\n\n" + close[-1].group(0) + epilogue)
        content = re.sub(r"\n{3,}", "\n\n", content)
        path = CONTROLLER_NEW_DIR + "/" + f
        plan.write(path, content, new=(f != "controller.cc"))
    # The shared header: the helpers, inline, in an anonymous namespace.
    hdr_items = []
    for it in out[SHARED_HEADER]:
        if is_anon_namespace(it):
            code = blank_code(it)
            open_i = code.index("{") + 1
            close_i = code.rindex("}")
            line_end = it.index("\n", open_i) + 1
            inner = it[line_end:it.rfind("\n", 0, close_i) + 1]
            hdr_items.append(inline_functions(inner))
        else:
            hdr_items.append(inline_functions(it))
    hdr_includes = [i for i in includes if i != self_inc]
    std_inc = [i for i in hdr_includes if "<" in i]
    proj_inc = [i for i in hdr_includes if "<" not in i]
    header = ("// Controller: the request fields and the helpers its files share (controller.cc,\n"
              "// admission.cc, reconcile.cc, reads.cc): echoes, field readers, pages, keys.\n"
              "// Private to the daemon; inline, in an anonymous namespace, as they were when\n"
              "// they all lived in controller.cc.\n"
              "#pragma once\n\n" + "".join(std_inc) + "\n" + self_inc + "".join(proj_inc) +
              "\nnamespace nicoffload::offload {\nnamespace {\n\n" +
              "\n".join(x.strip("\n") + "\n" for x in hdr_items) +
              "\n}  // namespace\n}  // namespace nicoffload::offload\n")
    header = re.sub(r"\n{3,}", "\n\n", header)
    plan.write(CONTROLLER_NEW_DIR + "/" + SHARED_HEADER, header, new=True)
    if out[TYPES_HEADER]:
        types = ("// Controller: its nested types defined out of line (the full pass's state).\n"
                 "// Private to the daemon; every file of the Controller includes it, so that\n"
                 "// the unique_ptr members holding them can be created and destroyed anywhere.\n"
                 "#pragma once\n\n" + "".join(std_inc) + "\n" + self_inc +
                 "\nnamespace nicoffload::offload {\n\n" +
                 "\n".join(x.strip("\n") + "\n" for x in out[TYPES_HEADER]) +
                 "\n}  // namespace nicoffload::offload\n")
        plan.write(CONTROLLER_NEW_DIR + "/" + TYPES_HEADER, re.sub(r"\n{3,}", "\n\n", types), new=True)
    plan.notes.append("controller.cc split: " + "; ".join(where))


# --- text rewrites across the tree ------------------------------------------------

def tracked_text_files(plan):
    out = []
    for p in git("ls-files", "-z").split("\0"):
        if not p or p == SELF or p.startswith(SKIP_PREFIXES):
            continue
        if p.startswith("fuzz/regressions/") and not p.endswith(".md"):
            continue
        base = posixpath.basename(p)
        if not (p.endswith(TEXT_EXT) or base == "CMakeLists.txt" or p.startswith("tools/")):
            continue
        p = plan.moves.get(p, p)
        out.append(p)
    out.extend(sorted(plan.new_files - set(out)))
    return out


def sim_context(path, text):
    """Which simulator an unqualified SimNic means in this file: ESW, PF, None
    (neither header included: decided per line) or "both"."""
    esw = re.search(r'nicoffload/simnic/sim_(?:nic|eswitch)\.h', text) is not None
    pf = re.search(r'nicoffload/offload/sim_(?:nic|pf)\.h', text) is not None
    if path.startswith(("simnic/", "tests/simnic/")):
        esw = True
    if path.startswith(("offload/nic_sim/", "tests/nic/")):
        pf = True
    if esw and not pf:
        return ESW
    if pf and not esw:
        return PF
    if not esw and not pf:
        return SIM_FILE_DEFAULT.get(path)
    return "both"


def rewrite_text(plan, path, text, stats):
    orig = text
    moves = plan.moves
    # Full repo paths of moved files (longest first).
    for old in sorted(moves, key=len, reverse=True):
        new = moves[old]
        text = re.sub(r"(?<![\w-])%s(?!\w)" % re.escape(old), new, text)
    # Built programs: <build>/offload/nicoffloadd -> <build>/daemon/nicoffloadd,
    # <build>/offload/nicoffloadctl -> <build>/cli/nicoffloadctl (not the
    # socket /run/nicoffload/nicoffloadd.sock: "nicoffload/" is not "offload/").
    for prog, d in BUILT_PROGRAMS.items():
        text = re.sub(r"(?<![\w-])offload/%s(?!\w)" % prog, d + "/" + prog, text)
    # Include paths.
    inc_map = {}
    for old, new in moves.items():
        m_old = re.search(r"/include/(nicoffload/.+\.h)$", old)
        m_new = re.search(r"/include/(nicoffload/.+\.h)$", new)
        if m_old and m_new and m_old.group(1) != m_new.group(1):
            inc_map[m_old.group(1)] = m_new.group(1)
    for a, b in sorted(inc_map.items(), key=lambda kv: -len(kv[0])):
        text = re.sub(r"(?<![\w-])%s(?!\w)" % re.escape(a), b, text)
    # CMake paths relative to this CMakeLists.
    if posixpath.basename(path) == "CMakeLists.txt" and path not in plan.new_files and path != OFFLOAD_CMAKE:
        d = posixpath.dirname(path)
        text = rewrite_rel_paths(text, d, d, moves)
    # The simulators' class names.
    if "SimNic" in text or "sim_nic." in text:
        ctx = sim_context(path, orig)
        text = re.sub(r"\bsimnic::SimNic\b", "simnic::" + ESW, text)
        text = re.sub(r"\boffload::SimNic\b", "offload::" + PF, text)
        text = re.sub(r"\bSimNicOptions\b", PF + "Options", text)
        lines = text.split("\n")
        for k, line in enumerate(lines):
            if not re.search(r"\bSimNic\b", line):
                continue
            choice = ctx
            if choice in (None, "both"):
                hint = [t for r, t in SIM_LINE_HINTS if r.search(line)]
                choice = hint[0] if len(set(hint)) == 1 else None
            if choice in (ESW, PF):
                lines[k] = re.sub(r"\bSimNic\b", choice, line)
            else:
                plan.missing.append("%s:%d: SimNic left as is (which simulator?): %s" % (path, k + 1, line.strip()))
        text = "\n".join(lines)
        # Bare file names in comments.
        if ctx is None and path.startswith(("offload/", "vdpa/")):
            ctx = PF
        if ctx is None and path.startswith("simnic/"):
            ctx = ESW
        if ctx in (ESW, PF):
            new_base = "sim_eswitch" if ctx == ESW else "sim_pf"
            text = re.sub(r"(?<![\w/])sim_nic\.(h|cc)\b", new_base + r".\1", text)
    if text != orig:
        stats.append(path)
    return text


def plan_text(plan):
    stats = []
    for path in tracked_text_files(plan):
        try:
            text = plan.read(path)
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        new = rewrite_text(plan, path, text, stats)
        if new != text or path in plan.files:
            plan.write(path, new, new=path in plan.new_files)
    plan.notes.append("text rewritten in %d files: %s" % (len(stats), " ".join(sorted(stats))))


def plan_readme(plan):
    path = "README.md"
    if not os.path.exists(path):
        plan.missing.append("README.md not found: Layout table not updated")
        return
    text = plan.read(path)
    m = re.search(r"^\| `offload/` \|[^\n]*\n", text, re.M)
    if not m:
        plan.missing.append("README.md: no `offload/` row in the Layout table: not updated")
        return
    old_row = m.group(0)
    rows = (
        "| `daemon/` | `nicoffloadd`, in the order a request flows: the controller (`nicoffload_daemon`): "
        "`controller.cc` start-up, requests and batches, the timer; `admission.cc` the intent changed in place "
        "and undone when refused; `reconcile.cc` the incremental pass over what a batch touched and the full "
        "pass, the safety net; `reads.cc` status, ports, rules; the control socket, the state store with its "
        "journal and the instance lock (`nicoffload_control`); metrics (`nicoffload_metrics`) |\n"
        "| `cli/` | `nicoffloadctl` |\n"
        "| `offload/` | the backends: the flow backend factory; `dpdk/`: the DPDK `rte_flow` backend; "
        "`kernel/`: the kernel software path (`nicoffload_swpath_kernel`: batched rtnetlink through libnl-3, "
        "namespaces); the `NicBackend` interface, `sysfs/`, `genl/`, `nic/` (sysfs + devlink + rtnetlink), "
        "`nic_sim/` (`SimPf`: the simulated PF, its VFs, representors and vDPA devices in a sysfs tree) |\n")
    text = text[:m.start()] + rows + text[m.end():]
    plan.notes.append("README.md Layout: the offload/ row replaced by daemon/, cli/, offload/ rows; old row was:\n    "
                      + old_row.strip())
    m = re.search(r"^(\| `simnic/` \| the simulated ConnectX eswitch)(?! \(`SimEswitch`\))", text, re.M)
    if m:
        text = text[:m.end()] + " (`SimEswitch`)" + text[m.end():]
    else:
        plan.missing.append("README.md: simnic/ row not as expected: SimEswitch not named there")
    plan.write(path, text)


def leftovers(plan):
    """Mentions of the old places that no rule rewrote."""
    pats = [re.compile(r"offload/src/(?!flow_backends)"), re.compile(r"\bsim_nic\.(h|cc)\b"),
            re.compile(r"\bSimNic\b"), re.compile(r"(?<![\w-])offload/nicoffload(d|ctl)(?!\w)"),
            re.compile(r"nicoffload/offload/(controller|control|state_store|metrics|instance_lock)\.h")]
    for path in tracked_text_files(plan):
        try:
            text = plan.read(path)
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        reported = {x.split(": ", 1)[0] for x in plan.missing}
        for k, line in enumerate(text.split("\n")):
            where = "%s:%d" % (path, k + 1)
            if where not in reported and any(p.search(line) for p in pats):
                plan.missing.append("%s: still mentions an old place: %s" % (where, line.strip()[:160]))


# --- apply ------------------------------------------------------------------------

def apply(plan):
    for old, new in sorted(plan.moves.items()):
        os.makedirs(posixpath.dirname(new), exist_ok=True)
        git("mv", old, new)
    for path, content in sorted(plan.files.items()):
        d = posixpath.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
    split = sorted(p for p in plan.files if p.startswith(CONTROLLER_NEW_DIR + "/") and
                   posixpath.basename(p) in set(SPLIT_FILES) | {SHARED_HEADER, TYPES_HEADER})
    plan.notes.append(clang_format(split))
    git("add", "--", *sorted(plan.files))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    ap.add_argument("--allow-dirty", action="store_true", help="run on a tree with uncommitted changes")
    args = ap.parse_args()
    try:
        top = git("rev-parse", "--show-toplevel").strip()
        if os.path.realpath(top) != os.path.realpath(os.getcwd()):
            raise Abort("run it at the top of the checkout (%s)" % top)
        if os.path.exists("daemon") or os.path.exists("daemon/src/controller.cc") or not os.path.exists(CONTROLLER_OLD):
            raise Abort("already applied (daemon/ exists or %s is gone): nothing done" % CONTROLLER_OLD)
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
        if dirty and not args.allow_dirty and not args.dry_run:
            raise Abort("uncommitted changes to tracked files (commit or stash them, or --allow-dirty):\n" + dirty)
        plan = Plan()
        offload_text, groups, lookups = plan_cmake(plan)
        plan_moves(plan, groups)
        plan_new_cmakelists(plan, offload_text, groups, lookups)
        plan_controller_split(plan)
        plan_readme(plan)
        plan_text(plan)
        leftovers(plan)
    except Abort as e:
        print("relayout-issue12: %s" % e, file=sys.stderr)
        print("relayout-issue12: nothing written", file=sys.stderr)
        return 1

    if not args.dry_run:
        apply(plan)
    print("relayout-issue12: %s" % ("plan (dry run, nothing written)" if args.dry_run else "done (staged, not committed)"))
    print("\nmoved (git mv):")
    for old, new in sorted(plan.moves.items()):
        print("  %s -> %s" % (old, new))
    print("\nnew files:")
    for p in sorted(plan.new_files):
        print("  " + p)
    print("\nclass renames: simnic::SimNic -> simnic::SimEswitch, offload::SimNic -> offload::SimPf, "
          "SimNicOptions -> SimPfOptions (unqualified SimNic by the header a file includes or where it lives)")
    print("\ndone:")
    for n in plan.notes:
        print("  " + n)
    print("\nnot found / not decided (%d):" % len(plan.missing))
    for n in plan.missing:
        print("  " + n)
    if not args.dry_run:
        print("\nnext: cmake configure + build + ctest, then `git commit`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
