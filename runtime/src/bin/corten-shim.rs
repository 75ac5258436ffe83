//! corten-shim: the per-container supervisor, started by cortend.
//!
//! `corten-shim run --bundle DIR --id ID --log FILE [--runtime PATH]`
//! detaches from the daemon, creates the container described by
//! DIR/config.json on the layers of DIR/rootfs.json (with the built-in core,
//! or with the OCI runtime binary PATH such as runc), prints `ok <pid>` (or `error <why>`) on
//! stdout, then supervises the container until it exits.
//!
//! `corten-shim exec --bundle DIR [--tty] [--cwd DIR] [--env K=V ...] --
//! ARGS...` runs a command in the running container of DIR with this
//! process's stdio and exits with its exit code (125 for its own errors).
//!
//! `corten-shim pin --dir DIR [--net] [--ipc] [--uts] [--hostname NAME]
//! [--sysctl K=V ...]` creates a pod's namespaces, pins them as DIR/net,
//! DIR/ipc, DIR/uts and exits.
//!
//! `corten-shim pod-init` starts the reaping init of a new pid namespace for
//! a pod that shares one, prints its pid and exits.

const USAGE: &str = "\
corten-shim: per-container supervisor of the corten runtime

usage: corten-shim run --bundle DIR --id ID --log FILE [--runtime PATH]
       corten-shim exec --bundle DIR [--tty] [--cwd DIR] [--env K=V ...] -- ARGS...
       corten-shim pin --dir DIR [--user --uid-map C:H:N --gid-map C:H:N] [--net] [--ipc] [--uts] [--hostname NAME] [--sysctl K=V ...]
       corten-shim pod-init [--cgroup PATH] [--userns PATH]

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
        Some("exec") => return exec(&args),
        Some("pin") => return pin(&args),
        Some("pod-init") => {
            let (mut cgroup, mut userns) = (None, None);
            let mut rest = args[1..].iter();
            while let Some(flag) = rest.next() {
                let slot = match flag.as_str() {
                    "--cgroup" => &mut cgroup,
                    "--userns" => &mut userns,
                    _ => {
                        eprintln!("{USAGE}");
                        return std::process::ExitCode::from(2);
                    }
                };
                match rest.next() {
                    Some(v) => *slot = Some(v.as_str()),
                    None => {
                        eprintln!("{USAGE}");
                        return std::process::ExitCode::from(2);
                    }
                }
            }
            return std::process::ExitCode::from(corten_runtime::shim::pod_init::main(
                cgroup, userns,
            ));
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

fn exec(args: &[String]) -> std::process::ExitCode {
    use corten_runtime::shim::exec;
    let code = match exec::Args::parse(args) {
        Ok(parsed) => exec::main(parsed),
        Err(e) => {
            eprintln!("corten-shim exec: {e}\n{USAGE}");
            corten_runtime::linux::EXIT_SETUP_FAILED
        }
    };
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

fn pin(args: &[String]) -> std::process::ExitCode {
    use corten_runtime::shim::pin;
    let code = match pin::Args::parse(args) {
        Ok(parsed) => pin::main(&parsed),
        Err(e) => {
            eprintln!("corten-shim pin: {e}\n{USAGE}");
            pin::EXIT_INVALID
        }
    };
    std::process::ExitCode::from(code)
}
