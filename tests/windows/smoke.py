#!/usr/bin/env python3
"""End-to-end smoke test of the Windows build under Wine, all through the named pipe.

Run by tests/windows/run.sh, which sets WINE, BIN (the folder with tasksyncd.exe and
taskctl.exe), PIPECAT (a raw pipe client) and SERVER (the Linux tasksync-server) and a
fresh WINEPREFIX. Every wait has a deadline; any failure exits 1 with the daemon's log.
"""

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

WINE = os.environ["WINE"]
BIN = os.environ["BIN"]
PIPECAT = os.environ["PIPECAT"]
SERVER = os.environ["SERVER"]
TOKEN = "windows-smoke-test-token-0123456789"
USER = os.environ.get("USER") or os.environ.get("LOGNAME") or "root"
PIPE = rf"\\.\pipe\tasksyncd-{USER}"

work = tempfile.mkdtemp(prefix="tasksync-windows-")
daemon_log = os.path.join(work, "tasksyncd.log")


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    if os.path.exists(daemon_log):
        with open(daemon_log, encoding="utf-8", errors="replace") as log:
            print("--- tasksyncd log ---\n" + log.read(), file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def step(message):
    print(f"-- {message}", flush=True)


def wine(program, *args, timeout=60, data=None):
    try:
        return subprocess.run(
            [WINE, program, *args], input=data, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        fail(f"{os.path.basename(program)} {' '.join(args)} took over {timeout} s")


def taskctl(*args, expect=0):
    done = wine(os.path.join(BIN, "taskctl.exe"), *args)
    out = done.stdout.decode("utf-8", "replace")
    err = done.stderr.decode("utf-8", "replace")
    check(
        done.returncode == expect,
        f"taskctl {' '.join(args)} exited {done.returncode}, not {expect}: {out}{err}",
    )
    return out


def taskctl_json(*args):
    out = taskctl("--json", *args)
    try:
        return json.loads(out)
    except json.JSONDecodeError as e:
        fail(f"taskctl --json {' '.join(args)} printed no JSON ({e}): {out!r}")


def pipe_raw(data, hold_ms=0, timeout=60):
    """Sends raw bytes through the pipe; returns what the daemon answered before closing."""
    args = [PIPE] + ([str(hold_ms)] if hold_ms else [])
    done = wine(PIPECAT, *args, data=data, timeout=timeout)
    check(done.returncode == 0, f"pipecat could not open {PIPE}: {done.stderr!r}")
    return done.stdout


class Daemon:
    def __init__(self, *args):
        self.log = open(daemon_log, "ab")
        self.process = subprocess.Popen(
            [WINE, os.path.join(BIN, "tasksyncd.exe"), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                fail(f"tasksyncd exited {self.process.returncode} during start")
            probe = wine(os.path.join(BIN, "taskctl.exe"), "status", timeout=30)
            if probe.returncode == 0:
                return
            check(time.monotonic() < deadline, "tasksyncd did not answer within 90 s")
            time.sleep(0.2)

    def stop(self):
        """Ctrl-C, as Wine delivers SIGINT to a console program: an orderly stop, exit 0."""
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            fail("tasksyncd did not stop within 30 s of Ctrl-C")
        self.log.close()
        check(code == 0, f"tasksyncd exited {code} after Ctrl-C")
        with open(daemon_log, encoding="utf-8", errors="replace") as log:
            text = log.read()
        check("Ctrl-C received: shutting down" in text, "no orderly shutdown logged")

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_server():
    env = dict(os.environ, TASKSYNC_SERVER_TOKEN=TOKEN)
    server = subprocess.Popen(
        [SERVER, "--listen", "127.0.0.1:0", "--db", os.path.join(work, "server.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    selector = selectors.DefaultSelector()
    selector.register(server.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 30
    line = b""
    while b"\n" not in line:
        left = deadline - time.monotonic()
        if left <= 0 or not selector.select(left):
            server.kill()
            fail("tasksync-server did not say where it listens within 30 s")
        chunk = os.read(server.stdout.fileno(), 4096)
        if not chunk:
            fail(f"tasksync-server exited: {server.wait()}")
        line += chunk
    first = line.split(b"\n")[0].decode()
    check(first.startswith("listening on "), f"unexpected first line: {first}")
    return server, first.removeprefix("listening on ").strip()


def server_tasks(addr):
    request = urllib.request.Request(
        f"http://{addr}/api/tasks", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def frame(payload):
    return len(payload).to_bytes(4, "big") + payload


def main():
    server, addr = start_server()
    daemon = None
    try:
        os.environ["TASKSYNC_TOKEN"] = TOKEN
        step(f"start tasksyncd.exe (sync server http://{addr}), serving {PIPE}")
        daemon = Daemon("--server", f"http://{addr}", "--manual-sync")
        status = taskctl_json("status")
        check(
            status["database"].lower().endswith(r"\appdata\local\tasksync\tasks.db"),
            f"the database is not under %LOCALAPPDATA%\\tasksync: {status['database']}",
        )
        check(PIPE in taskctl("status"), f"taskctl status does not name {PIPE}")

        step("a second daemon is refused with a clear message")
        second = wine(os.path.join(BIN, "tasksyncd.exe"), timeout=60)
        text = second.stdout.decode() + second.stderr.decode()
        check(second.returncode == 1, f"a second daemon exited {second.returncode}: {text}")
        check("already running" in text, f"unclear refusal: {text}")
        other_db = wine(
            os.path.join(BIN, "tasksyncd.exe"), "--db", r"C:\users\Public\other.db", timeout=60
        )
        text = other_db.stdout.decode() + other_db.stderr.decode()
        check(other_db.returncode == 1, f"a daemon on the same pipe exited {other_db.returncode}")
        check("already serves" in text and PIPE in text, f"unclear refusal: {text}")

        step("taskctl add / list / show / done / rm, with --json")
        milk = taskctl_json("add", "Buy milk", "-d", "two litres")
        check(milk["title"] == "Buy milk" and milk["description"] == "two litres", milk)
        check(milk["completed"] is False and milk["sync_status"] == "pending", milk)
        bread = taskctl_json("add", "Bake bread")
        gone = taskctl_json("add", "Throw away")
        listed = taskctl_json("list")
        check([t["id"] for t in listed] == [gone["id"], bread["id"], milk["id"]], listed)
        shown = taskctl_json("show", milk["id"][:8])
        check(shown == milk, f"show differs from add: {shown} vs {milk}")
        done = taskctl_json("done", milk["id"])
        check(done["completed"] is True, done)
        removed = taskctl_json("rm", gone["id"])
        check(removed["is_deleted"] is True, removed)
        check(len(taskctl_json("list")) == 2, "rm did not hide the task")
        missing = wine(os.path.join(BIN, "taskctl.exe"), "--json", "show", "ffffffff")
        check(missing.returncode == 1, f"show of a missing id exited {missing.returncode}")
        check(json.loads(missing.stderr)["error"]["code"] == "not_found", missing.stderr)

        step("bad input on the pipe: garbage, an oversized frame, a stalled client")
        answer = pipe_raw(b"\xff" * 64)
        check(b"frame" in answer or answer == b"", f"garbage got {answer[:200]!r}")
        answer = pipe_raw((64 * 1024 * 1024).to_bytes(4, "big") + b"\x00" * 16)
        check(b"frame" in answer or answer == b"", f"oversized frame got {answer[:200]!r}")
        stall = subprocess.Popen(
            [WINE, PIPECAT, PIPE, "20000"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stall.stdin.write(frame(b"\x00")[:3])
        stall.stdin.close()
        time.sleep(1)
        check(len(taskctl_json("list")) == 2, "the daemon stopped answering during a stall")
        stall.kill()
        stall.wait()
        check(daemon.process.poll() is None, "the daemon died of bad input")

        step("HTTP over the pipe")
        request = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        answer = pipe_raw(request)
        if answer.startswith(b"HTTP/1.1 "):
            check(answer.startswith(b"HTTP/1.1 200"), f"health over the pipe: {answer[:300]!r}")
            token = taskctl("api-token").strip()
            request = (
                "GET /api/tasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
            answer = pipe_raw(request)
            check(answer.startswith(b"HTTP/1.1 200"), f"tasks over the pipe: {answer[:300]!r}")
            body = json.loads(answer.split(b"\r\n\r\n", 1)[1] or b"null")
            check(len(body) == 2, f"HTTP over the pipe lists {body}")
        else:
            check(os.environ.get("HTTP_OVER_PIPE") != "required", f"no HTTP: {answer!r}")
            print("   (this daemon speaks only postcard on its socket: HTTP not checked)")

        step("sync with the Linux tasksync-server on 127.0.0.1")
        report = taskctl_json("sync")
        check(report["success"] is True and report["synced_items"] >= 3, report)
        on_server = {t["id"]: t for t in server_tasks(addr)}
        check(milk["id"] in on_server and bread["id"] in on_server, on_server)
        check(on_server[milk["id"]]["completed"] is True, on_server[milk["id"]])
        check(on_server[gone["id"]]["is_deleted"] is True, on_server.get(gone["id"]))

        step("stop with Ctrl-C, restart: the data is still there")
        daemon.stop()
        daemon = Daemon("--server", f"http://{addr}", "--manual-sync")
        listed = taskctl_json("list")
        check({t["id"] for t in listed} == {milk["id"], bread["id"]}, listed)
        check(taskctl_json("show", milk["id"])["completed"] is True, "done was lost")
        check(all(t["sync_status"] == "synced" for t in listed), listed)
        daemon.stop()
        daemon = None
        print("windows smoke test passed")
    finally:
        if daemon is not None:
            daemon.kill()
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
