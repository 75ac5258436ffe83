//! OCI seccomp profile -> classic BPF for x86_64.
//!
//! seccompiler compiles one argument rule (a conjunction of conditions) to
//! BPF, and we use it for that. Its `SeccompFilter` however has a single
//! match action for every rule, while an OCI profile gives each syscall entry
//! its own action and errno; so the dispatch on the syscall number is built
//! here:
//!
//! ```text
//!   load arch; arch != x86_64 -> ERRNO(ENOSYS)
//!   load nr;   nr has the x32 bit -> ERRNO(ENOSYS)
//!   for each syscall:  load nr; nr != N -> next syscall
//!       for each rule: [conditions, a failed one jumps past the ret] ret ACTION
//!   ret DEFAULT
//! ```
//!
//! Within one syscall, rules with conditions come first (in profile order),
//! then the first unconditional one; the first rule that matches decides.

use std::collections::BTreeMap;

use nix::libc;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator};
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompRule,
};

use super::{syscalls, Error};

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
/// `AUDIT_ARCH_X86_64` (EM_X86_64 | 64-bit | little endian).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Syscall numbers of the x32 ABI carry this bit; they share the x86_64
/// audit arch, so without this check they would bypass every rule.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// The kernel's limit on a filter's length.
const MAX_LEN: usize = 4096;

/// One syscall's rules: those with conditions and their actions, in
/// profile order, and the action of its first unconditional entry.
type Rules = (Vec<(SeccompRule, u32)>, Option<u32>);

/// Compiles `profile` to a BPF program for x86_64.
///
/// Syscall names the table does not know are skipped (a profile written for
/// a newer kernel still loads). Calls from another ABI (i386, x32) fail with
/// ENOSYS. `SCMP_ACT_NOTIFY` and listener paths are not supported.
pub fn compile(profile: &LinuxSeccomp) -> Result<BpfProgram, Error> {
    if cfg!(not(target_arch = "x86_64")) {
        return Err(Error::Unsupported(format!(
            "compiling seccomp filters for {}",
            std::env::consts::ARCH
        )));
    }
    check_architectures(profile)?;
    if profile.listener_path().is_some() {
        return Err(Error::Unsupported("a seccomp notify listener".into()));
    }
    let default = action(profile.default_action(), profile.default_errno_ret())?;

    let mut by_nr: BTreeMap<u32, Rules> = BTreeMap::new();
    for entry in profile.syscalls().iter().flatten() {
        let act = action(entry.action(), entry.errno_ret())?;
        for name in entry.names() {
            let Some(nr) = syscalls::number(name) else {
                tracing::debug!(syscall = %name, "seccomp: unknown syscall skipped");
                continue;
            };
            let slot = by_nr.entry(nr).or_default();
            match entry.args().as_deref() {
                None | Some([]) => {
                    slot.1.get_or_insert(act);
                }
                Some(args) => slot.0.push((rule(name, args)?, act)),
            }
        }
    }

    let mut prog = vec![
        stmt(BPF_LD_W_ABS, ARCH_OFFSET),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, other_abi()),
        stmt(BPF_LD_W_ABS, NR_OFFSET),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, other_abi()),
    ];
    for (nr, (conditional, unconditional)) in by_nr {
        let mut body = Vec::new();
        for (rule, act) in conditional {
            // A rule falls through when its conditions hold, and jumps past
            // the instruction after it (this `ret`) when one does not.
            body.extend(BpfProgram::from(rule));
            body.push(stmt(BPF_RET_K, act));
        }
        if let Some(act) = unconditional {
            body.push(stmt(BPF_RET_K, act));
        }
        if body.iter().all(|i| i.code == BPF_RET_K && i.k == default) {
            continue; // Every path ends where the default would.
        }
        prog.push(stmt(BPF_LD_W_ABS, NR_OFFSET));
        match u8::try_from(body.len()) {
            Ok(skip) => prog.push(jump(BPF_JEQ_K, nr, 0, skip)),
            Err(_) => {
                let skip = u32::try_from(body.len()).map_err(|_| Error::TooLong(body.len()))?;
                prog.push(jump(BPF_JEQ_K, nr, 1, 0));
                prog.push(stmt(BPF_JA, skip));
            }
        }
        prog.extend(body);
    }
    prog.push(stmt(BPF_RET_K, default));
    if prog.len() > MAX_LEN {
        return Err(Error::TooLong(prog.len()));
    }
    Ok(prog)
}

/// The profile must apply to x86_64 (or name no architecture at all).
fn check_architectures(profile: &LinuxSeccomp) -> Result<(), Error> {
    use oci_spec::runtime::Arch;
    match profile.architectures().as_deref() {
        None | Some([]) => Ok(()),
        Some(archs)
            if archs
                .iter()
                .any(|a| matches!(a, Arch::ScmpArchX86_64 | Arch::ScmpArchNative)) =>
        {
            Ok(())
        }
        Some(archs) => Err(Error::Unsupported(format!(
            "architectures {archs:?} do not include SCMP_ARCH_X86_64"
        ))),
    }
}

/// What a call of another ABI gets.
fn other_abi() -> u32 {
    u32::from(SeccompAction::Errno(libc::ENOSYS as u32))
}

/// The filter return value of an OCI action. ERRNO without a number is EPERM.
fn action(act: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, Error> {
    let eperm = libc::EPERM as u32;
    let a = match act {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(errno.unwrap_or(eperm)),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(eperm)),
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Unsupported("action SCMP_ACT_NOTIFY".into()))
        }
    };
    Ok(u32::from(a))
}

/// One OCI entry's argument list: a conjunction, compared on all 64 bits.
fn rule(syscall: &str, args: &[LinuxSeccompArg]) -> Result<SeccompRule, Error> {
    let bad = |reason: String| Error::Condition {
        syscall: syscall.to_string(),
        reason,
    };
    let backend = |source| Error::Backend {
        syscall: syscall.to_string(),
        source,
    };
    let mut conditions = Vec::with_capacity(args.len());
    for arg in args {
        let index = u8::try_from(arg.index())
            .ok()
            .filter(|i| *i <= 5)
            .ok_or_else(|| bad(format!("argument index {} is not 0..=5", arg.index())))?;
        let (op, value) = match arg.op() {
            LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
            LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
            LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
            LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
            LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
            LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
            // OCI: `value` is the mask, `valueTwo` what the masked argument equals.
            LinuxSeccompOperator::ScmpCmpMaskedEq => (
                SeccompCmpOp::MaskedEq(arg.value()),
                arg.value_two().unwrap_or(0),
            ),
        };
        let c =
            SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(backend)?;
        conditions.push(c);
    }
    SeccompRule::new(conditions).map_err(backend)
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}
