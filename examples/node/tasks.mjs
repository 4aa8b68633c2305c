// A tasksync app in plain Node.js: the daemon's HTTP API over its Unix socket.
//
// Standard library only (http.request({socketPath})). It lists the tasks, creates one with
// an id it chose (so the create is safe to retry, and retries it once to show that), and
// follows GET /api/events until the daemon reports that task.
//
//     node examples/node/tasks.mjs [SOCKET]
//
// SOCKET defaults to $TASKSYNC_SOCKET, else $XDG_RUNTIME_DIR/tasksync/tasksyncd.sock.

import http from "node:http";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";

const TIMEOUT_MS = 10_000; // the whole run fails rather than hangs

function defaultSocket() {
  if (process.env.TASKSYNC_SOCKET) return process.env.TASKSYNC_SOCKET;
  if (process.env.XDG_RUNTIME_DIR) {
    return path.join(process.env.XDG_RUNTIME_DIR, "tasksync", "tasksyncd.sock");
  }
  return path.join(os.tmpdir(), `tasksync-${process.getuid()}`, "tasksyncd.sock");
}

const socketPath = process.argv[2] ?? defaultSocket();

/** One request; resolves to {status, body (parsed JSON or null)}. */
function call(method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        socketPath,
        method,
        path: urlPath,
        headers: payload ? { "Content-Type": "application/json" } : {},
      },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (data += chunk));
        res.on("end", () => resolve({ status: res.statusCode, body: data ? JSON.parse(data) : null }));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** Opens GET /api/events; calls onEvent({id, event, data}) for each event. */
function followEvents(onEvent) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: "/api/events" }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`GET /api/events answered ${res.statusCode}`));
      res.setEncoding("utf8");
      let buffer = "";
      res.on("data", (chunk) => {
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = { id: null, event: "message", data: "" };
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue; // a heartbeat
            const colon = line.indexOf(":");
            const field = line.slice(0, colon);
            const value = line.slice(colon + 1).replace(/^ /, "");
            if (field === "id" || field === "event") event[field] = value;
            else if (field === "data") event.data += value;
          }
          if (event.data) onEvent({ ...event, data: JSON.parse(event.data) });
        }
      });
      res.on("end", () => reject(new Error("the event stream ended")));
      resolve(req);
    });
    req.on("error", reject);
    req.end();
  });
}

async function main() {
  const listed = await call("GET", "/api/tasks");
  if (listed.status !== 200) throw new Error(`GET /api/tasks answered ${listed.status}`);
  console.log(`${listed.body.length} task(s)`);

  const taskId = randomUUID();
  let opened;
  const seen = new Promise((resolve) => {
    opened = followEvents((event) => {
      if (event.event === "status") {
        console.log(`daemon is ${event.data.state}, ${event.data.pending} change(s) to sync`);
      } else if (event.event === "task" && event.data.task.id === taskId) {
        console.log(`event ${event.id}: task ${taskId} (${event.data.origin})`);
        resolve();
      }
      // On "reset", an app lists again: it missed events.
    });
  });
  const stream = await opened; // listening before the create, so its event cannot slip by

  const created = await call("POST", "/api/tasks", { title: "Written by the Node example", id: taskId });
  if (created.status !== 201) throw new Error(`create answered ${created.status}: ${JSON.stringify(created.body)}`);
  // The same request again (say, after a timeout) is safe: same task, nothing new queued.
  const again = await call("POST", "/api/tasks", { title: "Written by the Node example", id: taskId });
  if (again.status !== 200 || again.body.id !== taskId) throw new Error(`retry answered ${again.status}`);
  console.log(`created ${taskId}`);

  await seen;
  stream.destroy();
}

const deadline = setTimeout(() => {
  console.error(`tasks.mjs: no answer within ${TIMEOUT_MS} ms`);
  process.exit(1);
}, TIMEOUT_MS);

main()
  .then(() => clearTimeout(deadline))
  .catch((error) => {
    console.error(`tasks.mjs: ${error.message}`);
    process.exit(1);
  });
