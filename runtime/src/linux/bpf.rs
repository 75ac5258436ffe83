//! eBPF cgroup device programs: loading one, attaching it to a cgroup2
//! directory in place of the previous ones, and listing what is attached.
//!
//! On the unified hierarchy the device allow-list is a program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached at `BPF_CGROUP_DEVICE`: the kernel
//! runs it on every mknod and open of a device node by a process of the
//! cgroup (or of a cgroup below it) and refuses the operation with EPERM
//! when it returns 0. The program is built elsewhere
//! (`crate::cgroups`, from the OCI device rules); this module only speaks
//! to the `bpf(2)` system call, with the attribute layouts of
//! `<linux/bpf.h>` written out here (libc has the syscall number only).
//!
//! A program attached with `BPF_PROG_ATTACH` (not a bpf link) stays attached
//! after its descriptor is closed, until it is detached or the cgroup is
//! removed: the shim that attaches it need not live on.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use super::error::{Context, Error, Result};

/// `enum bpf_cmd` values used here.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
/// `enum bpf_prog_type`: BPF_PROG_TYPE_CGROUP_DEVICE.
const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `enum bpf_attach_type`: BPF_CGROUP_DEVICE.
const ATTACH_CGROUP_DEVICE: u32 = 6;
/// Attach flag: programs of sub-cgroups run too, and several may be attached
/// here (so a new one can go in before the old one comes out).
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// The program's license. Only programs calling GPL-only helpers must be
/// GPL; ours calls no helper at all, so it carries the project's license.
const LICENSE: &[u8] = b"Apache-2.0\0";
/// The name shown by `bpftool prog` (at most 15 bytes).
const PROG_NAME: &[u8] = b"corten_devices";
/// The verifier log asked for when a load fails, to name the reason.
const LOG_SIZE: usize = 64 * 1024;
/// How many of its last lines go into the error.
const LOG_LINES: usize = 3;

/// One eBPF instruction, as `struct bpf_insn`: an opcode, the destination
/// and source registers (4 bits each), a jump offset and an immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    /// The instruction `code` on registers `dst` and `src` (0..=10).
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        // The C bitfields `dst_reg:4, src_reg:4` fill a byte from its low
        // bits on little-endian targets and from its high bits on big-endian.
        let regs = if cfg!(target_endian = "little") {
            (dst & 0x0f) | (src << 4)
        } else {
            (dst << 4) | (src & 0x0f)
        };
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }

    /// The opcode.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The destination register.
    pub fn dst(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0x0f
        } else {
            self.regs >> 4
        }
    }

    /// The source register.
    pub fn src(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0x0f
        }
    }

    /// The jump offset, in instructions after the next one.
    pub fn off(&self) -> i16 {
        self.off
    }

    /// The immediate.
    pub fn imm(&self) -> i32 {
        self.imm
    }
}

/// `BPF_PROG_LOAD`'s part of `union bpf_attr` (the fields up to
/// `expected_attach_type`; the rest stays zero).
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `BPF_PROG_ATTACH` and `BPF_PROG_DETACH`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Attach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `BPF_PROG_QUERY`; the kernel writes `attach_flags` and `prog_cnt` back
/// (and, on newer kernels, fields after these: hence the padded union).
#[repr(C)]
#[derive(Clone, Copy)]
struct Query {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

/// `BPF_PROG_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Clone, Copy)]
struct GetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr`, padded well past the kernel's own size: the kernel reads
/// `min(size, its size)` bytes, wants any bytes beyond its size to be zero
/// (they are), and writes query results at its own offsets, which all fall
/// inside this buffer.
#[repr(C)]
union Attr {
    load: ProgLoad,
    attach: Attach,
    query: Query,
    get_fd: GetFdById,
    _size: [u64; 64],
}

impl Attr {
    fn zeroed() -> Attr {
        Attr { _size: [0; 64] }
    }
}

/// `bpf(cmd, attr, sizeof attr)`; the result is the syscall's (an fd for
/// the commands that make one).
fn bpf(cmd: libc::c_long, attr: &mut Attr) -> std::result::Result<i64, Errno> {
    // SAFETY: `attr` is a live, writable `union bpf_attr` of the size passed;
    // every pointer inside it (set by the callers) points to memory that
    // outlives the call and is as large as the length beside it says.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    Errno::result(rc)
}

/// Takes ownership of a descriptor the kernel just returned.
fn owned(fd: i64) -> OwnedFd {
    // SAFETY: `fd` is a fresh descriptor from a successful bpf(2) call, owned
    // by no one else.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Loads a cgroup device program; its descriptor holds it.
pub fn load_device_program(insns: &[Insn]) -> Result<OwnedFd> {
    let insn_cnt = u32::try_from(insns.len()).map_err(|_| {
        Error::InvalidSpec(format!("device program of {} instructions", insns.len()))
    })?;
    let mut name = [0u8; 16];
    name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let load = |log: Option<&mut [u8]>| {
        let (log_level, log_size, log_buf) = match log {
            Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
            None => (0, 0, 0),
        };
        let mut attr = Attr::zeroed();
        attr.load = ProgLoad {
            prog_type: PROG_TYPE_CGROUP_DEVICE,
            insn_cnt,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level,
            log_size,
            log_buf,
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
            prog_ifindex: 0,
            expected_attach_type: ATTACH_CGROUP_DEVICE,
        };
        bpf(BPF_PROG_LOAD, &mut attr).map(owned)
    };
    match load(None) {
        Ok(fd) => Ok(fd),
        Err(source) => {
            // Again with the verifier's log, for the error message.
            let mut log = vec![0u8; LOG_SIZE];
            let _ = load(Some(&mut log));
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            // The reason is at the end (the kernel keeps the log's tail).
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let text = lines[lines.len().saturating_sub(LOG_LINES)..].join("; ");
            Err(Error::Sys {
                op: if text.is_empty() {
                    "load the cgroup device program".to_owned()
                } else {
                    format!("load the cgroup device program (verifier: {text})")
                },
                source,
            })
        }
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", dir.display()))
}

/// The ids of the device programs attached to the cgroup2 directory `dir`
/// itself (not those inherited from its parents), oldest first.
pub fn device_program_ids(dir: &Path) -> Result<Vec<u32>> {
    let cg = open_dir(dir)?;
    query(&cg).ctx(|| format!("query the device programs of {}", dir.display()))
}

fn query(cg: &OwnedFd) -> std::result::Result<Vec<u32>, Errno> {
    let mut ids: Vec<u32> = Vec::new();
    loop {
        let mut attr = Attr::zeroed();
        attr.query = Query {
            target_fd: cg.as_raw_fd() as u32,
            attach_type: ATTACH_CGROUP_DEVICE,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: if ids.is_empty() {
                0
            } else {
                ids.as_mut_ptr() as u64
            },
            prog_cnt: ids.len() as u32,
        };
        let rc = bpf(BPF_PROG_QUERY, &mut attr);
        // SAFETY: the union was written as `query`; the kernel writes back
        // into the same fields, all plain integers.
        let count = unsafe { attr.query.prog_cnt } as usize;
        match rc {
            // The count fit (the first round asks for the count only).
            Ok(_) if count <= ids.len() => {
                ids.truncate(count);
                return Ok(ids);
            }
            // More programs than room (ENOSPC), or a first round that only
            // counted: make room and ask again.
            Ok(_) | Err(Errno::ENOSPC) => ids = vec![0; count],
            Err(e) => return Err(e),
        }
    }
}

/// Attaches `prog` (from [`load_device_program`]) to the cgroup2 directory
/// `dir` and then detaches every device program attached there before it,
/// so the cgroup never goes unfiltered: for a moment both apply (a device
/// passes only if each allows it), then only the new one.
pub fn attach_device_program(dir: &Path, prog: &OwnedFd) -> Result<()> {
    let cg = open_dir(dir)?;
    let old = query(&cg).ctx(|| format!("query the device programs of {}", dir.display()))?;
    let mut attr = Attr::zeroed();
    attr.attach = Attach {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: ATTACH_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .ctx(|| format!("attach the device program to {}", dir.display()))?;
    for id in old {
        detach(&cg, id).ctx(|| {
            format!(
                "detach the previous device program (id {id}) from {}",
                dir.display()
            )
        })?;
    }
    Ok(())
}

/// Detaches program `id` from the cgroup `cg`; one already gone is fine.
fn detach(cg: &OwnedFd, id: u32) -> std::result::Result<(), Errno> {
    let mut attr = Attr::zeroed();
    attr.get_fd = GetFdById {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
    };
    let prog = match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => owned(fd),
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut attr = Attr::zeroed();
    attr.attach = Attach {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: ATTACH_CGROUP_DEVICE,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    match bpf(BPF_PROG_DETACH, &mut attr) {
        Ok(_) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_have_the_kernels_layout() {
        let insn = Insn::new(0x61, 2, 1, 4, -2);
        assert_eq!(
            (insn.code(), insn.dst(), insn.src(), insn.off(), insn.imm()),
            (0x61, 2, 1, 4, -2)
        );
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        // SAFETY: Insn is 8 bytes of plain integers with no padding.
        let bytes: [u8; 8] = unsafe { std::mem::transmute(insn) };
        // struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; }
        let regs = if cfg!(target_endian = "little") {
            0x12
        } else {
            0x21
        };
        assert_eq!(bytes[..2], [0x61, regs]);
        assert_eq!(i16::from_ne_bytes([bytes[2], bytes[3]]), 4);
        assert_eq!(
            i32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            -2
        );
    }

    #[test]
    fn attributes_have_the_kernels_offsets() {
        assert_eq!(std::mem::size_of::<ProgLoad>(), 72);
        assert_eq!(std::mem::offset_of!(ProgLoad, insns), 8);
        assert_eq!(std::mem::offset_of!(ProgLoad, log_buf), 32);
        assert_eq!(std::mem::offset_of!(ProgLoad, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoad, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(Attach, replace_bpf_fd), 16);
        assert_eq!(std::mem::offset_of!(Query, prog_ids), 16);
        assert_eq!(std::mem::offset_of!(Query, prog_cnt), 24);
        assert_eq!(std::mem::size_of::<Attr>(), 512);
    }
}
