//! The CNI result a plugin chain returns (spec 1.0; 0.3.x/0.4.0 results have
//! the same shape for what is read here), and the error object plugins print.

use std::net::IpAddr;

use serde_json::Value;

/// The outcome of a successful ADD: what the chain's last plugin printed.
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    /// The result's `cniVersion`.
    pub cni_version: String,
    /// The interfaces created.
    pub interfaces: Vec<Interface>,
    /// The addresses assigned.
    pub ips: Vec<IpConfig>,
    /// The routes installed.
    pub routes: Vec<Route>,
    /// DNS settings, if a plugin returned any.
    pub dns: Dns,
    /// The result exactly as printed, passed on as `prevResult`.
    pub raw: Value,
}

/// One interface of a result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Interface {
    /// The interface name.
    pub name: String,
    /// Its MAC address, if reported.
    pub mac: Option<String>,
    /// The netns path it lives in; `None` for host-side interfaces.
    pub sandbox: Option<String>,
}

/// One assigned address.
#[derive(Debug, Clone, PartialEq)]
pub struct IpConfig {
    /// The address.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The gateway, if any.
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`], if given.
    pub interface: Option<usize>,
}

/// One route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The destination, as CIDR text.
    pub dst: String,
    /// The next hop, if any.
    pub gw: Option<IpAddr>,
}

/// DNS settings of a result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dns {
    /// Name servers.
    pub nameservers: Vec<String>,
    /// Local domain.
    pub domain: Option<String>,
    /// Search domains.
    pub search: Vec<String>,
    /// resolv.conf options.
    pub options: Vec<String>,
}

impl CniResult {
    /// Parses a plugin's stdout; `Err` says what is wrong.
    pub fn parse(raw: Value) -> Result<CniResult, String> {
        let obj = raw.as_object().ok_or("not a JSON object")?;
        let cni_version = obj
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let interfaces = list(obj.get("interfaces"), "interfaces")?
            .iter()
            .map(|i| Interface {
                name: str_of(i, "name").unwrap_or_default(),
                mac: str_of(i, "mac"),
                sandbox: str_of(i, "sandbox").filter(|s| !s.is_empty()),
            })
            .collect();
        let mut ips = Vec::new();
        for ip in list(obj.get("ips"), "ips")? {
            let cidr = str_of(ip, "address").ok_or("an ip has no address")?;
            let (address, prefix_len) = parse_cidr(&cidr)?;
            ips.push(IpConfig {
                address,
                prefix_len,
                gateway: parse_ip(ip.get("gateway"))?,
                interface: ip
                    .get("interface")
                    .and_then(Value::as_u64)
                    .and_then(|i| usize::try_from(i).ok()),
            });
        }
        let mut routes = Vec::new();
        for r in list(obj.get("routes"), "routes")? {
            routes.push(Route {
                dst: str_of(r, "dst").ok_or("a route has no dst")?,
                gw: parse_ip(r.get("gw"))?,
            });
        }
        let dns = obj.get("dns").map(parse_dns).unwrap_or_default();
        Ok(CniResult {
            cni_version,
            interfaces,
            ips,
            routes,
            dns,
            raw,
        })
    }

    /// The addresses on interfaces inside the pod's namespace (all of them
    /// when the result does not say which interface an address is on).
    pub fn pod_ips(&self) -> Vec<IpAddr> {
        self.ips
            .iter()
            .filter(
                |ip| match ip.interface.and_then(|i| self.interfaces.get(i)) {
                    Some(iface) => iface.sandbox.is_some(),
                    None => true,
                },
            )
            .map(|ip| ip.address)
            .collect()
    }
}

fn list<'a>(v: Option<&'a Value>, what: &str) -> Result<&'a [Value], String> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("`{what}` is not a list")),
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn parse_dns(v: &Value) -> Dns {
    Dns {
        nameservers: strings(v, "nameservers"),
        domain: str_of(v, "domain").filter(|d| !d.is_empty()),
        search: strings(v, "search"),
        options: strings(v, "options"),
    }
}

fn parse_ip(v: Option<&Value>) -> Result<Option<IpAddr>, String> {
    match v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("invalid IP address {s:?}")),
    }
}

fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let bad = || format!("invalid CIDR address {s:?}");
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok((addr, len))
}

/// The error object a failing plugin prints on stdout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PluginError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl PluginError {
    /// Reads the error object from `stdout`; falls back to `stderr` text
    /// (code 999, "unknown") when the plugin printed none.
    pub fn parse(stdout: &[u8], stderr: &[u8], status: &str) -> PluginError {
        let parsed: Option<Value> = serde_json::from_slice(stdout).ok();
        if let Some(obj) = parsed.as_ref().and_then(Value::as_object) {
            if let Some(msg) = obj.get("msg").and_then(Value::as_str) {
                return PluginError {
                    code: obj
                        .get("code")
                        .and_then(Value::as_u64)
                        .and_then(|c| u32::try_from(c).ok())
                        .unwrap_or(999),
                    msg: msg.to_string(),
                    details: obj
                        .get("details")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                };
            }
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        let mut details = text(stderr);
        if details.is_empty() {
            details = text(stdout);
        }
        PluginError {
            code: 999,
            msg: format!("plugin exited with {status} without a CNI error object"),
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_bridge_result() {
        let raw: Value = serde_json::from_str(
            r#"{"cniVersion":"1.0.0",
                "interfaces":[{"name":"cni0","mac":"aa:bb"},{"name":"veth1"},
                              {"name":"eth0","mac":"cc:dd","sandbox":"/run/netns/x"}],
                "ips":[{"address":"10.88.0.5/16","gateway":"10.88.0.1","interface":2}],
                "routes":[{"dst":"0.0.0.0/0"}],
                "dns":{"nameservers":["10.0.0.10"],"search":["a.b"]}}"#,
        )
        .expect("json");
        let r = CniResult::parse(raw).expect("parsed");
        assert_eq!(r.cni_version, "1.0.0");
        assert_eq!(r.interfaces.len(), 3);
        assert_eq!(r.interfaces[2].sandbox.as_deref(), Some("/run/netns/x"));
        assert_eq!(r.ips[0].address.to_string(), "10.88.0.5");
        assert_eq!(r.ips[0].prefix_len, 16);
        assert_eq!(
            r.ips[0].gateway.map(|g| g.to_string()).as_deref(),
            Some("10.88.0.1")
        );
        assert_eq!(r.pod_ips().len(), 1);
        assert_eq!(r.routes[0].dst, "0.0.0.0/0");
        assert_eq!(r.dns.nameservers, ["10.0.0.10"]);
        assert_eq!(r.dns.search, ["a.b"]);
    }

    #[test]
    fn refuses_bad_results() {
        for (body, why) in [
            ("[]", "not a JSON object"),
            (r#"{"ips":[{"address":"10.1.1.1"}]}"#, "invalid CIDR"),
            (r#"{"ips":[{"address":"10.1.1.1/33"}]}"#, "invalid CIDR"),
            (r#"{"ips":[{}]}"#, "no address"),
            (r#"{"ips":{}}"#, "not a list"),
            (r#"{"routes":[{"dst":"0/0","gw":"x"}]}"#, "invalid IP"),
        ] {
            let err = CniResult::parse(serde_json::from_str(body).expect("json")).expect_err(body);
            assert!(err.contains(why), "{body}: {err}");
        }
    }

    #[test]
    fn plugin_error_object_and_fallback() {
        let e = PluginError::parse(
            br#"{"code":7,"msg":"invalid config","details":"bad subnet"}"#,
            b"",
            "exit status: 1",
        );
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (7, "invalid config", "bad subnet")
        );
        let e = PluginError::parse(b"", b"panic: boom\n", "signal: 6");
        assert_eq!(e.code, 999);
        assert!(e.msg.contains("signal: 6"), "{}", e.msg);
        assert_eq!(e.details, "panic: boom");
    }
}
