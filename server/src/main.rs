//! tasksync-server: not built yet (see the sync engine issue).

fn main() {
    eprintln!("tasksync-server is not implemented yet");
    std::process::exit(2);
}
