//! `DOCUSIGN_API_HOSTS`: the hosts a connection's `base_uri` may point at.
//!
//! A `base_uri` comes from DocuSign's userinfo and is stored in plain text;
//! every send posts the decrypted access token and the documents to it. So it
//! is checked twice: at the callback (an account on another host is not
//! usable) and before every send (a stored value someone rewrote is refused
//! before the token is decrypted). The check parses the URL as a URL (the
//! WHATWG parser of the `url` crate, the same one reqwest uses to connect),
//! so a look-alike such as `https://eu.docusign.net.attacker.example` or
//! `https://eu.docusign.net@attacker.example` names the host it really names.

use std::fmt;

use url::{Host, Url};

/// The default: every DocuSign eSignature API host (`na3.docusign.net`,
/// `eu.docusign.net`, `demo.docusign.net`, ...).
pub const DEFAULT_API_HOSTS: &str = "*.docusign.net";

/// One entry of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// `host` or `host:port`: this host exactly.
    Exact { host: String, port: Option<u16> },
    /// `*.domain` (optionally `:port`): any host below `domain`, not `domain` itself.
    Subdomains { domain: String, port: Option<u16> },
}

/// The parsed allow-list.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiHosts {
    patterns: Vec<Pattern>,
}

impl fmt::Debug for ApiHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiHosts(")?;
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match p {
                Pattern::Exact { host, .. } => write!(f, "{host}")?,
                Pattern::Subdomains { domain, .. } => write!(f, "*.{domain}")?,
            }
            let (Pattern::Exact { port, .. } | Pattern::Subdomains { port, .. }) = p;
            if let Some(port) = port {
                write!(f, ":{port}")?;
            }
        }
        f.write_str(")")
    }
}

/// Why a `base_uri` is not allowed (for logs; never shown to a browser).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostRefusal {
    #[error("not an absolute URL")]
    NotAUrl,
    #[error("scheme `{0}` is not https (http is allowed only on loopback hosts)")]
    Scheme(String),
    #[error("carries a user name or password")]
    Credentials,
    #[error("carries a path, query or fragment")]
    NotABase,
    #[error("host `{0}` is not in DOCUSIGN_API_HOSTS")]
    Host(String),
}

impl ApiHosts {
    /// Parses the variable's value: comma-separated `host`, `host:port`,
    /// `*.domain` or `*.domain:port`; `[::1]:port` for IPv6.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            patterns.push(parse_entry(entry)?);
        }
        if patterns.is_empty() {
            return Err("no host given".into());
        }
        Ok(Self { patterns })
    }

    /// Whether a token may be sent to `base_uri`.
    pub fn check(&self, base_uri: &str) -> Result<(), HostRefusal> {
        let url = Url::parse(base_uri).map_err(|_| HostRefusal::NotAUrl)?;
        let host = url.host().ok_or(HostRefusal::NotAUrl)?;
        let loopback = is_loopback(&host);
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            other => return Err(HostRefusal::Scheme(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(HostRefusal::Credentials);
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(HostRefusal::NotABase);
        }
        let name = host_key(&host);
        let port = url.port();
        let allowed = self.patterns.iter().any(|p| match p {
            Pattern::Exact { host, port: want } => *host == name && *want == port,
            Pattern::Subdomains { domain, port: want } => {
                *want == port
                    && name.len() > domain.len() + 1
                    && name.ends_with(domain.as_str())
                    && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
            }
        });
        if allowed {
            Ok(())
        } else {
            Err(HostRefusal::Host(name))
        }
    }

    pub fn allows(&self, base_uri: &str) -> bool {
        self.check(base_uri).is_ok()
    }
}

impl Default for ApiHosts {
    fn default() -> Self {
        Self::parse(DEFAULT_API_HOSTS).expect("the default parses")
    }
}

/// A host as the patterns compare it: lower-case domain, or an IP literal
/// (IPv6 in brackets).
fn host_key(host: &Host<&str>) -> String {
    match host {
        Host::Domain(d) => d.to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => format!("[{ip}]"),
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn parse_entry(entry: &str) -> Result<Pattern, String> {
    let bad = |why: &str| format!("`{entry}`: {why}");
    let (wild, rest) = match entry.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    // Let the URL parser normalise the host exactly as it will for a base_uri.
    let url = Url::parse(&format!("https://{rest}/")).map_err(|e| bad(&format!("not a host ({e})")))?;
    if url.path() != "/" || !url.username().is_empty() || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("expected `host`, `host:port` or `*.domain`"));
    }
    let host = url.host().ok_or_else(|| bad("no host"))?;
    // `Url` drops :443 for https; keep what was written.
    let port = explicit_port(rest).map_err(|e| bad(&e))?;
    let name = host_key(&host);
    if wild {
        match host {
            Host::Domain(d) if d.contains('.') || d.eq_ignore_ascii_case("localhost") => {}
            Host::Domain(_) => return Err(bad("a wildcard needs a domain with a dot, such as `*.docusign.net`")),
            _ => return Err(bad("a wildcard cannot stand before an IP address")),
        }
        Ok(Pattern::Subdomains { domain: name, port })
    } else {
        Ok(Pattern::Exact { host: name, port })
    }
}

fn explicit_port(hostport: &str) -> Result<Option<u16>, String> {
    let port = match hostport.strip_prefix('[') {
        Some(v6) => match v6.split_once(']').ok_or("unclosed `[`")?.1 {
            "" => None,
            rest => Some(rest.strip_prefix(':').ok_or("unexpected text after the host")?),
        },
        None => hostport.rsplit_once(':').map(|(_, p)| p),
    };
    port.map(|p| p.parse::<u16>().map_err(|_| format!("port `{p}` is not a number"))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(raw: &str) -> ApiHosts {
        ApiHosts::parse(raw).unwrap()
    }

    #[test]
    fn the_default_allows_docusign_api_hosts_over_https_only() {
        let h = ApiHosts::default();
        for ok in [
            "https://demo.docusign.net",
            "https://na3.docusign.net/",
            "https://EU.DocuSign.net",
            "https://a.b.docusign.net",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for (bad, why) in [
            ("http://demo.docusign.net", "plain http"),
            ("https://docusign.net", "the apex is not a subdomain"),
            ("https://eu.docusign.net.attacker.example", "look-alike suffix"),
            ("https://eu.docusign.net@attacker.example", "userinfo trick"),
            ("https://attacker.example#@eu.docusign.net", "fragment trick"),
            ("https://attacker.example\\@eu.docusign.net", "backslash trick"),
            ("https://evildocusign.net", "no dot before the domain"),
            ("https://eu.docusign.net.", "trailing dot"),
            ("https://eu.docusign.net:8443", "another port"),
            ("https://eu.docusign.net/restapi", "a path"),
            ("https://eu.docusign.net?x=1", "a query"),
            ("https://127.0.0.1", "loopback not listed"),
            ("//eu.docusign.net", "relative"),
            ("eu.docusign.net", "no scheme"),
            ("ftp://eu.docusign.net", "scheme"),
            ("", "empty"),
        ] {
            assert!(!h.allows(bad), "{bad} ({why})");
        }
    }

    #[test]
    fn look_alikes_name_the_host_they_really_name() {
        let h = ApiHosts::default();
        assert_eq!(
            h.check("https://eu.docusign.net.attacker.example"),
            Err(HostRefusal::Host("eu.docusign.net.attacker.example".into()))
        );
        assert_eq!(h.check("https://eu.docusign.net@attacker.example"), Err(HostRefusal::Credentials));
        // Percent-encoded and IDN hosts are compared after the parser
        // normalises them, as the HTTP client will connect to them.
        assert!(h.allows("https://eu%2edocusign%2enet"), "the host it names is eu.docusign.net");
        assert!(!h.allows("https://eu.docusign.net%2eattacker.example"));
        assert!(!h.allows("https://xn--docusign-.net"));
    }

    #[test]
    fn loopback_hosts_may_use_http_and_ports_must_match() {
        let h = hosts("127.0.0.1:8080, localhost:9000, [::1]:7000");
        assert!(h.allows("http://127.0.0.1:8080"));
        assert!(h.allows("https://127.0.0.1:8080"));
        assert!(!h.allows("http://127.0.0.1:8081"));
        assert!(!h.allows("http://127.0.0.1"));
        assert!(h.allows("http://localhost:9000"));
        assert!(h.allows("http://[::1]:7000"));
        assert!(!h.allows("http://127.0.0.2:8080"), "not listed");
        let h = hosts("sim.example:8080");
        assert_eq!(
            h.check("http://sim.example:8080"),
            Err(HostRefusal::Scheme("http".into())),
            "http only on loopback"
        );
        assert!(h.allows("https://sim.example:8080"));
        let h = hosts("*.example.com:8443");
        assert!(h.allows("https://a.example.com:8443"));
        assert!(!h.allows("https://a.example.com"));
    }

    #[test]
    fn bad_entries_are_named() {
        for raw in
            ["", " , ", "*.com", "*.127.0.0.1", "host:port", "https://x.example", "x.example/path", "a b", "[::1"]
        {
            let err = ApiHosts::parse(raw).unwrap_err();
            assert!(!err.is_empty(), "{raw}");
        }
        assert_eq!(format!("{:?}", hosts("*.docusign.net, 127.0.0.1:80")), "ApiHosts(*.docusign.net,127.0.0.1:80)");
    }
}
