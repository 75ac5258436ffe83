use std::os::unix::fs::PermissionsExt as _;

use sha2::Digest as _;

use super::*;

fn digest(data: &str) -> Digest {
    Digest::sha256_of(data.as_bytes())
}

fn open() -> (tempfile::TempDir, Snapshotter) {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = Snapshotter::open(&dir.path().join("snapshots")).expect("open");
    (dir, snapshots)
}

fn tmp_entries(s: &Snapshotter) -> usize {
    fs::read_dir(&s.tmp).expect("read tmp").count()
}

#[test]
fn chain_ids_follow_the_oci_rule() {
    let diffs = [digest("a"), digest("b"), digest("c")];
    let chains = chain_ids(&diffs);

    // Computed here from the strings...
    let c1 = Digest::sha256_of(format!("{} {}", diffs[0], diffs[1]).as_bytes());
    let c2 = Digest::sha256_of(format!("{c1} {}", diffs[2]).as_bytes());
    assert_eq!(chains, vec![diffs[0].clone(), c1.clone(), c2.clone()]);

    // ...and by hand: printf 'sha256:<a> sha256:<b>' | sha256sum, and so on.
    assert_eq!(
        c1.hex(),
        "51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676"
    );
    assert_eq!(
        c2.hex(),
        "2fce7f8ce91bcf0a1428b36e1024639fdbd9469eea762dba98aa749631885106"
    );
    // Independently of Digest::sha256_of:
    let raw = sha2::Sha256::digest(
        b"sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb \
          sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d",
    );
    assert_eq!(hex::encode(raw), c1.hex());

    assert!(chain_ids(&[]).is_empty());
    assert_eq!(chain_ids(&diffs[..1]), vec![diffs[0].clone()]);
}

#[test]
fn prepare_commit_exists_path() {
    let (_dir, s) = open();
    let id = digest("layer");
    assert!(!s.exists(&id));
    assert_eq!(s.path(&id), s.root.join(id.hex()));

    let tmp = s.prepare().expect("prepare");
    assert!(tmp.path().starts_with(&s.tmp));
    let mode = fs::metadata(tmp.path()).expect("stat").permissions().mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert_eq!(fs::read_dir(tmp.path()).expect("read").count(), 0);
    fs::write(tmp.path().join("file"), b"hello").expect("write");

    s.commit(tmp, &id).expect("commit");
    assert!(s.exists(&id));
    assert_eq!(fs::read(s.path(&id).join("file")).expect("read"), b"hello");
    assert_eq!(tmp_entries(&s), 0);
    assert_eq!(s.list().expect("list"), vec![id]);
}

#[test]
fn commit_when_target_exists_keeps_the_winner() {
    let (_dir, s) = open();
    let id = digest("layer");
    let first = s.prepare().expect("prepare");
    fs::write(first.path().join("who"), b"first").expect("write");
    let second = s.prepare().expect("prepare");
    fs::write(second.path().join("who"), b"second").expect("write");

    s.commit(first, &id).expect("commit first");
    s.commit(second, &id).expect("losing commit is ok");
    assert_eq!(fs::read(s.path(&id).join("who")).expect("read"), b"first");
    assert_eq!(tmp_entries(&s), 0, "the loser's temp dir is gone");
}

#[test]
fn commit_never_replaces_an_existing_directory() {
    // Even an empty one: a plain rename(2) would replace it.
    let (_dir, s) = open();
    let id = digest("layer");
    let tmp = s.prepare().expect("prepare");
    fs::write(tmp.path().join("who"), b"mine").expect("write");
    fs::create_dir(s.path(&id)).expect("mkdir");
    s.commit(tmp, &id).expect("commit");
    assert_eq!(fs::read_dir(s.path(&id)).expect("read").count(), 0);
    assert_eq!(tmp_entries(&s), 0);

    // A file squatting on the name is not a snapshot: an error, not success.
    let squatted = digest("squatted");
    fs::write(s.path(&squatted), b"junk").expect("write");
    let err = s
        .commit(s.prepare().expect("prepare"), &squatted)
        .expect_err("junk");
    assert!(err.to_string().contains(squatted.hex()), "{err}");
    assert_eq!(err.kind(), crate::ErrorKind::Internal);
    assert_eq!(tmp_entries(&s), 0);
}

#[test]
fn dropping_an_uncommitted_snapshot_removes_it() {
    let (_dir, s) = open();
    let tmp = s.prepare().expect("prepare");
    fs::create_dir_all(tmp.path().join("a/b")).expect("mkdir");
    fs::write(tmp.path().join("a/b/c"), b"x").expect("write");
    let path = tmp.path().to_path_buf();
    drop(tmp);
    assert!(!path.exists());
    assert_eq!(tmp_entries(&s), 0);
}

#[test]
fn open_clears_leftovers_in_tmp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("snapshots");
    let s = Snapshotter::open(&root).expect("open");
    let id = digest("kept");
    let tmp = s.prepare().expect("prepare");
    s.commit(tmp, &id).expect("commit");

    // A crash mid-unpack leaves a tree and maybe a stray file in tmp/.
    let tmp = s.prepare().expect("prepare");
    fs::create_dir_all(tmp.path().join("deep/er")).expect("mkdir");
    fs::write(tmp.path().join("deep/er/f"), b"x").expect("write");
    std::mem::forget(tmp);
    fs::write(root.join("tmp/stray"), b"x").expect("write");
    assert_eq!(tmp_entries(&s), 2);

    let s = Snapshotter::open(&root).expect("reopen");
    assert_eq!(tmp_entries(&s), 0);
    assert!(s.exists(&id));
}

#[test]
fn remove_is_idempotent_and_leaves_nothing() {
    let (_dir, s) = open();
    let id = digest("layer");
    let tmp = s.prepare().expect("prepare");
    fs::create_dir_all(tmp.path().join("d")).expect("mkdir");
    fs::write(tmp.path().join("d/f"), b"x").expect("write");
    // Like a whiteout: a char device 0/0.
    nix::sys::stat::mknod(
        &tmp.path().join("d/gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o000),
        0,
    )
    .expect("mknod (needs root)");
    fs::set_permissions(tmp.path().join("d"), fs::Permissions::from_mode(0o500)).expect("chmod");
    s.commit(tmp, &id).expect("commit");

    s.remove(&id).expect("remove");
    assert!(!s.exists(&id));
    assert_eq!(tmp_entries(&s), 0);
    s.remove(&id).expect("remove again");
    s.remove(&digest("never")).expect("remove unknown");
}

#[test]
fn list_ignores_tmp_and_junk() {
    let (_dir, s) = open();
    let a = digest("a");
    let b = digest("b");
    for id in [&b, &a] {
        let tmp = s.prepare().expect("prepare");
        s.commit(tmp, id).expect("commit");
    }
    fs::create_dir(s.root.join("junk")).expect("mkdir");
    fs::create_dir(s.root.join("A".repeat(64))).expect("mkdir uppercase");
    fs::write(s.root.join("c".repeat(64)), b"a file, not a snapshot").expect("write");
    let _in_progress = s.prepare().expect("prepare");

    let mut want = vec![a, b];
    want.sort();
    assert_eq!(s.list().expect("list"), want);
}

#[test]
fn usage_counts_hardlinks_once_and_does_not_follow_symlinks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).expect("mkdir");
    fs::write(outside.join("big"), vec![1u8; 1 << 20]).expect("write");

    let s = Snapshotter::open(&dir.path().join("snapshots")).expect("open");
    assert_eq!(s.usage().expect("usage"), Usage::default());

    let id = digest("layer");
    let tmp = s.prepare().expect("prepare");
    let data = vec![7u8; 64 * 1024];
    fs::write(tmp.path().join("f"), &data).expect("write");
    fs::hard_link(tmp.path().join("f"), tmp.path().join("g")).expect("link");
    std::os::unix::fs::symlink(&outside, tmp.path().join("out")).expect("symlink");
    s.commit(tmp, &id).expect("commit");
    let root = s.path(&id);

    let expect_bytes: u64 = [root.clone(), root.join("f"), root.join("out")]
        .iter()
        .map(|p| fs::symlink_metadata(p).expect("stat").blocks() * 512)
        .sum();
    let usage = s.usage().expect("usage");
    assert_eq!(usage.inodes, 3, "root dir, f (= g), symlink");
    assert_eq!(usage.bytes, expect_bytes);
    assert!(usage.bytes >= data.len() as u64);
    assert!(usage.bytes < 1 << 20, "symlink target not followed");
}

#[test]
fn usage_is_measured_once_and_kept_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("snapshots");
    let s = Snapshotter::open(&root).expect("open");
    let (a, b) = (digest("a"), digest("b"));
    for (id, files) in [(&a, 3), (&b, 5)] {
        let mut tmp = s.prepare().expect("prepare");
        for n in 0..files {
            fs::write(tmp.path().join(format!("f{n}")), vec![1u8; 8192]).expect("write");
        }
        let measured = tmp.measure().expect("measure");
        assert_eq!(measured.inodes, files + 1, "the files and the root");
        s.commit(tmp, id).expect("commit");
    }
    let total = s.usage().expect("usage");
    assert_eq!(total.inodes, 4 + 6);
    assert_eq!(
        total,
        disk_usage(&s.path(&a)).unwrap() + disk_usage(&s.path(&b)).unwrap()
    );

    // Files appearing under a committed snapshot (which never happens) are
    // not seen: usage reads the measurements, it does not walk.
    fs::write(s.path(&a).join("late"), b"x").expect("write");
    assert_eq!(s.usage().expect("usage"), total);
    drop(s);
    let s = Snapshotter::open(&root).expect("reopen");
    assert_eq!(s.usage().expect("usage after a restart"), total);

    // A lost measurement (a crash right after the commit) is made again.
    fs::remove_file(root.join(USAGE_DIR).join(a.hex())).expect("rm usage");
    drop(s);
    let s = Snapshotter::open(&root).expect("reopen");
    assert_eq!(s.usage().expect("usage").inodes, total.inodes + 1);
    assert!(root.join(USAGE_DIR).join(a.hex()).is_file(), "kept again");

    // A removed snapshot takes its measurement along.
    s.remove(&b).expect("remove");
    assert!(!root.join(USAGE_DIR).join(b.hex()).exists());
    assert_eq!(s.usage().expect("usage").inodes, 4 + 1);
}

#[test]
fn open_removes_usages_whose_snapshot_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("snapshots");
    let s = Snapshotter::open(&root).expect("open");
    let id = digest("a");
    let mut tmp = s.prepare().expect("prepare");
    tmp.measure().expect("measure");
    s.commit(tmp, &id).expect("commit");
    // A crash during a removal: the snapshot went, its usage stayed.
    fs::rename(s.path(&id), s.tmp.join("rm-crashed")).expect("rename");
    drop(s);
    let s = Snapshotter::open(&root).expect("reopen");
    assert_eq!(fs::read_dir(root.join(USAGE_DIR)).unwrap().count(), 0);
    assert_eq!(tmp_entries(&s), 0);
    assert_eq!(s.usage().expect("usage"), Usage::default());
}

#[test]
fn cached_usage_follows_commits_and_removals_once_listed() {
    let (_dir, s) = open();
    assert_eq!(s.cached_usage(), None, "unknown before a first listing");
    let measured = |s: &Snapshotter, id: &Digest| {
        let mut tmp = s.prepare().expect("prepare");
        fs::write(tmp.path().join("f"), vec![1u8; 4096]).expect("write");
        tmp.measure().expect("measure");
        s.commit(tmp, id).expect("commit");
    };
    let (a, b) = (digest("a"), digest("b"));
    measured(&s, &a);
    let listed = s.usage().expect("usage");
    assert_eq!(s.cached_usage(), Some(listed));
    measured(&s, &b);
    assert_eq!(s.cached_usage(), Some(s.usage().expect("usage")));
    assert_eq!(s.cached_usage().map(|u| u.inodes), Some(4));
    s.remove(&a).expect("remove");
    assert_eq!(s.cached_usage(), Some(s.usage().expect("usage")));
    assert_eq!(s.cached_usage().map(|u| u.inodes), Some(2));
    // A commit left unmeasured makes memory unsure until the next listing.
    s.commit(s.prepare().expect("prepare"), &a).expect("commit");
    assert_eq!(s.cached_usage(), None);
    assert_eq!(s.usage().expect("usage").inodes, 3);
    assert_eq!(s.cached_usage().map(|u| u.inodes), Some(3));
}
