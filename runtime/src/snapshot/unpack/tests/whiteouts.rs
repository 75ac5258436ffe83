use super::*;
use crate::snapshot::whiteout::OPAQUE_XATTR;

fn assert_whiteout(path: &Path) {
    let md = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert!(
        md.file_type().is_char_device(),
        "{path:?} is not a char device"
    );
    assert_eq!(md.rdev(), 0, "{path:?} is not 0:0");
}

fn opaque(path: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 16];
    let n = rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let mut l = Layer::new();
    l.file(".wh.gone", b"", 0o644, 0, 0)
        .dir("dir/", 0o755)
        .file("dir/.wh.file", b"", 0o644, 0, 0)
        // The parent of a whiteout need not be in the layer.
        .file("deep/er/.wh..hidden", b"", 0o644, 0, 0)
        // A whiteout replaces what an earlier entry of the layer put there.
        .file("dir/old", b"old", 0o644, 0, 0)
        .file("dir/.wh.old", b"", 0o644, 0, 0)
        .dir("opq/", 0o755)
        .file("opq/.wh..wh..opq", b"", 0o644, 0, 0)
        .file("opq/keep", b"kept", 0o644, 0, 0)
        .file("new/opq/.wh..wh..opq", b"", 0o644, 0, 0)
        .file(".wh..wh.plnk", b"", 0o644, 0, 0);
    let dirs = Dirs::new();
    dirs.unpack(&l.finish()).unwrap();
    let dest = dirs.dest();

    for p in ["gone", "dir/file", "deep/er/.hidden", "dir/old"] {
        assert_whiteout(&dest.join(p));
    }
    assert_eq!(opaque(&dest.join("opq")), Some(b"y".to_vec()));
    assert_eq!(opaque(&dest.join("new/opq")), Some(b"y".to_vec()));
    assert_eq!(opaque(&dest.join("dir")), None);
    assert_eq!(fs::read(dest.join("opq/keep")).unwrap(), b"kept");

    // No entry leaves a .wh.* file behind.
    let mut stack = vec![dest.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            assert!(
                !name.to_string_lossy().starts_with(".wh."),
                "{:?}",
                e.path()
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

#[test]
fn whiteout_naming_nothing_is_refused() {
    for name in [".wh.", "a/.wh.."] {
        let mut l = Layer::new();
        l.raw(EntryType::Regular, name.as_bytes(), b"", 0o644, b"");
        let dirs = Dirs::new();
        let err = dirs.unpack(&l.finish()).unwrap_err();
        assert!(matches!(err, Error::BadWhiteout { .. }), "{name}: {err}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}
