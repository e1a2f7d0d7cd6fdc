#!/usr/bin/env python3
"""Crash test: nicoffloadd is killed with SIGKILL at random moments while
ports are added and removed, then restarted; after every restart the
installed state must equal the desired state exactly:
  - no acknowledged port lost (a request in flight at the kill may or may
    not have landed: both outcomes are accepted, nothing else);
  - the simulated NIC (read straight from its device directory with
    nicoffload-simnic, not through the daemon) holds exactly the hardware
    rules of the plan of the daemon's ports: nothing missing, nothing extra,
    nothing twice;
  - the kernel (read back in the test namespace) holds exactly the planned
    routes and permanent neighbours.
Needs root.  usage: crash_test.py NICOFFLOADD NICOFFLOADCTL SIMNIC_TOOL SOURCE_DIR [KILLS]"""

import json
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, Client, Daemon, World, port, run, tear_down, write_host  # noqa: E402

PORTS = 6
REMOTES = 8


def remote(i):
    return {"address": f"10.99.0.{i}/32"}


def worker(client, stop, acked, inflight, lock, rng):
    # Keys: port index i (int), or ("r", i) for remote i.
    while not stop.is_set():
        add = rng.random() < 0.6
        if rng.random() < 0.5:
            i = rng.randrange(1, PORTS + 1)
            req = ({"op": "port.add", "port": port(i, f"rep{i}")} if add
                   else {"op": "port.remove", "vm": port(i)["vm"], "nic": 0})
        else:
            n = rng.randrange(1, REMOTES + 1)
            i = ("r", n)
            req = ({"op": "remote.add", "remote": remote(n)} if add
                   else {"op": "remote.remove", "address": remote(n)["address"]})
        with lock:
            inflight[i] = add
        try:
            r = client.call(req, timeout=5)
        except (OSError, ValueError):
            return  # the daemon died under us
        if r is None:
            return
        with lock:
            if r.get("ok"):
                acked[i] = add
            inflight.pop(i, None)


def main():
    daemon_bin, ctl, simtool, root = sys.argv[1:5]
    kills = int(sys.argv[5]) if len(sys.argv) > 5 else 50
    if os.geteuid() != 0:
        print("FAIL: needs root")
        return 1
    rng = random.Random(int(os.environ.get("NFO_CRASH_SEED", str(os.getpid()))))
    t = Checks()
    world = World("crash")
    daemon = None
    try:
        for i in range(1, PORTS + 1):
            world.add_rep(f"rep{i}")
        # A tiny journal limit: a snapshot is written in the background every
        # few batches, so that kills also land during compactions.
        # The uplink for the remotes' routes: a veth whose peer stays in the
        # namespace, on the underlay subnet of the next hop.
        run("ip", "-n", world.ns, "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p")
        run("ip", "-n", world.ns, "addr", "add", "192.0.2.1/24", "dev", "uplink0")
        for dev in ("uplink0", "uplink0p"):
            run("ip", "-n", world.ns, "link", "set", dev, "up")
        host, cfg = write_host(world)
        cfg["uplink"]["netdev"] = "uplink0"
        cfg["daemon"]["journal_compact_bytes"] = 4096
        with open(host, "w") as f:
            json.dump(cfg, f)
        profiles = f"{root}/hw-profiles"
        daemon = Daemon(daemon_bin, host, profiles, f"{world.dir}/daemon.log")
        daemon.start()
        acked = {}  # port index -> present?
        killed_in_flight = 0
        for k in range(kills):
            client = Client(cfg["socket"])
            stop = threading.Event()
            inflight = {}
            lock = threading.Lock()
            th = threading.Thread(target=worker, args=(client, stop, acked, inflight, lock, rng))
            th.start()
            time.sleep(rng.uniform(0.02, 0.4))
            daemon.stop(signal.SIGKILL)
            stop.set()
            th.join(timeout=10)
            daemon.start()
            if inflight:
                killed_in_flight += 1

            # Ports: acknowledged state, except where a request was in flight.
            listed = {p["port"]["vm"] for p in Client(cfg["socket"]).call({"op": "port.list"})["result"]}
            ok = True
            for i in range(1, PORTS + 1):
                present = port(i)["vm"] in listed
                allowed = {acked.get(i, False)}
                if i in inflight:
                    allowed.add(inflight[i])
                if present not in allowed:
                    ok = False
                    t.check(f"kill {k}: port {i} present={present}, expected one of {allowed}", False)
                acked[i] = present  # what holds now is the truth going forward
            t.check(f"kill {k}: no acknowledged port lost", ok)
            listed_r = {r["address"] for r in Client(cfg["socket"]).call({"op": "remote.list"})["result"]}
            ok = True
            for n in range(1, REMOTES + 1):
                key = ("r", n)
                present = remote(n)["address"] in listed_r
                allowed = {acked.get(key, False)}
                if key in inflight:
                    allowed.add(inflight[key])
                if present not in allowed:
                    ok = False
                    t.check(f"kill {k}: remote {n} present={present}, expected one of {allowed}", False)
                acked[key] = present
            t.check(f"kill {k}: no acknowledged remote lost", ok)

            # Desired: the offline plan of exactly these ports.
            ports = [port(i, f"rep{i}") for i in range(1, PORTS + 1) if acked[i]]
            for p in ports:  # the daemon assigned the VFs: take them from it
                got = Client(cfg["socket"]).call({"op": "port.get", "vm": p["vm"], "nic": 0})["result"]
                p["vf"] = got["port"]["vf"]
            pf = f"{world.dir}/ports-now.json"
            remotes = [remote(n) for n in range(1, REMOTES + 1) if acked[("r", n)]]
            with open(pf, "w") as f:
                json.dump({"ports": ports, "remotes": remotes}, f)
            plan = json.loads(run(ctl, "plan", "--host", host, "--ports", pf, "--profile-dir", profiles, "--json").stdout)
            want_hw = sorted(r["id"].split("-", 1)[1] for r in plan["rules"] if r["placement"] == "hw")

            # The device's own view.
            dump = json.loads(run(simtool, "dump", f"{cfg['daemon']['sim_device_dir']}/{cfg['uplink']['pci']}").stdout)
            got_ids = [r["id"] for r in dump["rules"]]
            t.check(f"kill {k}: device holds exactly the planned hw rules",
                    sorted(got_ids) == want_hw,
                    f"missing {sorted(set(want_hw) - set(got_ids))[:3]} extra {sorted(set(got_ids) - set(want_hw))[:3]}")
            t.check(f"kill {k}: no rule twice on the device", len(got_ids) == len(set(got_ids)))

            # The kernel's view.
            rb = json.loads(run(ctl, "readback", "--netns", world.ns, "--host", host, "--ports", pf,
                                "--profile-dir", profiles).stdout)
            want_routes = sorted(r["dst"] for r in plan["software_path"]["routes"])
            got_routes = sorted(r["dst"] for r in rb["routes"])
            t.check(f"kill {k}: kernel routes = plan", got_routes == want_routes, f"{got_routes} vs {want_routes}")
            want_nb = sorted((n["dev"], n["ip"]) for n in plan["software_path"]["neighbours"])
            got_nb = sorted((n["dev"], n["ip"]) for n in rb["neighbours"])
            t.check(f"kill {k}: kernel neighbours = plan", got_nb == want_nb, f"{got_nb} vs {want_nb}")
        compactions = 0
        try:
            compactions = Client(cfg["socket"]).call({"op": "status"})["result"]["state_journal"]["compactions"]
        except (OSError, KeyError, TypeError):
            pass
        segments = [f for f in os.listdir(cfg["state_dir"]) if f.startswith("journal.")]
        # Each snapshot rotates the journal to a new segment number: the
        # highest one counts the compactions of the whole run.
        last_seq = max((int(f.split(".", 1)[1]) for f in segments), default=0)
        t.check("the journal was compacted many times during the run (kills during compactions)",
                last_seq >= kills // 5, last_seq)
        print(f"{kills} SIGKILLs ({killed_in_flight} with a request in flight), "
              f"final ports: {sorted(i for i in acked if isinstance(i, int) and acked[i])}, "
              f"remotes: {sorted(n for (_, n) in (k for k in acked if isinstance(k, tuple)) if acked[('r', n)])}, "
              f"journal segment now #{last_seq}, compactions since the last start {compactions}")
        t.check("some kills hit a request in flight", killed_in_flight >= kills // 4, killed_in_flight)
    except Exception as e:  # noqa: BLE001
        t.check("test ran to the end", False, repr(e))
    finally:
        tear_down(t, daemon, world, log_tail=4000)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
