//! Prints the machine, the physical limits and the results as Markdown for BENCHMARKS.md.

pub struct Report {
    lines: Vec<String>,
}

impl Report {
    pub fn new() -> Self {
        Report { lines: Vec::new() }
    }

    /// Notes the machine the numbers come from.
    pub fn machine(&mut self) {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        self.lines.push(format!(
            "machine: {cpu}, {cores} cores, {} {}",
            std::env::consts::OS,
            std::env::consts::ARCH
        ));
        self.lines.push(String::new());
        self.lines.push("| physical limit | measured |".into());
        self.lines.push("|---|---|".into());
    }

    pub fn limit(&mut self, name: &str, value: String) {
        self.lines.push(format!("| {name} | {value} |"));
    }

    pub fn result(&mut self, name: &str, value: String, ratio: String, target: &str) {
        if !self.lines.iter().any(|l| l.starts_with("| result")) {
            self.lines.push(String::new());
            self.lines
                .push("| result | value | ratio to the limit | target |".into());
            self.lines.push("|---|---|---|---|".into());
        }
        self.lines
            .push(format!("| {name} | {value} | {ratio} | {target} |"));
    }

    pub fn print(&self) {
        println!("{}", self.lines.join("\n"));
    }
}
