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

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;

const TITLE: &str = "nginx: master process nginx -g daemon off;";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
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
        other => {
            eprintln!("critest-double: unknown mode {other:?} (nginx, httpd or nnp)");
            std::process::exit(2);
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
