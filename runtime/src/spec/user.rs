//! The user a container runs as, resolved through the image's /etc/passwd
//! and /etc/group (numeric ids need neither file).

use super::{Error, RootfsView, Security};

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// The primary gid, the user's groups from /etc/group, then the
    /// supplemental groups; without repeats.
    pub additional_gids: Vec<u32>,
    /// The home directory from /etc/passwd.
    pub home: Option<String>,
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves the user: the security context's uid or user name when set,
/// else the image's `User` (`name`, `uid`, `name:group`, `uid:gid`), else root.
pub(super) fn resolve(
    sec: &Security,
    image_user: Option<&str>,
    rootfs: &dyn RootfsView,
) -> Result<ResolvedUser, Error> {
    let passwd = read_passwd(rootfs);
    let groups = read_groups(rootfs);
    let by_uid = |uid: u32| passwd.iter().find(|p| p.uid == uid);
    let by_name = |name: &str| {
        passwd
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::UnknownUser(name.to_string()))
    };

    let (uid, mut gid, entry, group_spec) = if let Some(uid) = sec.run_as_user {
        let e = by_uid(uid);
        (uid, e.map_or(0, |e| e.gid), e, None)
    } else if let Some(name) = &sec.run_as_username {
        let e = by_name(name)?;
        (e.uid, e.gid, Some(e), None)
    } else {
        let spec = image_user.unwrap_or("").trim();
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let (uid, gid, e) = match u.parse::<u32>() {
            _ if u.is_empty() => (0, by_uid(0).map_or(0, |e| e.gid), by_uid(0)),
            Ok(uid) => (uid, by_uid(uid).map_or(0, |e| e.gid), by_uid(uid)),
            Err(_) => {
                let e = by_name(u)?;
                (e.uid, e.gid, Some(e))
            }
        };
        (uid, gid, e, g.filter(|g| !g.is_empty()))
    };
    if let Some(g) = group_spec {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|gr| gr.name == g)
                .map(|gr| gr.gid)
                .ok_or_else(|| Error::UnknownGroup(g.to_string()))?,
        };
    }
    if let Some(g) = sec.run_as_group {
        gid = g;
    }

    let mut additional = vec![gid];
    if let Some(e) = entry.filter(|_| !sec.strict_supplemental_groups) {
        additional.extend(
            groups
                .iter()
                .filter(|g| g.members.contains(&e.name))
                .map(|g| g.gid),
        );
    }
    additional.extend(&sec.supplemental_groups);
    let mut seen = std::collections::HashSet::new();
    additional.retain(|g| seen.insert(*g));

    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
    })
}

fn lines(rootfs: &dyn RootfsView, path: &str) -> Vec<Vec<String>> {
    let Some(bytes) = rootfs.read_file(path) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

fn read_passwd(rootfs: &dyn RootfsView) -> Vec<Passwd> {
    lines(rootfs, "/etc/passwd")
        .into_iter()
        .filter_map(|f| {
            Some(Passwd {
                name: f.first()?.clone(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

fn read_groups(rootfs: &dyn RootfsView) -> Vec<Group> {
    lines(rootfs, "/etc/group")
        .into_iter()
        .filter_map(|f| {
            Some(Group {
                name: f.first()?.clone(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|m| !m.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An in-memory root filesystem.
    pub(crate) struct Files(pub HashMap<&'static str, &'static str>);

    impl RootfsView for Files {
        fn read_file(&self, path: &str) -> Option<Vec<u8>> {
            self.0.get(path).map(|s| s.as_bytes().to_vec())
        }
    }

    fn image() -> Files {
        Files(HashMap::from([
            (
                "/etc/passwd",
                "# comment\nroot:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n\
                 app:x:1000:1000:App:/home/app:/bin/sh\nbroken:x:notanumber:1\n",
            ),
            (
                "/etc/group",
                "root:x:0:\nwww:x:33:\napp:x:1000:\nwheel:x:10:app,root\naudio:x:29:app\n",
            ),
        ]))
    }

    fn image_user(u: &str) -> Result<ResolvedUser, Error> {
        resolve(&Security::default(), Some(u), &image())
    }

    #[test]
    fn image_user_forms() {
        let r = image_user("app").expect("name");
        assert_eq!((r.uid, r.gid), (1000, 1000));
        assert_eq!(r.additional_gids, [1000, 10, 29]);
        assert_eq!(r.home.as_deref(), Some("/home/app"));
        let r = image_user("1000").expect("uid");
        assert_eq!(
            (r.uid, r.gid, r.home.as_deref()),
            (1000, 1000, Some("/home/app"))
        );
        let r = image_user("app:www").expect("name:group");
        assert_eq!((r.uid, r.gid), (1000, 33));
        assert_eq!(r.additional_gids, [33, 10, 29]);
        let r = image_user("33:10").expect("uid:gid");
        assert_eq!((r.uid, r.gid), (33, 10));
        let r = image_user("").expect("root");
        assert_eq!((r.uid, r.gid, r.home.as_deref()), (0, 0, Some("/root")));
        assert_eq!(r.additional_gids, [0, 10]);
    }

    #[test]
    fn supplemental_group_policies() {
        let merge = Security {
            run_as_user: Some(1000),
            supplemental_groups: vec![1234],
            ..Default::default()
        };
        let r = resolve(&merge, None, &image()).expect("merge");
        assert_eq!(r.additional_gids, [1000, 10, 29, 1234]);
        let strict = Security {
            strict_supplemental_groups: true,
            ..merge
        };
        let r = resolve(&strict, None, &image()).expect("strict");
        assert_eq!(r.additional_gids, [1000, 1234]);
    }

    #[test]
    fn unknown_names_are_errors_naming_them() {
        let e = image_user("nobody-here").expect_err("unknown user");
        assert!(e.to_string().contains("nobody-here"), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let e = image_user("app:nogroup").expect_err("unknown group");
        assert!(e.to_string().contains("nogroup"), "{e}");
        let sec = Security {
            run_as_username: Some("ghost".into()),
            ..Default::default()
        };
        assert!(resolve(&sec, None, &image()).is_err());
    }

    #[test]
    fn numeric_ids_need_no_files() {
        let empty = Files(HashMap::new());
        let r = resolve(&Security::default(), Some("4242:4343"), &empty).expect("numeric");
        assert_eq!((r.uid, r.gid, r.home), (4242, 4343, None));
        assert_eq!(r.additional_gids, [4343]);
        let r = resolve(&Security::default(), Some("4242"), &empty).expect("uid only");
        assert_eq!((r.uid, r.gid), (4242, 0));
        assert!(resolve(&Security::default(), Some("app"), &empty).is_err());
    }

    #[test]
    fn security_context_overrides_the_image() {
        let sec = Security {
            run_as_user: Some(33),
            supplemental_groups: vec![5000, 33],
            ..Default::default()
        };
        let r = resolve(&sec, Some("app"), &image()).expect("run_as_user");
        assert_eq!(
            (r.uid, r.gid, r.home.as_deref()),
            (33, 33, Some("/var/www"))
        );
        assert_eq!(r.additional_gids, [33, 5000]);
        let sec = Security {
            run_as_username: Some("app".into()),
            run_as_group: Some(7),
            ..Default::default()
        };
        let r = resolve(&sec, Some("root"), &image()).expect("run_as_username");
        assert_eq!((r.uid, r.gid), (1000, 7));
        assert_eq!(r.additional_gids, [7, 10, 29]);
    }
}
