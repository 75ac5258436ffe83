//! The handful of file operations cgroupfs needs, each error naming its file.
//!
//! Writes never create files: cgroupfs refuses `O_CREAT` with a misleading
//! EACCES, and a missing file means a missing controller, which should say so.

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind as IoKind, Write};
use std::path::Path;

use super::error::{Error, Result};

/// Reads a whole cgroup file.
pub(crate) fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a cgroup file that may legitimately be absent (controller not
/// mounted or not enabled, older kernel).
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == IoKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
    // One write call: cgroupfs takes each write(2) as one value.
    f.write_all(value.as_bytes())
}

/// Writes a value to a control file (cgroup.procs, freezer.state, ...).
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).map_err(|source| Error::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// Writes a resource limit; a value the kernel rejects as out of range is the
/// caller's fault (InvalidArgument), anything else the host's.
pub(crate) fn write_limit(path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).map_err(|source| {
        let rejected = matches!(
            source.raw_os_error(),
            Some(libc_errno::EINVAL | libc_errno::ERANGE | libc_errno::EOVERFLOW)
        );
        if rejected {
            Error::Rejected {
                path: path.to_owned(),
                value: value.to_owned(),
                source,
            }
        } else {
            Error::Write {
                path: path.to_owned(),
                value: value.to_owned(),
                source,
            }
        }
    })
}

/// errno values without a libc dependency (nix re-exports them as an enum).
mod libc_errno {
    pub const EINVAL: i32 = nix::errno::Errno::EINVAL as i32;
    pub const ERANGE: i32 = nix::errno::Errno::ERANGE as i32;
    pub const EOVERFLOW: i32 = nix::errno::Errno::EOVERFLOW as i32;
}

/// Parses a file holding one unsigned number.
pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64> {
    let t = text.trim();
    t.parse().map_err(|_| Error::Parse {
        path: path.to_owned(),
        reason: format!("expected a number, found {t:?}"),
    })
}

/// Reads a single-number file; `None` if the file is absent.
pub(crate) fn read_u64_opt(path: &Path) -> Result<Option<u64>> {
    match read_opt(path)? {
        Some(s) => parse_u64(path, &s).map(Some),
        None => Ok(None),
    }
}

/// Looks a key up in a flat-keyed file (`key value` per line: memory.stat,
/// cpu.stat, memory.events, memory.oom_control). Non-numeric values are
/// skipped.
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut it = line.split_whitespace();
        match (it.next(), it.next()) {
            (Some(k), Some(v)) if k == key => v.parse().ok(),
            _ => None,
        }
    })
}

/// Reads a process list (cgroup.procs), one pid per line.
pub(crate) fn read_pids(path: &Path) -> Result<Vec<i32>> {
    let text = read(path)?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse().map_err(|_| Error::Parse {
                path: path.to_owned(),
                reason: format!("expected a pid, found {l:?}"),
            })
        })
        .collect()
}

/// Creates one cgroup directory; an existing one is fine.
pub(crate) fn mkdir(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == IoKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Create {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Removes a cgroup directory and any child cgroups (directories only: the
/// control files go with their directory), retrying while it is busy
/// (processes still exiting) for up to `wait`. A missing directory is success.
pub(crate) fn rmdir(path: &Path, wait: std::time::Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + wait;
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir(&entry.path(), wait)?;
            }
        }
    }
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => return Ok(()),
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(source) => {
                return Err(Error::Remove {
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }
}

fn is_busy(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::errno::Errno::EBUSY as i32)
}
