#!/usr/bin/env python3
"""nicoffloadd against hostile and awkward clients, over its real socket
(issue 11): every bad line gets one clear JSON error reply and the daemon
lives; a client that half-closes gets its replies; an empty line is
answered; 300 clients holding partial requests are timed out and a normal
client is served after them; a port.add sent during a large remote.sync is
answered before the sync (issue 22). Needs root.

usage: daemon_input_test.py NICOFFLOADD SOURCE_DIR"""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nfo_testlib import Checks, Client, Daemon, World, port, tear_down, write_host  # noqa: E402

# nicoffloadd's default (control::Server::Options::partial_request_timeout).
PARTIAL_REQUEST_TIMEOUT_S = 5.0


def exchange(path, data, half_close=False, timeout=5):
    """Sends raw bytes, optionally half-closes, and returns every reply line
    (parsed, or the raw bytes when a line is not JSON) until the daemon
    closes or `timeout` passes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(data)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    buf = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if not half_close and b"\n" in buf:
                break
    except socket.timeout:
        pass
    s.close()
    out = []
    for line in buf.split(b"\n"):
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append(line)
    return out


def main():
    daemon_bin, root = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        print("FAIL: needs root (CI runs as root)")
        return 1
    t = Checks()
    world = World("din")
    daemon = None
    try:
        for rep in ("rep1", "rep2", "rep3"):
            world.add_rep(rep)
        host, cfg = write_host(world, daemon={"metrics_listen": "", "reconcile_interval_ms": 60000,
                                              "sim_device_dir": f"{world.dir}/simnic",
                                              "max_request_bytes": 1 << 20})
        daemon = Daemon(daemon_bin, host, f"{root}/hw-profiles", f"{world.dir}/daemon.log")
        daemon.start()
        sock = cfg["socket"]
        c = Client(sock)
        r = c.call({"op": "port.add", "port": port(1, "rep1")})
        t.check("port.add ok", r["ok"], r)

        def alive(what):
            t.check(f"{what}: daemon alive", daemon.proc.poll() is None, daemon.proc.returncode)
            if daemon.proc.poll() is None:
                st = c.call({"op": "status"}, timeout=5)
                t.check(f"{what}: still serving", st["ok"] and st["result"]["ports"] == 1, st)

        e60 = "é" * 60
        nested = 400000
        hostile = [
            ("invalid UTF-8 byte", b"\xff\n", "request", "not valid JSON"),
            ("UTF-8 surrogate in op", b'{"op":"\xed\xa0\x80"}\n', "request", "not valid JSON"),
            ("not JSON, byte 60 mid-character", ("x" + e60).encode() + b"\n", "request", "not valid JSON"),
            ("JSON string, byte 60 mid-character", json.dumps(e60, ensure_ascii=False).encode() + b"\n",
             "request", "must be a JSON object"),
            ("100k nested arrays", b"[" * 100000 + b"]" * 100000 + b"\n", "request", "nested deeper"),
            ("duplicate key", b'{"op":"status","op":"rules"}\n', "op", "appears twice"),
            ("testpmd not a boolean", b'{"op":"rules","testpmd":1}\n', "testpmd", "must be true or false"),
            ("800 KB port.remove with nested vm",
             b'{"op":"port.remove","vm":' + b"[" * nested + b"]" * nested + b',"nic":0}\n',
             "request", "nested deeper"),
            ("long non-ASCII vm refused",
             json.dumps({"op": "port.add", "port": port(2, "rep2", vm=e60)}, ensure_ascii=False).encode() + b"\n",
             "port.vm", ""),
            ("empty line", b"\n", "request", "empty request"),
        ]
        for what, data, field, needle in hostile:
            replies = exchange(sock, data)
            r = replies[0] if replies else None
            ok = isinstance(r, dict) and r.get("ok") is False and r["error"]["field"] == field \
                and needle in r["error"]["message"]
            t.check(f"{what}: one clear error on field {field}", ok, replies[:1] if replies else "no reply")
            if isinstance(r, dict) and not r.get("ok"):
                t.check(f"{what}: value echoed short", len(r["error"]["value"].encode()) <= 90, r["error"]["value"])
            alive(what)

        # Half-close (shutdown(SHUT_WR), as nc -N and socat do): every reply
        # arrives, including one for a last line without its '\n'.
        add2 = json.dumps({"op": "port.add", "port": port(2, "rep2")}).encode()
        replies = exchange(sock, add2 + b"\n" + b'{"op":"port.list"}', half_close=True)
        t.check("half-close: a reply per request", len(replies) == 2, replies)
        t.check("half-close: port.add acknowledged", len(replies) >= 1 and isinstance(replies[0], dict)
                and replies[0]["ok"] and replies[0]["result"]["changed"] is True, replies[:1])
        t.check("half-close: unterminated last line answered", len(replies) == 2 and isinstance(replies[1], dict)
                and replies[1]["ok"] and len(replies[1]["result"]) == 2, replies[1:])
        r = c.call({"op": "port.remove", "vm": port(2)["vm"], "nic": 0})
        t.check("port 2 removed again", r["ok"] and r["result"]["removed"], r)
        alive("half-close")

        # Issue 22: a large remote.sync is served in slices; a port.add (the
        # libvirt hook's prepare) sent on another connection right after it
        # is answered before the sync's reply, not after it.
        n = 20000
        sync = {"op": "remote.sync", "origin": "bulk",
                "remotes": [{"address": f"10.{200 + i // 65536}.{(i // 256) % 256}.{i % 256 + 0}/32"}
                            for i in range(1, n + 1) if i % 256 != 0]}
        bulk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bulk.settimeout(60)
        bulk.connect(sock)
        bulk.sendall((json.dumps(sync) + "\n").encode())
        r = c.call({"op": "port.add", "brief": True, "port": port(3, "rep3")}, timeout=30)
        t.check("port.add during a large remote.sync: ok", r["ok"], r)
        bulk.setblocking(False)
        try:
            early = bulk.recv(65536)
        except BlockingIOError:
            early = b""
        t.check("port.add during a large remote.sync: answered before the sync", early == b"",
                early[:200])
        bulk.setblocking(True)
        buf = early
        while b"\n" not in buf:
            chunk = bulk.recv(65536)
            if not chunk:
                break
            buf += chunk
        bulk.close()
        r = json.loads(buf.split(b"\n")[0]) if buf else None
        t.check("the large remote.sync: ok, all of it", r and r["ok"] and r["result"]["added"] == len(sync["remotes"]),
                str(r)[:300])
        r = c.call({"op": "remote.sync", "origin": "bulk", "remotes": []}, timeout=60)
        t.check("the large remote.sync emptied again", r["ok"] and r["result"]["removed"] == len(sync["remotes"]),
                str(r)[:300])
        r = c.call({"op": "port.remove", "vm": port(3)["vm"], "nic": 0})
        t.check("port 3 removed again", r["ok"] and r["result"]["removed"], r)
        alive("large remote.sync")

        # 300 slow clients, each holding a partial request: they fill every
        # slot, then are timed out; a normal client is served after them.
        # Past the daemon's 256 connections, it answers "busy" and closes at
        # once: the send of such a client may then fail (EPIPE), as it would
        # for any client refused that way.
        slow = []
        refused = 0
        for _ in range(300):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            try:
                s.sendall(b'{"op":"sta')
            except (BrokenPipeError, ConnectionResetError):
                refused += 1
            slow.append(s)
        t.check("only clients past the connection limit are refused at once", refused <= 300 - 256, refused)
        started = time.time()
        time.sleep(0.3)
        r = c.call({"op": "status"}, timeout=5)
        t.check("slow clients hold every slot: busy", not r["ok"] and r["error"]["code"] == "busy", r)
        served = None
        while time.time() - started < PARTIAL_REQUEST_TIMEOUT_S + 5:
            time.sleep(0.25)
            r = c.call({"op": "status"}, timeout=5)
            if r["ok"]:
                served = time.time() - started
                break
        t.check("a normal client is served once the slow ones time out", served is not None, r)
        t.check("  ...not before the timeout", served is None or served >= PARTIAL_REQUEST_TIMEOUT_S - 1, served)
        told = 0
        for s in slow:
            s.settimeout(5)
            try:
                data = s.recv(65536)
                told += b"incomplete request" in data
            except OSError:
                pass
            s.close()
        t.check("slow clients holding a slot were told why", told >= 200, told)
        alive("slow clients")

        t.check("clean stop", daemon.stop() == 0)
        t.check("socket file removed at stop", not os.path.exists(sock))
        log = open(daemon.log).read()
        t.check("no abort in the log", "terminate called" not in log and "Aborted" not in log, log[-2000:])
    except Exception as e:  # noqa: BLE001
        t.check("test ran to the end", False, repr(e))
    finally:
        tear_down(t, daemon, world)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
