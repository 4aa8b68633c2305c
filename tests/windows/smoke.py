#!/usr/bin/env python3
"""End-to-end smoke test of the Windows build under Wine, all through the named pipe.

Run by tests/windows/run.sh, which sets WINE, BIN (the folder with tasksyncd.exe and
taskctl.exe), PIPECAT (a raw pipe client) and SERVER (the Linux tasksync-server) and a
fresh WINEPREFIX. Every wait has a deadline; any failure exits 1 with the daemon's log.
"""

import getpass
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
WINESERVER = os.environ.get("WINESERVER", "/usr/lib/wine/wineserver")
TOKEN = "windows-smoke-test-token-0123456789"
# Wine names the Windows user after the Unix one.
USER = getpass.getuser()
PIPE = rf"\\.\pipe\tasksyncd-{USER}"

work = tempfile.mkdtemp(prefix="tasksync-windows-")
# Processes to end whatever happens, fail() included.
RUNNING = []


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    for process in RUNNING:
        process.kill()
    for name in sorted(os.listdir(work)):
        if name.endswith(".log"):
            with open(os.path.join(work, name), encoding="utf-8", errors="replace") as log:
                print(f"--- {name} ---\n" + log.read(), file=sys.stderr)
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
        self.log_path = os.path.join(work, f"tasksyncd-{len(os.listdir(work))}.log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [WINE, os.path.join(BIN, "tasksyncd.exe"), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        RUNNING.append(self)
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                fail(f"tasksyncd exited {self.process.returncode} during start")
            # Short tries: under load, Wine sometimes leaves a program starting alongside the
            # daemon hanging at its start; the next one goes through.
            try:
                probe = subprocess.run(
                    [WINE, os.path.join(BIN, "taskctl.exe"), "status"],
                    capture_output=True,
                    timeout=10,
                )
                if probe.returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                print("   (a taskctl status hung in Wine; trying again)", flush=True)
            check(time.monotonic() < deadline, "tasksyncd did not answer within 90 s")
            time.sleep(0.2)

    def stop(self):
        """Ctrl-C, as Wine delivers SIGINT to a console program: an orderly stop, exit 0."""
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("tasksyncd did not stop within 30 s of Ctrl-C")
        RUNNING.remove(self)
        self.log.close()
        check(code == 0, f"tasksyncd exited {code} after Ctrl-C")
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
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
    RUNNING.append(server)
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


def http_over_pipe(method, path, body=None, expect=200):
    """One HTTP/1.1 request over the named pipe; returns the JSON body. No token: on the local
    socket or pipe, the operating system's check of who connects is the credential."""
    data = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    answer = pipe_raw(head.encode() + data)
    status_line, _, rest = answer.partition(b"\r\n")
    check(
        status_line.startswith(f"HTTP/1.1 {expect}".encode()),
        f"{method} {path} over the pipe: {answer[:400]!r}",
    )
    headers, _, payload = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in headers.lower():
        payload = dechunk(payload)
    try:
        return json.loads(payload)
    except json.JSONDecodeError as e:
        fail(f"{method} {path} over the pipe: no JSON ({e}): {answer[:400]!r}")


def dechunk(data):
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, data = out + data[:n], data[n + 2 :]
    return out


def frame(payload):
    return len(payload).to_bytes(4, "big") + payload


def task_scheduler_definition():
    """Wine's schtasks registers windows/tasksyncd.xml. Wine checks only that the XML is well
    formed and has the Task shape; what real Windows enforces is reasoned about, not run."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "windows", "tasksyncd.xml"), encoding="utf-8") as f:
        xml = f.read().replace("USERNAME", rf"WORKGROUP\{USER}")
    path = os.path.join(work, "tasksyncd.xml")
    with open(path, "w", encoding="utf-16") as f:
        f.write(xml)
    done = wine("schtasks", "/create", "/f", "/tn", "tasksyncd", "/xml", "Z:" + path.replace("/", "\\"))
    check(done.returncode == 0, f"schtasks refused windows/tasksyncd.xml: {done.stderr!r}")


def main():
    # One wineserver for the whole test rather than one per burst of programs.
    subprocess.run([WINESERVER, "-p"], check=True, timeout=60)
    try:
        run()
    finally:
        subprocess.run([WINESERVER, "-k"], timeout=60)


def run():
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
        # Open tasks, by due date, priority, then number: the order they were added here.
        check([t["id"] for t in listed] == [milk["id"], bread["id"], gone["id"]], listed)
        shown = taskctl_json("show", milk["id"][:-4])
        check(shown == milk, f"show differs from add: {shown} vs {milk}")
        done = taskctl_json("done", milk["id"])
        check(done["completed"] is True, done)
        removed = taskctl_json("rm", gone["id"])
        check(removed["is_deleted"] is True, removed)
        check([t["id"] for t in taskctl_json("list")] == [bread["id"]], "done and rm leave one open task")
        check(len(taskctl_json("list", "--all")) == 3, "--all shows the done and the deleted task too")
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
        check(len(taskctl_json("list")) == 1, "the daemon stopped answering during a stall")
        stall.kill()
        stall.wait()
        check(daemon.process.poll() is None, "the daemon died of bad input")

        step("HTTP over the pipe (the same pipe, told apart by the first bytes)")
        health = http_over_pipe("GET", "/api/health")
        check(health.get("status") == "ok", health)
        created = http_over_pipe("POST", "/api/tasks", {"title": "Over HTTP"}, expect=201)
        check(created["title"] == "Over HTTP" and created["sync_status"] == "pending", created)
        listed = http_over_pipe("GET", "/api/tasks")
        check([t["id"] for t in listed] == [created["id"], bread["id"], milk["id"]], listed)
        check(taskctl_json("show", created["id"])["title"] == "Over HTTP", "HTTP and IPC differ")
        check(daemon.process.poll() is None, "the daemon died serving HTTP")

        step("sync with the Linux tasksync-server on 127.0.0.1")
        report = taskctl_json("sync")
        check(report["success"] is True and report["synced_items"] >= 4, report)
        on_server = {t["id"]: t for t in server_tasks(addr)}
        for task in (milk, bread, created):
            check(task["id"] in on_server, f"{task['title']} is not on the server: {on_server}")
        check(on_server[milk["id"]]["completed"] is True, on_server[milk["id"]])
        check(on_server[gone["id"]]["is_deleted"] is True, on_server.get(gone["id"]))

        step("stop with Ctrl-C, restart: the data is still there")
        daemon.stop()
        daemon = Daemon("--server", f"http://{addr}", "--manual-sync")
        listed = [t for t in taskctl_json("list", "--all") if not t["is_deleted"]]
        check({t["id"] for t in listed} == {milk["id"], bread["id"], created["id"]}, listed)
        check(taskctl_json("show", milk["id"])["completed"] is True, "done was lost")
        check(all(t["sync_status"] == "synced" for t in listed), listed)
        daemon.stop()
        daemon = None
        step("windows/tasksyncd.xml registers with (Wine's) schtasks /create /xml")
        task_scheduler_definition()
        print("windows smoke test passed")
    finally:
        if daemon is not None:
            daemon.kill()
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
