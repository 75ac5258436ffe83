//! A TCP relay on 127.0.0.1 that slows the registry's answers down, so a
//! test can kill the real registry while a blob is still on the wire.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A throttling relay; stops accepting when dropped.
pub struct SlowProxy {
    addr: String,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl SlowProxy {
    /// Relays to `upstream` ("127.0.0.1:PORT"), answers at about
    /// `bytes_per_second`.
    pub fn start(upstream: &str, bytes_per_second: usize) -> std::io::Result<SlowProxy> {
        Self::start_on("127.0.0.1:0", upstream, bytes_per_second)
    }

    /// A relay listening on `listen` ("ADDRESS:PORT"); with
    /// `bytes_per_second` `usize::MAX`, one that does not slow anything.
    pub fn start_on(
        listen: &str,
        upstream: &str,
        bytes_per_second: usize,
    ) -> std::io::Result<SlowProxy> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let flag = stop.clone();
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                relay(client, server, bytes_per_second);
            }
        });
        Ok(SlowProxy {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// "127.0.0.1:PORT".
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

fn relay(client: TcpStream, server: TcpStream, rate: usize) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    std::thread::spawn(move || copy(client, server, usize::MAX));
    std::thread::spawn(move || copy(s2, c2, rate));
}

/// Copies until EOF or error, at most `rate` bytes per second; then closes
/// both directions so the other side sees the end too.
fn copy(mut from: TcpStream, mut to: TcpStream, rate: usize) {
    let chunk = rate.clamp(1, 64 * 1024);
    let pause = Duration::from_secs_f64(chunk as f64 / rate as f64);
    let mut buf = vec![0u8; chunk];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if rate != usize::MAX {
                    std::thread::sleep(pause);
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}
