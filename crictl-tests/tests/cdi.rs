//! Issue 15, end to end: CDI devices through crictl. The tests write CDI
//! spec files into spec directories given to their cortend by its config;
//! containers ask for devices by the CRI CDI_devices field or by a
//! `cdi.k8s.io/*` annotation and get the devices' nodes (allowed by the
//! device cgroup), variables and mounts; an unknown name fails the
//! creation naming it; a broken spec file spoils only itself.

mod container_env;

use std::path::PathBuf;
use std::time::Duration;

use container_env::{path, Env};
use crictl_tests::ImageBuilder;
use serde_json::{json, Value};

const RUNC: &str = "/usr/sbin/runc";

/// A daemon whose CDI spec directories are `etc` then `run` under a
/// temporary directory, which also holds a vendor library directory.
struct Cdi {
    env: Env,
    dirs: tempfile::TempDir,
}

impl Cdi {
    fn new() -> Cdi {
        let dirs = tempfile::Builder::new()
            .prefix("corten-cdi-")
            .tempdir()
            .expect("tempdir");
        for sub in ["etc", "run", "vendor-lib"] {
            std::fs::create_dir(dirs.path().join(sub)).expect("mkdir");
        }
        std::fs::write(dirs.path().join("vendor-lib/lib.txt"), "vendor-lib\n").expect("write");
        let spec_dirs = toml::Value::Array(
            ["etc", "run"]
                .iter()
                .map(|d| toml::Value::String(path(&dirs.path().join(d)).to_string()))
                .collect(),
        );
        let env = Env::with_daemon(ImageBuilder::busybox(), |b| {
            b.config(|c| {
                let mut cdi = toml::Table::new();
                cdi.insert("spec_dirs".into(), spec_dirs);
                c.insert("cdi".into(), toml::Value::Table(cdi));
                // Debian's runc as a runtime handler: it runs OCI hooks.
                let mut runc = toml::Table::new();
                runc.insert("path".into(), toml::Value::String(RUNC.into()));
                let mut runtimes = toml::Table::new();
                runtimes.insert("runc".into(), toml::Value::Table(runc));
                c.insert("runtimes".into(), toml::Value::Table(runtimes));
            })
        });
        let cdi = Cdi { env, dirs };
        cdi.write("etc/example.json", &cdi.example_spec().to_string());
        // Beside the valid file: broken ones, which spoil only themselves.
        cdi.write("etc/broken.json", "{\"cdiVersion\": \"1.0.0\", \"kind\": ");
        cdi.write(
            "etc/broken.yaml",
            "cdiVersion: 1.0.0\nkind: example.com/broken\ndevices:\n- name: x\n  containerEdits:\n    envs: [X=1]\n",
        );
        cdi
    }

    fn dir(&self, sub: &str) -> PathBuf {
        self.dirs.path().join(sub)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir(name), text).expect("write spec");
    }

    /// Vendor "example.com/dev": /dev/null and /dev/zero under its own
    /// names, two described nodes of an unused major (240) with and
    /// without read/write access, a variable and a read-only mount for
    /// any of its devices.
    fn example_spec(&self) -> Value {
        json!({
            "cdiVersion": "0.6.0",
            "kind": "example.com/dev",
            "containerEdits": {
                "env": ["EXAMPLE_VENDOR=yes"],
                "mounts": [{
                    "hostPath": path(&self.dir("vendor-lib")),
                    "containerPath": "/opt/vendor",
                    "options": ["ro", "nosuid", "nodev", "bind"]
                }]
            },
            "devices": [
                {"name": "null", "containerEdits": {"deviceNodes": [
                    {"path": "/dev/vendor-null", "hostPath": "/dev/null"}
                ]}},
                {"name": "zero", "containerEdits": {
                    "env": ["ZERO_DEV=1"],
                    "deviceNodes": [
                        {"path": "/dev/vendor-zero", "hostPath": "/dev/zero", "permissions": "rw"}
                    ]
                }},
                {"name": "exp", "containerEdits": {"deviceNodes": [
                    {"path": "/dev/vendor-exp", "type": "c", "major": 240, "minor": 77,
                     "fileMode": 438, "permissions": "rw"},
                    {"path": "/dev/vendor-exp-m", "type": "c", "major": 240, "minor": 78,
                     "fileMode": 438, "permissions": "m"}
                ]}},
                {"name": "hooked", "containerEdits": {"hooks": [
                    {"hookName": "createContainer", "path": "/bin/true"}
                ]}}
            ]
        })
    }

    fn container(&self, name: &str, script: &str) -> Value {
        self.env.container_config(name, &["sh", "-c", script])
    }

    /// Runs `config` in `pod` to its end; its log lines.
    fn output(&self, pod: &str, pod_name: &str, config: &Value) -> (String, Vec<String>) {
        let id = self.env.create(pod, pod_name, config);
        self.env.d.crictl(&["start", &id]).ok();
        let v = self
            .env
            .wait_state(&id, "CONTAINER_EXITED", Duration::from_secs(30));
        let (out, _) = self.env.logs(&id, &[]);
        assert_eq!(v["status"]["exitCode"], 0, "{v} {out}");
        (id, out.lines().map(str::to_string).collect())
    }

    /// The names of the containers there are.
    fn container_names(&self) -> Vec<String> {
        let v = self.env.d.crictl(&["ps", "-a", "-o", "json"]).json();
        v["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    }
}

const SCRIPT: &str = "head -c 4 /dev/vendor-zero | od -An -tx1 | tr -s ' '; \
     stat -c '%t:%T' /dev/vendor-null /dev/vendor-zero; \
     echo hi > /dev/vendor-null && echo null-written; \
     echo $EXAMPLE_VENDOR $ZERO_DEV; \
     cat /opt/vendor/lib.txt; touch /opt/vendor/x 2>/dev/null || echo mount-ro";

#[test]
fn cdi_devices_field_brings_device_nodes_env_and_mounts() {
    let cdi = Cdi::new();
    let pod = cdi.env.pod("cdi");
    let mut c = cdi.container("field", SCRIPT);
    c["CDI_devices"] = json!([
        {"name": "example.com/dev=zero"},
        {"name": "example.com/dev=null"},
        {"name": "example.com/dev=zero"}
    ]);
    let (id, lines) = cdi.output(&pod, "cdi", &c);
    assert_eq!(
        lines,
        [
            " 00 00 00 00",
            "1:3",
            "1:5",
            "null-written",
            "yes 1",
            "vendor-lib",
            "mount-ro"
        ]
    );
    // The spec has the nodes and allow rules for them.
    let v = cdi.env.inspect(&id);
    let linux = &v["info"]["runtimeSpec"]["linux"];
    let node = linux["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["path"] == "/dev/vendor-zero")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        (&node["major"], &node["minor"]),
        (&json!(1), &json!(5)),
        "{v}"
    );
    let rules = linux["resources"]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        rules.iter().any(|r| r["allow"] == true
            && r["major"] == 1
            && r["minor"] == 5
            && r["access"] == "rwm"),
        "{rules:?}"
    );
    // Asked for once although named twice: one node.
    let zeros = linux["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["path"] == "/dev/vendor-zero")
        .count();
    assert_eq!(zeros, 1, "{v}");
    // The broken files were skipped with a warning naming each.
    let log = cdi.env.d.log();
    for broken in ["broken.json", "broken.yaml"] {
        assert!(
            log.lines()
                .any(|l| l.contains("CDI spec file skipped") && l.contains(broken)),
            "no warning about {broken}: {log}"
        );
    }
}

#[test]
fn described_nodes_are_opened_as_their_cgroup_rule_allows() {
    let cdi = Cdi::new();
    let pod = cdi.env.pod("exp");
    // Major 240 has no driver: an allowed open fails with ENXIO, one the
    // device cgroup refuses with EPERM.
    let mut c = cdi.container(
        "exp",
        "stat -c '%t:%T %a' /dev/vendor-exp; \
         cat /dev/vendor-exp 2>&1; cat /dev/vendor-exp-m 2>&1; true",
    );
    c["CDI_devices"] = json!([{"name": "example.com/dev=exp"}]);
    let (_, lines) = cdi.output(&pod, "exp", &c);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], "f0:4d 666");
    assert!(
        lines[1].contains("No such device or address"),
        "allowed: {lines:?}"
    );
    assert!(
        lines[2].contains("Operation not permitted"),
        "not allowed: {lines:?}"
    );
}

#[test]
fn cdi_annotations_and_yaml_specs_of_a_later_directory() {
    let cdi = Cdi::new();
    cdi.write(
        "run/full.yaml",
        "cdiVersion: 0.7.0\nkind: example.com/yamldev\ndevices:\n- name: full\n  containerEdits:\n    env: [FULL=yaml]\n    additionalGids: [4343]\n    deviceNodes:\n    - path: /dev/vendor-full\n      hostPath: /dev/full\n      fileMode: 0640\n",
    );
    // The later directory redefines example.com/dev=null: its wins.
    cdi.write(
        "run/override.json",
        &json!({
            "cdiVersion": "0.5.0",
            "kind": "example.com/dev",
            "devices": [{"name": "null", "containerEdits": {
                "env": ["NULL_FROM=run"],
                "deviceNodes": [{"path": "/dev/vendor-null", "hostPath": "/dev/null"}]
            }}]
        })
        .to_string(),
    );
    let pod = cdi.env.pod("ann");
    let mut c = cdi.container(
        "ann",
        "stat -c '%t:%T %a' /dev/vendor-full; stat -c '%t:%T' /dev/vendor-null; \
         echo $FULL $NULL_FROM; echo ${EXAMPLE_VENDOR:-no-example}; \
         id -G | tr ' ' '\\n' | grep -x 4343",
    );
    c["annotations"] = json!({
        "cdi.k8s.io/test-plugin": "example.com/yamldev=full,example.com/dev=null"
    });
    let (_, lines) = cdi.output(&pod, "ann", &c);
    assert_eq!(lines, ["1:7 640", "1:3", "yaml run", "no-example", "4343"]);
}

#[test]
fn unknown_malformed_or_unsupported_devices_fail_creation_and_leave_nothing() {
    let cdi = Cdi::new();
    let pod = cdi.env.pod("bad");
    let cases: [(&str, Value, &str); 4] = [
        (
            "unknown",
            json!({"CDI_devices": [{"name": "example.com/dev=null"}, {"name": "example.com/x=y"}]}),
            "CDI device \"example.com/x=y\" is not known",
        ),
        (
            "broken",
            json!({"CDI_devices": [{"name": "example.com/broken=x"}]}),
            "CDI device \"example.com/broken=x\" is not known",
        ),
        (
            "malformed",
            json!({"annotations": {"cdi.k8s.io/p": "example.com/dev=null,gpu0"}}),
            "\"gpu0\" is not a CDI device name",
        ),
        (
            "hooked",
            json!({"CDI_devices": [{"name": "example.com/dev=hooked"}]}),
            "hook createContainer (/bin/true) not supported",
        ),
    ];
    for (name, extra, needle) in cases {
        let mut c = cdi.container(name, "true");
        for (k, v) in extra.as_object().into_iter().flatten() {
            c[k] = v.clone();
        }
        // crictl shows the message quoted, its quotes escaped.
        let err = cdi
            .env
            .try_create(&pod, "bad", &c)
            .fails()
            .replace('\\', "");
        assert!(err.contains("InvalidArgument"), "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
    }
    assert_eq!(cdi.container_names(), Vec::<String>::new());
    // The same pod still takes a container asking for a known device.
    let mut ok = cdi.container("ok", "echo $EXAMPLE_VENDOR");
    ok["CDI_devices"] = json!([{"name": "example.com/dev=null"}]);
    let (_, lines) = cdi.output(&pod, "bad", &ok);
    assert_eq!(lines, ["yes"]);
    assert_eq!(cdi.container_names(), ["ok"]);
}

/// A CDI device whose spec carries an OCI hook (as NVIDIA's do): a pod of
/// the runc handler gets it, and runc runs the hook (createRuntime, in the
/// runtime's namespaces: it writes the container's state to a host file);
/// the built-in core runs no hooks and refuses the device, naming it.
#[test]
fn cdi_hooks_run_under_a_runtime_handler_and_the_built_in_core_refuses_them() {
    assert!(
        std::path::Path::new(RUNC).is_file(),
        "crictl-tests/run.sh installs Debian's runc"
    );
    let cdi = Cdi::new();
    let marker = cdi.dir("hook-state.json");
    let spec = json!({
        "cdiVersion": "0.6.0",
        "kind": "example.com/hooks",
        "devices": [{"name": "gpu", "containerEdits": {
            "env": ["HOOKED=1"],
            "hooks": [{
                "hookName": "createRuntime",
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("cat > {}", path(&marker))],
                "timeout": 30
            }]
        }}]
    });
    cdi.write("run/hooks.json", &spec.to_string());
    let mut config = cdi.container("hooked", "echo HOOKED=$HOOKED");
    config["CDI_devices"] = json!([{"name": "example.com/hooks=gpu"}]);

    let pod = cdi
        .env
        .pod_from(
            "hooks",
            &cdi.env.pod_config("hooks"),
            &["--runtime", "runc"],
        )
        .ok()
        .trim()
        .to_string();
    let (id, lines) = cdi.output(&pod, "hooks", &config);
    assert_eq!(lines, ["HOOKED=1"]);
    let state: Value = serde_json::from_slice(&std::fs::read(&marker).expect("the hook ran"))
        .expect("the hook got the state JSON");
    assert_eq!(state["id"], id.as_str(), "{state}");

    let plain = cdi.env.pod("plain");
    let err = cdi.env.try_create(&plain, "plain", &config).fails();
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(
        err.contains("example.com/hooks=gpu") && err.contains("runtime handler"),
        "{err}"
    );
}
