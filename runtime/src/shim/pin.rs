//! `corten-shim pin --dir DIR [--user --uid-map C:H:N --gid-map C:H:N]
//! [--net] [--ipc] [--uts] [--hostname NAME] [--sysctl K=V ...]`: create a
//! pod's namespaces and pin them as DIR/user, DIR/net, DIR/ipc and DIR/uts
//! (see [`crate::linux::pin`]), then exit.
//!
//! Prints nothing on success. On failure, one line `corten-shim pin: WHY` on
//! stderr and an exit code that carries the error's kind: [`EXIT_INVALID`]
//! for a request that can never work (bad flags, refused sysctl or
//! hostname), [`EXIT_EXISTS`] when something is pinned there already, 1 for
//! a failure of the host.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::linux::{self, IdMapping, IdMappings, Namespace, PinOptions};
use crate::ErrorKind;

/// Exit code of a malformed or refused request.
pub const EXIT_INVALID: u8 = 2;
/// Exit code when a namespace file exists already.
pub const EXIT_EXISTS: u8 = 3;
/// Exit code of any other failure.
pub const EXIT_FAILED: u8 = 1;

/// The command line of `corten-shim pin`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// Where the namespace files go.
    pub dir: PathBuf,
    /// What to create.
    pub options: PinOptions,
}

impl Args {
    /// Parses `pin --dir DIR ...` (the subcommand word included).
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut it = args.iter();
        match it.next().map(String::as_str) {
            Some("pin") => {}
            other => return Err(format!("unknown command {other:?}")),
        }
        let mut out = Args::default();
        let mut dir = None;
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--user" => out.options.namespaces.push(Namespace::User),
                "--uid-map" | "--gid-map" => {
                    let m = parse_mapping(value()?)?;
                    let maps = out
                        .options
                        .id_mappings
                        .get_or_insert_with(IdMappings::default);
                    if flag == "--uid-map" {
                        maps.uids.push(m);
                    } else {
                        maps.gids.push(m);
                    }
                }
                "--net" => out.options.namespaces.push(Namespace::Net),
                "--ipc" => out.options.namespaces.push(Namespace::Ipc),
                "--uts" => out.options.namespaces.push(Namespace::Uts),
                "--dir" => dir = Some(PathBuf::from(value()?)),
                "--hostname" => out.options.hostname = Some(value()?.clone()),
                "--sysctl" => {
                    let v = value()?;
                    match v.split_once('=') {
                        Some((k, val)) if !k.is_empty() => {
                            out.options.sysctls.push((k.to_owned(), val.to_owned()))
                        }
                        _ => return Err(format!("--sysctl {v:?} is not KEY=VALUE")),
                    }
                }
                other => return Err(format!("unknown flag {other}")),
            }
        }
        out.dir = dir.ok_or("--dir is required")?;
        if out.options.namespaces.is_empty() {
            return Err("at least one of --user, --net, --ipc, --uts is required".into());
        }
        Ok(out)
    }
}

/// `C:H:N`: container id, host id, count.
fn parse_mapping(v: &str) -> Result<IdMapping, String> {
    let parts: Vec<&str> = v.split(':').collect();
    let num = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("bad id mapping {v:?}"))
    };
    match parts.as_slice() {
        [c, h, n] => Ok(IdMapping {
            container_id: num(c)?,
            host_id: num(h)?,
            size: num(n)?,
        }),
        _ => Err(format!("id mapping {v:?} is not CONTAINER:HOST:COUNT")),
    }
}

/// The command line (after the binary) that makes `corten-shim` pin
/// `options` under `dir`.
pub fn command_line(dir: &Path, options: &PinOptions) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["pin".into(), "--dir".into(), dir.into()];
    for ns in Namespace::ALL {
        if options.namespaces.contains(&ns) {
            out.push(format!("--{}", ns.name()).into());
        }
    }
    if let Some(maps) = &options.id_mappings {
        for (flag, list) in [("--uid-map", &maps.uids), ("--gid-map", &maps.gids)] {
            for m in list {
                out.push(flag.into());
                out.push(format!("{}:{}:{}", m.container_id, m.host_id, m.size).into());
            }
        }
    }
    if let Some(name) = &options.hostname {
        out.push("--hostname".into());
        out.push(name.into());
    }
    for (k, v) in &options.sysctls {
        out.push("--sysctl".into());
        out.push(format!("{k}={v}").into());
    }
    out
}

/// The exit code for an error of the given kind.
pub fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidArgument => EXIT_INVALID,
        ErrorKind::AlreadyExists => EXIT_EXISTS,
        _ => EXIT_FAILED,
    }
}

/// The kind an exit code of `corten-shim pin` stands for.
pub fn kind_of_exit(code: Option<i32>) -> ErrorKind {
    match code {
        Some(c) if c == i32::from(EXIT_INVALID) => ErrorKind::InvalidArgument,
        Some(c) if c == i32::from(EXIT_EXISTS) => ErrorKind::AlreadyExists,
        _ => ErrorKind::Internal,
    }
}

/// Runs `corten-shim pin`: returns the process exit code.
pub fn main(args: &Args) -> u8 {
    match linux::pin(&args.dir, &args.options) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("corten-shim pin: {e}");
            exit_code(e.kind())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn command_line_round_trips() {
        let options = PinOptions {
            namespaces: vec![Namespace::Uts, Namespace::Net],
            hostname: Some("pod1".into()),
            sysctls: vec![("net.ipv4.ping_group_range".into(), "0 0".into())],
            id_mappings: None,
        };
        let line = strings(&command_line(Path::new("/run/x"), &options));
        assert_eq!(line[..5], ["pin", "--dir", "/run/x", "--net", "--uts"]);
        let parsed = Args::parse(&line).expect("parse");
        assert_eq!(parsed.dir, Path::new("/run/x"));
        assert_eq!(parsed.options.hostname.as_deref(), Some("pod1"));
        assert_eq!(parsed.options.sysctls, options.sysctls);
        assert_eq!(parsed.options.namespaces, [Namespace::Net, Namespace::Uts]);
    }

    #[test]
    fn user_namespace_maps_round_trip() {
        let m = |c, h, size| IdMapping {
            container_id: c,
            host_id: h,
            size,
        };
        let options = PinOptions {
            namespaces: vec![Namespace::User, Namespace::Net],
            id_mappings: Some(IdMappings {
                uids: vec![m(0, 100_000, 65_536)],
                gids: vec![m(0, 200_000, 65_536)],
            }),
            ..PinOptions::default()
        };
        let line = strings(&command_line(Path::new("/run/x"), &options));
        assert!(line.contains(&"--uid-map".to_string()), "{line:?}");
        let parsed = Args::parse(&line).expect("parse");
        assert_eq!(parsed.options, options);
        let p = |v: &[&str]| Args::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(p(&["pin", "--dir", "/x", "--user", "--uid-map", "0:1"]).is_err());
        assert!(p(&["pin", "--dir", "/x", "--user", "--uid-map", "0:x:1"]).is_err());
    }

    #[test]
    fn bad_command_lines() {
        let p = |v: &[&str]| Args::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(p(&["pin", "--net"]).is_err());
        assert!(p(&["pin", "--dir", "/x"]).is_err());
        assert!(p(&["pin", "--dir", "/x", "--net", "--sysctl", "=1"]).is_err());
        assert!(p(&["pin", "--dir", "/x", "--net", "--bogus"]).is_err());
        assert!(p(&["pin", "--dir"]).is_err());
    }

    #[test]
    fn kinds_round_trip_through_exit_codes() {
        for kind in [
            ErrorKind::InvalidArgument,
            ErrorKind::AlreadyExists,
            ErrorKind::Internal,
        ] {
            assert_eq!(kind_of_exit(Some(i32::from(exit_code(kind)))), kind);
        }
        assert_eq!(kind_of_exit(None), ErrorKind::Internal);
    }
}
