//! Fully qualified CDI device names (`vendor.com/class=name`) and the ones
//! a container asks for.

use corten_cri_api::v1 as cri;
use tonic::Status;

/// The annotation keys that carry device names (`cdi.k8s.io/<anything>`,
/// value `vendor.com/class=a[,vendor.com/class=b]`), as kubelet's device
/// plugins set them.
pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

/// The device names `c` asks for: its CDI_devices, then those of its CDI
/// annotations in key order, each once, in the order first seen. A name
/// that is not fully qualified is refused, naming it and where it came from.
pub fn requested(c: &cri::ContainerConfig) -> Result<Vec<String>, Status> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str, from: &dyn Fn() -> String| {
        if let Err(why) = parse(name) {
            return Err(Status::invalid_argument(format!(
                "{}: {name:?} is not a CDI device name (vendor.com/class=name): {why}",
                from()
            )));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
        Ok(())
    };
    for d in &c.cdi_devices {
        add(&d.name, &|| "config.CDI_devices".to_string())?;
    }
    let mut keys: Vec<&String> = c
        .annotations
        .keys()
        .filter(|k| k.starts_with(ANNOTATION_PREFIX))
        .collect();
    keys.sort();
    for key in keys {
        for name in c.annotations[key].split(',') {
            add(name, &|| format!("annotation {key:?}"))?;
        }
    }
    Ok(names)
}

/// Splits a fully qualified device name into its kind (`vendor.com/class`)
/// and its name, or says what is wrong with it.
pub fn parse(device: &str) -> Result<(&str, &str), String> {
    let (kind, name) = device
        .split_once('=')
        .ok_or_else(|| "no `=` before the device's own name".to_string())?;
    check_kind(kind)?;
    check_device_name(name)?;
    Ok((kind, name))
}

/// A kind, `vendor.com/class`: vendor and class each start with a letter,
/// end with a letter or digit, and have only letters, digits, `_`, `-`
/// and `.` between.
pub fn check_kind(kind: &str) -> Result<(), String> {
    let (vendor, class) = kind
        .split_once('/')
        .ok_or_else(|| format!("kind {kind:?} has no `/` between vendor and class"))?;
    check_segment("vendor", vendor)?;
    check_segment("class", class)
}

fn check_segment(what: &str, s: &str) -> Result<(), String> {
    let ok = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {s:?} must start with a letter, end with a letter or digit, \
             and have only letters, digits, `_`, `-`, `.`"
        ))
    }
}

/// A device's own name: starts and ends with a letter or digit, with only
/// letters, digits, `_`, `-`, `.` and `:` between.
pub fn check_device_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "device name {name:?} must start and end with a letter or digit, \
             and have only letters, digits, `_`, `-`, `.`, `:`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        assert_eq!(
            parse("vendor.com/gpu=0").expect("valid"),
            ("vendor.com/gpu", "0")
        );
        assert_eq!(
            parse("nvidia.com/gpu=GPU-4a:b_c.d").expect("valid"),
            ("nvidia.com/gpu", "GPU-4a:b_c.d")
        );
        for bad in [
            "",
            "gpu0",
            "vendor.com=gpu0",
            "vendor.com/gpu",
            "vendor.com/gpu=",
            "/dev/null",
            "vendor.com/gpu/x=0",
            "1vendor.com/gpu=0",
            "vendor.com/gpu-=0",
            "vendor.com/gpu=-0",
            "vendor.com/gpu=a b",
            "vendor.com/gpu=a=b",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn config(devices: &[&str], annotations: &[(&str, &str)]) -> cri::ContainerConfig {
        cri::ContainerConfig {
            cdi_devices: devices
                .iter()
                .map(|n| cri::CdiDevice {
                    name: n.to_string(),
                })
                .collect(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..cri::ContainerConfig::default()
        }
    }

    #[test]
    fn names_from_the_field_and_the_annotations_once_each() {
        let c = config(
            &["example.com/dev=b", "example.com/dev=a"],
            &[
                ("cdi.k8s.io/z-plugin", "example.com/dev=c,example.com/dev=a"),
                ("cdi.k8s.io/a-plugin", "example.com/dev=b,example.com/dev=d"),
                ("other.io/x", "not a device"),
            ],
        );
        assert_eq!(
            requested(&c).expect("valid"),
            [
                "example.com/dev=b",
                "example.com/dev=a",
                "example.com/dev=d",
                "example.com/dev=c"
            ]
        );
        assert!(requested(&config(&[], &[])).expect("none").is_empty());
    }

    #[test]
    fn malformed_names_are_refused_naming_them_and_their_source() {
        let e = requested(&config(&["gpu0"], &[])).expect_err("unqualified");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("CDI_devices"), "{}", e.message());
        assert!(e.message().contains("\"gpu0\""), "{}", e.message());
        let e = requested(&config(&[], &[("cdi.k8s.io/p", "example.com/dev=a,,")]))
            .expect_err("empty entry");
        assert!(e.message().contains("cdi.k8s.io/p"), "{}", e.message());
    }
}
