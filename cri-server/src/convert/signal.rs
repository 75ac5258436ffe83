//! CRI `Signal` (ContainerConfig/ContainerStatus `stop_signal`) <-> the
//! signal names the runtime keeps and sends.
//!
//! A request's signal is kept by name: the enum's name, aliases written as
//! the signal they stand for (`SIGIOT` -> `SIGABRT`, `SIGCLD` -> `SIGCHLD`,
//! `SIGPOLL` -> `SIGIO`), real-time ones as `SIGRTMIN+N` / `SIGRTMAX-N`.
//! ContainerStatus reports the signal in effect, as the KEP-4960 ordering
//! says: the request's, else the image's `StopSignal`, else SIGTERM (the
//! signal StopContainer really sends: never RUNTIME_DEFAULT). An image
//! signal the enum cannot name (none today on Linux) is reported as
//! RUNTIME_DEFAULT.

use corten_cri_api::v1 as cri;
use corten_runtime::container::stop_signal;
use tonic::Status;

use super::validate::invalid;

/// The runtime's name of CRI signal `value`; `None` for RUNTIME_DEFAULT.
/// An unknown enum value is InvalidArgument naming `field`.
pub fn from_cri(field: &str, value: i32) -> Result<Option<String>, Status> {
    let signal = cri::Signal::try_from(value)
        .map_err(|_| invalid(field, format_args!("{value} is not a CRI Signal")))?;
    let name = signal.as_str_name();
    Ok(match signal {
        cri::Signal::RuntimeDefault => None,
        cri::Signal::Sigiot => Some("SIGABRT".into()),
        cri::Signal::Sigcld => Some("SIGCHLD".into()),
        cri::Signal::Sigpoll => Some("SIGIO".into()),
        _ => Some(if let Some(n) = name.strip_prefix("SIGRTMINPLUS") {
            format!("SIGRTMIN+{n}")
        } else if let Some(n) = name.strip_prefix("SIGRTMAXMINUS") {
            format!("SIGRTMAX-{n}")
        } else {
            name.to_string()
        }),
    })
}

/// The CRI signal of the runtime's signal `name` (`None`: SIGTERM, the
/// default StopContainer sends); RUNTIME_DEFAULT when the enum has no name
/// for it.
pub fn to_cri(name: Option<&str>) -> i32 {
    let Ok(number) = stop_signal(name) else {
        return cri::Signal::RuntimeDefault as i32;
    };
    let (min, max) = (libc_rtmin(), libc_rtmax());
    let enum_name = if number == min {
        "SIGRTMIN".to_string()
    } else if number == max {
        "SIGRTMAX".to_string()
    } else if number > min && number <= min + 15 {
        format!("SIGRTMINPLUS{}", number - min)
    } else if number < max && number >= max - 14 {
        format!("SIGRTMAXMINUS{}", max - number)
    } else {
        match nix::sys::signal::Signal::try_from(number) {
            Ok(s) => s.as_str().to_string(),
            Err(_) => return cri::Signal::RuntimeDefault as i32,
        }
    };
    cri::Signal::from_str_name(&enum_name)
        .map(|s| s as i32)
        .unwrap_or(cri::Signal::RuntimeDefault as i32)
}

fn libc_rtmin() -> i32 {
    nix::libc::SIGRTMIN()
}

fn libc_rtmax() -> i32 {
    nix::libc::SIGRTMAX()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_enum_value_round_trips_but_aliases() {
        for value in 1..=65 {
            let signal = cri::Signal::try_from(value).expect("a signal");
            let name = from_cri("stop_signal", value).expect("known");
            let name = name.expect("not the default");
            assert!(stop_signal(Some(&name)).is_ok(), "{name} is sendable");
            let back = to_cri(Some(&name));
            let expected = match signal {
                cri::Signal::Sigiot => cri::Signal::Sigabrt,
                cri::Signal::Sigcld => cri::Signal::Sigchld,
                cri::Signal::Sigpoll => cri::Signal::Sigio,
                s => s,
            };
            assert_eq!(back, expected as i32, "{name}");
        }
    }

    #[test]
    fn default_unknown_and_image_signals() {
        assert_eq!(from_cri("stop_signal", 0).expect("default"), None);
        let e = from_cri("config.stop_signal", 66).expect_err("unknown");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().contains("config.stop_signal"),
            "{}",
            e.message()
        );
        assert!(from_cri("stop_signal", -1).is_err());
        assert_eq!(to_cri(None), cri::Signal::Sigterm as i32);
        assert_eq!(to_cri(Some("quit")), cri::Signal::Sigquit as i32);
        assert_eq!(to_cri(Some("9")), cri::Signal::Sigkill as i32);
        assert_eq!(to_cri(Some("SIGNOPE")), cri::Signal::RuntimeDefault as i32);
    }
}
