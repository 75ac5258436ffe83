//! Keeping the idle shim small: after setup, the code pages that setup
//! faulted in (parsing the spec, compiling seccomp, mounting) are handed
//! back, and fault-around is turned off for code so that only what the
//! supervision loop really runs comes back.

use std::ffi::c_void;
use std::ptr::NonNull;

use nix::sys::mman::{madvise, MmapAdvise};

use super::{Error, Result};

/// Drops the resident pages of every executable file mapping (ours and the
/// libraries') and asks for no read-around on them. Only `r-xp` mappings
/// are touched: they are never written, so their pages can always be read
/// back from the file (unlike relocated read-only data).
pub fn shed_code_pages() -> Result<()> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|source| Error::Io {
        op: "read /proc/self/maps".into(),
        source,
    })?;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        // offset, device, inode, then the path of a file mapping.
        let path = fields.nth(3);
        if perms != "r-xp" || !path.is_some_and(|p| p.starts_with('/')) {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let Some(addr) = NonNull::new(start as *mut c_void) else {
            continue;
        };
        let len = end.saturating_sub(start);
        for advice in [MmapAdvise::MADV_RANDOM, MmapAdvise::MADV_DONTNEED] {
            // SAFETY: the range is one whole mapping of this process, read
            // and execute only and private: its contents equal the file's,
            // so dropping the pages loses nothing (they fault back in from
            // the file), and MADV_RANDOM only changes read-ahead.
            unsafe { madvise(addr, len, advice) }.map_err(|source| Error::Sys {
                op: format!("madvise {range} {path:?}"),
                source,
            })?;
        }
    }
    Ok(())
}
