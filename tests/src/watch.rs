//! `taskctl --json watch` as a child process, its stdout lines (JSON events) and stderr lines
//! (what it tells the user) collected as they come.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::{bin, wait_until, Daemon};

pub struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    messages: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    /// Starts watching `daemon` and waits for the opening `status` event.
    pub fn start(daemon: &Daemon) -> Watch {
        Watch::start_with(daemon, &[])
    }

    /// Starts `taskctl --json watch ARGS...` and waits for the opening `status` event (so
    /// `--events` must let `status` through).
    pub fn start_with(daemon: &Daemon, args: &[&str]) -> Watch {
        let mut child = Command::new(bin("taskctl"))
            .arg("--socket")
            .arg(&daemon.socket)
            .args(["--json", "watch"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start taskctl watch");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let messages = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, lines.clone(), |line| {
                serde_json::from_str(&line).unwrap_or(Value::String(line))
            });
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, messages.clone(), |line| line);
        }
        let watch = Watch {
            child,
            lines,
            messages,
        };
        wait_until("watch to open with its status", || {
            watch.events("status") > 0
        });
        watch
    }

    /// How many events named `name` arrived so far.
    pub fn events(&self, name: &str) -> usize {
        self.matching(|e| e["event"] == name).len()
    }

    /// The events so far for which `keep` holds.
    pub fn matching(&self, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.all().into_iter().filter(|e| keep(e)).collect()
    }

    pub fn all(&self) -> Vec<Value> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// What watch wrote to stderr so far.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Whether the watch process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

fn collect<T: Send + 'static>(
    stream: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<T>>>,
    parse: impl Fn(String) -> T + Send + 'static,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut all) = into.lock() {
                all.push(parse(line));
            }
        }
    });
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
