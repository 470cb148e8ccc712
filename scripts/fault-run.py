#!/usr/bin/env python3
"""Real storage faults against the real binary, for operators and reviewers (needs root:
it mounts a small tmpfs). Not part of CI, which covers the same promises without root
(tests/store_faults.rs).

    sudo python3 scripts/fault-run.py [path/to/gigs-notifier]

Scenarios, each on a fresh tmpfs with SQLite on it:
  full      the file system fills up while deliveries arrive, then space comes back
  replaced  the database file is replaced by a copy while the service runs
  deleted   the database file is deleted while the service runs

For each it prints deliveries sent, answers by status, 2xx, and how many acknowledged events
are missing from the database a restart opens (must be 0).
"""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode(SECRET[len("whsec_"):] + "==")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = json.load(open(os.path.join(ROOT, "fixtures/subscription.created.json")))


class Fake(http.server.BaseHTTPRequestHandler):
    """Mail service and Core API in one: 202 to every POST, a user for every GET."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        body = json.dumps({"id": "sub_x", "user": {"id": "usr_x", "email": "x@example.com"},
                           "items": [{"id": "sub_x"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def body(i):
    event = dict(FIXTURE)
    event["id"] = f"evt_faultrun{i:08d}"
    event["data"] = dict(FIXTURE["data"], notes=f"{i:x}" * 400)
    return event["id"], json.dumps(event).encode()


def deliver(port, i):
    event_id, raw = body(i)
    ts = str(int(time.time()))
    mac = hmac.new(KEY, f"{event_id}.{ts}.".encode() + raw, hashlib.sha256).digest()
    headers = {"webhook-id": event_id, "webhook-timestamp": ts,
               "webhook-signature": "v1," + base64.b64encode(mac).decode(),
               "content-type": "application/json"}
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        c.request("POST", "/webhooks/gigs", raw, headers)
        status = c.getresponse().status
        c.close()
    except OSError:
        status = 0
    return event_id, status


def readyz(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/readyz")
        r = c.getresponse()
        return r.status, r.read().decode()
    except OSError as e:
        return 0, str(e)


def serve(db, fake_port):
    port = free_port()
    env = {"GIGS_WEBHOOK_SECRET": SECRET, "GIGS_API_URL": f"http://127.0.0.1:{fake_port}",
           "GIGS_PROJECT": "acme", "GIGS_TOKEN": "t", "MAIL_URL": f"http://127.0.0.1:{fake_port}/mail",
           "DATABASE_URL": f"sqlite://{db}", "LISTEN_ADDR": f"127.0.0.1:{port}",
           "SUPPORT_URL": "https://help.acme.example",
           "RUST_LOG": "warn", "PATH": os.environ.get("PATH", "")}
    proc = subprocess.Popen([BIN, "serve"], env=env, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if readyz(port)[0] == 200:
            return proc, port
        time.sleep(0.05)
    raise SystemExit("serve did not become ready")


def stored(db):
    if not os.path.exists(db):
        return set()
    con = sqlite3.connect(db)
    ids = {r[0] for r in con.execute("SELECT id FROM events")}
    con.close()
    return ids


def burst(port, start, n):
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda i: deliver(port, i), range(start, start + n)))


def report(name, answers, db):
    by_status = {}
    for _, s in answers:
        by_status[s] = by_status.get(s, 0) + 1
    acked = {i for i, s in answers if 200 <= s < 300}
    lost = acked - stored(db)
    print(f"{name:9} sent {len(answers):5}  answers {dict(sorted(by_status.items()))}  "
          f"2xx {len(acked):5}  lost {len(lost)}")
    return len(lost)


def scenario(name, fake_port):
    mnt = f"/tmp/gigs-fault-{name}"
    os.makedirs(mnt, exist_ok=True)
    size = "3m" if name == "full" else "32m"
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], check=True)
    db = f"{mnt}/notifier.db"
    lost = 0
    try:
        proc, port = serve(db, fake_port)
        answers = burst(port, 0, 200)
        if name == "full":
            answers += burst(port, 200, 3800)
            report("  filling", answers, db)
            print(f"          readyz while full: {readyz(port)}")
            subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
            time.sleep(1.5)
            print(f"          readyz after space came back: {readyz(port)}")
            after = burst(port, 10000, 200)
            report("  after", after, db)
            answers += after
        elif name == "replaced":
            # A copy moved over the live file (a restore, another instance's file).
            subprocess.run(["cp", db, db + ".copy"], check=True)
            os.replace(db + ".copy", db)
            before = stored(db)
            answers = burst(port, 200, 60)
            print(f"          readyz after the file was replaced: {readyz(port)}")
            proc.terminate()
            proc.wait(timeout=30)
            lost = report(name, answers, db)
            assert before <= stored(db)
            return lost
        elif name == "deleted":
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)
            # What was acknowledged before is gone with the file (the operator deleted it);
            # the promise is about what comes after: no 2xx for anything.
            answers = burst(port, 200, 60)
            print(f"          readyz after the file was deleted: {readyz(port)}")
        proc.terminate()
        proc.wait(timeout=30)
        lost = report(name, answers, db)
    finally:
        subprocess.run(["umount", "-l", mnt])
    return lost


if __name__ == "__main__":
    BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/gigs-notifier")
    fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    total = sum(scenario(n, fake.server_address[1]) for n in ("full", "replaced", "deleted"))
    print("acknowledged but lost:", total)
    sys.exit(1 if total else 0)
