#!/usr/bin/env python3
"""A tasksync app in plain Python: the daemon's HTTP API over its Unix socket.

Standard library only (http.client over AF_UNIX). It
  1. lists the tasks page by page (limit + the Link: rel="next" header),
  2. creates one with an id it chose (safe to retry: it retries once to show that),
  3. edits it with If-Match, sends a stale If-Match on purpose and handles the 412,
  4. deletes it (with If-Match too),
  5. follows GET /api/events (status and task events only) until the delete shows up.
With --wait-for-restart it then keeps following: when the daemon restarts it reconnects with
Last-Event-ID, gets `reset` (the new run cannot replay the old one's events) and lists again.

    python3 examples/python/tasks.py [SOCKET] [--wait-for-restart]

SOCKET defaults to $TASKSYNC_SOCKET, else the daemon's own default (docs/LOCAL-API.md).
"""

import datetime
import http.client
import json
import os
import socket
import sys
import time
import uuid

TIMEOUT = 10.0  # seconds: every call fails rather than hangs


def default_socket():
    """The daemon's rule: $XDG_RUNTIME_DIR/tasksync/, else $TMPDIR or /tmp + tasksync-<uid>/."""
    if os.environ.get("TASKSYNC_SOCKET"):
        return os.environ["TASKSYNC_SOCKET"]
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        return os.path.join(runtime, "tasksync", "tasksyncd.sock")
    tmp = os.environ.get("TMPDIR", "")
    tmp = tmp if os.path.isabs(tmp) else "/tmp"
    return os.path.join(tmp, f"tasksync-{os.getuid()}", "tasksyncd.sock")


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client, connected to a Unix socket instead of a TCP port."""

    def __init__(self, path):
        super().__init__("localhost", timeout=TIMEOUT)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def call(sock, method, path, body=None, headers=None):
    """One request; returns (status, headers, decoded JSON or None)."""
    conn = UnixHTTPConnection(sock)
    try:
        payload = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=payload, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, response.headers, (json.loads(data) if data else None)
    finally:
        conn.close()


def list_all(sock, page_size=2):
    """Every task, following Link: <...>; rel="next" from page to page."""
    tasks, pages, path = [], 0, f"/api/tasks?limit={page_size}"
    while path:
        status, headers, page = call(sock, "GET", path)
        assert status == 200, (status, page)
        tasks += page
        pages += 1
        link = headers.get("Link", "")
        path = link[1 : link.index(">")] if 'rel="next"' in link else None
    return tasks, pages


class Events:
    """GET /api/events, read event by event; `last_id` is the id of the last event read."""

    def __init__(self, sock, query, last_id=None):
        self.conn = UnixHTTPConnection(sock)
        self.last_id = last_id
        headers = {"Last-Event-ID": last_id} if last_id else {}
        self.conn.request("GET", "/api/events" + query, headers=headers)
        self.response = self.conn.getresponse()
        if self.response.status != 200:
            raise RuntimeError(f"GET /api/events answered {self.response.status}")
        self.conn.sock.settimeout(None)  # the stream may be quiet for a while

    def next(self):
        """The next event, or None when the stream ended (the daemon stopped)."""
        event = {"id": None, "event": "message", "data": ""}
        while True:
            try:
                line = self.response.readline()
            except (OSError, http.client.HTTPException):
                return None
            if not line:
                return None
            line = line.decode().rstrip("\r\n")
            if line == "":
                if event["data"]:
                    event["data"] = json.loads(event["data"])
                    self.last_id = event["id"] or self.last_id
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


def reconnect(sock, query, last_id):
    """Opens the stream again after `last_id`, waiting while the daemon is away."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return Events(sock, query, last_id)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    sock = args[0] if args else default_socket()
    wait_for_restart = "--wait-for-restart" in sys.argv[1:]

    tasks, pages = list_all(sock)
    print(f"listed {len(tasks)} task(s) in {pages} page(s)")

    # Listen first, so the events for our task cannot slip by.
    query = "?events=status,task"
    events = Events(sock, query)
    opening = events.next()
    assert opening and opening["event"] == "status", opening
    print(f"daemon is {opening['data']['state']}, {opening['data']['pending']} change(s) to sync")

    task_id = str(uuid.uuid4())
    # Due tomorrow at this time, tagged; RFC 3339 in UTC, as every timestamp of the API.
    due = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
    due = due.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    new = {"title": "Written by the Python example", "id": task_id, "due": due,
           "tags": ["example"], "priority": "M"}
    status, _, task = call(sock, "POST", "/api/tasks", new)
    assert status == 201, (status, task)
    assert task["tags"] == ["example"] and task["due"] == due, task
    # The same request again (say, after a timeout) is safe: same task, nothing new queued.
    status, _, again = call(sock, "POST", "/api/tasks", new)
    assert status == 200 and again["id"] == task_id, (status, again)
    print(f"created {task_id}")
    # Another tag, leaving the others alone (two apps adding tags at once both keep theirs).
    status, _, task = call(sock, "PUT", f"/api/tasks/{task_id}", {"add_tags": ["python"]})
    assert status == 200 and task["tags"] == ["example", "python"], (status, task)
    # Tasks due before the day after tomorrow, with both tags.
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2))
    filters = "due_before=" + soon.strftime("%Y-%m-%dT%H:%M:%S.000Z") + "&tag=example&tag=python"
    status, _, found = call(sock, "GET", "/api/tasks?" + filters)
    assert status == 200 and [t["id"] for t in found] == [task_id], (status, found)

    # Edit only if nobody changed the task since we read it.
    path = f"/api/tasks/{task_id}"
    read_tag = task["etag"]
    status, _, task = call(sock, "PUT", path, {"title": "Edited by the Python example"},
                           {"If-Match": read_tag})
    assert status == 200, (status, task)
    # A write based on the old read (say, from a second window) must not win: 412.
    status, _, error = call(sock, "PUT", path, {"description": "stale"}, {"If-Match": read_tag})
    assert status == 412 and error["code"] == "precondition_failed", (status, error)
    print("stale If-Match refused (412): reading again")
    _, headers, _ = call(sock, "GET", path)
    status, _, task = call(sock, "PUT", path, {"description": "not stale"},
                           {"If-Match": headers["ETag"]})
    assert status == 200 and task["description"] == "not stale", (status, task)

    status, _, _ = call(sock, "DELETE", path, headers={"If-Match": task["etag"]})
    assert status == 204, status
    print(f"deleted {task_id}")

    while True:
        event = events.next()
        if event is None:
            raise RuntimeError("the event stream ended")
        if event["event"] == "task" and event["data"]["task"]["id"] == task_id:
            if event["data"]["task"]["is_deleted"]:
                print(f"event {event['id']}: task {task_id} deleted ({event['data']['origin']})")
                break
        elif event["event"] == "reset":
            tasks, _ = list_all(sock)  # missed events: list again

    if wait_for_restart:
        print(f"waiting for the daemon to restart (last event {events.last_id})", flush=True)
        while events.next() is not None:
            pass  # other events; the stream ends when the daemon stops
        events.close()
        events = reconnect(sock, query, events.last_id)
        event = events.next()
        if event and event["event"] == "reset":
            # The new run cannot replay what we missed: list again, then go on from here.
            tasks, _ = list_all(sock)
            print(f"resumed after a restart: reset, listed {len(tasks)} task(s)")
        else:
            print(f"resumed after event {events.last_id}: nothing was lost")
    events.close()


if __name__ == "__main__":
    try:
        main()
    except (OSError, RuntimeError, AssertionError, http.client.HTTPException) as error:
        print(f"tasks.py: {error!r}", file=sys.stderr)
        sys.exit(1)
