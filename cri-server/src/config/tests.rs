//! Tests of the configuration: parsing, validation, the template.

use super::*;

#[test]
fn template_parses_back_to_the_defaults() {
    let text = Config::default().template();
    let parsed = Config::parse(Path::new("template.toml"), &text).expect("template parses");
    assert_eq!(parsed, Config::default());
}

#[test]
fn template_sets_and_documents_every_key() {
    let text = Config::default().template();
    let value = toml::Value::try_from(Config::default()).expect("serialise");
    let mut keys = Vec::new();
    for (k, v) in value.as_table().expect("table") {
        match v.as_table() {
            Some(t) => keys.extend(t.keys().map(|sub| (Some(k.clone()), sub.clone()))),
            None => keys.push((None, k.clone())),
        }
    }
    for (section, key) in keys {
        let line = format!("\n{key} = ");
        assert!(
            text.contains(&line),
            "{section:?}.{key} not set in template"
        );
        let pos = text.find(&line).expect("found");
        let above = text[..pos].lines().last().unwrap_or_default();
        assert!(above.starts_with("# "), "{key} has no doc comment above it");
    }
}

#[test]
fn the_default_template_shows_a_commented_handler() {
    let text = Config::default().template();
    assert!(text.contains("\n#[runtimes.runc]\n#"), "{text}");
    assert!(text.contains("\n#path = \"/usr/sbin/runc\"\n"), "{text}");
    // Uncommented, the example is a valid handler.
    let example: String = text
        .lines()
        .skip_while(|l| *l != "#[runtimes.runc]")
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with("# "))
        .map(|l| format!("{}\n", l.trim_start_matches('#')))
        .collect();
    let c = Config::parse(Path::new("example.toml"), &example).expect("example parses");
    assert_eq!(c.runtimes["runc"].path, PathBuf::from("/usr/sbin/runc"));
}

#[test]
fn runtime_handlers_template_and_parse_back() {
    let text = "[runtimes.runc]\npath = \"/usr/sbin/runc\"\n\
                [runtimes.crun-1]\npath = \"/usr/bin/crun\"\nroot = \"/run/crun\"\n\
                pod_annotations = [\"run.oci.*\"]\n";
    let c = Config::parse(Path::new("/c.toml"), text).expect("parses");
    assert_eq!(c.runtimes.len(), 2);
    let crun = &c.runtimes["crun-1"];
    assert_eq!(crun.root, PathBuf::from("/run/crun"));
    assert_eq!(crun.pod_annotations, ["run.oci.*"]);
    assert_eq!(c.runtimes["runc"].root, PathBuf::new());
    let template = c.template();
    assert!(template.contains("\n[runtimes.runc]\n"), "{template}");
    let back = Config::parse(Path::new("t.toml"), &template).expect("template parses");
    assert_eq!(back, c);
}

#[test]
fn missing_file_means_defaults_unless_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("none.toml");
    assert_eq!(
        Config::load(&path, false).expect("defaults"),
        Config::default()
    );
    assert!(matches!(
        Config::load(&path, true),
        Err(ConfigError::Read { .. })
    ));
}

#[test]
fn partial_file_keeps_other_defaults() {
    let c = Config::parse(
        Path::new("c.toml"),
        "log_level = \"debug\"\n[cni]\nconf_dir = \"/x\"\n",
    )
    .expect("valid");
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.cni.conf_dir, PathBuf::from("/x"));
    assert_eq!(c.cni.bin_dirs, Cni::default().bin_dirs);
    assert_eq!(c.root_dir, Config::default().root_dir);
}

#[test]
fn unknown_keys_are_refused_naming_file_and_key() {
    for (text, key) in [
        ("bogus = 1\n", "bogus"),
        ("[cni]\nconfdir = \"/x\"\n", "confdir"),
        ("[nosuch]\n", "nosuch"),
    ] {
        let err = Config::parse(Path::new("/etc/x.toml"), text)
            .expect_err(text)
            .to_string();
        assert!(err.contains("/etc/x.toml"), "{err}");
        assert!(err.contains(&format!("unknown field `{key}`")), "{err}");
    }
}

#[test]
fn a_final_mirror_for_every_registry_is_accepted() {
    let text = "[registry]\nmirrors = { \"*\" = [\"http://127.0.0.1:5000\"] }\n\
                mirrors_final = [\"*\", \"docker.io\"]\n";
    let c = Config::parse(Path::new("/c.toml"), text).expect("parses");
    assert_eq!(c.registry.mirrors_final, ["*", "docker.io"]);
    assert!(c.registry.mirrors.contains_key("*"));
}

#[test]
fn bad_values_are_refused_with_what_was_expected() {
    for (text, needle) in [
        ("root_dir = 5\n", "root_dir"),
        (
            "root_dir = \"relative\"\n",
            "key `root_dir`: expected an absolute path",
        ),
        (
            "log_level = \"loud\"\n",
            "key `log_level`: expected one of error, warn",
        ),
        ("[cgroup]\ndriver = \"systemd\"\n", "expected `cgroupfs`"),
        ("shutdown_grace_seconds = -1\n", "shutdown_grace_seconds"),
        ("[cni]\nbin_dirs = [\"x\"]\n", "cni.bin_dirs"),
        ("[cdi]\nspec_dirs = [\"cdi\"]\n", "cdi.spec_dirs"),
        (
            "[registry]\nmirrors = { \"docker.io\" = [\"a b\"] }\n",
            "registry.mirrors",
        ),
        (
            "[registry]\nmirrors = { \"docker.io\" = \"x\" }\n",
            "mirrors",
        ),
        ("[registry]\nauth_file = \"rel\"\n", "registry.auth_file"),
        (
            "[registry]\nmirrors_final = [\"a/b\"]\n",
            "registry.mirrors_final",
        ),
        (
            "[runtimes.Runc]\npath = \"/usr/sbin/runc\"\n",
            "key `runtimes`: expected handler names that are DNS labels",
        ),
        (
            "[runtimes.runc]\npath = \"runc\"\n",
            "key `runtimes.runc.path`: expected an absolute path",
        ),
        (
            "[runtimes.runc]\n",
            "key `runtimes.runc.path`: expected an absolute path, got \"\"",
        ),
        (
            "[runtimes.runc]\npath = \"/r\"\nroot = \"rel\"\n",
            "key `runtimes.runc.root`",
        ),
        (
            "[runtimes.runc]\npath = \"/r\"\nsystemd_cgroup = true\n",
            "key `runtimes.runc.systemd_cgroup`: expected false",
        ),
        (
            "[runtimes.runc]\npath = \"/r\"\npod_annotations = [\"\"]\n",
            "key `runtimes.runc.pod_annotations`",
        ),
        (
            "[runtimes.runc]\npath = \"/r\"\nbinary = \"/r\"\n",
            "unknown field `binary`",
        ),
    ] {
        let err = Config::parse(Path::new("/c.toml"), text)
            .expect_err(text)
            .to_string();
        assert!(err.contains(needle), "{text}: {err}");
        assert!(err.contains("/c.toml"), "{err}");
    }
}
