//! The parts of an OCI image config a container spec needs, and how CRI's
//! command/args and env combine with them.

use serde_json::Value;

use super::{ContainerConfig, Error};

/// The runtime-relevant part of an OCI image config (`config` of the image
/// config blob).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `User`: `name`, `uid`, `name:group` or `uid:gid`.
    pub user: Option<String>,
    /// `Env`, as `KEY=value` strings.
    pub env: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `StopSignal`.
    pub stop_signal: Option<String>,
}

impl ImageConfig {
    /// Reads an image config: either the whole image config blob (with its
    /// `config` object) or that `config` object itself. Absent and `null`
    /// fields are empty; fields of the wrong type are an error naming them.
    pub fn from_oci_json(v: &Value) -> Result<ImageConfig, Error> {
        let obj = v
            .as_object()
            .ok_or_else(|| Error::ImageConfig("not a JSON object".into()))?;
        let config = match obj.get("config") {
            Some(Value::Object(c)) => c,
            Some(Value::Null) | None if obj.contains_key("rootfs") => {
                return Ok(ImageConfig::default())
            }
            Some(Value::Null) | None => obj,
            Some(_) => return Err(Error::ImageConfig("`config` is not an object".into())),
        };
        let string = |key: &str| -> Result<Option<String>, Error> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(Error::ImageConfig(format!(
                    "`{key}` is not a string: {other}"
                ))),
            }
        };
        let strings = |key: &str| -> Result<Vec<String>, Error> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_string).ok_or_else(|| {
                            Error::ImageConfig(format!("`{key}` has a non-string item: {i}"))
                        })
                    })
                    .collect(),
                Some(other) => Err(Error::ImageConfig(format!(
                    "`{key}` is not a list: {other}"
                ))),
            }
        };
        Ok(ImageConfig {
            user: string("User")?,
            env: strings("Env")?,
            entrypoint: strings("Entrypoint")?,
            cmd: strings("Cmd")?,
            working_dir: string("WorkingDir")?,
            stop_signal: string("StopSignal")?,
        })
    }
}

/// The process arguments, by CRI's rules: `command` replaces the image's
/// Entrypoint and drops its Cmd; `args` replace the Cmd.
pub(super) fn process_args(c: &ContainerConfig, image: &ImageConfig) -> Result<Vec<String>, Error> {
    let args: Vec<String> = if !c.command.is_empty() {
        c.command.iter().chain(&c.args).cloned().collect()
    } else {
        let cmd = if c.args.is_empty() {
            &image.cmd
        } else {
            &c.args
        };
        image.entrypoint.iter().chain(cmd).cloned().collect()
    };
    if args.is_empty() {
        return Err(Error::NoCommand(c.id.clone()));
    }
    Ok(args)
}

/// The environment: the image's variables, then the container's, a later
/// value of a name replacing an earlier one in place.
pub(super) fn merge_env(image: &[String], container: &[(String, String)]) -> Vec<String> {
    use std::collections::HashMap;
    let mut out: Vec<String> = Vec::with_capacity(image.len() + container.len());
    // Name -> index in `out`: one hash lookup per variable (a request may
    // carry 100,000 of them; comparing each with each took minutes).
    let mut slots: HashMap<String, usize> = HashMap::with_capacity(out.capacity());
    let mut put = |kv: String| {
        let name = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        match slots.get(name) {
            Some(&i) => out[i] = kv,
            None => {
                slots.insert(name.to_string(), out.len());
                out.push(kv);
            }
        }
    };
    for kv in image {
        put(kv.clone());
    }
    for (k, v) in container {
        put(format!("{k}={v}"));
    }
    out
}

/// The longest single argument or variable exec takes (MAX_ARG_STRLEN).
const MAX_ARG_STRLEN: usize = 32 * 4096;
/// The least room exec gives arguments and environment (ARG_MAX).
const ARG_MIN_ROOM: usize = 32 * 4096;
/// The most room, whatever the stack limit (3/4 of the kernel's _STK_LIM).
const ARG_MAX_ROOM: usize = 6 << 20;

/// The room exec gives arguments and environment in a process with this
/// daemon's stack limit, which the shim and the container inherit (the
/// spec sets no RLIMIT_STACK): a quarter of the stack, between the
/// kernel's bounds (fs/exec.c, bprm_stack_limits).
pub(super) fn exec_stack_limit() -> usize {
    let stack = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_STACK)
        .map_or(8 << 20, |(soft, _)| soft);
    usize::try_from(stack / 4)
        .unwrap_or(usize::MAX)
        .clamp(ARG_MIN_ROOM, ARG_MAX_ROOM)
}

/// Refuses a command line and environment that exec would refuse with
/// E2BIG (found only at StartContainer otherwise): a string longer than
/// MAX_ARG_STRLEN, or strings and their pointers beyond `limit`.
pub(super) fn check_exec_size(args: &[String], env: &[String], limit: usize) -> Result<(), Error> {
    if let Some(long) = args.iter().chain(env).find(|s| s.len() >= MAX_ARG_STRLEN) {
        let name = long.split_once('=').map_or("an argument", |(k, _)| k);
        return Err(Error::TooBigForExec {
            what: format!("{name:.64} is {} bytes long", long.len()),
            limit: MAX_ARG_STRLEN,
        });
    }
    let strings: usize = args.iter().chain(env).map(|s| s.len() + 1).sum();
    let pointers = (args.len().max(1) + env.len()) * std::mem::size_of::<usize>();
    // The kernel also copies the program's path; it is one of the args here.
    let total = strings + pointers + args.first().map_or(0, |a| a.len() + 1);
    if total > limit {
        return Err(Error::TooBigForExec {
            what: format!(
                "the command line and environment ({} arguments, {} variables) take {total} bytes",
                args.len(),
                env.len()
            ),
            limit,
        });
    }
    Ok(())
}

/// Whether `env` sets `name`.
pub(super) fn has_env(env: &[String], name: &str) -> bool {
    env.iter()
        .any(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_and_args_table() {
        let image = |ep: &[&str], cmd: &[&str]| ImageConfig {
            entrypoint: s(ep),
            cmd: s(cmd),
            ..Default::default()
        };
        let ctr = |command: &[&str], args: &[&str]| ContainerConfig {
            command: s(command),
            args: s(args),
            ..Default::default()
        };
        // (image entrypoint, image cmd, command, args) -> process args
        type Row<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let table: &[Row] = &[
            (&["/ep"], &["c1"], &[], &[], &["/ep", "c1"]),
            (&["/ep"], &["c1"], &[], &["a1"], &["/ep", "a1"]),
            (&["/ep"], &["c1"], &["/cmd"], &[], &["/cmd"]),
            (&["/ep"], &["c1"], &["/cmd"], &["a1"], &["/cmd", "a1"]),
            (&[], &["/bin/sh"], &[], &[], &["/bin/sh"]),
            (
                &[],
                &["/bin/sh"],
                &[],
                &["/bin/ls", "-l"],
                &["/bin/ls", "-l"],
            ),
            (&[], &[], &["/x"], &["y"], &["/x", "y"]),
        ];
        for (ep, cmd, command, args, want) in table {
            let got = process_args(&ctr(command, args), &image(ep, cmd)).expect("args");
            assert_eq!(
                got,
                s(want),
                "ep={ep:?} cmd={cmd:?} command={command:?} args={args:?}"
            );
        }
        let e = process_args(&ctr(&[], &[]), &image(&[], &[])).expect_err("nothing to run");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
    }

    #[test]
    fn exec_size_is_checked_as_the_kernel_does() {
        let args = s(&["sleep", "1"]);
        let env: Vec<String> = (0..1000).map(|i| format!("V{i}=x")).collect();
        check_exec_size(&args, &env, ARG_MIN_ROOM).expect("fits");
        let err = check_exec_size(&args, &env, 8_000).expect_err("over");
        assert!(err.to_string().contains("1000 variables"), "{err}");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        let long = vec![format!("BIG={}", "x".repeat(MAX_ARG_STRLEN))];
        let err = check_exec_size(&args, &long, ARG_MAX_ROOM).expect_err("one too long");
        assert!(err.to_string().starts_with("BIG is "), "{err}");
        assert!((ARG_MIN_ROOM..=ARG_MAX_ROOM).contains(&exec_stack_limit()));
    }

    #[test]
    fn env_merges_by_name() {
        let image = s(&["PATH=/bin", "A=1", "B=2"]);
        let ctr = vec![
            ("B".to_string(), "3".to_string()),
            ("C".into(), "x=y".into()),
        ];
        assert_eq!(
            merge_env(&image, &ctr),
            s(&["PATH=/bin", "A=1", "B=3", "C=x=y"])
        );
        assert!(has_env(&image, "PATH") && !has_env(&image, "HOME"));
    }

    #[test]
    fn parses_image_configs() {
        let blob = json!({"architecture": "amd64", "rootfs": {"type": "layers"},
            "config": {"User": "1000:1000", "Env": ["PATH=/usr/bin"], "Entrypoint": null,
                       "Cmd": ["/bin/sh"], "WorkingDir": "/srv", "StopSignal": "SIGQUIT"}});
        let c = ImageConfig::from_oci_json(&blob).expect("config");
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.env, s(&["PATH=/usr/bin"]));
        assert!(c.entrypoint.is_empty());
        assert_eq!(c.cmd, s(&["/bin/sh"]));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        let bare = json!({"Cmd": ["/x"], "User": ""});
        let c = ImageConfig::from_oci_json(&bare).expect("inner config");
        assert_eq!((c.cmd, c.user), (s(&["/x"]), None));
        let none = json!({"rootfs": {"type": "layers"}});
        assert_eq!(
            ImageConfig::from_oci_json(&none).expect("no config"),
            ImageConfig::default()
        );
        let e = ImageConfig::from_oci_json(&json!({"config": {"Cmd": "sh"}})).expect_err("cmd");
        assert!(e.to_string().contains("Cmd"), "{e}");
        assert!(ImageConfig::from_oci_json(&json!([1])).is_err());
    }
}
