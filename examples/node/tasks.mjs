// A tasksync app in plain Node.js: the daemon's HTTP API over its Unix socket.
//
// Standard library only (http.request({socketPath})). It
//   1. lists the tasks page by page (limit + the Link: rel="next" header),
//   2. creates one with an id it chose (safe to retry: it retries once to show that),
//   3. edits it with If-Match, sends a stale If-Match on purpose and handles the 412,
//   4. deletes it (with If-Match too),
//   5. follows GET /api/events (status and task events only) until the delete shows up.
// With --wait-for-restart it then keeps following: when the daemon restarts it reconnects
// with Last-Event-ID, gets `reset` (the new run cannot replay the old one's events) and
// lists again.
//
//     node examples/node/tasks.mjs [SOCKET] [--wait-for-restart]
//
// SOCKET defaults to $TASKSYNC_SOCKET, else the daemon's own default (docs/LOCAL-API.md).

import http from "node:http";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

const TIMEOUT_MS = 10_000; // each call (and the run without --wait-for-restart) fails rather than hangs

/** The daemon's rule: $XDG_RUNTIME_DIR/tasksync/, else $TMPDIR or /tmp + tasksync-<uid>/. */
function defaultSocket() {
  if (process.env.TASKSYNC_SOCKET) return process.env.TASKSYNC_SOCKET;
  const runtime = process.env.XDG_RUNTIME_DIR ?? "";
  if (path.isAbsolute(runtime)) return path.join(runtime, "tasksync", "tasksyncd.sock");
  const tmp = path.isAbsolute(process.env.TMPDIR ?? "") ? process.env.TMPDIR : "/tmp";
  return path.join(tmp, `tasksync-${process.getuid()}`, "tasksyncd.sock");
}

const args = process.argv.slice(2);
const waitForRestart = args.includes("--wait-for-restart");
const socketPath = args.find((a) => !a.startsWith("--")) ?? defaultSocket();

/** One request; resolves to {status, headers, body (parsed JSON or null)}. */
function call(method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath, method, path: urlPath, headers, timeout: TIMEOUT_MS }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (data += chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode, headers: res.headers, body: data ? JSON.parse(data) : null }),
      );
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${urlPath}: no answer`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** Every task, following Link: <...>; rel="next" from page to page. */
async function listAll(pageSize = 2) {
  const tasks = [];
  let pages = 0;
  let next = `/api/tasks?limit=${pageSize}`;
  while (next) {
    const page = await call("GET", next);
    if (page.status !== 200) throw new Error(`GET ${next} answered ${page.status}`);
    tasks.push(...page.body);
    pages += 1;
    const link = page.headers.link ?? "";
    next = link.includes('rel="next"') ? link.slice(1, link.indexOf(">")) : null;
  }
  return { tasks, pages };
}

/** GET /api/events as a queue: `await stream.next()` gives the next event, or null once the
 * stream ended (the daemon stopped). `lastId` is the id of the last event read. */
class Events {
  static open(query, lastId = null) {
    return new Promise((resolve, reject) => {
      const headers = lastId ? { "Last-Event-ID": lastId } : {};
      const req = http.request({ socketPath, path: `/api/events${query}`, headers }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`GET /api/events answered ${res.statusCode}`));
        resolve(new Events(req, res, lastId));
      });
      req.on("error", reject);
      req.end();
    });
  }

  constructor(req, res, lastId) {
    Object.assign(this, { req, lastId, ready: [], waiting: null, ended: false });
    let buffer = "";
    res.setEncoding("utf8");
    res.on("data", (chunk) => {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = { id: null, event: "message", data: "" };
        for (const line of buffer.slice(0, end).split("\n")) {
          if (line.startsWith(":")) continue; // a heartbeat
          const colon = line.indexOf(":");
          const field = line.slice(0, colon);
          const value = line.slice(colon + 1).replace(/^ /, "");
          if (field === "id" || field === "event") event[field] = value;
          else if (field === "data") event.data += value;
        }
        buffer = buffer.slice(end + 2);
        if (event.data) this.push({ ...event, data: JSON.parse(event.data) });
      }
    });
    const finish = () => {
      this.ended = true;
      this.push(null);
    };
    res.on("end", finish);
    res.on("error", finish);
    req.on("error", finish);
  }

  push(event) {
    if (this.waiting) {
      this.waiting(event);
      this.waiting = null;
    } else if (event) this.ready.push(event);
  }

  next() {
    if (this.ready.length) return Promise.resolve(this.take(this.ready.shift()));
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => (this.waiting = (event) => resolve(this.take(event))));
  }

  take(event) {
    if (event?.id) this.lastId = event.id;
    return event;
  }

  close() {
    this.req.destroy();
  }
}

/** Opens the stream again after `lastId`, waiting while the daemon is away. */
async function reconnect(query, lastId) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    try {
      return await Events.open(query, lastId);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

async function main() {
  const listed = await listAll();
  console.log(`listed ${listed.tasks.length} task(s) in ${listed.pages} page(s)`);

  // Listen first, so the events for our task cannot slip by.
  const query = "?events=status,task";
  let events = await Events.open(query);
  const opening = await events.next();
  if (opening?.event !== "status") throw new Error(`opened with ${JSON.stringify(opening)}`);
  console.log(`daemon is ${opening.data.state}, ${opening.data.pending} change(s) to sync`);

  const taskId = randomUUID();
  // Due tomorrow at this time, tagged; RFC 3339 in UTC, as every timestamp of the API.
  const due = new Date(Date.now() + 86_400_000).toISOString();
  const fresh = { title: "Written by the Node example", id: taskId, due, tags: ["example"], priority: "M" };
  let created = await call("POST", "/api/tasks", fresh);
  if (created.status !== 201) throw new Error(`create answered ${created.status}: ${JSON.stringify(created.body)}`);
  if (created.body.due !== due || created.body.tags.join() !== "example") throw new Error(`created ${JSON.stringify(created.body)}`);
  // The same request again (say, after a timeout) is safe: same task, nothing new queued.
  const again = await call("POST", "/api/tasks", fresh);
  if (again.status !== 200 || again.body.id !== taskId) throw new Error(`retry answered ${again.status}`);
  console.log(`created ${taskId}`);
  // Another tag, leaving the others alone (two apps adding tags at once both keep theirs).
  const tagged = await call("PUT", `/api/tasks/${taskId}`, { add_tags: ["node"] });
  if (tagged.status !== 200 || tagged.body.tags.join() !== "example,node") throw new Error(`tagging answered ${tagged.status}`);
  // Tasks due before the day after tomorrow, with both tags.
  const soon = new Date(Date.now() + 2 * 86_400_000).toISOString();
  const found = await call("GET", `/api/tasks?due_before=${soon}&tag=example&tag=node`);
  if (found.status !== 200 || found.body.length !== 1 || found.body[0].id !== taskId) throw new Error(`filter found ${JSON.stringify(found.body)}`);
  created = tagged;

  // Edit only if nobody changed the task since we read it.
  const taskPath = `/api/tasks/${taskId}`;
  const readTag = created.body.etag;
  const edited = await call("PUT", taskPath, { title: "Edited by the Node example" }, { "If-Match": readTag });
  if (edited.status !== 200) throw new Error(`edit answered ${edited.status}`);
  // A write based on the old read (say, from a second window) must not win: 412.
  const stale = await call("PUT", taskPath, { description: "stale" }, { "If-Match": readTag });
  if (stale.status !== 412 || stale.body.code !== "precondition_failed") {
    throw new Error(`stale edit answered ${stale.status}`);
  }
  console.log("stale If-Match refused (412): reading again");
  const reread = await call("GET", taskPath);
  const redone = await call("PUT", taskPath, { description: "not stale" }, { "If-Match": reread.headers.etag });
  if (redone.status !== 200 || redone.body.description !== "not stale") throw new Error(`redo answered ${redone.status}`);

  const deleted = await call("DELETE", taskPath, undefined, { "If-Match": redone.body.etag });
  if (deleted.status !== 204) throw new Error(`delete answered ${deleted.status}`);
  console.log(`deleted ${taskId}`);

  for (;;) {
    const event = await events.next();
    if (!event) throw new Error("the event stream ended");
    if (event.event === "task" && event.data.task.id === taskId && event.data.task.is_deleted) {
      console.log(`event ${event.id}: task ${taskId} deleted (${event.data.origin})`);
      break;
    }
    if (event.event === "reset") await listAll(); // missed events: list again
  }

  if (waitForRestart) {
    clearTimeout(deadline); // from here on, the wait is as long as the restart takes
    console.log(`waiting for the daemon to restart (last event ${events.lastId})`);
    while ((await events.next()) !== null); // other events; the stream ends when the daemon stops
    events = await reconnect(query, events.lastId);
    const event = await events.next();
    if (event?.event === "reset") {
      // The new run cannot replay what we missed: list again, then go on from here.
      const { tasks } = await listAll();
      console.log(`resumed after a restart: reset, listed ${tasks.length} task(s)`);
    } else {
      console.log(`resumed after event ${events.lastId}: nothing was lost`);
    }
  }
  events.close();
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
