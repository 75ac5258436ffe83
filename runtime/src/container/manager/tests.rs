//! Unit tests of the container manager's records.

use super::*;
use crate::container::ContainerRuntime;
use std::path::Path;

use crate::container::record::sample;
use crate::image::Digest;

#[test]
fn open_loads_records_holds_their_layers_and_resolves_prefixes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MetaStore::open(&tmp.path().join("m.redb")).expect("store"));
    let layer = Digest::sha256_of(b"layer");
    let mut a = sample("aaa111", "pod1");
    a.chain_ids = vec![layer.clone()];
    a.created_at_ns = 2;
    let mut b = sample("aaa222", "pod2");
    b.created_at_ns = 1;
    b.state = ContainerState::Exited;
    let changes = vec![
        store.encode(&a.id, &a).expect("encode"),
        store.encode(&b.id, &b).expect("encode"),
    ];
    store.apply(Table::Containers, changes).expect("apply");

    let holds = Arc::new(LayerHolds::default());
    let runtime = ContainerRuntime::new(tmp.path(), tmp.path(), Path::new("/bin/false"));
    let c = Containers::open(store.clone(), Arc::new(runtime), holds.clone()).expect("open");
    assert_eq!(
        holds.held(),
        HashSet::from([layer]),
        "layers held from the start"
    );
    let ids: Vec<String> = c
        .list(&ContainerFilter::default())
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(ids, ["aaa222", "aaa111"], "oldest first");
    assert_eq!(c.resolve("aaa1").expect("prefix"), "aaa111");
    assert_eq!(
        c.resolve("aaa").expect_err("ambiguous").kind(),
        crate::ErrorKind::InvalidArgument
    );
    assert_eq!(
        c.status("zzz").expect_err("unknown").kind(),
        crate::ErrorKind::NotFound
    );
    let exited = ContainerFilter {
        state: Some(ContainerState::Exited),
        ..ContainerFilter::default()
    };
    assert_eq!(c.list(&exited).len(), 1);

    // Changes are written through.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(c.inner.update("aaa111", |r| {
        r.state = ContainerState::Running;
        true
    }))
    .expect("update");
    rt.block_on(c.inner.forget("aaa222")).expect("forget");
    let stored: Vec<(String, ContainerRecord)> = store.load_all(Table::Containers).expect("load");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1.state, ContainerState::Running);
}

#[test]
fn readers_are_not_held_up_by_a_commit_in_progress() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MetaStore::open(&tmp.path().join("m.redb")).expect("store"));
    let runtime = ContainerRuntime::new(tmp.path(), tmp.path(), Path::new("/bin/false"));
    let c =
        Containers::open(store, Arc::new(runtime), Arc::new(LayerHolds::default())).expect("open");
    c.inner.records.put(sample("abc", "pod")).expect("save");
    // A writer mid-commit holds the write lock (here: for as long as the
    // readers below take). Readers must not need it.
    let writing = c.inner.records.writer();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let listed = c.list(&ContainerFilter::default()).len();
            let status = c.status("abc").map(|r| r.id.to_string());
            let _ = tx.send((listed, status.ok()));
        });
        let read = rx.recv_timeout(std::time::Duration::from_secs(30));
        // Let a reader that did wait for it finish, then judge.
        drop(writing);
        let read = read.expect("ListContainers and ContainerStatus answered during a commit");
        assert_eq!(read, (1, Some("abc".to_string())));
    });
}

#[test]
fn a_write_waiting_for_a_commit_does_not_hold_up_reads_on_its_worker() {
    // On one async worker, a record write that waited for the writer lock
    // on the worker would stop every task queued behind it, ContainerStatus
    // included.
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MetaStore::open(&tmp.path().join("m.redb")).expect("store"));
    let runtime = ContainerRuntime::new(tmp.path(), tmp.path(), Path::new("/bin/false"));
    let c =
        Containers::open(store, Arc::new(runtime), Arc::new(LayerHolds::default())).expect("open");
    c.inner.records.put(sample("abc", "pod")).expect("save");
    // Another container's commit in progress.
    let writing = c.inner.records.writer();
    let (writer, reader) = (c.clone(), c.clone());
    let (read, written) = crate::testing::while_blocked(
        async move { writer.inner.save(sample("def", "pod")).await },
        move || {
            let status = reader.status("abc").map(|r| r.id.to_string()).ok();
            (status, reader.list(&ContainerFilter::default()).len())
        },
        || drop(writing),
    );
    assert_eq!(
        read,
        (Some("abc".to_string()), 1),
        "answered during the wait, without the waiting write"
    );
    written.expect("the write went through once the commit was done");
    assert_eq!(c.list(&ContainerFilter::default()).len(), 2);
}
