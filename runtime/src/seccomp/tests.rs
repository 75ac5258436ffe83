//! Tests of the compiler (through a small BPF interpreter) and of the
//! runtime-default profile, in a filtered child process.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};
use seccompiler::sock_filter;

use super::*;

const ALLOW: u32 = 0x7fff_0000;
const ERRNO: u32 = 0x0005_0000;
const EPERM: u32 = ERRNO | 1;
const ENOSYS: u32 = ERRNO | 38;
const X86_64: u32 = 0xc000_003e;

/// Runs a classic-BPF seccomp program over `struct seccomp_data`.
fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let word = |off: u32| -> u32 {
        match off {
            0 => nr,
            4 => arch,
            8 | 12 => 0,
            o if (16..64).contains(&o) => {
                let a = args[((o - 16) / 8) as usize];
                if o % 8 == 0 {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            o => panic!("load at offset {o}"),
        }
    };
    let (mut pc, mut acc) = (0usize, 0u32);
    for _ in 0..100_000 {
        let i = &prog[pc];
        pc += 1;
        match i.code {
            0x20 => acc = word(i.k),    // ld w abs
            0x54 => acc &= i.k,         // alu and k
            0x06 => return i.k,         // ret k
            0x05 => pc += i.k as usize, // ja
            code if code & 0x07 == 0x05 => {
                let taken = match code & 0xf0 {
                    0x10 => acc == i.k,     // jeq
                    0x20 => acc > i.k,      // jgt
                    0x30 => acc >= i.k,     // jge
                    0x40 => acc & i.k != 0, // jset
                    other => panic!("jump op {other:#x}"),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            other => panic!("opcode {other:#x}"),
        }
    }
    panic!("program did not return");
}

fn nr(name: &str) -> u32 {
    syscalls::number(name).expect(name)
}

fn caps(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

#[test]
fn runtime_default_without_sys_admin() {
    let prog = compile(&runtime_default(&caps(DEFAULT_CAPS))).expect("compile");
    assert!(prog.len() < 4096, "{} instructions", prog.len());
    let call = |name: &str, args: [u64; 6]| run(&prog, X86_64, nr(name), args);
    let none = [0; 6];
    for ok in [
        "read",
        "write",
        "getpid",
        "execve",
        "futex",
        "epoll_wait",
        "chroot",
        "openat",
    ] {
        assert_eq!(call(ok, none), ALLOW, "{ok}");
    }
    for denied in [
        "unshare",
        "keyctl",
        "add_key",
        "request_key",
        "setns",
        "mount",
        "bpf",
        "kexec_load",
        "init_module",
        "reboot",
        "ptrace",
        "modify_ldt",
        "swapon",
        "uselib",
    ] {
        assert_eq!(call(denied, none), EPERM, "{denied}");
    }
    // Threads and forks, but no namespaces.
    let thread_flags = 0x003d_0f00; // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|...
    assert_eq!(call("clone", [thread_flags, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call("clone", [17, 0, 0, 0, 0, 0]), ALLOW); // fork: SIGCHLD
    assert_eq!(call("clone", [0x0400_0000 | 17, 0, 0, 0, 0, 0]), EPERM); // CLONE_NEWUTS
    assert_eq!(call("clone", [0x4000_0000, 0, 0, 0, 0, 0]), EPERM); // CLONE_NEWNET
    assert_eq!(call("clone3", none), ENOSYS);
    // Arguments: personality, socket families.
    assert_eq!(call("personality", [8, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call("personality", [0xffff_ffff, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call("personality", [0x40_0000, 0, 0, 0, 0, 0]), EPERM); // READ_IMPLIES_EXEC
    assert_eq!(call("personality", [1 << 32 | 8, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(call("socket", [2, 1, 0, 0, 0, 0]), ALLOW); // AF_INET
    assert_eq!(call("socket", [40, 1, 0, 0, 0, 0]), EPERM); // AF_VSOCK
                                                            // Other ABIs.
    assert_eq!(run(&prog, 0x4000_0003, 0, none), ENOSYS); // i386
    assert_eq!(run(&prog, X86_64, 0x4000_0000, none), ENOSYS); // x32 read
    assert_eq!(run(&prog, X86_64, 1000, none), EPERM); // unknown number
}

#[test]
fn capabilities_open_their_syscalls() {
    let mut held = caps(DEFAULT_CAPS);
    held.extend(caps(&[
        "sys_admin",
        "SYS_BOOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_MODULE",
    ]));
    let prog = compile(&runtime_default(&held)).expect("compile");
    let call = |name: &str, args: [u64; 6]| run(&prog, X86_64, nr(name), args);
    for ok in [
        "unshare",
        "keyctl",
        "setns",
        "mount",
        "reboot",
        "ptrace",
        "init_module",
        "clone3",
    ] {
        assert_eq!(call(ok, [0; 6]), ALLOW, "{ok}");
    }
    assert_eq!(call("clone", [0x0400_0000 | 17, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call("iopl", [0; 6]), EPERM); // SYS_RAWIO not held
}

fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).expect("profile json")
}

#[test]
fn per_entry_actions_errnos_and_operators() {
    let p = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
          {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
          {"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"},
          {"names":["gettid"],"action":"SCMP_ACT_TRAP"},
          {"names":["getuid"],"action":"SCMP_ACT_LOG"},
          {"names":["no_such_syscall", "getgid"],"action":"SCMP_ACT_ERRNO"},
          {"names":["read"],"action":"SCMP_ACT_ERRNO","args":[
             {"index":2,"value":4096,"op":"SCMP_CMP_GT"}]},
          {"names":["write"],"action":"SCMP_ACT_ERRNO","args":[
             {"index":0,"value":3,"op":"SCMP_CMP_GE"},
             {"index":1,"value":255,"valueTwo":7,"op":"SCMP_CMP_MASKED_EQ"}]},
          {"names":["lseek"],"action":"SCMP_ACT_ERRNO","errnoRet":22,"args":[
             {"index":2,"value":2,"op":"SCMP_CMP_LE"}]},
          {"names":["lseek"],"action":"SCMP_ACT_ERRNO","errnoRet":9},
          {"names":["dup"],"action":"SCMP_ACT_ERRNO","args":[
             {"index":0,"value":4294967296,"op":"SCMP_CMP_LT"}]},
          {"names":["close"],"action":"SCMP_ACT_ERRNO","args":[
             {"index":0,"value":5,"op":"SCMP_CMP_NE"}]}
        ]}"#,
    );
    let prog = compile(&p).expect("compile");
    let call = |name: &str, args: [u64; 6]| run(&prog, X86_64, nr(name), args);
    let a = |x: u64, y: u64, z: u64| [x, y, z, 0, 0, 0];
    assert_eq!(call("getpid", [0; 6]), ERRNO | 13);
    assert_eq!(call("getppid", [0; 6]), 0x8000_0000);
    assert_eq!(call("gettid", [0; 6]), 0x0003_0000);
    assert_eq!(call("getuid", [0; 6]), 0x7ffc_0000);
    assert_eq!(call("getgid", [0; 6]), EPERM);
    assert_eq!(call("read", a(0, 0, 4096)), ALLOW);
    assert_eq!(call("read", a(0, 0, 4097)), EPERM);
    assert_eq!(call("read", a(0, 0, 1 << 40)), EPERM); // high half counts
    assert_eq!(call("write", a(3, 0x107, 0)), EPERM);
    assert_eq!(call("write", a(3, 0x108, 0)), ALLOW);
    assert_eq!(call("write", a(2, 0x107, 0)), ALLOW);
    assert_eq!(call("lseek", a(0, 0, 1)), ERRNO | 22); // conditional rule first
    assert_eq!(call("lseek", a(0, 0, 3)), ERRNO | 9);
    assert_eq!(call("dup", a(u32::MAX as u64, 0, 0)), EPERM);
    assert_eq!(call("dup", a(1 << 32, 0, 0)), ALLOW);
    assert_eq!(call("close", a(5, 0, 0)), ALLOW);
    assert_eq!(call("close", a(5 | 1 << 32, 0, 0)), EPERM);
    assert_eq!(call("openat", [0; 6]), ALLOW);
}

#[test]
fn long_rule_chains_use_a_long_jump() {
    // 80 conditional entries on one syscall: a body past 255 instructions.
    let entries: Vec<String> = (0..80)
        .map(|i| {
            format!(
                r#"{{"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{{"index":1,"value":{i},"op":"SCMP_CMP_EQ"}}]}}"#
            )
        })
        .collect();
    let json = format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{},{{"names":["read"],"action":"SCMP_ACT_ALLOW"}}]}}"#,
        entries.join(",")
    );
    let prog = compile(&profile(&json)).expect("compile");
    assert!(prog.len() > 300, "{}", prog.len());
    let ioctl = |req: u64| run(&prog, X86_64, nr("ioctl"), [0, req, 0, 0, 0, 0]);
    assert_eq!(ioctl(0), ALLOW);
    assert_eq!(ioctl(79), ALLOW);
    assert_eq!(ioctl(80), EPERM);
    assert_eq!(run(&prog, X86_64, nr("read"), [0; 6]), ALLOW);
    assert_eq!(run(&prog, X86_64, nr("write"), [0; 6]), EPERM);
}

#[test]
fn unsupported_profiles_are_refused() {
    let arm =
        profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_AARCH64"]}"#);
    let e = compile(&arm).expect_err("arm only");
    assert!(e.to_string().contains("ScmpArchAarch64"), "{e}");
    let notify = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(compile(&notify).is_err());
    let bad_index = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let e = compile(&bad_index).expect_err("index 6");
    assert!(
        e.to_string().contains("read") && e.to_string().contains('6'),
        "{e}"
    );
    assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
    let mut empty = LinuxSeccomp::default();
    empty.set_default_action(LinuxSeccompAction::ScmpActErrno);
    let prog = compile(&empty).expect("empty profile");
    assert_eq!(run(&prog, X86_64, 0, [0; 6]), EPERM);
}

const CHILD_ENV: &str = "CORTEN_SECCOMP_TEST_CHILD";

/// Re-runs this test binary for `test` with the child marker set.
fn run_child(test: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("current exe");
    std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("spawn child test")
}

/// In a child process: installs the runtime-default filter and probes it.
#[test]
fn filtered_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // Only meaningful in the child `runtime_default_in_a_process` starts.
    }
    use nix::errno::Errno;
    use nix::sched::{unshare, CloneFlags};
    use std::io::Write;

    let prog = compile(&runtime_default(&caps(DEFAULT_CAPS))).expect("compile");
    seccompiler::apply_filter(&prog).expect("install filter");
    assert_eq!(unshare(CloneFlags::CLONE_NEWUTS), Err(Errno::EPERM));
    assert_eq!(unshare(CloneFlags::CLONE_NEWNS), Err(Errno::EPERM));
    assert!(nix::unistd::getpid().as_raw() > 0);
    let t = std::thread::spawn(|| nix::unistd::gettid().as_raw());
    assert!(t.join().expect("thread") > 0);
    // The filter is inherited across fork and exec: perl (essential on
    // Debian) makes the raw keyctl and unshare calls.
    let script = "$k = syscall(250, 0, -3, 0); $ke = $!+0; \
                  $u = syscall(272, 0x04000000); $ue = $!+0; \
                  print \"keyctl=$k/$ke unshare=$u/$ue\\n\"";
    let out = std::process::Command::new("perl")
        .args(["-e", script])
        .output()
        .expect("run perl (essential on Debian) under the filter");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), "keyctl=-1/1 unshare=-1/1", "{out:?}");
    writeln!(std::io::stdout(), "filtered-child-ok").expect("write");
}

#[test]
fn runtime_default_in_a_process() {
    let out = run_child("seccomp::tests::filtered_child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("filtered-child-ok"),
        "child failed: {out:?}"
    );
}
