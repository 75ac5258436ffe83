//! Device rules on the unified hierarchy: the OCI rules, evaluated as the v1
//! devices controller would, compiled into an eBPF cgroup device program.
//!
//! cgroup v2 has no devices controller. Its device guard is a program of
//! type `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the cgroup (see
//! `crate::linux::bpf`), which the kernel runs with a
//! `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! for each mknod or open of a device node: the low 16 bits of `access_type`
//! are the device type (1 block, 2 char), the high 16 the access asked
//! (1 mknod, 2 read, 4 write; an open for reading and writing asks 6 at
//! once). The program returns 1 to allow, 0 to refuse (EPERM).
//!
//! The rules mean what they mean to the v1 controller (the v1 driver writes
//! them to devices.allow/deny one by one), so [`DeviceRules::from_oci`]
//! replays them the way the kernel's `devcgroup_update_access` does: a
//! cgroup has a default (allow or deny) and a list of exceptions;
//! * an `a` rule (any major, minor and access: the kernel ignores them)
//!   sets the default and clears the exceptions;
//! * a `b`/`c` rule against the default adds an exception (or ORs its access
//!   into the exception with the same type, major and minor);
//! * a `b`/`c` rule agreeing with the default removes its access bits from
//!   the exception with the same type, major and minor (exact match,
//!   wildcards included), dropping it when no bit is left.
//!
//! A request is then decided as `devcgroup_legacy_check_permission` does:
//! under a default deny, allowed when one exception matches the device and
//! covers every access bit asked; under a default allow, refused when an
//! exception matches the device and shares any access bit asked. A new
//! cgroup starts as its parent does, which for corten's cgroups is allow-all.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::error::{Error, Result};
use crate::linux::Insn;

/// Device types of `bpf_cgroup_dev_ctx.access_type` (low 16 bits).
pub(crate) const DEV_BLOCK: u32 = 1;
pub(crate) const DEV_CHAR: u32 = 2;
/// Access bits (high 16 bits of `access_type`).
pub(crate) const ACC_MKNOD: u32 = 1;
pub(crate) const ACC_READ: u32 = 2;
pub(crate) const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One exception: a `b` or `c` device (a `None` number is any) and the
/// access bits it grants (default deny) or refuses (default allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exception {
    pub(crate) typ: u32,
    pub(crate) major: Option<u32>,
    pub(crate) minor: Option<u32>,
    pub(crate) access: u32,
}

impl Exception {
    fn same_device(&self, other: &Exception) -> bool {
        (self.typ, self.major, self.minor) == (other.typ, other.major, other.minor)
    }

    #[cfg(test)]
    fn matches(&self, typ: u32, major: u32, minor: u32) -> bool {
        self.typ == typ
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

/// The state a v1 devices cgroup would be in after the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceRules {
    pub(crate) default_allow: bool,
    pub(crate) exceptions: Vec<Exception>,
}

impl DeviceRules {
    /// Replays the OCI rules in order, from allow-all. A rule of type `u`
    /// or `p`, a number beyond 32 bits or an access outside `rwm` is an
    /// InvalidValue naming it (`convert::check` runs this first).
    pub(crate) fn from_oci(rules: &[LinuxDeviceCgroup]) -> Result<DeviceRules> {
        let mut state = DeviceRules {
            default_allow: true,
            exceptions: Vec::new(),
        };
        for rule in rules {
            match parse(rule)? {
                None => {
                    state.default_allow = rule.allow();
                    state.exceptions.clear();
                }
                Some(ex) if rule.allow() != state.default_allow => state.add(ex),
                Some(ex) => state.remove(ex),
            }
        }
        Ok(state)
    }

    fn add(&mut self, ex: Exception) {
        match self.exceptions.iter_mut().find(|e| e.same_device(&ex)) {
            Some(e) => e.access |= ex.access,
            None => self.exceptions.push(ex),
        }
    }

    fn remove(&mut self, ex: Exception) {
        for e in self.exceptions.iter_mut().filter(|e| e.same_device(&ex)) {
            e.access &= !ex.access;
        }
        self.exceptions.retain(|e| e.access != 0);
    }

    /// Whether `access` to the device is allowed (the v1 check): the
    /// reference the tests hold the program to.
    #[cfg(test)]
    pub(crate) fn allows(&self, typ: u32, major: u32, minor: u32, access: u32) -> bool {
        let mut hits = self
            .exceptions
            .iter()
            .filter(|e| e.matches(typ, major, minor));
        if self.default_allow {
            !hits.any(|e| access & e.access != 0)
        } else {
            hits.any(|e| access & !e.access == 0)
        }
    }

    /// The eBPF program deciding as [`Self::allows`] does.
    ///
    /// Registers: r2 the access asked, r3 the type, r4 the major, r5 the
    /// minor, r1 (the context, no longer needed) scratch. One block per
    /// exception, each jumping only forward to the next block when the
    /// exception does not decide; after the last, the default.
    ///
    /// Each device test is `if equal, go on; else jump to the next block`,
    /// written as a conditional jump over an unconditional one, so that the
    /// path the verifier follows first (the fall-through) is the one that
    /// learns nothing (not equal). Its state at each block's start is then
    /// the most general, and the paths that matched a device, arriving
    /// there later with a known number, are pruned against it: the
    /// verifier's work grows with the number of rules, not with its square
    /// (with the fall-through being "equal", 2000 rules exhaust its budget
    /// of a million instructions).
    pub(crate) fn program(&self) -> Vec<Insn> {
        let mut p = vec![
            ldx_w(R2, R1, 0),
            alu32_x(MOV, R3, R2),
            alu32_k(AND, R3, 0xffff),
            alu32_k(RSH, R2, 16),
            ldx_w(R4, R1, 4),
            ldx_w(R5, R1, 8),
        ];
        let verdict = !self.default_allow;
        // Under a default allow, an exception refusing no access bit
        // (an empty access) never decides.
        let deciding = self
            .exceptions
            .iter()
            .filter(|e| !self.default_allow || e.access != 0);
        for e in deciding {
            // Device tests: `u32::MAX as i32` and the like compare as the
            // same 32 bits in a 32-bit jump.
            let mut tests = vec![(R3, e.typ as i32)];
            if let Some(major) = e.major {
                tests.push((R4, major as i32));
            }
            if let Some(minor) = e.minor {
                tests.push((R5, minor as i32));
            }
            // Access test: under a default deny, every bit asked must be
            // granted (asked & !granted == 0: a bit the kernel may add one
            // day is never granted); under a default allow, any bit asked
            // that is refused decides (asked & refused != 0).
            let (mask, skip_if) = if self.default_allow {
                (e.access, JEQ)
            } else {
                (!e.access, JNE)
            };
            // Each unconditional jump lands just past the block's end: after
            // it come the remaining tests (two instructions each), the
            // access test (three) and the verdict (two).
            let n = tests.len();
            for (i, (reg, imm)) in tests.into_iter().enumerate() {
                p.push(jmp32_k(JEQ, reg, imm, 1));
                p.push(ja((2 * (n - 1 - i) + 3 + 2) as i16));
            }
            p.push(alu32_x(MOV, R1, R2));
            p.push(alu32_k(AND, R1, mask as i32));
            p.push(jmp32_k(skip_if, R1, 0, 2));
            p.push(alu32_k(MOV, R0, i32::from(verdict)));
            p.push(exit());
        }
        p.push(alu32_k(MOV, R0, i32::from(self.default_allow)));
        p.push(exit());
        p
    }
}

/// A rule as an exception, or `None` for an `a` rule (the kernel reads
/// nothing after the `a`).
fn parse(rule: &LinuxDeviceCgroup) -> Result<Option<Exception>> {
    let typ = match rule.typ().unwrap_or_default() {
        LinuxDeviceType::A => return Ok(None),
        LinuxDeviceType::B => DEV_BLOCK,
        LinuxDeviceType::C => DEV_CHAR,
        other => {
            return Err(Error::InvalidValue {
                what: "device rule type",
                value: other.as_str().to_owned(),
                reason: "must be a, b or c",
            })
        }
    };
    Ok(Some(Exception {
        typ,
        major: number("device rule major", rule.major())?,
        minor: number("device rule minor", rule.minor())?,
        access: access(rule.access().as_deref())?,
    }))
}

/// A major or minor: negative or absent is any (`*`), as the v1 driver
/// writes it; beyond 32 bits is refused, as the kernel refuses it.
fn number(what: &'static str, n: Option<i64>) -> Result<Option<u32>> {
    match n.filter(|n| *n >= 0) {
        None => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| Error::InvalidValue {
            what,
            value: n.to_string(),
            reason: "must fit in 32 bits",
        }),
    }
}

/// The access bits of `rwm` (absent is all three; empty is none, as the
/// kernel reads an empty access field).
fn access(a: Option<&str>) -> Result<u32> {
    let Some(a) = a else {
        return Ok(ACC_ALL);
    };
    a.chars().try_fold(0, |bits, ch| match ch {
        'r' => Ok(bits | ACC_READ),
        'w' => Ok(bits | ACC_WRITE),
        'm' => Ok(bits | ACC_MKNOD),
        _ => Err(Error::InvalidValue {
            what: "device rule access",
            value: a.to_owned(),
            reason: "must be some of r, w and m",
        }),
    })
}

// The few opcodes the program uses (`<linux/bpf_common.h>`, `<linux/bpf.h>`).
pub(crate) const CLASS_LDX: u8 = 0x01;
pub(crate) const CLASS_ALU: u8 = 0x04;
pub(crate) const CLASS_JMP: u8 = 0x05;
pub(crate) const CLASS_JMP32: u8 = 0x06;
pub(crate) const SIZE_W: u8 = 0x00;
pub(crate) const MODE_MEM: u8 = 0x60;
pub(crate) const SRC_K: u8 = 0x00;
pub(crate) const SRC_X: u8 = 0x08;
pub(crate) const AND: u8 = 0x50;
pub(crate) const RSH: u8 = 0x70;
pub(crate) const MOV: u8 = 0xb0;
pub(crate) const JEQ: u8 = 0x10;
pub(crate) const JNE: u8 = 0x50;
pub(crate) const JA: u8 = 0x00;
pub(crate) const EXIT: u8 = 0x90;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// `dst = *(u32 *)(src + off)`
fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(CLASS_LDX | SIZE_W | MODE_MEM, dst, src, off, 0)
}

/// `dst32 op= imm`
fn alu32_k(op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(CLASS_ALU | op | SRC_K, dst, 0, 0, imm)
}

/// `dst32 op= src32`
fn alu32_x(op: u8, dst: u8, src: u8) -> Insn {
    Insn::new(CLASS_ALU | op | SRC_X, dst, src, 0, 0)
}

/// `if (dst32 op imm) goto +off`
fn jmp32_k(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(CLASS_JMP32 | op | SRC_K, dst, 0, off, imm)
}

/// `goto +off`
fn ja(off: i16) -> Insn {
    Insn::new(CLASS_JMP | JA, 0, 0, off, 0)
}

fn exit() -> Insn {
    Insn::new(CLASS_JMP | EXIT, 0, 0, 0, 0)
}
