//! The CNI plugin chain with fake plugins (shell scripts that record their
//! environment and stdin): order, environment, stdin injection, the cache,
//! error reporting, rollback and timeouts. No root needed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use corten_runtime::network::{Cni, Error, PodNetwork, PortMapping};
use corten_runtime::ErrorKind;
use serde_json::{json, Value};

const PLUGIN: &str = r#"#!/bin/sh
name=$(basename "$0")
log=$(dirname "$0")/../log
mkdir -p "$log"
cat > "$log/$CNI_COMMAND-$name.json"
echo "$CNI_COMMAND $name netns=$CNI_NETNS if=$CNI_IFNAME id=$CNI_CONTAINERID args=$CNI_ARGS path=$CNI_PATH" >> "$log/calls"
case "$name:$CNI_COMMAND" in
  fail:ADD) echo '{"code":7,"msg":"bad config","details":"field x"}'; exit 1;;
  crash:ADD) echo boom >&2; exit 2;;
  garbage:ADD) echo 'not json'; exit 0;;
  slow:ADD) exec sleep 5;;
esac
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"10.1.2.3/24","gateway":"10.1.2.1","interface":0}]}'
fi
"#;

struct Fixture {
    tmp: tempfile::TempDir,
    cni: Cni,
}

impl Fixture {
    fn new(plugins: &[Value]) -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        for name in ["a", "b", "fail", "crash", "garbage", "slow"] {
            let path = bin.join(name);
            std::fs::write(&path, PLUGIN).expect("write plugin");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::create_dir(tmp.path().join("net.d")).expect("mkdir net.d");
        std::fs::write(tmp.path().join("netns"), "").expect("fake netns");
        let cni = Cni::new(
            tmp.path().join("net.d"),
            vec![tmp.path().join("nobin"), bin],
            tmp.path().join("cache"),
        );
        let f = Fixture { tmp, cni };
        f.conf("net", plugins);
        f
    }

    fn conf(&self, name: &str, plugins: &[Value]) {
        let conf = json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins});
        std::fs::write(self.tmp.path().join("net.d/10.conflist"), conf.to_string())
            .expect("write conf");
    }

    fn pod(&self) -> PodNetwork {
        PodNetwork {
            id: "pod1".into(),
            name: "web".into(),
            namespace: "ns".into(),
            uid: "u1".into(),
            netns_path: self.netns(),
            port_mappings: vec![PortMapping {
                container_port: 80,
                host_port: 8080,
                protocol: "TCP".into(),
                host_ip: String::new(),
            }],
        }
    }

    fn netns(&self) -> PathBuf {
        self.tmp.path().join("netns")
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.tmp.path().join("log/calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `<command> <plugin>` of each call, in order.
    fn call_names(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| c.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }

    fn stdin(&self, command: &str, plugin: &str) -> Value {
        let path = self.tmp.path().join(format!("log/{command}-{plugin}.json"));
        serde_json::from_slice(&std::fs::read(path).expect("stdin recorded")).expect("stdin JSON")
    }

    fn cached(&self) -> bool {
        Path::new(&self.tmp.path().join("cache/pod1.json")).exists()
    }
}

#[tokio::test]
async fn add_runs_the_chain_in_order_with_the_spec_environment_and_stdin() {
    let f = Fixture::new(&[
        json!({"type": "a", "foo": 1}),
        json!({"type": "b", "capabilities": {"portMappings": true}}),
    ]);
    let result = f.cni.add(&f.pod()).await.expect("add");
    assert_eq!(
        result.pod_ips(),
        ["10.1.2.3".parse::<std::net::IpAddr>().expect("ip")]
    );
    assert_eq!(f.call_names(), ["ADD a", "ADD b"]);
    let netns = f.netns().display().to_string();
    let path = format!(
        "{}:{}",
        f.tmp.path().join("nobin").display(),
        f.tmp.path().join("bin").display()
    );
    assert_eq!(
        f.calls()[0],
        format!(
            "ADD a netns={netns} if=eth0 id=pod1 args=IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;\
             K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=u1 path={path}"
        )
    );
    let a = f.stdin("ADD", "a");
    assert_eq!(
        a,
        json!({"type": "a", "foo": 1, "name": "net", "cniVersion": "1.0.0"})
    );
    let b = f.stdin("ADD", "b");
    assert_eq!(b["prevResult"], result.raw);
    assert_eq!(
        b["runtimeConfig"]["portMappings"],
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
    );
    assert!(f.cached());
    f.cni.check("pod1").await.expect("check");
    assert_eq!(f.stdin("CHECK", "a")["prevResult"], result.raw);
    // ADD again for the same id: the earlier attachment is undone first.
    f.cni.add(&f.pod()).await.expect("add again");
    assert_eq!(
        f.call_names()[2..],
        ["CHECK a", "CHECK b", "DEL b", "DEL a", "ADD a", "ADD b"]
    );
}

#[tokio::test]
async fn del_replays_the_cached_config_in_reverse_then_falls_back() {
    let f = Fixture::new(&[
        json!({"type": "a"}),
        json!({"type": "b", "capabilities": {"portMappings": true}}),
    ]);
    let result = f.cni.add(&f.pod()).await.expect("add");
    f.conf("other", &[json!({"type": "b"})]);
    // The netns is gone: CNI_NETNS is empty.
    std::fs::remove_file(f.netns()).expect("rm netns");
    f.cni.del("pod1", Some(&f.netns())).await.expect("del");
    assert_eq!(f.call_names()[2..], ["DEL b", "DEL a"]);
    assert!(f.calls()[2].contains("netns= "), "{}", f.calls()[2]);
    assert!(
        f.calls()[2].contains("K8S_POD_NAME=web"),
        "{}",
        f.calls()[2]
    );
    let b = f.stdin("DEL", "b");
    assert_eq!(b["name"], "net");
    assert_eq!(b["prevResult"], result.raw);
    assert_eq!(b["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
    assert!(!f.cached());
    // No cache any more: the current config, only the id in CNI_ARGS.
    f.cni.del("pod1", None).await.expect("second del");
    assert_eq!(f.call_names()[4..], ["DEL b"]);
    assert!(f.calls()[4].contains("args=IgnoreUnknown=1;K8S_POD_INFRA_CONTAINER_ID=pod1 "));
    assert_eq!(f.stdin("DEL", "b")["name"], "other");
}

#[tokio::test]
async fn a_plugin_error_is_reported_precisely_and_the_chain_undone() {
    let f = Fixture::new(&[
        json!({"type": "a"}),
        json!({"type": "fail"}),
        json!({"type": "b"}),
    ]);
    let err = f.cni.add(&f.pod()).await.expect_err("fails");
    match &err {
        Error::Plugin {
            plugin,
            command,
            code,
            msg,
            details,
        } => {
            assert_eq!(
                (
                    plugin.as_str(),
                    command.as_str(),
                    *code,
                    msg.as_str(),
                    details.as_str()
                ),
                ("fail", "ADD", 7, "bad config", "field x")
            );
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        "CNI plugin `fail` failed on ADD (code 7): bad config: field x"
    );
    assert_eq!(f.call_names(), ["ADD a", "ADD fail", "DEL fail", "DEL a"]);
    assert!(!f.cached());
}

#[tokio::test]
async fn crashes_garbage_and_hangs_are_errors_too() {
    let f = Fixture::new(&[json!({"type": "crash"})]);
    let err = f.cni.add(&f.pod()).await.expect_err("crash");
    assert!(
        matches!(&err, Error::Plugin { code: 999, details, .. } if details == "boom"),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Internal);

    f.conf("net", &[json!({"type": "garbage"})]);
    let err = f.cni.add(&f.pod()).await.expect_err("garbage");
    assert!(
        matches!(&err, Error::Json { plugin, .. } if plugin == "garbage"),
        "{err}"
    );
    // The decoder's error is the source, and the message still says it.
    assert!(std::error::Error::source(&err).is_some());
    assert!(err.to_string().contains("invalid JSON: "), "{err}");
    assert!(!f.cached());

    f.conf("net", &[json!({"type": "slow"})]);
    let cni = f.cni.clone().with_timeout(Duration::from_millis(300));
    // A Timeout only comes from the timer firing while the plugin still
    // runs (it sleeps 5 s): that it was killed first needs no clock here.
    let err = cni.add(&f.pod()).await.expect_err("timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
}

#[tokio::test]
async fn no_config_and_bad_ids() {
    let f = Fixture::new(&[json!({"type": "a"})]);
    std::fs::remove_file(f.tmp.path().join("net.d/10.conflist")).expect("rm conf");
    let err = f.cni.add(&f.pod()).await.expect_err("no config");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    f.cni
        .del("pod1", None)
        .await
        .expect("nothing to delete is fine");
    let mut pod = f.pod();
    pod.id = "../x".into();
    let err = f.cni.add(&pod).await.expect_err("bad id");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(f.calls().is_empty());
}
