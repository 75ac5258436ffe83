//! Removed containers' files: a removal renames its bundle and writable
//! layer into a trash directory beside them (one atomic step: a crash
//! leaves each either in place or in the trash, which the next start
//! empties), and one background thread deletes them from there, so no
//! request waits for a tree of files to go.

use std::path::Path;

/// The thread that deletes, one tree after the other (`None` if it
/// cannot start: then trees are deleted in place).
fn deleter() -> Option<&'static crate::blocking::SerialThread> {
    static DELETER: std::sync::OnceLock<Option<crate::blocking::SerialThread>> =
        std::sync::OnceLock::new();
    DELETER
        .get_or_init(
            || match crate::blocking::SerialThread::start("corten-delete") {
                Ok(thread) => Some(thread),
                Err(e) => {
                    tracing::warn!(error = %e, "removed containers' files are deleted in place");
                    None
                }
            },
        )
        .as_ref()
}

/// Deletes `dir` and everything below it; absent is fine.
fn delete_tree(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot delete; the next start does");
        }
    }
}

/// Hands `dir` to the deleting thread.
fn delete_later(dir: std::path::PathBuf) {
    match deleter() {
        Some(thread) => thread.submit(move || delete_tree(&dir)),
        None => delete_tree(&dir),
    }
}

/// Moves `dir` (absent is fine) into `trash` (on the same file system)
/// as `<name>-<nanos>` and has it deleted there; deletes it in place
/// where it cannot be moved. Blocking.
pub(super) fn discard(dir: &Path, trash: &Path, name: &str) {
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let aside = trash.join(format!("{name}-{unique}"));
    let mut moved = std::fs::rename(dir, &aside);
    if matches!(&moved, Err(e) if e.kind() == std::io::ErrorKind::NotFound) && dir.exists() {
        // The trash directory itself is missing.
        moved = std::fs::create_dir_all(trash).and_then(|()| std::fs::rename(dir, &aside));
    }
    match moved {
        Ok(()) => delete_later(aside),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot move aside; deleting in place");
            delete_tree(dir);
        }
    }
}

/// Has everything in the `trashes` deleted (at start: what a crash or a
/// shutdown left there).
pub(super) fn clear(trashes: &[&Path]) {
    for trash in trashes {
        let Ok(entries) = std::fs::read_dir(trash) else {
            continue;
        };
        for entry in entries.flatten() {
            delete_later(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::container::ContainerRuntime;
    use crate::layout::Layout;

    /// What is under `dir` (names), sorted; nothing if it is absent.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn until(mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "condition never held");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn removed_files_go_through_the_trash_and_a_start_empties_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(&tmp.path().join("root"), &tmp.path().join("state"));
        for dir in layout.dirs() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let rt = ContainerRuntime::new(
            layout.state_dir(),
            layout.root_dir(),
            Path::new("/bin/false"),
        );
        for id in ["a", "b"] {
            let upper = rt.writable_layer(id).join("upper/etc");
            std::fs::create_dir_all(&upper).expect("mkdir");
            std::fs::write(upper.join("f"), b"x").expect("write");
            std::fs::create_dir_all(rt.bundle(id)).expect("mkdir");
            std::fs::write(rt.bundle(id).join("config.json"), b"{}").expect("write");
        }

        rt.remove_files("a");
        // Gone from where a container's files live at once...
        assert!(!rt.bundle("a").exists() && !rt.writable_layer("a").exists());
        assert_eq!(rt.ids_on_disk(), vec!["b".to_string()]);
        // ...and deleted from the trash afterwards.
        until(|| {
            names(&layout.bundles_trash()).is_empty()
                && names(&layout.writable_layers_trash()).is_empty()
        });

        // A crash after the move: the trash holds it until the next start.
        std::fs::rename(
            rt.writable_layer("b"),
            layout.writable_layers_trash().join("b-1"),
        )
        .expect("rename");
        std::fs::rename(rt.bundle("b"), layout.bundles_trash().join("b-1")).expect("rename");
        rt.clear_trash();
        until(|| {
            names(&layout.bundles_trash()).is_empty()
                && names(&layout.writable_layers_trash()).is_empty()
        });

        // Nothing to remove is fine, and a missing trash is made again.
        std::fs::remove_dir(layout.bundles_trash()).expect("rmdir");
        std::fs::create_dir_all(rt.bundle("c")).expect("mkdir");
        rt.remove_files("c");
        rt.remove_files("never");
        assert!(!rt.bundle("c").exists());
        until(|| names(&layout.bundles_trash()).is_empty());
    }
}
