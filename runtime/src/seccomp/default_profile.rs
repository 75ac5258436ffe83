//! corten's runtime-default seccomp profile, as data.
//!
//! Everything not allowed below fails with EPERM. The list is ours: the
//! syscalls ordinary workloads (shells, language runtimes, servers, package
//! managers) make, grouped by purpose; calls that reach beyond the container
//! (namespaces, mounts, keyrings, modules, clocks, raw I/O, tracing other
//! processes) are allowed only when the container holds the capability that
//! the kernel would check anyway, so the profile never takes away what a
//! capability grants, and without the capability they fail early.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

/// When an entry applies, by the container's capabilities.
enum Gate {
    Always,
    /// The container holds this capability.
    With(&'static str),
    /// The container does not hold this capability.
    Without(&'static str),
}

/// What a matching call gets.
enum Outcome {
    Allow,
    Errno(i32),
}

/// A comparison of one syscall argument (all 64 bits).
struct Arg {
    index: usize,
    op: LinuxSeccompOperator,
    /// For `MaskedEq`, the mask.
    value: u64,
    /// For `MaskedEq`, what the masked argument must equal.
    value_two: u64,
}

/// One line of the profile: these syscalls, under this gate, with these
/// argument conditions (all must hold), get this outcome.
struct Entry {
    names: &'static [&'static str],
    gate: Gate,
    args: &'static [Arg],
    outcome: Outcome,
}

const fn allow(names: &'static [&'static str]) -> Entry {
    Entry {
        names,
        gate: Gate::Always,
        args: &[],
        outcome: Outcome::Allow,
    }
}

const fn allow_with(cap: &'static str, names: &'static [&'static str]) -> Entry {
    Entry {
        names,
        gate: Gate::With(cap),
        args: &[],
        outcome: Outcome::Allow,
    }
}

const fn arg(index: usize, op: LinuxSeccompOperator, value: u64) -> Arg {
    Arg {
        index,
        op,
        value,
        value_two: 0,
    }
}

use LinuxSeccompOperator::{ScmpCmpEq as EQ, ScmpCmpMaskedEq as MASKED_EQ, ScmpCmpNe as NE};

/// The clone flags that make new namespaces (clone's first argument on x86_64).
const CLONE_NS_FLAGS: u64 = 0x0002_0000 // CLONE_NEWNS
    | 0x0200_0000 // CLONE_NEWCGROUP
    | 0x0400_0000 // CLONE_NEWUTS
    | 0x0800_0000 // CLONE_NEWIPC
    | 0x1000_0000 // CLONE_NEWUSER
    | 0x2000_0000 // CLONE_NEWPID
    | 0x4000_0000; // CLONE_NEWNET
/// AF_VSOCK: talks to the hypervisor, not to the container's network.
const AF_VSOCK: u64 = 40;
const ENOSYS: i32 = 38;

#[rustfmt::skip]
const PROFILE: &[Entry] = &[
    // Files and descriptors.
    allow(&["read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
        "preadv2", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
        "lseek", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "flock", "ioctl", "fsync",
        "fdatasync", "sync", "syncfs", "sync_file_range", "fallocate", "truncate", "ftruncate",
        "sendfile", "splice", "tee", "vmsplice", "copy_file_range", "readahead", "fadvise64",
        "cachestat", "name_to_handle_at"]),
    // Names, metadata, extended attributes.
    allow(&["stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access",
        "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd",
        "chdir", "fchdir", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir",
        "link", "linkat", "unlink", "unlinkat", "symlink", "symlinkat", "chmod", "fchmod",
        "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "umask", "utime",
        "utimes", "utimensat", "futimesat", "mknod", "mknodat", "getxattr", "lgetxattr",
        "fgetxattr", "getxattrat", "listxattr", "llistxattr", "flistxattr", "listxattrat",
        "setxattr", "lsetxattr", "fsetxattr", "setxattrat", "removexattr", "lremovexattr",
        "fremovexattr", "removexattrat", "inotify_init", "inotify_init1", "inotify_add_watch",
        "inotify_rm_watch"]),
    // Memory.
    allow(&["brk", "mmap", "munmap", "mremap", "mprotect", "msync", "mincore", "madvise",
        "mlock", "mlock2", "munlock", "mlockall", "munlockall", "memfd_create",
        "remap_file_pages", "pkey_alloc", "pkey_free", "pkey_mprotect", "membarrier", "mseal",
        "map_shadow_stack", "get_mempolicy", "process_madvise"]),
    // Processes, threads, scheduling, resources.
    allow(&["fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
        "kill", "tkill", "tgkill", "getpid", "getppid", "gettid", "getpgid", "setpgid",
        "getpgrp", "getsid", "setsid", "set_tid_address", "set_robust_list", "get_robust_list",
        "rseq", "prctl", "arch_prctl", "get_thread_area", "set_thread_area", "uname",
        "sysinfo", "getrusage", "times", "getpriority", "setpriority", "sched_yield",
        "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
        "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
        "sched_get_priority_min", "sched_rr_get_interval", "sched_getattr", "sched_setattr",
        "getcpu", "ioprio_get", "ioprio_set", "capget", "capset", "getrlimit", "setrlimit",
        "prlimit64", "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "restart_syscall",
        "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
        "lsm_get_self_attr", "lsm_list_modules", "getrandom"]),
    // Users and groups (the kernel checks CAP_SETUID/CAP_SETGID).
    allow(&["getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
        "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
        "setfsuid", "setfsgid"]),
    // Time, timers, waiting.
    allow(&["pause", "alarm", "getitimer", "setitimer", "nanosleep", "clock_nanosleep",
        "clock_gettime", "clock_getres", "gettimeofday", "time", "timer_create",
        "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete", "timerfd_create",
        "timerfd_settime", "timerfd_gettime", "futex", "futex_waitv", "futex_wake",
        "futex_wait", "futex_requeue"]),
    // Signals and event loops.
    allow(&["rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
        "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend",
        "sigaltstack", "signalfd", "signalfd4", "poll", "ppoll", "select", "pselect6",
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
        "epoll_pwait2", "eventfd", "eventfd2", "io_setup", "io_destroy", "io_getevents",
        "io_submit", "io_cancel"]),
    // Sockets (socket itself below) and System V / POSIX IPC.
    allow(&["socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname",
        "getpeername", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
        "shutdown", "setsockopt", "getsockopt", "shmget", "shmat", "shmdt", "shmctl", "semget",
        "semop", "semtimedop", "semctl", "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open",
        "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr"]),
    Entry { names: &["socket"], gate: Gate::Always, args: &[arg(0, NE, AF_VSOCK)],
        outcome: Outcome::Allow },
    // Personalities: plain Linux, UNAME26, ADDR_NO_RANDOMIZE (both), and the query.
    Entry { names: &["personality"], gate: Gate::Always, args: &[arg(0, EQ, 0)], outcome: Outcome::Allow },
    Entry { names: &["personality"], gate: Gate::Always, args: &[arg(0, EQ, 0x8)], outcome: Outcome::Allow },
    Entry { names: &["personality"], gate: Gate::Always, args: &[arg(0, EQ, 0x2_0000)], outcome: Outcome::Allow },
    Entry { names: &["personality"], gate: Gate::Always, args: &[arg(0, EQ, 0x2_0008)], outcome: Outcome::Allow },
    Entry { names: &["personality"], gate: Gate::Always, args: &[arg(0, EQ, 0xffff_ffff)], outcome: Outcome::Allow },
    // clone: threads and processes, but no new namespaces without CAP_SYS_ADMIN.
    Entry { names: &["clone"], gate: Gate::Without("SYS_ADMIN"),
        args: &[Arg { index: 0, op: MASKED_EQ, value: CLONE_NS_FLAGS, value_two: 0 }],
        outcome: Outcome::Allow },
    // clone3 passes its flags in memory a filter cannot read: ENOSYS makes
    // the C libraries fall back to clone, which is checked above.
    Entry { names: &["clone3"], gate: Gate::Without("SYS_ADMIN"), args: &[],
        outcome: Outcome::Errno(ENOSYS) },
    allow_with("SYS_ADMIN", &["clone", "clone3", "unshare", "setns", "mount", "umount2",
        "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
        "mount_setattr", "sethostname", "setdomainname", "keyctl", "add_key", "request_key",
        "bpf", "perf_event_open", "fanotify_init", "fanotify_mark", "lookup_dcookie",
        "quotactl", "quotactl_fd", "swapon", "swapoff", "statmount", "listmount"]),
    allow_with("BPF", &["bpf"]),
    allow_with("PERFMON", &["perf_event_open"]),
    allow_with("SYS_BOOT", &["reboot", "kexec_load", "kexec_file_load"]),
    allow_with("SYS_MODULE", &["init_module", "finit_module", "delete_module"]),
    allow_with("SYS_PTRACE", &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
        "userfaultfd"]),
    allow_with("SYS_RAWIO", &["iopl", "ioperm"]),
    allow_with("SYS_NICE", &["mbind", "set_mempolicy", "set_mempolicy_home_node",
        "migrate_pages", "move_pages"]),
    allow_with("SYS_TIME", &["settimeofday", "clock_settime", "adjtimex", "clock_adjtime"]),
    allow_with("SYS_CHROOT", &["chroot"]),
    allow_with("DAC_READ_SEARCH", &["open_by_handle_at"]),
    allow_with("SYS_PACCT", &["acct"]),
    allow_with("SYSLOG", &["syslog"]),
    allow_with("SYS_TTY_CONFIG", &["vhangup"]),
];

/// The runtime-default profile for a container holding `capabilities`
/// (names with or without the `CAP_` prefix, any case).
pub fn runtime_default(capabilities: &[String]) -> LinuxSeccomp {
    let held: Vec<String> = capabilities
        .iter()
        .map(|c| normalize_capability(c))
        .collect();
    let holds = |cap: &str| held.iter().any(|h| h == cap);
    let mut allowed: Vec<String> = Vec::new();
    let mut syscalls = Vec::new();
    for entry in PROFILE {
        let applies = match entry.gate {
            Gate::Always => true,
            Gate::With(cap) => holds(cap),
            Gate::Without(cap) => !holds(cap),
        };
        if !applies {
            continue;
        }
        let names = entry.names.iter().map(|n| n.to_string());
        match (&entry.outcome, entry.args) {
            (Outcome::Allow, []) => allowed.extend(names),
            (outcome, args) => {
                let mut s = LinuxSyscall::default();
                s.set_names(names.collect());
                match outcome {
                    Outcome::Allow => {
                        s.set_action(LinuxSeccompAction::ScmpActAllow);
                    }
                    Outcome::Errno(e) => {
                        s.set_action(LinuxSeccompAction::ScmpActErrno);
                        s.set_errno_ret(u32::try_from(*e).ok());
                    }
                }
                if !args.is_empty() {
                    s.set_args(Some(args.iter().map(oci_arg).collect()));
                }
                syscalls.push(s);
            }
        }
    }
    allowed.sort_unstable();
    allowed.dedup();
    let mut all = LinuxSyscall::default();
    all.set_names(allowed);
    all.set_action(LinuxSeccompAction::ScmpActAllow);
    syscalls.insert(0, all);

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(1)); // EPERM
    profile.set_architectures(Some(vec![
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX86,
        Arch::ScmpArchX32,
    ]));
    profile.set_syscalls(Some(syscalls));
    profile
}

fn oci_arg(a: &Arg) -> LinuxSeccompArg {
    let b = LinuxSeccompArgBuilder::default()
        .index(a.index)
        .op(a.op)
        .value(a.value);
    let b = if a.op == MASKED_EQ {
        b.value_two(a.value_two)
    } else {
        b
    };
    // Every field is set (and all have defaults): building cannot fail.
    b.build().unwrap_or_default()
}

/// A capability name without its `CAP_` prefix, upper case:
/// `cap_net_admin` / `NET_ADMIN` / `CAP_NET_ADMIN` -> `NET_ADMIN`.
pub fn normalize_capability(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(rest) => rest.to_string(),
        None => upper,
    }
}
