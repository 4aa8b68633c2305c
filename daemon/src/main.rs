//! tasksyncd's entry point; the daemon itself is the library's `run` module.

fn main() -> std::process::ExitCode {
    tasksyncd::main()
}
