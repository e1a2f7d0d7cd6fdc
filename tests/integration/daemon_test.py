#!/usr/bin/env python3
"""nicoffloadd over its real socket: port lifecycle, bad requests answered
with clear errors and nothing lost, a non-root peer refused, metrics,
restart and kill -9 with adoption (no churn). Needs root.

usage: daemon_test.py NICOFFLOADD NICOFFLOADCTL SOURCE_DIR"""

import json
import os
import signal
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, Client, Daemon, World, port, run, tear_down, write_host  # noqa: E402


def main():
    daemon_bin, ctl, root = sys.argv[1], sys.argv[2], sys.argv[3]
    if os.geteuid() != 0:
        print("FAIL: needs root (CI runs as root)")
        return 1
    t = Checks()
    world = World("dmn")
    daemon = None
    try:
        for rep in ("rep1", "rep2", "rep3"):
            world.add_rep(rep)
        metrics_port = 19000 + os.getpid() % 20000
        host, cfg = write_host(world, daemon={"metrics_listen": f"127.0.0.1:{metrics_port}",
                                              "reconcile_interval_ms": 60000,
                                              "sim_device_dir": f"{world.dir}/simnic",
                                              "max_request_bytes": 65536})
        daemon = Daemon(daemon_bin, host, f"{root}/hw-profiles", f"{world.dir}/daemon.log")
        daemon.start()
        c = Client(cfg["socket"])
        st = c.call({"op": "status"})
        t.check("status answers", st["ok"] and st["result"]["host"] == "hv-test", st)
        t.check("socket is 0600", oct(os.stat(cfg["socket"]).st_mode & 0o777) == "0o600")

        # --- port lifecycle ---
        r = c.call({"op": "port.add", "port": port(1, "rep1")})
        t.check("port.add ok", r["ok"], r)
        t.check("port.add: installed", r["ok"] and r["result"]["status"]["state"] == "installed", r)
        t.check("port.add: VF assigned (lowest free)", r["ok"] and r["result"]["port"]["vf"] == 0, r)
        t.check("kernel route for port 1", world.routes() == ["10.0.1.1"], world.routes())
        r = c.call({"op": "port.add", "port": port(1, "rep1")})
        t.check("port.add again: unchanged", r["ok"] and r["result"]["changed"] is False, r)
        r = c.call({"op": "port.add", "port": port(2, "rep2")})
        t.check("second port", r["ok"] and r["result"]["port"]["vf"] == 1, r)
        r = c.call({"op": "port.get", "vm": port(2)["vm"], "nic": 0})
        t.check("port.get lists its rules", r["ok"] and r["result"]["rules"]["hw"] == 5, r)
        r = c.call({"op": "port.list"})
        t.check("port.list has 2", r["ok"] and len(r["result"]) == 2, r)
        t.check("port.list: counts, no rule list", r["ok"] and all(
            set(p["rules"]) == {"hw", "sw", "device_refusals"} for p in r["result"]), r)
        r = c.call({"op": "port.list", "vm": port(2)["vm"]})
        t.check("port.list vm filter", r["ok"] and [p["port"]["vm"] for p in r["result"]] == [port(2)["vm"]], r)
        r = c.call({"op": "port.list", "vm": 7})
        t.check("port.list vm must be a string", not r["ok"] and r["error"]["field"] == "vm", r)
        rules = c.call({"op": "rules"})["result"]
        ld = [x for x in rules if x["class"] == "local-delivery" and x["pattern"][1]["spec"].get("dst") == "10.0.2.1"]
        t.check("local delivery rule for port 2 in hw", len(ld) == 1 and ld[0]["placement"] == "hw", ld)
        if ld:
            e = c.call({"op": "explain", "rule": ld[0]["id"]})
            t.check("explain answers", e["ok"] and "placed hw" in e["result"]["explanation"], e)
        out = run(ctl, "port", "list", "--socket", cfg["socket"], check=False)
        t.check("nicoffloadctl port list", out.returncode == 0 and "installed" in out.stdout, out.stderr)
        out = run(ctl, "rules", "--socket", cfg["socket"], "--json", check=False)
        t.check("nicoffloadctl rules --json", out.returncode == 0 and len(json.loads(out.stdout)) == len(rules))

        # --- bad requests: clear errors, nothing lost ---
        before = world.routes()
        bad = [
            (b"{this is not json\n", "invalid-value", "request"),
            (json.dumps({"op": "port.add", "port": port(3, "rep3", macc="x")}).encode() + b"\n", "unknown-field", "port.macc"),
            (json.dumps({"op": "port.add", "port": dict(port(3, "rep3"), nic="0")}).encode() + b"\n", "wrong-type", "port.nic"),
            (json.dumps({"op": "port.add", "port": port(3, "rep3", addresses=["10.0.1.1/32"])}).encode() + b"\n", "duplicate", "port.addresses[0]"),
            (json.dumps({"op": "port.add", "port": port(3, "rep3", mac="52:54:00:00:00:01")}).encode() + b"\n", "duplicate", "port.mac"),
            (json.dumps({"op": "port.add", "port": port(3, "rep3", addresses=["10.0.3.0/24"])}).encode() + b"\n", "invalid-value", "port.addresses[0]"),
            (json.dumps({"op": "port.add", "prot": {}}).encode() + b"\n", "unknown-field", "prot"),
            (json.dumps({"op": "frobnicate"}).encode() + b"\n", "invalid-value", "op"),
            (json.dumps({"op": "port.add", "port": port(3, "rep3", vf=99)}).encode() + b"\n", "invalid-value", "port.vf"),
            (json.dumps({"op": "port.remove", "vm": 5, "nic": 0}).encode() + b"\n", "wrong-type", "vm"),
        ]
        for data, code, field in bad:
            r = c.raw(data)
            ok = r is not None and not r["ok"] and r["error"]["code"] == code and r["error"]["field"] == field
            t.check(f"bad request -> {code} on {field}", ok, r)
            t.check(f"  ...with a message", r is not None and not r["ok"] and len(r["error"]["message"]) > 10, r)
        r = c.raw(json.dumps({"op": "port.add", "port": port(3, "rep3", pad="x" * 100000)}).encode() + b"\n")
        t.check("oversized request refused", r is not None and not r["ok"] and "larger than the limit" in r["error"]["message"], r)
        t.check("nothing lost after bad requests", world.routes() == before, world.routes())
        t.check("daemon still serving", c.call({"op": "port.list"})["ok"] and len(c.call({"op": "port.list"})["result"]) == 2)

        # A port whose representor does not exist: accepted (the VM may not be
        # up yet), degraded, retried; the others untouched.
        r = c.call({"op": "port.add", "port": port(4, "nosuchrep")})
        t.check("port with missing representor: degraded", r["ok"] and r["result"]["status"]["state"] == "degraded", r)
        t.check("  ...names the failing object", r["ok"] and "nosuchrep" in json.dumps(r["result"]["status"]["software_path_failures"]), r)
        t.check("  ...others intact", set(before) <= set(world.routes()), world.routes())
        r = c.call({"op": "port.remove", "vm": port(4)["vm"], "nic": 0})
        t.check("remove degraded port", r["ok"] and r["result"]["removed"] is True, r)

        # --- non-root peer refused ---
        out = run(ctl, "status", "--socket", cfg["socket"], check=False, user=65534, group=65534)
        t.check("non-root client refused", out.returncode != 0 and "permission denied" in out.stderr.lower(), (out.returncode, out.stderr))

        # --- metrics ---
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        t.check("metrics: ports", "nicoffload_ports 2" in body, body[:300])
        t.check("metrics: hw rules", 'nicoffload_rules{placement="hw"}' in body)

        # --- restart: adoption, zero churn ---
        counters_before = c.call({"op": "counters"})["result"]
        t.check("clean stop", daemon.stop() == 0)
        daemon.start()
        counters = c.call({"op": "counters"})["result"]
        t.check("restart: ports kept", len(c.call({"op": "port.list"})["result"]) == 2)
        t.check("restart: no rule created (adopted)", counters["flow"]["creations"] == 0, counters)
        t.check("restart: same hw rules", counters["flow"]["rules_hw"] == counters_before["flow"]["rules_hw"], counters)
        t.check("restart: kernel routes unchanged", world.routes() == before, world.routes())

        daemon.stop(signal.SIGKILL)
        daemon.start()
        counters = c.call({"op": "counters"})["result"]
        t.check("kill -9: ports kept", len(c.call({"op": "port.list"})["result"]) == 2)
        t.check("kill -9: nothing installed twice", counters["flow"]["creations"] == 0 and counters["flow"]["rules_hw"] == counters_before["flow"]["rules_hw"], counters)

        # Remove: gone from kernel and device; idempotent.
        r = c.call({"op": "port.remove", "vm": port(1)["vm"], "nic": 0})
        t.check("port.remove", r["ok"] and r["result"]["removed"] is True, r)
        t.check("route gone", world.routes() == ["10.0.2.1"], world.routes())
        r = c.call({"op": "port.remove", "vm": port(1)["vm"], "nic": 0})
        t.check("port.remove again: ok, nothing removed", r["ok"] and r["result"]["removed"] is False, r)
        r = c.call({"op": "reconcile"})
        t.check("reconcile op", r["ok"] and r["result"]["failures"] == 0, r)

        # --- remote sync and paged reads through the CLI ---
        # More than one page (the CLI asks 2000 at a time) and under the
        # test's 64 KiB request limit. The routes' kernel side is not the
        # point here: no uplink in this namespace.
        remotes = [{"address": f"10.99.{i // 250}.{i % 250 + 1}/32"} for i in range(2100)]
        out = run(ctl, "remote", "sync", "--socket", cfg["socket"], "--origin", "ctl-test", "--file", "-",
                  "--json", input=json.dumps(remotes), check=False)
        synced = json.loads(out.stdout) if out.returncode == 0 else {}
        t.check("nicoffloadctl remote sync", synced.get("added") == 2100, (out.returncode, out.stdout, out.stderr))
        out = run(ctl, "remote", "list", "--socket", cfg["socket"], "--origin", "ctl-test", "--json", check=False)
        listed = json.loads(out.stdout) if out.returncode == 0 else []
        t.check("nicoffloadctl remote list pages through 2100 remotes",
                sorted(x["address"] for x in listed) == sorted(x["address"] for x in remotes)
                and all(x["origin"] == "ctl-test" for x in listed), (len(listed), out.stderr))
        out = run(ctl, "rules", "--socket", cfg["socket"], "--json", check=False)
        paged = json.loads(out.stdout) if out.returncode == 0 else []
        total = c.call({"op": "rules", "limit": 1})["result"]["total"]
        t.check("nicoffloadctl rules pages through every rule", len(paged) == total and total > 2100
                and len({x["id"] for x in paged}) == total, (len(paged), total))
        out = run(ctl, "remote", "sync", "--socket", cfg["socket"], "--origin", "ctl-test", "--file", "-",
                  input="[]", check=False)
        t.check("an empty sync removes the origin's remotes",
                out.returncode == 0 and c.call({"op": "status"})["result"]["remotes"] == 0, out.stderr)
    except Exception as e:  # noqa: BLE001
        t.check("test ran to the end", False, repr(e))
    finally:
        tear_down(t, daemon, world)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
