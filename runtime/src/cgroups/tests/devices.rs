//! The device rules: their v1 meaning, and the eBPF program built from them
//! run in a small interpreter of the instructions it uses, checked against
//! that meaning for many devices and accesses.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResourcesBuilder};

use crate::cgroups::devices::*;
use crate::cgroups::*;
use crate::linux::Insn;
use crate::ErrorKind;

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: Option<&str>,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(access.map(str::to_owned));
    r
}

fn c(allow: bool, major: i64, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
    rule(allow, LinuxDeviceType::C, Some(major), minor, Some(access))
}

fn b(allow: bool, major: i64, minor: i64, access: &str) -> LinuxDeviceCgroup {
    rule(
        allow,
        LinuxDeviceType::B,
        Some(major),
        Some(minor),
        Some(access),
    )
}

fn all(allow: bool) -> LinuxDeviceCgroup {
    rule(allow, LinuxDeviceType::A, None, None, Some("rwm"))
}

/// What corten gives a default container: deny all, then the standard
/// nodes (null, zero, full, random, urandom, tty, ptmx), /dev/pts/* and
/// /dev/console (spec/generate.rs).
fn default_rules() -> Vec<LinuxDeviceCgroup> {
    let mut rules = vec![all(false)];
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
        rules.push(c(true, major, Some(minor), "rwm"));
    }
    rules.push(c(true, 136, None, "rwm"));
    rules.push(c(true, 5, Some(1), "rwm"));
    rules
}

const R: u32 = ACC_READ;
const W: u32 = ACC_WRITE;
const M: u32 = ACC_MKNOD;

/// Runs a device program on the context `(access << 16 | type, major,
/// minor)`, the way the kernel would, for the instructions `program()`
/// emits. Panics on anything else, on a backward or out-of-range jump, on
/// a read of a register never written, on a context read other than an
/// aligned u32 of the three fields, and on falling off the end.
fn run(program: &[Insn], typ: u32, major: u32, minor: u32, access: u32) -> u32 {
    let ctx = [(access << 16) | typ, major, minor];
    // None: never written; r1 starts as the context pointer.
    let mut regs: [Option<u64>; 11] = [None; 11];
    let mut ctx_reg = Some(1u8);
    let get = |regs: &[Option<u64>; 11], r: u8| -> u64 {
        regs[usize::from(r)].unwrap_or_else(|| panic!("r{r} read before written"))
    };
    let mut pc = 0usize;
    loop {
        let insn = program.get(pc).expect("ran off the end of the program");
        let (code, dst, src) = (insn.code(), insn.dst(), insn.src());
        assert!(dst <= 10 && src <= 10, "bad register in {insn:?}");
        let class = code & 0x07;
        pc += 1;
        match class {
            CLASS_LDX => {
                assert_eq!(code, CLASS_LDX | SIZE_W | MODE_MEM, "{insn:?}");
                assert_eq!(ctx_reg, Some(src), "load from a non-context register");
                let off = usize::try_from(insn.off()).expect("negative offset");
                assert!(off % 4 == 0 && off < 12, "context offset {off}");
                regs[usize::from(dst)] = Some(u64::from(ctx[off / 4]));
                if ctx_reg == Some(dst) {
                    ctx_reg = None;
                }
            }
            CLASS_ALU => {
                let value = if code & SRC_X != 0 {
                    assert_ne!(ctx_reg, Some(src), "arithmetic on the context pointer");
                    get(&regs, src) as u32
                } else {
                    insn.imm() as u32
                };
                let old = || get(&regs, dst) as u32;
                let out = match code & 0xf0 {
                    MOV => value,
                    AND => old() & value,
                    RSH => {
                        assert!(value < 32, "shift by {value}");
                        old() >> value
                    }
                    op => panic!("unexpected ALU op {op:#x}"),
                };
                regs[usize::from(dst)] = Some(u64::from(out));
                if ctx_reg == Some(dst) {
                    ctx_reg = None;
                }
            }
            CLASS_JMP32 => {
                assert_eq!(code & SRC_X, SRC_K, "{insn:?}");
                let left = get(&regs, dst) as u32;
                let right = insn.imm() as u32;
                let taken = match code & 0xf0 {
                    JEQ => left == right,
                    JNE => left != right,
                    op => panic!("unexpected jump op {op:#x}"),
                };
                assert!(insn.off() >= 0, "backward jump at {}", pc - 1);
                if taken {
                    pc += insn.off() as usize;
                }
                assert!(pc < program.len(), "jump past the end at {}", pc);
            }
            CLASS_JMP if code == CLASS_JMP | JA => {
                assert!(insn.off() >= 0, "backward jump at {}", pc - 1);
                pc += insn.off() as usize;
                assert!(pc < program.len(), "jump past the end at {}", pc);
            }
            CLASS_JMP => {
                assert_eq!(code, CLASS_JMP | EXIT, "{insn:?}");
                let r0 = get(&regs, 0);
                assert!(r0 <= 1, "verdict {r0}");
                return r0 as u32;
            }
            _ => panic!("unexpected instruction {insn:?}"),
        }
    }
}

fn state(rules: &[LinuxDeviceCgroup]) -> DeviceRules {
    DeviceRules::from_oci(rules).expect("valid rules")
}

/// Checks the program against the reference over a grid of devices and
/// every access combination (and a bit the kernel does not send today).
fn check_program(rules: &[LinuxDeviceCgroup]) {
    let s = state(rules);
    let p = s.program();
    let numbers = [0, 1, 2, 3, 5, 136, 254, 0x7fff_ffff, 0x8000_0000, u32::MAX];
    for typ in [DEV_BLOCK, DEV_CHAR] {
        for major in numbers {
            for minor in numbers {
                for access in (0..=7).chain([8, 8 | R]) {
                    let want = s.allows(typ, major, minor, access);
                    let got = run(&p, typ, major, minor, access);
                    assert_eq!(
                        got,
                        u32::from(want),
                        "type {typ} {major}:{minor} access {access:#b} under {rules:?} ({s:?})"
                    );
                }
            }
        }
    }
}

#[test]
fn the_default_allow_list_admits_its_nodes_only() {
    let rules = default_rules();
    let s = state(&rules);
    assert!(!s.default_allow);
    // /dev/null and the ptys, any access.
    assert!(s.allows(DEV_CHAR, 1, 3, R | W));
    assert!(s.allows(DEV_CHAR, 1, 3, M));
    assert!(s.allows(DEV_CHAR, 136, 42, R | W));
    // A disk: neither mknod nor open; nor an unlisted char device.
    assert!(!s.allows(DEV_BLOCK, 254, 0, M));
    assert!(!s.allows(DEV_BLOCK, 254, 0, R));
    assert!(!s.allows(DEV_CHAR, 1, 1, R)); // /dev/mem
    assert!(!s.allows(DEV_BLOCK, 1, 3, R)); // a block device with null's numbers
    check_program(&rules);

    let p = s.program();
    assert_eq!(run(&p, DEV_CHAR, 1, 3, R | W), 1);
    assert_eq!(run(&p, DEV_BLOCK, 254, 0, M), 0);
    assert_eq!(run(&p, DEV_BLOCK, 254, 0, R), 0);
}

#[test]
fn privileged_allows_everything_with_a_two_instruction_tail() {
    let rules = [all(true)];
    let s = state(&rules);
    assert_eq!(
        s,
        DeviceRules {
            default_allow: true,
            exceptions: vec![]
        }
    );
    let p = s.program();
    assert_eq!(p.len(), 8);
    assert_eq!(run(&p, DEV_BLOCK, 254, 0, R | W | M), 1);
    check_program(&rules);
    // A later allow-all wipes an earlier allow-list.
    let mut rules = default_rules();
    rules.push(all(true));
    assert_eq!(state(&rules), s);
}

#[test]
fn a_device_given_to_the_container_with_its_permissions() {
    let mut rules = default_rules();
    rules.push(b(true, 254, 0, "rw"));
    let s = state(&rules);
    assert!(s.allows(DEV_BLOCK, 254, 0, R | W));
    assert!(!s.allows(DEV_BLOCK, 254, 0, M), "no m: no mknod");
    assert!(!s.allows(DEV_BLOCK, 254, 1, R), "only that minor");
    check_program(&rules);
    rules.push(b(true, 254, 0, "m"));
    assert!(state(&rules).allows(DEV_BLOCK, 254, 0, M | R | W));
    check_program(&rules);
}

#[test]
fn rules_replay_as_the_v1_controller_does() {
    // Default allow with a refused write: reads still pass; asking for
    // read and write at once is refused (any refused bit decides).
    let mut rules = vec![c(false, 1, Some(3), "w")];
    let s = state(&rules);
    assert!(s.default_allow);
    assert!(s.allows(DEV_CHAR, 1, 3, R));
    assert!(!s.allows(DEV_CHAR, 1, 3, W));
    assert!(!s.allows(DEV_CHAR, 1, 3, R | W));
    check_program(&rules);
    // Allowing it again removes the exception.
    rules.push(c(true, 1, Some(3), "w"));
    assert!(state(&rules).exceptions.is_empty());
    check_program(&rules);

    // Default deny: grants OR together on the same device; a request must
    // be covered by one exception.
    let rules = vec![
        all(false),
        c(true, 1, Some(3), "r"),
        c(true, 1, Some(3), "w"),
        c(true, 1, None, "m"),
    ];
    let s = state(&rules);
    assert_eq!(s.exceptions.len(), 2);
    assert!(s.allows(DEV_CHAR, 1, 3, R | W));
    assert!(
        !s.allows(DEV_CHAR, 1, 3, R | M),
        "two exceptions do not add up"
    );
    assert!(s.allows(DEV_CHAR, 1, 3, M));
    check_program(&rules);

    // Removal is by exact device, wildcards included: denying 1:3 does not
    // carve it out of an allowed 1:*, and denying part of the access keeps
    // the rest.
    let rules = vec![
        all(false),
        c(true, 1, None, "rwm"),
        c(false, 1, Some(3), "rwm"),
        b(true, 8, 0, "rwm"),
        b(false, 8, 0, "m"),
    ];
    let s = state(&rules);
    assert!(s.allows(DEV_CHAR, 1, 3, R));
    assert!(s.allows(DEV_BLOCK, 8, 0, R | W));
    assert!(!s.allows(DEV_BLOCK, 8, 0, M));
    check_program(&rules);

    // A missing access is rwm, an empty one nothing; a missing type is a;
    // a negative number is any.
    let mut untyped = rule(false, LinuxDeviceType::A, None, None, None);
    untyped.set_typ(None);
    let rules = vec![
        untyped,
        rule(true, LinuxDeviceType::C, Some(1), Some(-1), None),
        rule(true, LinuxDeviceType::C, Some(2), Some(0), Some("")),
    ];
    let s = state(&rules);
    assert!(!s.default_allow);
    assert!(s.allows(DEV_CHAR, 1, 77, R | W | M));
    assert!(!s.allows(DEV_CHAR, 2, 0, R));
    check_program(&rules);
    // An `a` rule ignores its numbers and access, as the kernel does.
    let rules = vec![rule(false, LinuxDeviceType::A, Some(1), Some(3), Some("r"))];
    assert_eq!(
        state(&rules),
        DeviceRules {
            default_allow: false,
            exceptions: vec![]
        }
    );
}

#[test]
fn bad_rules_are_invalid_arguments_naming_them() {
    let cases = [
        (
            rule(true, LinuxDeviceType::U, Some(1), Some(3), None),
            "type",
        ),
        (rule(true, LinuxDeviceType::P, None, None, None), "type"),
        (c(true, 1 << 33, Some(3), "rwm"), "major"),
        (c(true, 1, Some(1 << 32), "rwm"), "minor"),
        (c(true, 1, Some(3), "rwx"), "access"),
    ];
    for (bad, what) in cases {
        let e = DeviceRules::from_oci(&[all(false), bad.clone()]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains(what), "{e}");
        // The shared check refuses it before anything is written.
        let r = LinuxResourcesBuilder::default()
            .devices(vec![bad])
            .build()
            .unwrap();
        assert_eq!(
            check_resources(&r).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    // u32::MAX itself is a number the rules may name.
    check_program(&[all(false), c(true, i64::from(u32::MAX), Some(0), "r")]);
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[(self.next() % of.len() as u64) as usize]
    }
}

#[test]
fn programs_of_random_rule_lists_decide_as_the_rules_do() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let types = [LinuxDeviceType::A, LinuxDeviceType::B, LinuxDeviceType::C];
    let numbers = [
        None,
        Some(-1),
        Some(1),
        Some(3),
        Some(0x8000_0000),
        Some(0xffff_ffff),
    ];
    let accesses = [
        None,
        Some(""),
        Some("r"),
        Some("w"),
        Some("m"),
        Some("rw"),
        Some("rm"),
        Some("wm"),
        Some("rwm"),
        Some("mwr"),
    ];
    for _ in 0..300 {
        let len = rng.next() % 8;
        let rules: Vec<_> = (0..len)
            .map(|_| {
                rule(
                    rng.next() % 2 == 0,
                    // Mostly b and c: an `a` clears everything before it.
                    rng.pick(&[types[0], types[1], types[1], types[2], types[2], types[2]]),
                    rng.pick(&numbers),
                    rng.pick(&numbers),
                    rng.pick(&accesses),
                )
            })
            .collect();
        check_program(&rules);
    }
}
