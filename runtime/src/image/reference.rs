//! Image references (`[registry/]repository[:tag][@digest]`), parsed and
//! normalised the way the container ecosystem does: a bare `busybox` means
//! `docker.io/library/busybox:latest`.

use std::fmt;
use std::str::FromStr;

use super::{Digest, Error};

/// The registry that names without a registry host refer to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag assumed when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest `registry/repository` name accepted.
pub const NAME_MAX: usize = 255;
/// Longest tag accepted.
pub const TAG_MAX: usize = 128;

/// Other spellings of [`DEFAULT_REGISTRY`], normalised to it.
const DEFAULT_REGISTRY_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];

/// A validated, normalised image reference.
///
/// Invariants: `registry` is a valid host (with optional port), `repository`
/// is a valid lowercase path, and at least one of `tag` and `digest` is set
/// (a reference without either gets the tag `latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises an image reference.
    pub fn parse(input: &str) -> Result<Reference, Error> {
        let invalid = |reason: String| Error::InvalidReference {
            reference: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(invalid("empty reference".into()));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("contains whitespace or control characters".into()));
        }
        if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "a 64-character hex string is an image id, not a repository name".into(),
            ));
        }

        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let digest = Digest::parse(digest).map_err(|e| Error::ReferenceDigest {
                    reference: input.to_string(),
                    source: Box::new(e),
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };

        // A ':' after the last '/' starts the tag; one before it is a port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(|r| invalid(r.to_string()))?;
        }
        if name.is_empty() {
            return Err(invalid("empty repository name".into()));
        }

        let (registry, path) = split_registry(name);
        check_registry(registry).map_err(|r| invalid(format!("registry {registry:?}: {r}")))?;
        let registry = if DEFAULT_REGISTRY_ALIASES.contains(&registry) {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        check_repository(&repository).map_err(invalid)?;

        let name_len = registry.len() + 1 + repository.len();
        if name_len > NAME_MAX {
            return Err(invalid(format!(
                "name is {name_len} characters long, at most {NAME_MAX} allowed"
            )));
        }

        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with port if one was given (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` is filled in when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form users type: `docker.io/` and `library/` left out.
    pub fn familiar(&self) -> String {
        let name = if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        let mut out = name;
        self.push_suffix(&mut out);
        out
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Splits off the first path component when it names a registry host: it
/// does if it contains `.` or `:` or is `localhost`.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

/// A host name, IPv4 address or bracketed IPv6 address, optionally `:port`.
fn check_registry(registry: &str) -> Result<(), &'static str> {
    let port = if let Some(v6) = registry.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unclosed '[' in IPv6 address")?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err("invalid IPv6 address");
        }
        if after.is_empty() {
            None
        } else {
            Some(after.strip_prefix(':').ok_or("junk after IPv6 address")?)
        }
    } else {
        let (host, port) = match registry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        };
        check_hostname(host)?;
        port
    };
    match port {
        Some(port)
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Err("port must be 1 to 5 digits")
        }
        _ => Ok(()),
    }
}

/// Dot-separated labels of letters, digits and inner hyphens.
fn check_hostname(host: &str) -> Result<(), &'static str> {
    for label in host.split('.') {
        let bytes = label.as_bytes();
        let ok = !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-');
        if !ok {
            return Err("invalid host name");
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), &'static str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    match bytes.first() {
        None => Err("empty tag"),
        Some(_) if bytes.len() > TAG_MAX => Err("tag longer than 128 characters"),
        Some(&first) if !word(first) => Err("tag must start with a letter, digit or '_'"),
        Some(_) if !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-') => {
            Err("tag may only contain letters, digits, '_', '.' and '-'")
        }
        Some(_) => Ok(()),
    }
}

/// Lowercase path components separated by `/`.
fn check_repository(repository: &str) -> Result<(), String> {
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("repository name {repository:?} must be lowercase"));
    }
    for component in repository.split('/') {
        if !is_path_component(component) {
            return Err(format!(
                "invalid repository path component {component:?} (want lowercase letters \
                 and digits, joined by '.', '_', '__' or dashes)"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`: runs of lowercase alphanumerics
/// joined by one separator each.
fn is_path_component(component: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut rest = component.as_bytes();
    loop {
        let run = rest.iter().take_while(|b| alnum(b)).count();
        if run == 0 {
            return false;
        }
        rest = &rest[run..];
        if rest.is_empty() {
            return true;
        }
        let sep = rest.iter().take_while(|b| !alnum(b)).count();
        let ok = match &rest[..sep] {
            b"." | b"_" | b"__" => true,
            s => s.iter().all(|&b| b == b'-'),
        };
        if !ok {
            return false;
        }
        rest = &rest[sep..];
    }
}

#[cfg(test)]
mod tests;
