//! Reading files of an image before it is mounted: the merged view of its
//! layer snapshots, as overlayfs would show it.

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

/// Read access to files of a container's root filesystem.
pub trait RootfsView {
    /// The contents of the regular file at `path` (absolute inside the
    /// container), or `None` if there is none.
    fn read_file(&self, path: &str) -> Option<Vec<u8>>;
}

/// The merged view of unpacked layer snapshots (top layer first).
///
/// Lookups walk the path a component at a time through the layers, like
/// overlayfs: an overlay whiteout (char device 0:0) hides lower entries, an
/// opaque directory (`trusted.overlay.opaque=y`) hides lower directories,
/// and a non-directory hides lower directories. Symlinks are resolved in
/// the merged view as if its root were `/` (`..` stops at the root), at
/// most [`MAX_SYMLINKS`] of them, so nothing an image contains can make a
/// lookup read a host file.
#[derive(Debug, Clone, Default)]
pub struct LayeredRootfs {
    /// Layer directories, top first.
    pub layers: Vec<PathBuf>,
}

/// Symlinks followed in one lookup before giving up (the kernel's ELOOP limit).
pub const MAX_SYMLINKS: usize = 40;
/// Files larger than this are not read (a hostile /etc/passwd).
const MAX_FILE: u64 = 16 << 20;
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

impl RootfsView for LayeredRootfs {
    fn read_file(&self, path: &str) -> Option<Vec<u8>> {
        let file = self.resolve(path)?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(file)
            .ok()?;
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        let mut out = Vec::new();
        f.take(MAX_FILE).read_to_end(&mut out).ok()?;
        Some(out)
    }
}

impl LayeredRootfs {
    /// The layer file that `path` names in the merged view, if it is a
    /// regular file.
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let all: Vec<usize> = (0..self.layers.len()).collect();
        let mut pending: Vec<String> = Vec::new(); // reversed: next component last
        push_path(&mut pending, path);
        // The directories resolved so far, each with the layers it shows.
        let mut stack: Vec<(String, Vec<usize>)> = Vec::new();
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                stack.pop();
                continue;
            }
            let visible = stack.last().map_or(&all, |(_, l)| l);
            let dir: PathBuf = stack.iter().map(|(n, _)| n.as_str()).collect();
            let mut found = None;
            for (pos, &layer) in visible.iter().enumerate() {
                match std::fs::symlink_metadata(self.layers[layer].join(&dir).join(&name)) {
                    Ok(m) => {
                        found = Some((pos, layer, m));
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(_) => return None,
                }
            }
            let (pos, layer, meta) = found?;
            let here = self.layers[layer].join(&dir).join(&name);
            let ft = meta.file_type();
            if is_whiteout(&meta) {
                return None;
            } else if ft.is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return None;
                }
                let target = std::fs::read_link(&here).ok()?;
                let target = target.to_str()?;
                if target.starts_with('/') {
                    stack.clear();
                }
                push_path(&mut pending, target);
            } else if ft.is_dir() {
                let mut shows = vec![layer];
                let mut opaque = is_opaque(&here);
                for &lower in &visible[pos + 1..] {
                    if opaque {
                        break;
                    }
                    let p = self.layers[lower].join(&dir).join(&name);
                    match std::fs::symlink_metadata(&p) {
                        Ok(m) if m.is_dir() => {
                            shows.push(lower);
                            opaque = is_opaque(&p);
                        }
                        Ok(_) => break, // whiteout or non-directory hides the rest
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(_) => break,
                    }
                }
                stack.push((name, shows));
            } else if pending.is_empty() && ft.is_file() {
                return Some(here);
            } else {
                return None; // a non-directory in the middle, or a special file
            }
        }
        None // a directory
    }
}

impl LayeredRootfs {
    /// Checks that `sub` (relative, `/`-separated) names a directory of the
    /// merged view reached without a symlink or `..` (an image volume's sub
    /// path, which the kernel then resolves on the mounted tree: confined
    /// only if nothing on the way can lead elsewhere). Says why not.
    pub fn plain_directory(&self, sub: &str) -> Result<(), String> {
        let mut visible: Vec<usize> = (0..self.layers.len()).collect();
        let mut dir = PathBuf::new();
        for name in sub.split('/').filter(|c| !c.is_empty() && *c != ".") {
            if name == ".." {
                return Err("leaves the image (`..`)".into());
            }
            let shown = dir.join(name);
            let mut shows = Vec::new();
            let mut opaque = false;
            for &layer in &visible {
                if opaque {
                    break;
                }
                let p = self.layers[layer].join(&shown);
                let meta = match std::fs::symlink_metadata(&p) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(format!("{}: {e}", shown.display())),
                };
                let ft = meta.file_type();
                if shows.is_empty() {
                    if is_whiteout(&meta) {
                        break;
                    }
                    if ft.is_symlink() {
                        return Err(format!("{} is a symbolic link", shown.display()));
                    }
                    if !ft.is_dir() {
                        return Err(format!("{} is not a directory", shown.display()));
                    }
                } else if !ft.is_dir() {
                    break; // a whiteout or non-directory hides the rest
                }
                shows.push(layer);
                opaque = is_opaque(&p);
            }
            if shows.is_empty() {
                return Err(format!("{} does not exist in the image", shown.display()));
            }
            visible = shows;
            dir = shown;
        }
        Ok(())
    }
}

/// Pushes the components of `path` onto `pending` (reversed), dropping
/// empty and `.` parts.
fn push_path(pending: &mut Vec<String>, path: &str) {
    pending.extend(
        path.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .rev()
            .map(str::to_string),
    );
}

fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut buf), Ok(1) if buf[0] == b'y')
}

/// A view of a single directory tree, for tests and unpacked root
/// filesystems (same confinement rules as [`LayeredRootfs`]).
pub fn single_layer(dir: &Path) -> LayeredRootfs {
    LayeredRootfs {
        layers: vec![dir.to_path_buf()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    use std::os::unix::fs::symlink;

    fn write(root: &Path, rel: &str, body: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }

    fn whiteout(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        mknod(&p, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).expect("mknod (needs root)");
    }

    fn read(v: &LayeredRootfs, p: &str) -> Option<String> {
        v.read_file(p).map(|b| String::from_utf8(b).expect("utf8"))
    }

    #[test]
    fn plain_directories_of_the_merged_view() {
        let t = tempfile::tempdir().expect("tempdir");
        let (top, low) = (t.path().join("top"), t.path().join("low"));
        write(&low, "data/sub/f", "x");
        write(&low, "gone/f", "x");
        write(&low, "file", "x");
        write(&top, "data/top-only/f", "x");
        whiteout(&top, "gone");
        symlink("data", top.join("link")).expect("symlink");
        symlink("/", low.join("data/escape")).expect("symlink");
        let v = LayeredRootfs {
            layers: vec![top, low],
        };
        for ok in ["", ".", "data", "data/", "./data/sub", "data/top-only"] {
            assert_eq!(v.plain_directory(ok), Ok(()), "{ok:?}");
        }
        let why = |sub: &str| v.plain_directory(sub).expect_err(sub);
        assert!(why("nope").contains("does not exist"), "{}", why("nope"));
        assert!(why("gone").contains("does not exist"), "whited out");
        assert!(why("data/nope").contains("data/nope does not exist"));
        assert!(why("file").contains("not a directory"));
        assert!(why("data/sub/f").contains("not a directory"));
        assert!(why("link").contains("symbolic link"));
        assert!(why("link/sub").contains("symbolic link"));
        assert!(why("data/escape").contains("symbolic link"));
        assert!(why("data/..").contains("`..`"));
        assert!(why("../x").contains("`..`"));
    }

    #[test]
    fn upper_layers_win_and_whiteouts_hide() {
        let t = tempfile::tempdir().expect("tempdir");
        let (top, mid, low) = (
            t.path().join("top"),
            t.path().join("mid"),
            t.path().join("low"),
        );
        write(&low, "etc/passwd", "low");
        write(&low, "etc/group", "low-group");
        write(&low, "etc/hosts", "low-hosts");
        write(&mid, "etc/passwd", "mid");
        whiteout(&mid, "etc/group");
        write(&top, "etc/other", "x");
        let v = LayeredRootfs {
            layers: vec![top.clone(), mid.clone(), low.clone()],
        };
        assert_eq!(read(&v, "/etc/passwd").as_deref(), Some("mid"));
        assert_eq!(read(&v, "/etc/group"), None);
        assert_eq!(read(&v, "/etc/hosts").as_deref(), Some("low-hosts"));
        assert_eq!(read(&v, "etc/./hosts").as_deref(), Some("low-hosts"));
        assert_eq!(read(&v, "/etc"), None);
        assert_eq!(read(&v, "/nope"), None);
        // A whole directory whited out.
        let gone = t.path().join("gone");
        whiteout(&gone, "etc");
        let v2 = LayeredRootfs {
            layers: vec![gone, mid, low],
        };
        assert_eq!(read(&v2, "/etc/hosts"), None);
    }

    #[test]
    fn opaque_directories_hide_lower_content() {
        let t = tempfile::tempdir().expect("tempdir");
        let (top, low) = (t.path().join("top"), t.path().join("low"));
        write(&low, "etc/passwd", "low");
        write(&low, "etc/group", "low-group");
        write(&top, "etc/passwd", "top");
        rustix::fs::setxattr(
            top.join("etc"),
            OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("set trusted xattr (needs root)");
        let v = LayeredRootfs {
            layers: vec![top, low],
        };
        assert_eq!(read(&v, "/etc/passwd").as_deref(), Some("top"));
        assert_eq!(read(&v, "/etc/group"), None);
    }

    #[test]
    fn files_hide_lower_directories() {
        let t = tempfile::tempdir().expect("tempdir");
        let (top, low) = (t.path().join("top"), t.path().join("low"));
        write(&low, "etc/passwd", "low");
        write(&top, "etc", "a file");
        let v = LayeredRootfs {
            layers: vec![top, low],
        };
        assert_eq!(read(&v, "/etc/passwd"), None);
    }

    #[test]
    fn symlinks_resolve_inside_the_merged_view() {
        let t = tempfile::tempdir().expect("tempdir");
        let host = t.path().join("host-secret");
        std::fs::write(&host, "secret").expect("write");
        let (top, low) = (t.path().join("top"), t.path().join("low"));
        write(&low, "real/etc/passwd", "real");
        write(&low, "etc2/x", "x");
        std::fs::create_dir_all(&top).expect("mkdir");
        // /etc -> /real/etc crosses layers: the link is in top, the target in low.
        symlink("/real/etc", top.join("etc")).expect("symlink");
        symlink("../../../../../real/etc/passwd", low.join("etc2/up")).expect("symlink");
        symlink(&host, top.join("abs-escape")).expect("symlink");
        symlink("../../../../host-secret", top.join("rel-escape")).expect("symlink");
        symlink("loop", top.join("loop")).expect("symlink");
        let v = LayeredRootfs {
            layers: vec![top, low],
        };
        assert_eq!(read(&v, "/etc/passwd").as_deref(), Some("real"));
        assert_eq!(read(&v, "/etc2/up").as_deref(), Some("real"));
        assert_eq!(read(&v, "/abs-escape"), None);
        assert_eq!(read(&v, "/rel-escape"), None);
        assert_eq!(read(&v, "/../../host-secret"), None);
        assert_eq!(read(&v, "/loop"), None);
    }
}
