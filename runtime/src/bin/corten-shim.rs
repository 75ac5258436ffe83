//! corten-shim: the per-container supervisor.
//!
//! The container core (issue 4) builds it out; until then it only explains
//! itself, so packaging and the daemon can already find it.

const USAGE: &str = "\
corten-shim: per-container supervisor of the corten runtime

It is started by cortend, one per container; it is not meant to be run by hand.
The supervisor protocol is not built yet.

Options:
  -h, --help     print this help
  -V, --version  print the version";

fn main() -> std::process::ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("-V" | "--version") => {
            println!("corten-shim {}", corten_runtime::VERSION);
            std::process::ExitCode::SUCCESS
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            std::process::ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::ExitCode::from(2)
        }
    }
}
