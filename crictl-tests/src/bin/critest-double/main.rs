//! Stand-ins for the upstream programs of critest's test images, built by
//! the tests and put into images they push to their local registry:
//!
//! * `critest-double nginx [PORT]` — behaves as critest expects of nginx: its
//!   process title starts `nginx: master process`, it writes its pid to
//!   `/var/run/nginx.pid` and answers every HTTP request on PORT (80) with
//!   200. The image installs it as `/usr/sbin/nginx`, so its name is nginx.
//! * `critest-double httpd [PORT]` — says `httpd` on stdout (critest looks
//!   for it in the log) and serves HTTP on PORT (80).
//! * `critest-double nnp` — prints `Effective uid: N` (installed setuid
//!   root, it shows whether no_new_privs kept the privilege from it).
//! * `critest-double pause`, or the program installed as `/pause` — what
//!   the pause image's program does: waits for SIGINT or SIGTERM and exits
//!   0, reaping the children it inherits meanwhile (it is the init of a pod
//!   that shares its pid namespace).
//!
//! * installed as `curl` or `nc`: the subsets of those the node e2e suite's
//!   commands use ([`net`]).
//! * installed as `sh`: the node e2e suite's busybox shell ([`shell`]).
//!
//! Without a mode argument the mode is the program's file name (`nnp`).
//!
//! The node e2e suite's images (`crictl_tests::node_e2e`) use them too.

mod net;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;

/// Where the node e2e images put bash for [`shell`].
const BASH: &str = "/usr/lib/corten/bash";
/// ... and busybox's ash: a link to busybox named `sh` (the process's name).
const ASH: &str = "/usr/lib/corten/sh";

/// The shell of upstream's busybox 1.37 image, as far as the node e2e
/// specs look: busybox's ash (its messages, such as "can't create /file:
/// Read-only file system", are what the specs compare), except that it
/// keeps environment variables whose names are not shell identifiers
/// (`data-1`, which the ConfigMap and Secret envFrom specs print with
/// `sh -c env`). Debian's ash 1.35 drops those; bash keeps them, so with
/// such a name in the environment the shell is bash. Both get the argv0
/// this was called by (busybox picks its applet by that name), which their
/// messages start with.
fn shell() -> ! {
    let identifier = |name: &std::ffi::OsStr| {
        let b = name.as_encoded_bytes();
        !b.is_empty()
            && !b[0].is_ascii_digit()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    let keep_odd_names = std::env::vars_os().any(|(name, _)| !identifier(&name));
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "sh".into());
    let program = if keep_odd_names { BASH } else { ASH };
    let err = std::process::Command::new(program)
        .arg0(&argv0)
        .args(args)
        .exec();
    eprintln!("{}: {program}: {err}", argv0.to_string_lossy());
    std::process::exit(127)
}

const TITLE: &str = "nginx: master process nginx -g daemon off;";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Installed as `/pause` it is pause whatever its arguments; otherwise the
    // mode is the first argument, or the program's name without one.
    let name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    match name {
        "curl" => std::process::exit(net::curl(&args[1..])),
        "nc" => std::process::exit(net::nc(&args[1..])),
        "sh" => shell(),
        _ => {}
    }
    let mode = match args.get(1) {
        _ if name == "pause" => "pause",
        Some(m) => m.as_str(),
        None => name,
    };
    let port = |default: u16| {
        args.get(2)
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(default)
    };
    match mode {
        "nginx" => {
            if !args[0].starts_with("nginx: master") {
                // Take the process title nginx has (/proc/self/cmdline).
                let exe = std::env::current_exe().unwrap_or_else(|_| "/usr/sbin/nginx".into());
                let err = std::process::Command::new(exe)
                    .arg0(TITLE)
                    .args(&args[1..])
                    .exec();
                eprintln!("critest-double: re-exec: {err}");
                std::process::exit(1);
            }
            let _ = std::fs::create_dir_all("/var/run");
            if let Err(e) =
                std::fs::write("/var/run/nginx.pid", format!("{}\n", std::process::id()))
            {
                eprintln!("critest-double: /var/run/nginx.pid: {e}");
            }
            serve(port(80), "nginx");
        }
        "httpd" => {
            println!("httpd: serving on port {}", port(80));
            serve(port(80), "httpd");
        }
        "nnp" => {
            println!("Effective uid: {}", nix::unistd::geteuid());
        }
        "pause" => pause(),
        other => {
            eprintln!("critest-double: unknown mode {other:?} (nginx, httpd, nnp or pause)");
            std::process::exit(2);
        }
    }
}

/// Waits for SIGINT or SIGTERM, then exits 0; reaps exited children on
/// SIGCHLD. The signals are blocked and taken with sigwait, so they reach
/// it even as a pid namespace's init (which ignores default-handled ones).
fn pause() -> ! {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        set.add(s);
    }
    if let Err(e) = set.thread_block() {
        eprintln!("critest-double: block signals: {e}");
        std::process::exit(1);
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => {
                while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    if status == WaitStatus::StillAlive {
                        break;
                    }
                }
            }
            Ok(_) => std::process::exit(0),
            Err(e) => {
                eprintln!("critest-double: sigwait: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// Answers every request with 200 and a small page, forever.
fn serve(port: u16, name: &str) {
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("critest-double: listen on {port}: {e}");
            std::process::exit(1);
        }
    };
    let body = format!("<html><body><h1>Welcome to {name}!</h1></body></html>\n");
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let body = body.clone();
        std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            // Read the request head (up to the blank line), then answer.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
    }
}
