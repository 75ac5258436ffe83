use super::*;

/// Content and mtime of a host file, to show it was not touched.
fn snapshot(path: &str) -> (Vec<u8>, i64, u64) {
    let md = fs::symlink_metadata(path).unwrap();
    (fs::read(path).unwrap(), md.mtime(), md.nlink())
}

fn expect_err(dirs: &Dirs, tar: &[u8]) -> Error {
    let err = dirs.unpack(tar).unwrap_err();
    dirs.assert_outer_untouched();
    err
}

#[test]
fn dotdot_names_are_refused() {
    for name in [
        "../escape",
        "a/../../escape",
        "/../escape",
        "./../../../../escape",
    ] {
        let mut l = Layer::new();
        l.raw(EntryType::Regular, name.as_bytes(), b"", 0o644, b"pwned");
        let dirs = Dirs::new();
        let err = expect_err(&dirs, &l.finish());
        assert!(matches!(err, Error::PathEscapes { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}

#[test]
fn dotdot_inside_the_root_is_fine() {
    let mut l = Layer::new();
    l.raw(EntryType::Regular, b"a/../b", b"", 0o644, b"b");
    let dirs = Dirs::new();
    dirs.unpack(&l.finish()).unwrap();
    assert_eq!(fs::read(dirs.dest().join("b")).unwrap(), b"b");
}

#[test]
fn absolute_names_are_relative_to_dest() {
    let mut l = Layer::new();
    l.raw(EntryType::Regular, b"/abs/path", b"", 0o644, b"in");
    let dirs = Dirs::new();
    dirs.unpack(&l.finish()).unwrap();
    assert_eq!(fs::read(dirs.dest().join("abs/path")).unwrap(), b"in");
    dirs.assert_outer_untouched();
}

#[test]
fn empty_name_is_refused() {
    let mut l = Layer::new();
    l.raw(EntryType::Regular, b"", b"", 0o644, b"x");
    let err = expect_err(&Dirs::new(), &l.finish());
    assert!(matches!(err, Error::EmptyName { .. }), "{err}");
    let mut l = Layer::new();
    l.raw(EntryType::Regular, b"./", b"", 0o644, b"x");
    let err = expect_err(&Dirs::new(), &l.finish());
    assert!(matches!(err, Error::EmptyName { .. }), "{err}");
}

#[test]
fn write_through_etc_symlink_stays_in_dest() {
    let before = snapshot("/etc/passwd");
    // `etc -> /etc` resolves, inside the root, to itself: a loop, refused.
    let mut l = Layer::new();
    l.symlink("etc", "/etc")
        .file("etc/passwd", b"pwned\n", 0o644, 0, 0);
    let dirs = Dirs::new();
    let err = expect_err(&dirs, &l.finish());
    assert!(matches!(err, Error::Fs { .. }), "{err}");
    assert!(err.to_string().contains("etc/passwd"), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(snapshot("/etc/passwd"), before);

    // When the absolute target exists inside dest, the write lands there.
    let mut l = Layer::new();
    l.dir("real/etc/", 0o755)
        .symlink("etc", "/real/etc")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644, 0, 0)
        .symlink("top", "/")
        .file("top/etc/group", b"root:x:0:\n", 0o644, 0, 0);
    let dirs = Dirs::new();
    dirs.unpack(&l.finish()).unwrap();
    let dest = dirs.dest();
    assert_eq!(
        fs::read(dest.join("real/etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    // top -> / -> dest, then etc -> /real/etc: dest/real/etc/group.
    assert_eq!(
        fs::read(dest.join("real/etc/group")).unwrap(),
        b"root:x:0:\n"
    );
    assert_eq!(snapshot("/etc/passwd"), before);
    dirs.assert_outer_untouched();
}

#[test]
fn write_through_dotdot_symlink_stays_in_dest() {
    let mut l = Layer::new();
    l.symlink("x", "../../..")
        .file("x/escaped", b"no", 0o644, 0, 0)
        .symlink("d/up", "../../../../..")
        .file("d/up/tmp/escaped2", b"no", 0o644, 0, 0);
    let dirs = Dirs::new();
    dirs.unpack(&l.finish()).unwrap();
    let dest = dirs.dest();
    assert_eq!(fs::read(dest.join("escaped")).unwrap(), b"no");
    assert_eq!(fs::read(dest.join("tmp/escaped2")).unwrap(), b"no");
    dirs.assert_outer_untouched();
}

#[test]
fn entries_replace_symlinks_instead_of_following_them() {
    let dirs = Dirs::new();
    let victim = dirs.outer.path().join("victim");
    let victim_dir = dirs.outer.path().join("victim_dir");
    fs::write(&victim, b"safe").unwrap();
    fs::create_dir(&victim_dir).unwrap();
    fs::set_permissions(&victim_dir, fs::Permissions::from_mode(0o700)).unwrap();

    let mut l = Layer::new();
    l.symlink("f", victim.to_str().unwrap())
        .file("f", b"replaced", 0o666, 0, 0)
        .symlink("d", victim_dir.to_str().unwrap())
        .dir("d/", 0o777)
        .symlink("n", victim.to_str().unwrap())
        .node("n", EntryType::Fifo, 0o666, (0, 0));
    dirs.unpack(&l.finish()).unwrap();
    let dest = dirs.dest();
    assert_eq!(fs::read(&victim).unwrap(), b"safe");
    assert_eq!(fs::metadata(&victim).unwrap().mode() & 0o777, 0o644);
    assert_eq!(fs::metadata(&victim_dir).unwrap().mode() & 0o777, 0o700);
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"replaced");
    assert!(fs::symlink_metadata(dest.join("d")).unwrap().is_dir());
    assert!(fs::symlink_metadata(dest.join("n"))
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn hardlink_to_host_file_is_refused() {
    let before = snapshot("/etc/passwd");
    for (setup, target) in [
        (None, "/etc/passwd"),
        (None, "../../../../etc/passwd"),
        (Some(("up", "../../../../..")), "up/etc/passwd"),
        (Some(("etc", "/etc")), "etc/passwd"),
    ] {
        let mut l = Layer::new();
        if let Some((name, to)) = setup {
            l.symlink(name, to);
        }
        l.hardlink("stolen", target);
        let dirs = Dirs::new();
        let err = expect_err(&dirs, &l.finish());
        assert!(matches!(err, Error::BadHardlink { .. }), "{target}: {err}");
        let msg = err.to_string();
        assert!(msg.contains("stolen") && msg.contains(target), "{msg}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(fs::symlink_metadata(dirs.dest().join("stolen")).is_err());
    }
    assert_eq!(snapshot("/etc/passwd"), before);
}

#[test]
fn hardlink_to_symlink_links_the_symlink_itself() {
    let mut l = Layer::new();
    l.symlink("s", "/etc/passwd").hardlink("h", "s");
    let dirs = Dirs::new();
    dirs.unpack(&l.finish()).unwrap();
    let dest = dirs.dest();
    let h = fs::symlink_metadata(dest.join("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(h.ino(), fs::symlink_metadata(dest.join("s")).unwrap().ino());
    assert_ne!(h.ino(), fs::metadata("/etc/passwd").unwrap().ino());
}

#[test]
fn hardlink_to_absent_or_directory_target_is_refused() {
    for (target, reason) in [
        ("nothere", "not in the layer"),
        ("dir/nothere", "not in the layer"),
        ("dir", "is a directory"),
        ("self", "not in the layer"),
    ] {
        let mut l = Layer::new();
        l.dir("dir/", 0o755).hardlink("self", "self");
        let mut l2 = Layer::new();
        l2.dir("dir/", 0o755).hardlink("link", target);
        let tar = if target == "self" {
            l.finish()
        } else {
            l2.finish()
        };
        let err = expect_err(&Dirs::new(), &tar);
        assert!(err.to_string().contains(reason), "{target}: {err}");
    }
}

#[test]
fn corrupt_streams_are_errors_not_panics() {
    let tar = sample_layer();
    let gz = gzip(&tar);
    let zst = zstd(&tar);
    let mut flipped = gz.clone();
    let mid = flipped.len() / 2;
    flipped[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0x5a);
    let mut bad_header = tar.clone();
    bad_header[0] ^= 0xff; // breaks the first header's checksum
    let cases: Vec<(&str, Compression, Vec<u8>)> = vec![
        (
            "truncated gzip",
            Compression::Gzip,
            gz[..gz.len() / 2].to_vec(),
        ),
        (
            "gzip without trailer",
            Compression::Gzip,
            gz[..gz.len() - 4].to_vec(),
        ),
        ("flipped gzip", Compression::Gzip, flipped),
        ("not gzip", Compression::Gzip, tar.clone()),
        (
            "truncated zstd",
            Compression::Zstd,
            zst[..zst.len() / 2].to_vec(),
        ),
        ("not zstd", Compression::Zstd, tar.clone()),
        (
            "truncated tar",
            Compression::None,
            tar[..1024 + 10].to_vec(),
        ),
        ("bad header checksum", Compression::None, bad_header),
    ];
    for (what, compression, blob) in cases {
        let dirs = Dirs::new();
        let err = unpack_layer(&blob[..], compression, &dirs.dest()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{what}: {err}");
        dirs.assert_outer_untouched();
    }
}

/// A reader that fails like a dropped connection after some bytes.
struct Flaky<'a>(&'a [u8]);

impl Read for Flaky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "peer went away",
            ));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn source_failure_is_internal() {
    let tar = sample_layer();
    let dirs = Dirs::new();
    let err = unpack_layer(Flaky(&tar[..2048]), Compression::None, &dirs.dest()).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Internal);
}

#[test]
fn unsupported_entry_type_is_refused() {
    let mut l = Layer::new();
    l.raw(EntryType::new(b'V'), b"volume", b"", 0o644, b"");
    let err = expect_err(&Dirs::new(), &l.finish());
    assert!(
        matches!(err, Error::UnsupportedType { type_byte: 'V', .. }),
        "{err}"
    );
}

#[test]
fn missing_dest_is_internal() {
    let dirs = Dirs::new();
    let err = unpack_layer(
        &sample_layer()[..],
        Compression::None,
        &dirs.outer.path().join("no"),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Dest { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Internal);
}
