#!/usr/bin/env python3
"""A tasksync app in plain Python: the daemon's HTTP API over its Unix socket.

Standard library only (http.client over AF_UNIX). It lists the tasks, creates one with an id
it chose (so the create is safe to retry, and retries it once to show that), and follows
GET /api/events until the daemon reports that task.

    python3 examples/python/tasks.py [SOCKET]

SOCKET defaults to $TASKSYNC_SOCKET, else $XDG_RUNTIME_DIR/tasksync/tasksyncd.sock.
"""

import http.client
import json
import os
import socket
import sys
import tempfile
import uuid

TIMEOUT = 10.0  # seconds: every call fails rather than hangs


def default_socket():
    if os.environ.get("TASKSYNC_SOCKET"):
        return os.environ["TASKSYNC_SOCKET"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "tasksync", "tasksyncd.sock")
    return os.path.join(tempfile.gettempdir(), f"tasksync-{os.getuid()}", "tasksyncd.sock")


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client, connected to a Unix socket instead of a TCP port."""

    def __init__(self, path):
        super().__init__("localhost", timeout=TIMEOUT)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def call(path_to_socket, method, path, body=None):
    """One request; returns (status, decoded JSON or None)."""
    conn = UnixHTTPConnection(path_to_socket)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload else {}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data else None)
    finally:
        conn.close()


class Events:
    """GET /api/events, read event by event."""

    def __init__(self, path_to_socket):
        self.conn = UnixHTTPConnection(path_to_socket)
        self.conn.request("GET", "/api/events")
        self.response = self.conn.getresponse()
        if self.response.status != 200:
            raise RuntimeError(f"GET /api/events answered {self.response.status}")

    def next(self):
        event = {"id": None, "event": "message", "data": ""}
        while True:
            line = self.response.readline()
            if not line:
                raise RuntimeError("the event stream ended")
            line = line.decode().rstrip("\r\n")
            if line == "":
                if event["data"]:
                    event["data"] = json.loads(event["data"])
                    return event
                continue
            if line.startswith(":"):
                continue  # a heartbeat
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field in ("id", "event"):
                event[field] = value
            elif field == "data":
                event["data"] += value

    def close(self):
        self.conn.close()


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else default_socket()

    status, tasks = call(path, "GET", "/api/tasks")
    assert status == 200, status
    print(f"{len(tasks)} task(s)")

    # Listen first, so the event for our task cannot slip by.
    events = Events(path)
    opening = events.next()
    assert opening["event"] == "status", opening
    print(f"daemon is {opening['data']['state']}, {opening['data']['pending']} change(s) to sync")

    task_id = str(uuid.uuid4())
    new = {"title": "Written by the Python example", "id": task_id}
    status, task = call(path, "POST", "/api/tasks", new)
    assert status == 201, (status, task)
    # The same request again (say, after a timeout) is safe: same task, nothing new queued.
    status, again = call(path, "POST", "/api/tasks", new)
    assert status == 200 and again["id"] == task_id, (status, again)
    print(f"created {task_id}")

    while True:
        event = events.next()
        if event["event"] == "task" and event["data"]["task"]["id"] == task_id:
            print(f"event {event['id']}: task {task_id} ({event['data']['origin']})")
            break
        if event["event"] == "reset":
            # Missed events: list again (not needed here, our task is still to come).
            continue
    events.close()


if __name__ == "__main__":
    try:
        main()
    except (OSError, RuntimeError, AssertionError) as error:
        print(f"tasks.py: {error!r}", file=sys.stderr)
        sys.exit(1)
