#!/usr/bin/env python3
"""nicoffload-hwtest as an operator runs it: the real binary, its exit codes,
its JSON and JUnit reports, its cleanup on SIGINT, and the probe without an
mlx5 device.

usage: hwtest_binary_test.py MODE HWTEST SOURCE_DIR [SIMNIC_TOOL]
  MODE: all-profiles | misconfigured | dpdk | sigint | probe | nothing-ran
"""
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

EXIT_AGREE, EXIT_DISAGREE, EXIT_USAGE, EXIT_CLEANUP, EXIT_DEVICE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5
EXIT_NO_DEVICE = 7
EXIT_NOTHING_RAN = 8


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run(args, timeout=600):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def check_junit(path, report):
    tree = ET.parse(path)  # raises on malformed XML
    suite = tree.getroot().find("testsuite")
    if suite is None:
        fail("JUnit: no testsuite")
    cases = suite.findall("testcase")
    if len(cases) != len(report["cases"]):
        fail("JUnit: %d testcases, JSON %d" % (len(cases), len(report["cases"])))
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    if skipped != report["counts"]["skipped"] or int(suite.get("skipped")) != skipped:
        fail("JUnit skipped %d, JSON %d" % (skipped, report["counts"]["skipped"]))
    if failures != report["counts"]["fail"] + report["counts"]["finding"]:
        fail("JUnit failures %d, JSON %s" % (failures, report["counts"]))


def suite(hwtest, profile, tmp, extra=(), name="run"):
    js, xml = os.path.join(tmp, name + ".json"), os.path.join(tmp, name + ".xml")
    rc, out, err = run([hwtest, "--profile", profile, "--json", js, "--junit", xml] + list(extra))
    if not os.path.exists(js):
        fail("%s: no JSON report (rc %d)\n%s\n%s" % (name, rc, out, err))
    report = json.load(open(js))
    check_junit(xml, report)
    if report["exit_code"] != rc:
        fail("%s: exit %d but the report says %d" % (name, rc, report["exit_code"]))
    return rc, report, out, err


def by_name(report):
    return {c["name"]: c for c in report["cases"]}


def all_profiles(hwtest, src, tmp):
    profiles = sorted(glob.glob(os.path.join(src, "hw-profiles", "*.json")))
    if len(profiles) < 7:
        fail("expected the 7 shipped profiles, found %d" % len(profiles))
    for p in profiles:
        name = os.path.basename(p)[:-5]
        rc, report, out, err = suite(hwtest, p, tmp, ["--backend", "sim", "--fill-limit", "4096",
                                                      "--rate-rules", "500"], name)
        bad = [c["name"] + ": " + c["result"] + " " + c["summary"] for c in report["cases"]
               if c["result"] in ("fail", "finding")]
        if rc != EXIT_AGREE or bad:
            fail("%s: exit %d, disagreements %s\n%s" % (name, rc, bad, err))
        cases = by_name(report)
        passed = report["counts"]["pass"]
        if passed < 25:
            fail("%s: only %d cases passed" % (name, passed))
        for skipped in ("item/arp_eth_ipv4", "table/group0-fill"):
            if cases[skipped]["result"] != "skipped" or not cases[skipped]["summary"]:
                fail("%s: %s should be skipped with a reason" % (name, skipped))
        if "pass " + str(passed) not in out or "skipped " + str(report["counts"]["skipped"]) not in out:
            fail("%s: summary on stdout does not count\n%s" % (name, out))
        print("%-14s pass %2d skipped %d  local-delivery insert %.0f rules/s" %
              (name, passed, report["counts"]["skipped"],
               cases["rate/local-delivery"]["figures"]["insert_rules_per_s"]))
    # A profile with small tables: the fill cases run for real.
    doc = json.load(open(os.path.join(src, "hw-profiles", "sim.json")))
    doc["tables"]["root_table_rules"] = 3000
    doc["tables"]["rules_per_group"] = 2000
    small = os.path.join(tmp, "sim.json")
    json.dump(doc, open(small, "w"))
    rc, report, out, err = suite(hwtest, small, tmp, ["--case", "^table/"], "small")
    cases = by_name(report)
    if rc != EXIT_AGREE or len(cases) != 3 or any(c["result"] != "pass" for c in cases.values()):
        fail("small tables: exit %d %s" % (rc, out))
    if cases["table/group0-fill"]["figures"]["filled"] != 3000:
        fail("group 0 not filled to 3000")


def misconfigured(hwtest, src, tmp):
    doc = json.load(open(os.path.join(src, "hw-profiles", "sim.json")))
    doc["tables"]["root_table_rules"] = 400
    doc["tables"]["rules_per_group"] = 400
    tested = os.path.join(tmp, "sim.json")
    json.dump(doc, open(tested, "w"))
    real = json.loads(json.dumps(doc))
    real["actions"]["vxlan_encap"]["supported"] = False      # a capability removed
    real["actions"]["vxlan_encap"]["ipv6_underlay"]["supported"] = False  # ... and with it IPv6 outer
    real["tables"]["root_table_rules"] = 300                 # a table shrunk
    device = os.path.join(tmp, "device", "sim.json")  # a profile's name is its file's stem
    os.makedirs(os.path.dirname(device))
    json.dump(real, open(device, "w"))
    corrected = os.path.join(tmp, "corrected", "sim.json")
    os.makedirs(os.path.dirname(corrected))
    common = ["--sim-profile", device, "--sim-fail-create", "dec_ttl",  # refused only at create
              "--fill-limit", "4096", "--rate-rules", "200"]
    rc, report, out, err = suite(hwtest, tested, tmp, common + ["--write-profile", corrected], "mis")
    if rc != EXIT_DISAGREE:
        fail("mis-configured: exit %d, expected %d\n%s" % (rc, EXIT_DISAGREE, out))
    got = {c["name"]: c["result"] for c in report["cases"] if c["result"] in ("fail", "finding")}
    expected = {n: "fail" for n in ("action/vxlan_encap", "action/vxlan_encap-ipv6",
                                    "action/dec_ttl", "table/group0-fill",
                                    "class/local-delivery", "class/routed-egress", "class/vxlan-egress",
                                    "rate/local-delivery", "rate/routed-egress", "rate/vxlan-egress")}
    if got != expected:
        fail("mismatches reported %s\nexpected %s" % (sorted(got), sorted(expected)))
    cases = by_name(report)
    if "has no action vxlan_encap" not in cases["action/vxlan_encap"]["device_message"]:
        fail("the device's own message is missing: %s" % cases["action/vxlan_encap"])
    if cases["table/group0-fill"]["figures"]["accepted"] != 300:
        fail("fill: %s" % cases["table/group0-fill"])
    fixed = json.load(open(corrected))
    if (fixed["actions"]["vxlan_encap"]["supported"] or fixed["actions"]["dec_ttl"]["supported"]
            or fixed["actions"]["vxlan_encap"]["ipv6_underlay"]["supported"]
            or fixed["tables"]["root_table_rules"] != 300):
        fail("corrected profile: %s %s" % (fixed["actions"], fixed["tables"]))
    if not fixed["actions"]["dec_ttl"]["source"].startswith("nicoffload-hwtest: "):
        fail("the correction does not quote the device: %s" % fixed["actions"]["dec_ttl"]["source"])
    if "warning" in err:
        fail("corrected profile does not pass the schema: %s" % err)
    # The corrected profile agrees with that device.
    rc, report, out, err = suite(hwtest, corrected, tmp, common, "fixed")
    if rc != EXIT_AGREE:
        fail("corrected profile against the same device: exit %d\n%s" % (rc, out))


def dpdk(hwtest, src, tmp):
    prefix = "nfo-hwtest-%d" % os.getpid()
    eal = ("--no-huge --no-pci -m 512 --no-shconf --file-prefix %s --no-telemetry --log-level=*:error "
           "--vdev net_null0 --vdev net_null1 --vdev net_null2" % prefix)
    profile = os.path.join(src, "hw-profiles", "connectx-6dx.json")
    rc, report, out, err = suite(hwtest, profile, tmp, ["--backend", "dpdk", "--eal-args", eal, "--vfs", "2",
                                                        "--fill-limit", "4096", "--rate-rules", "50"], "dpdk")
    if rc != EXIT_DISAGREE:
        fail("dpdk on net_null: exit %d, expected %d\n%s\n%s" % (rc, EXIT_DISAGREE, out, err))
    if report["backend"] != "dpdk":
        fail("backend %s" % report["backend"])
    hardware = 0
    for c in report["cases"]:
        name, result = c["name"], c["result"]
        if name.startswith(("nic/", "vdpa/")) or name in ("item/arp_eth_ipv4", "rate/template-api",
                                                          "table/group0-fill", "table/group1-fill"):
            # No NIC backend; the IR has no ARP item; no template API; tables above --fill-limit.
            if result != "skipped" or not c["summary"]:
                fail("%s should be skipped with a reason: %s" % (name, c))
            continue
        hardware += 1
        if result != "fail":
            fail("%s: %s on net_null (it has no rte_flow support)" % (name, result))
        msg = c["device_message"]
        if "rte_flow" not in msg and "not supported" not in msg.lower() and "function not implemented" not in msg.lower():
            fail("%s: the device's refusal is not reported: %r" % (name, msg))
    if hardware < 20:
        fail("only %d hardware cases" % hardware)
    if os.path.exists("/var/run/dpdk/" + prefix):
        fail("EAL runtime directory left behind")
    print("dpdk: %d hardware cases failed with the device's refusal" % hardware)

    # The same from a host config, as nicoffloadd opens the PF (--host): the
    # backend, EAL arguments, port numbering, VF count and profile come from it.
    host = json.load(open(os.path.join(src, "examples", "host-routed.json")))
    host["hw_profile"] = "connectx-6dx"
    host["uplink"]["vf_count"] = 2
    host["backends"] = {"flow": "dpdk", "software_path": "kernel", "vdpa": "none", "nic": "sim"}
    host["dpdk"] = {"uplink_port_id": 0, "first_representor_port_id": 1, "eal_args": eal.split()}
    host_file = os.path.join(tmp, "host.json")
    json.dump(host, open(host_file, "w"))
    js = os.path.join(tmp, "host-run.json")
    rc, out, err = run([hwtest, "--host", host_file, "--profile-dir", os.path.join(src, "hw-profiles"),
                        "--case", "^(item|class)/", "--json", js])
    report = json.load(open(js)) if os.path.exists(js) else {}
    if rc != EXIT_DISAGREE or report.get("backend") != "dpdk" or report.get("profile") != "connectx-6dx":
        fail("--host: exit %d, report %s\n%s\n%s" % (rc, {k: report.get(k) for k in ("backend", "profile")},
                                                      out, err))
    if report["counts"]["fail"] < 10 or report["counts"]["pass"] != 0:
        fail("--host: %s" % report["counts"])
    if os.path.exists("/var/run/dpdk/" + prefix):
        fail("EAL runtime directory left behind (--host)")


def sim_rules(simnic, device_dir):
    rc, out, err = run([simnic, "dump", device_dir])
    if rc != 0:
        fail("nicoffload-simnic dump %s: %d %s" % (device_dir, rc, err))
    return len(json.loads(out)["rules"])


def file_size(path):
    """0 for a file gone since it was listed (the journal's .tmp, renamed)."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def start_fill(hwtest, profile, device_dir, tmp, name, extra=()):
    js = os.path.join(tmp, name + ".json")
    # Its own TMPDIR: the simulated PF's directory goes there, apart from
    # those of the hwtest runs other tests make at the same time.
    env = dict(os.environ, TMPDIR=tmp)
    p = subprocess.Popen([hwtest, "--profile", profile, "--sim-device-dir", device_dir, "--case",
                          "^table/group0-fill$", "--fill-limit", "2000000", "--json", js] + list(extra),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # Wait until the device's journal grows (a record per rule): the fill is
    # under way. Its size, not a dump, so that the poll costs nothing.
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.01)
        size = sum(file_size(os.path.join(d, f)) for d, _, fs in os.walk(device_dir) for f in fs) \
            if os.path.isdir(device_dir) else 0
        if size > 64 * 1024:
            return p, js
    p.kill()
    out, err = p.communicate()
    fail("%s: the fill did not start or ended at once (exit %s)\n%s\n%s" % (name, p.returncode, out, err))


def sigint(hwtest, src, tmp):
    # 1 M rules in group 0: the fill takes seconds, and the signal comes
    # within its first few thousand rules.
    profile = os.path.join(src, "hw-profiles", "sim.json")
    dev = os.path.join(tmp, "dev-int")
    p, js = start_fill(hwtest, profile, dev, tmp, "int")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    if p.returncode != EXIT_INTERRUPTED:
        fail("SIGINT: exit %d, expected %d\n%s\n%s" % (p.returncode, EXIT_INTERRUPTED, out, err))
    report = json.load(open(js))
    if not report["interrupted"] or report["cleanup_errors"]:
        fail("SIGINT report: %s" % report)
    fill = report["cases"][-1]
    if fill["name"] != "table/group0-fill" or "interrupted after" not in fill["summary"]:
        fail("SIGINT did not stop the fill midway: %s" % fill)
    left = sim_rules(SIMNIC, dev)
    if left != 0:
        fail("SIGINT: the device still holds %d rules" % left)
    if glob.glob(os.path.join(tmp, "nicoffload-hwtest-*")):
        fail("SIGINT: the simulated PF's directory was left behind")
    print("SIGINT: interrupted, device empty")

    # SIGTERM the same way.
    dev = os.path.join(tmp, "dev-term")  # a fresh device: its journal starts empty
    p, js = start_fill(hwtest, profile, dev, tmp, "term")
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=300)
    if p.returncode != EXIT_INTERRUPTED or sim_rules(SIMNIC, dev) != 0:
        fail("SIGTERM: exit %d, %d rules left" % (p.returncode, sim_rules(SIMNIC, dev)))

    # A device that holds someone else's rules (a run killed with SIGKILL
    # leaves its rules, as a crashed controller would) is busy.
    busy = os.path.join(tmp, "dev-busy")
    p, _ = start_fill(hwtest, profile, busy, tmp, "kill")
    p.kill()
    p.communicate()
    held = sim_rules(SIMNIC, busy)
    if held == 0:
        fail("SIGKILL left no rules: the busy check cannot be tested")
    rc, out, err = run([hwtest, "--profile", profile, "--sim-device-dir", busy, "--case", "^item/"])
    if rc != EXIT_DEVICE or "--allow-busy" not in err:
        fail("busy device: exit %d, expected %d\n%s" % (rc, EXIT_DEVICE, err))
    rc, out, err = run([hwtest, "--profile", profile, "--sim-device-dir", busy, "--case", "^item/",
                        "--allow-busy"])
    if rc != EXIT_AGREE:
        fail("--allow-busy: exit %d\n%s\n%s" % (rc, out, err))
    if sim_rules(SIMNIC, busy) != held:
        fail("--allow-busy touched the rules it did not make: %d -> %d" % (held, sim_rules(SIMNIC, busy)))
    print("busy: refused without --allow-busy; with it, the %d foreign rules untouched" % held)


def probe(hwtest, src, tmp):
    if glob.glob("/sys/class/infiniband/mlx5_*"):
        print("this host has an mlx5 device: the no-device path cannot be tested here")
        sys.exit(1)  # never a pass by default
    rc, out, err = run([hwtest, "--probe"])
    if rc != EXIT_NO_DEVICE:
        fail("--probe without a device: exit %d, expected %d\n%s\n%s" % (rc, EXIT_NO_DEVICE, out, err))
    if "no mlx5 device on this host" not in out:
        fail("--probe does not say it plainly: %r" % out)
    rc, out, err = run([hwtest, "--help"])
    if rc != 0 or "7  --probe: no mlx5 device" not in out or "5  interrupted" not in out:
        fail("--help does not document the exit codes: %s" % out)
    print("probe: no device reported, exit 7")


def nothing_ran(hwtest, src, tmp):
    """A run that checked nothing never exits 0: EAL arguments that make
    rte_eal_init print its usage and exit the process (status 0) are refused
    before the EAL starts, naming --eal-args; --case matching no case exits 8."""
    profile = os.path.join(src, "hw-profiles", "sim.json")
    prefix = "nfo-hwtest-help-%d" % os.getpid()
    base = "--no-huge --no-pci -m 512 --no-shconf --file-prefix %s --no-telemetry --vdev net_null0" % prefix
    for eal in ("--help", "-h", "--version", base + " --help", base + " --hel", "-vh", "--help=1"):
        rc, out, err = run([hwtest, "--profile", profile, "--backend", "dpdk", "--eal-args=" + eal,
                            "--vfs", "1"], timeout=120)
        if rc != EXIT_USAGE:
            fail("--eal-args=%r: exit %d, expected %d (the EAL must not run)\n%s\n%s"
                 % (eal, rc, EXIT_USAGE, out, err))
        if "--eal-args" not in err or "exit the process" not in err:
            fail("--eal-args=%r: the error does not name --eal-args and why: %r" % (eal, err))
        if "pass " in out:
            fail("--eal-args=%r: a summary was printed: %r" % (eal, out))
    # The same refusal for the host config's dpdk.eal_args (read by --host).
    host = json.load(open(os.path.join(src, "examples", "host.json")))
    host["hw_profile"] = profile
    host.setdefault("dpdk", {})["eal_args"] = ["--no-huge", "--he"]
    host_file = os.path.join(tmp, "host-help.json")
    json.dump(host, open(host_file, "w"))
    rc, out, err = run([hwtest, "--host", host_file, "--backend", "dpdk"], timeout=120)
    if rc != EXIT_USAGE or "dpdk.eal_args" not in err:
        fail("--host with eal_args --he: exit %d, expected %d\n%s\n%s" % (rc, EXIT_USAGE, out, err))

    js = os.path.join(tmp, "none.json")
    rc, out, err = run([hwtest, "--profile", profile, "--case", "^no-such-case$", "--json", js])
    if rc != EXIT_NOTHING_RAN:
        fail("--case matching nothing: exit %d, expected %d\n%s\n%s" % (rc, EXIT_NOTHING_RAN, out, err))
    if json.load(open(js))["exit_code"] != EXIT_NOTHING_RAN or "no case ran" not in err:
        fail("--case matching nothing: report or message: %s %r" % (open(js).read(), err))
    rc, out, err = run([hwtest, "--help"])
    if rc != 0 or "8  no case ran" not in out:
        fail("--help does not document exit 8: %s" % out)
    print("nothing-ran: EAL --help/-h/--version refused (exit 2), no case run exits 8")


if __name__ == "__main__":
    mode, HWTEST, SRC = sys.argv[1], sys.argv[2], sys.argv[3]
    SIMNIC = sys.argv[4] if len(sys.argv) > 4 else None
    with tempfile.TemporaryDirectory(prefix="nfo-hwtest-") as tmp:
        {"all-profiles": all_profiles, "misconfigured": misconfigured, "dpdk": dpdk, "sigint": sigint,
         "probe": probe, "nothing-ran": nothing_ran}[mode](HWTEST, SRC, tmp)
    print("ok")
