//! corten-shim: the per-container supervisor, started by cortend.
//!
//! `corten-shim run --bundle DIR --id ID --log FILE [--runtime PATH]`
//! detaches from the daemon, creates the container described by
//! DIR/config.json on the layers of DIR/rootfs.json (with the built-in core,
//! or with the OCI runtime binary PATH such as runc), prints `ok <pid>` (or `error <why>`) on
//! stdout, then supervises the container until it exits.

const USAGE: &str = "\
corten-shim: per-container supervisor of the corten runtime

usage: corten-shim run --bundle DIR --id ID --log FILE [--runtime PATH]

  --runtime PATH   create the container with this OCI runtime (runc, crun)
                   instead of the built-in core

It is started by cortend, one per container; it is not meant to be run by hand.";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-V" | "--version") => {
            println!("corten-shim {}", corten_runtime::VERSION);
            return std::process::ExitCode::SUCCESS;
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        _ => {}
    }
    let parsed = match corten_runtime::shim::setup::Args::parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("corten-shim: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match corten_runtime::shim::setup::main(parsed) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corten-shim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
