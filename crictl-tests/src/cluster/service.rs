//! One control-plane process of a test cluster (etcd, kube-apiserver, the
//! controller manager, the scheduler): started by the test with its output
//! in a log file of the cluster's directory, stopped (SIGTERM, then
//! SIGKILL) when dropped. Only that process is ever signalled.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::wait;

/// How long a process gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Starts tried when a port was taken meanwhile.
const PORT_TRIES: usize = 3;
/// What a panicking test prints of each log.
const LOG_TAIL_LINES: usize = 40;

/// A running control-plane process.
pub struct Service {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    /// Starts `make()`'s command (which picks fresh ports each time and
    /// returns them too) with its output appended to `log`, and waits up
    /// to `limit` until `ready(ports)` holds. A start whose log says a port
    /// is taken is tried again with new ports; one that exits, or is not
    /// ready in time, fails with the end of its log.
    pub fn start<T>(
        name: &'static str,
        log: PathBuf,
        limit: Duration,
        mut make: impl FnMut() -> (Command, T),
        mut ready: impl FnMut(&T) -> bool,
    ) -> Result<(Service, T)> {
        for attempt in 1..=PORT_TRIES {
            let (mut cmd, ports) = make();
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .with_context(|| format!("open {}", log.display()))?;
            let logged = out.metadata().map_or(0, |m| m.len());
            let err = out.try_clone().context("clone the log file")?;
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .with_context(|| format!("run {name}"))?;
            let mut service = Service {
                name,
                child: Some(child),
                log: log.clone(),
            };
            let mut exited = None;
            let mut port_taken = false;
            let up = wait::within(limit, || {
                if let Some(Ok(Some(status))) = service.child.as_mut().map(Child::try_wait) {
                    exited = Some(status);
                    return true;
                }
                port_taken = service.log_since(logged).contains("address already in use");
                port_taken || ready(&ports)
            });
            if port_taken && attempt < PORT_TRIES {
                service.stop();
                continue;
            }
            if let Some(status) = exited {
                service.child = None;
                bail!("{name} exited with {status}\n{}", service.tail());
            }
            if !up || port_taken {
                bail!("{name} not ready after {limit:?}\n{}", service.tail());
            }
            return Ok((service, ports));
        }
        bail!("{name}: no free ports after {PORT_TRIES} starts")
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_since(&self, offset: u64) -> String {
        let all = std::fs::read(&self.log).unwrap_or_default();
        let from = usize::try_from(offset).unwrap_or(0).min(all.len());
        String::from_utf8_lossy(&all[from..]).into_owned()
    }

    /// The end of its log, framed with its name.
    pub fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "---- {} log (last {} lines) ----\n{}\n---- end of {} log ----",
            self.name,
            lines.len() - from,
            lines[from..].join("\n"),
            self.name
        )
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; reaps it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let exited = wait::within(STOP_TIMEOUT, || matches!(child.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.tail());
        }
        self.stop();
    }
}
