//! `curl` and `nc` stand-ins for the node e2e suite's agnhost image, whose
//! upstream build adds Alpine's curl and netcat-openbsd. Only what the
//! suite's commands use is here:
//!
//! * `curl [-g] [-q] [-s] [-i] [-o FILE] [-w '%{http_code}'] [--max-time S]
//!   [--connect-timeout S] http://HOST[:PORT]/PATH`: a GET over HTTP/1.1;
//!   the body on stdout (`-i`: the status line and headers before it);
//!   exit 7 when it cannot connect, 28 on a timeout, 0 otherwise (an HTTP
//!   error status is still 0, as curl without `-f`).
//! * `nc [-u] [-w S] HOST PORT`: sends stdin (one datagram with `-u`, a
//!   stream otherwise) and prints what comes back until S seconds pass
//!   without anything; exit 0 once sent, 1 when it cannot connect.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

pub fn curl(args: &[String]) -> i32 {
    let mut include = false;
    let mut out_file: Option<String> = None;
    let mut write_out: Option<String> = None;
    let mut max_time: Option<f64> = None;
    let mut connect_timeout: Option<f64> = None;
    let mut url = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-g" | "-q" | "-s" | "-f" | "-L" | "--silent" | "--globoff" => {}
            "-i" | "--include" => include = true,
            "-o" | "--output" => out_file = it.next().cloned(),
            "-w" | "--write-out" => write_out = it.next().cloned(),
            "-m" | "--max-time" => max_time = it.next().and_then(|v| v.parse().ok()),
            "--connect-timeout" => connect_timeout = it.next().and_then(|v| v.parse().ok()),
            other if other.starts_with('-') => {
                eprintln!("curl (stand-in): option {other} is not supported");
                return 2;
            }
            other => url = Some(other.to_string()),
        }
    }
    let Some(url) = url else {
        eprintln!("curl (stand-in): no URL");
        return 2;
    };
    let Some(rest) = url.strip_prefix("http://") else {
        eprintln!("curl (stand-in): only http:// URLs are supported: {url}");
        return 1;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // No port given: HTTP's. resolve() takes [v6]:port and host:port.
    let has_port = match authority.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.starts_with('[') || host.ends_with(']'))
        }
        None => false,
    };
    let host_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let deadline = max_time.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let left = |deadline: Option<Instant>| {
        deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        })
    };
    let Some(addr) = resolve(&host_port) else {
        eprintln!("curl (stand-in): cannot resolve {host_port}");
        return 6;
    };
    let connect = connect_timeout
        .map(Duration::from_secs_f64)
        .or(left(deadline))
        .unwrap_or(Duration::from_secs(300));
    let mut conn = match TcpStream::connect_timeout(&addr, connect) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return 28,
        Err(_) => return 7,
    };
    let _ = conn.set_read_timeout(left(deadline).or(Some(Duration::from_secs(300))));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: curl/8\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    if conn.write_all(request.as_bytes()).is_err() {
        return 55;
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return 28
            }
            Err(_) => return 56,
        }
    }
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return 52;
    };
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut body = response[split + 4..].to_vec();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(0);
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    let mut shown = Vec::new();
    if include {
        shown.extend_from_slice(&response[..split + 4]);
    }
    shown.extend_from_slice(&body);
    let written = match out_file.as_deref() {
        None | Some("-") => std::io::stdout().write_all(&shown),
        Some(path) => std::fs::write(path, &shown),
    };
    if written.is_err() {
        return 23;
    }
    if let Some(w) = write_out {
        print!("{}", w.replace("%{http_code}", &format!("{code:03}")));
    }
    let _ = std::io::stdout().flush();
    0
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_text, 16) else {
            break;
        };
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

fn resolve(host_port: &str) -> Option<SocketAddr> {
    let trimmed = host_port.replace(['[', ']'], "");
    if let Ok(a) = trimmed.parse::<SocketAddr>() {
        return Some(a);
    }
    if let Some((h, p)) = host_port.rsplit_once(':') {
        let h = h.trim_start_matches('[').trim_end_matches(']');
        if let (Ok(ip), Ok(port)) = (h.parse::<std::net::IpAddr>(), p.parse::<u16>()) {
            return Some(SocketAddr::new(ip, port));
        }
    }
    host_port.to_socket_addrs().ok()?.next()
}

pub fn nc(args: &[String]) -> i32 {
    let mut udp = false;
    let mut wait = Duration::from_secs(1);
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-u" => udp = true,
            "-w" => {
                if let Some(s) = it.next().and_then(|v| v.parse::<f64>().ok()) {
                    wait = Duration::from_secs_f64(s);
                }
            }
            "-v" | "-n" | "-z" => {}
            other if other.starts_with('-') => {
                eprintln!("nc (stand-in): option {other} is not supported");
                return 2;
            }
            other => rest.push(other.to_string()),
        }
    }
    let [host, port] = rest.as_slice() else {
        eprintln!("nc (stand-in): usage: nc [-u] [-w S] HOST PORT");
        return 2;
    };
    let Some(addr) = resolve(&format!("{host}:{port}")) else {
        eprintln!("nc (stand-in): cannot resolve {host}");
        return 1;
    };
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    let mut stdout = std::io::stdout();
    let mut buf = [0u8; 64 * 1024];
    if udp {
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let Ok(sock) = UdpSocket::bind(local) else {
            return 1;
        };
        if sock.connect(addr).is_err() || sock.send(&input).is_err() {
            return 1;
        }
        let _ = sock.set_read_timeout(Some(wait));
        while let Ok(n) = sock.recv(&mut buf) {
            let _ = stdout.write_all(&buf[..n]);
            let _ = stdout.flush();
        }
        return 0;
    }
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, wait) else {
        return 1;
    };
    if conn.write_all(&input).is_err() {
        return 1;
    }
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let _ = conn.set_read_timeout(Some(wait));
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
        let _ = stdout.write_all(&buf[..n]);
    }
    let _ = stdout.flush();
    0
}
