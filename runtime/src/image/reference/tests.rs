use super::*;
use crate::ErrorKind;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn normalises_good_references() {
    let digest = format!("sha256:{HEX}");
    let cases: Vec<(String, String)> = vec![
        ("busybox".into(), "docker.io/library/busybox:latest".into()),
        (
            "busybox:1.36".into(),
            "docker.io/library/busybox:1.36".into(),
        ),
        ("user/app".into(), "docker.io/user/app:latest".into()),
        (
            "docker.io/busybox".into(),
            "docker.io/library/busybox:latest".into(),
        ),
        (
            "docker.io/library/busybox:1".into(),
            "docker.io/library/busybox:1".into(),
        ),
        (
            "index.docker.io/busybox".into(),
            "docker.io/library/busybox:latest".into(),
        ),
        (
            "registry-1.docker.io/user/app:v2".into(),
            "docker.io/user/app:v2".into(),
        ),
        ("localhost/x".into(), "localhost/x:latest".into()),
        ("localhost:5000/x:v1".into(), "localhost:5000/x:v1".into()),
        (
            "127.0.0.1:5000/library/busybox".into(),
            "127.0.0.1:5000/library/busybox:latest".into(),
        ),
        ("quay.io/a/b/c:tag".into(), "quay.io/a/b/c:tag".into()),
        (
            "Registry.Example.COM/x".into(),
            "Registry.Example.COM/x:latest".into(),
        ),
        ("[::1]:5000/repo:t".into(), "[::1]:5000/repo:t".into()),
        ("[fe80::1]/repo".into(), "[fe80::1]/repo:latest".into()),
        (
            "u/a.b-c_d__e---f9".into(),
            "docker.io/u/a.b-c_d__e---f9:latest".into(),
        ),
        (
            "busybox:v1.0_RC-1".into(),
            "docker.io/library/busybox:v1.0_RC-1".into(),
        ),
        (
            format!("busybox:{}", "t".repeat(128)),
            format!("docker.io/library/busybox:{}", "t".repeat(128)),
        ),
        // No registry without '.', ':' or "localhost": these are repositories.
        (
            "localhost".into(),
            "docker.io/library/localhost:latest".into(),
        ),
        (
            "localhost:5000".into(),
            "docker.io/library/localhost:5000".into(),
        ),
        ("myhost/app".into(), "docker.io/myhost/app:latest".into()),
        (
            format!("busybox@{digest}"),
            format!("docker.io/library/busybox@{digest}"),
        ),
        (
            format!("example.com/repo@{digest}"),
            format!("example.com/repo@{digest}"),
        ),
        (
            format!("repo:tag@{digest}"),
            format!("docker.io/library/repo:tag@{digest}"),
        ),
        (
            format!("localhost:5000/r:t@{digest}"),
            format!("localhost:5000/r:t@{digest}"),
        ),
    ];
    for (input, want) in cases {
        let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.to_string(), want, "input {input}");
        // The normal form is a fixed point.
        assert_eq!(Reference::parse(&want).unwrap(), r, "reparse of {want}");
    }
}

#[test]
fn exposes_parts() {
    let r = Reference::parse(&format!("127.0.0.1:5000/library/busybox:1@sha256:{HEX}")).unwrap();
    assert_eq!(r.registry(), "127.0.0.1:5000");
    assert_eq!(r.repository(), "library/busybox");
    assert_eq!(r.tag(), Some("1"));
    assert_eq!(r.digest().map(|d| d.hex()), Some(HEX));
    assert_eq!(r.name(), "127.0.0.1:5000/library/busybox");

    let r: Reference = format!("busybox@sha256:{HEX}").parse().unwrap();
    assert_eq!(r.tag(), None, "no tag is added when a digest is given");
    assert_eq!(r.name(), "docker.io/library/busybox");
}

#[test]
fn familiar_form() {
    let cases = [
        ("busybox", "busybox:latest"),
        ("docker.io/library/busybox:1", "busybox:1"),
        ("user/app", "user/app:latest"),
        ("docker.io/library/a/b", "library/a/b:latest"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
    ];
    for (input, want) in cases {
        assert_eq!(Reference::parse(input).unwrap().familiar(), want, "{input}");
    }
}

#[test]
fn rejects_bad_references_with_reason() {
    let long_path = format!("example.com/{}", "a".repeat(250));
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "empty reference"),
        (" busybox".into(), "whitespace"),
        ("busy box".into(), "whitespace"),
        ("busybox\n".into(), "whitespace"),
        ("Busybox".into(), "must be lowercase"),
        ("user/App:latest".into(), "must be lowercase"),
        ("busybox:".into(), "empty tag"),
        ("busybox:-x".into(), "tag must start"),
        ("busybox:a+b".into(), "tag may only contain"),
        (
            format!("busybox:{}", "t".repeat(129)),
            "tag longer than 128",
        ),
        ("busybox@".into(), "expected algorithm:hex"),
        (
            "busybox@sha256:abc".into(),
            "needs 64 hex characters, got 3",
        ),
        (
            format!("busybox@sha256:{}", HEX.to_uppercase()),
            "lowercase hexadecimal",
        ),
        (format!("busybox@md5:{HEX}"), "unsupported algorithm"),
        (format!("a@b@sha256:{HEX}"), "unsupported algorithm"),
        (format!("@sha256:{HEX}"), "empty repository name"),
        (":tag".into(), "empty repository name"),
        ("a//b".into(), "invalid repository path component \"\""),
        ("a/".into(), "invalid repository path component"),
        ("localhost/".into(), "invalid repository path component"),
        ("-a".into(), "invalid repository path component \"-a\""),
        ("a-".into(), "invalid repository path component"),
        ("a..b".into(), "invalid repository path component"),
        ("a___b".into(), "invalid repository path component"),
        ("a.-b".into(), "invalid repository path component"),
        (
            "busybox:tag:tag".into(),
            "invalid repository path component",
        ),
        ("exa_mple.com/x".into(), "invalid host name"),
        ("-bad.com/x".into(), "invalid host name"),
        ("localhost:/x".into(), "port must be 1 to 5 digits"),
        ("localhost:12a/x".into(), "port must be 1 to 5 digits"),
        ("[::1/x".into(), "unclosed"),
        ("[zz]:5000/x".into(), "invalid IPv6 address"),
        (HEX.into(), "image id"),
        (long_path, "at most 255 allowed"),
    ];
    for (input, reason) in cases {
        let err = match Reference::parse(&input) {
            Ok(r) => panic!("{input:?} parsed as {r}"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(
            msg.contains(reason),
            "{input:?}: got {msg:?}, want {reason:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{input:?}");
    }
}

#[test]
fn name_length_limit_counts_normalised_name() {
    // "docker.io/" (10) + 245 = 255: the longest allowed.
    let ok = format!("u/{}", "a".repeat(243));
    assert_eq!(Reference::parse(&ok).unwrap().name().len(), 255);
    let too_long = format!("u/{}", "a".repeat(244));
    assert!(Reference::parse(&too_long).is_err());
}

#[test]
fn path_component_grammar() {
    for good in [
        "a",
        "a1",
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "a.b_c__d-e",
    ] {
        assert!(is_path_component(good), "{good}");
    }
    for bad in [
        "", "A", "_a", "a_", "a._b", "a...b", "a___b", "a.", ".a", "a/b", "a:b",
    ] {
        assert!(!is_path_component(bad), "{bad}");
    }
}
