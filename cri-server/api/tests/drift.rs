//! The generated CRI against the public definition: proto/api.proto must
//! declare exactly what k8s.io/cri-api v0.36.0 declares (packages, services,
//! methods and their streaming, messages, fields with numbers, types, labels
//! and options, enums and values). The public definition is taken from the
//! Go module proxy by `go mod download` at test time (or from the file named
//! by `CRI_API_PROTO`); both are compiled by protox and compared with the
//! source comments and the file name left out.
//!
//! Needs `go` (run.sh installs it) and the module proxy: without them the
//! test fails, it does not pass silently.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

const CRI_API: &str = "k8s.io/cri-api@v0.36.0";

/// The path of the public api.proto.
fn public_proto() -> PathBuf {
    if let Some(path) = std::env::var_os("CRI_API_PROTO") {
        return PathBuf::from(path);
    }
    let go = ["go", "/usr/local/go/bin/go"]
        .into_iter()
        .find(|go| Command::new(go).arg("version").output().is_ok())
        .expect("`go` is needed to fetch cri-api from the module proxy (or set CRI_API_PROTO)");
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = Command::new(go)
        .args(["mod", "download", "-json", CRI_API])
        .current_dir(scratch.path())
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("go mod download");
    assert!(
        out.status.success(),
        "go mod download {CRI_API}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("go's json");
    let dir = info["Dir"].as_str().expect("Dir in go's answer");
    PathBuf::from(dir).join("pkg/apis/runtime/v1/api.proto")
}

/// The one file of a set, with what is not contract taken out.
fn contract(set: FileDescriptorSet) -> FileDescriptorProto {
    assert_eq!(set.file.len(), 1, "one file, no imports");
    let mut file = set.file.into_iter().next().expect("a file");
    file.name = None;
    file.source_code_info = None;
    file
}

fn ours() -> FileDescriptorProto {
    contract(FileDescriptorSet::decode(corten_cri_api::FILE_DESCRIPTOR_SET).expect("decode"))
}

fn public() -> FileDescriptorProto {
    let path = public_proto();
    let dir = path.parent().expect("dir");
    contract(protox::compile([&path], [dir]).expect("protox compiles cri-api's proto"))
}

/// Every message by its full name, nested ones included.
fn messages(file: &FileDescriptorProto) -> BTreeMap<String, DescriptorProto> {
    fn walk(prefix: &str, list: &[DescriptorProto], out: &mut BTreeMap<String, DescriptorProto>) {
        for m in list {
            let name = format!("{prefix}.{}", m.name());
            walk(&name, &m.nested_type, out);
            out.insert(name, m.clone());
        }
    }
    let mut out = BTreeMap::new();
    walk(file.package(), &file.message_type, &mut out);
    out
}

/// What differs between two files, one line per difference, by name.
fn differences(want: &FileDescriptorProto, got: &FileDescriptorProto) -> Vec<String> {
    let mut diffs = Vec::new();
    if want.package != got.package || want.syntax != got.syntax || want.options != got.options {
        diffs.push("package, syntax or file options differ".to_string());
    }
    // Services and methods.
    let services = |f: &FileDescriptorProto| -> BTreeMap<String, _> {
        f.service
            .iter()
            .flat_map(|s| {
                s.method
                    .iter()
                    .map(move |m| (format!("{}.{}", s.name(), m.name()), m.clone()))
            })
            .collect()
    };
    let (ws, gs) = (services(want), services(got));
    for (name, m) in &ws {
        match gs.get(name) {
            None => diffs.push(format!("method {name} missing")),
            Some(g) if g != m => diffs.push(format!("method {name}: want {m:?}, got {g:?}")),
            _ => {}
        }
    }
    diffs.extend(
        gs.keys()
            .filter(|k| !ws.contains_key(*k))
            .map(|k| format!("method {k} extra")),
    );
    // Messages and their fields.
    let (wm, gm) = (messages(want), messages(got));
    for (name, m) in &wm {
        let Some(g) = gm.get(name) else {
            diffs.push(format!("message {name} missing"));
            continue;
        };
        for f in &m.field {
            match g.field.iter().find(|x| x.name == f.name) {
                None => diffs.push(format!("field {name}.{} missing", f.name())),
                Some(x) if x != f => {
                    diffs.push(format!("field {name}.{}: want {f:?}, got {x:?}", f.name()))
                }
                _ => {}
            }
        }
        for x in &g.field {
            if !m.field.iter().any(|f| f.name == x.name) {
                diffs.push(format!("field {name}.{} extra", x.name()));
            }
        }
        if (&m.enum_type, &m.oneof_decl, &m.options) != (&g.enum_type, &g.oneof_decl, &g.options) {
            diffs.push(format!(
                "message {name}: nested enums, oneofs or options differ"
            ));
        }
    }
    diffs.extend(
        gm.keys()
            .filter(|k| !wm.contains_key(*k))
            .map(|k| format!("message {k} extra")),
    );
    // Top-level enums.
    for e in &want.enum_type {
        match got.enum_type.iter().find(|x| x.name == e.name) {
            None => diffs.push(format!("enum {} missing", e.name())),
            Some(x) if x != e => diffs.push(format!("enum {}: want {e:?}, got {x:?}", e.name())),
            _ => {}
        }
    }
    for x in &got.enum_type {
        if !want.enum_type.iter().any(|e| e.name == x.name) {
            diffs.push(format!("enum {} extra", x.name()));
        }
    }
    // Whatever the walk above does not look at (ordering aside) still counts.
    if diffs.is_empty() && want != got {
        diffs.push("the descriptors differ (declaration order?)".to_string());
    }
    diffs
}

#[test]
fn our_proto_declares_exactly_cri_api_v0_36() {
    let (want, got) = (public(), ours());
    let diffs = differences(&want, &got);
    assert!(
        diffs.is_empty(),
        "proto/api.proto differs from {CRI_API}:\n{}",
        diffs.join("\n")
    );
    // The calls kubelet 1.34-1.36 makes that k8s-cri (v0.32) did not have.
    let methods: Vec<&str> = got
        .service
        .iter()
        .flat_map(|s| s.method.iter().map(|m| m.name()))
        .collect();
    for rpc in [
        "UpdatePodSandboxResources",
        "StreamContainers",
        "StreamImages",
        "StreamPodSandboxMetrics",
    ] {
        assert!(methods.contains(&rpc), "{rpc}");
    }
}

#[test]
fn a_changed_field_number_is_a_named_difference() {
    let want = ours();
    let mut got = want.clone();
    let config = got
        .message_type
        .iter_mut()
        .find(|m| m.name() == "ContainerConfig")
        .expect("ContainerConfig");
    let field = config
        .field
        .iter_mut()
        .find(|f| f.name() == "stop_signal")
        .expect("stop_signal");
    field.number = Some(99);
    got.service[0]
        .method
        .retain(|m| m.name() != "StreamContainers");
    let diffs = differences(&want, &got);
    assert_eq!(diffs.len(), 2, "{diffs:#?}");
    assert!(diffs
        .iter()
        .any(|d| d.starts_with("method RuntimeService.StreamContainers missing")));
    assert!(diffs
        .iter()
        .any(|d| d.starts_with("field runtime.v1.ContainerConfig.stop_signal:")));
}
