//! Typed configuration, read once at start-up from the environment exactly as
//! the contract lists it. A missing or invalid required variable is a
//! [`ConfigError`] naming the variable; the binary stops before serving.

use secrecy::SecretString;
use url::Url;

pub use crate::docusign::environment::DocuSignEnvironment;
use crate::docusign::hosts::{ApiHosts, DEFAULT_API_HOSTS};

/// A secret given either in plain text (local runs) or as base64 KMS
/// ciphertext (AWS deployments); resolved once at start-up.
#[derive(Debug)]
pub enum SecretSource {
    Plain(SecretString),
    KmsCiphertext { variable: &'static str, ciphertext: Vec<u8> },
}

/// What a function needs beyond the configuration every function shares.
#[derive(Clone, Copy, Debug, Default)]
pub struct Needs {
    /// `DOCUSIGN_REDIRECT_URI` (consent-start and oauth-callback).
    pub redirect_uri: bool,
    /// `CRM_JWT_SECRET` or `CRM_JWT_SECRET_CIPHERTEXT` (every CRM-facing route).
    pub crm_jwt: bool,
    /// Whether the function calls DocuSign's token endpoint, and so decrypts
    /// `DOCUSIGN_SECRET_KEY_CIPHERTEXT` at start-up. The variable is required
    /// by every function (the contract); only these ever decrypt it, so only
    /// these need `kms:Decrypt` for it.
    pub docusign_secret: bool,
    /// `CRM_ORIGIN` (oauth-callback: the consent result is posted only there).
    pub crm_origin: bool,
}

impl Needs {
    pub const CONSENT_START: Self =
        Self { redirect_uri: true, crm_jwt: true, docusign_secret: false, crm_origin: false };
    pub const OAUTH_CALLBACK: Self =
        Self { redirect_uri: true, crm_jwt: false, docusign_secret: true, crm_origin: true };
    pub const CONNECTION: Self = Self { redirect_uri: false, crm_jwt: true, docusign_secret: false, crm_origin: false };
    pub const SEND_ENVELOPE: Self =
        Self { redirect_uri: false, crm_jwt: true, docusign_secret: true, crm_origin: false };
    pub const TOKEN_REFRESH: Self =
        Self { redirect_uri: false, crm_jwt: false, docusign_secret: true, crm_origin: false };
}

#[derive(Debug)]
pub struct Config {
    pub environment: DocuSignEnvironment,
    /// The OAuth host, validated, without a trailing slash.
    pub oauth_base_url: String,
    pub integration_key: String,
    pub secret_key: SecretSource,
    /// `DOCUSIGN_SECRET_KEY_NEXT` / `DOCUSIGN_SECRET_KEY_NEXT_CIPHERTEXT`: a
    /// second client secret, tried when DocuSign answers `invalid_client` to
    /// the first (rotation without downtime).
    pub secret_key_next: Option<SecretSource>,
    pub redirect_uri: Option<Url>,
    pub scopes: Vec<String>,
    pub account_id: Option<String>,
    pub token_table: String,
    pub token_key_id: String,
    pub crm_jwt_secret: Option<SecretSource>,
    pub crm_jwt_audience: String,
    /// `CRM_JWT_JWKS_URL`: the identity provider's keys for RS256/ES256 tokens.
    pub crm_jwt_jwks_url: Option<Url>,
    /// `CRM_JWT_ISSUER`: the `iss` every token must carry, when set.
    pub crm_jwt_issuer: Option<String>,
    pub crm_origin: Option<String>,
    /// `DOCUSIGN_API_HOSTS`: where a `base_uri` may point.
    pub api_hosts: ApiHosts,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configuration: {variable} is required but not set")]
    Missing { variable: &'static str },
    #[error("configuration: {variable} is invalid: {reason}")]
    Invalid { variable: &'static str, reason: String },
}

fn invalid(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { variable, reason: reason.into() }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(needs: Needs) -> Result<Self, ConfigError> {
        Self::from_lookup(needs, |name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`; empty values count as unset.
    pub fn from_lookup(needs: Needs, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing { variable: name });

        let environment = match get("DOCUSIGN_ENVIRONMENT") {
            None => DocuSignEnvironment::Sandbox,
            Some(v) => DocuSignEnvironment::parse(&v).ok_or_else(|| {
                invalid("DOCUSIGN_ENVIRONMENT", format!("expected `sandbox` or `production`, got `{v}`"))
            })?,
        };
        let oauth_base = get("DOCUSIGN_OAUTH_BASE_URL").unwrap_or_else(|| environment.default_oauth_base().to_owned());
        let oauth_base_url = oauth_base.trim_end_matches('/').to_owned();
        parse_http_url("DOCUSIGN_OAUTH_BASE_URL", &oauth_base_url)?;

        let integration_key = required("DOCUSIGN_INTEGRATION_KEY")?;
        let secret_key = secret_source(&get, "DOCUSIGN_SECRET_KEY", "DOCUSIGN_SECRET_KEY_CIPHERTEXT")?
            .ok_or(ConfigError::Missing { variable: "DOCUSIGN_SECRET_KEY" })?;
        let secret_key_next = secret_source(&get, "DOCUSIGN_SECRET_KEY_NEXT", "DOCUSIGN_SECRET_KEY_NEXT_CIPHERTEXT")?;

        let redirect_uri = if needs.redirect_uri {
            let raw = required("DOCUSIGN_REDIRECT_URI")?;
            Some(parse_http_url("DOCUSIGN_REDIRECT_URI", &raw)?)
        } else {
            get("DOCUSIGN_REDIRECT_URI").map(|raw| parse_http_url("DOCUSIGN_REDIRECT_URI", &raw)).transpose()?
        };

        let scopes: Vec<String> = get("DOCUSIGN_SCOPES")
            .unwrap_or_else(|| "signature extended".to_owned())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if scopes.is_empty() {
            return Err(invalid("DOCUSIGN_SCOPES", "no scope given"));
        }

        let account_id = get("DOCUSIGN_ACCOUNT_ID");
        let token_table = required("TOKEN_TABLE")?;
        let token_key_id = required("TOKEN_KEY_ID")?;

        let crm_jwt_secret = secret_source(&get, "CRM_JWT_SECRET", "CRM_JWT_SECRET_CIPHERTEXT")?;
        if let Some(SecretSource::Plain(secret)) = &crm_jwt_secret {
            check_jwt_secret("CRM_JWT_SECRET", secret)?;
        }
        let crm_jwt_jwks_url = get("CRM_JWT_JWKS_URL").map(|raw| parse_jwks_url(&raw)).transpose()?;
        if needs.crm_jwt && crm_jwt_secret.is_none() && crm_jwt_jwks_url.is_none() {
            return Err(ConfigError::Missing { variable: "CRM_JWT_SECRET" });
        }
        let crm_jwt_issuer = get("CRM_JWT_ISSUER");
        let crm_jwt_audience = get("CRM_JWT_AUDIENCE").unwrap_or_else(|| "docusign-connector".to_owned());
        let crm_origin = get("CRM_ORIGIN").map(|raw| parse_origin(&raw)).transpose()?;
        if needs.crm_origin && crm_origin.is_none() {
            return Err(ConfigError::Missing { variable: "CRM_ORIGIN" });
        }
        let api_hosts = ApiHosts::parse(&get("DOCUSIGN_API_HOSTS").unwrap_or_else(|| DEFAULT_API_HOSTS.to_owned()))
            .map_err(|reason| invalid("DOCUSIGN_API_HOSTS", reason))?;

        Ok(Self {
            environment,
            oauth_base_url,
            integration_key,
            secret_key,
            secret_key_next,
            redirect_uri,
            scopes,
            account_id,
            token_table,
            token_key_id,
            crm_jwt_secret,
            crm_jwt_audience,
            crm_jwt_jwks_url,
            crm_jwt_issuer,
            crm_origin,
            api_hosts,
        })
    }
}

fn parse_http_url(variable: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| invalid(variable, format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(variable, "expected an http(s) URL with a host"));
    }
    Ok(url)
}

/// `CRM_ORIGIN` must be an origin (scheme, host, optional port), because the
/// callback page uses it as `postMessage`'s target origin.
fn parse_origin(raw: &str) -> Result<String, ConfigError> {
    let url = parse_http_url("CRM_ORIGIN", raw)?;
    let origin = url.origin().ascii_serialization();
    if raw.trim_end_matches('/') != origin {
        return Err(invalid("CRM_ORIGIN", format!("expected an origin such as `{origin}`, without a path")));
    }
    Ok(origin)
}

/// The HS256 secret's minimum length (`crate::auth::MIN_SECRET_BYTES`),
/// checked here for a plain secret and after decryption for a ciphertext.
pub fn check_jwt_secret(variable: &'static str, secret: &SecretString) -> Result<(), ConfigError> {
    use secrecy::ExposeSecret as _;
    let len = secret.expose_secret().len();
    if len < crate::auth::MIN_SECRET_BYTES {
        return Err(invalid(
            variable,
            format!(
                "the secret is {len} bytes long and must be at least {} bytes \
                 (whoever guesses a short HS256 secret can sign an admin token for any tenant)",
                crate::auth::MIN_SECRET_BYTES
            ),
        ));
    }
    Ok(())
}

/// `CRM_JWT_JWKS_URL`: `https`, or `http` on a loopback host (local runs, tests).
fn parse_jwks_url(raw: &str) -> Result<Url, ConfigError> {
    const VARIABLE: &str = "CRM_JWT_JWKS_URL";
    let url = parse_http_url(VARIABLE, raw)?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() != "https" && !loopback {
        return Err(invalid(VARIABLE, "expected an https URL (http only on a loopback host)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(VARIABLE, "must not carry credentials"));
    }
    Ok(url)
}

fn secret_source(
    get: &impl Fn(&str) -> Option<String>,
    plain: &'static str,
    cipher: &'static str,
) -> Result<Option<SecretSource>, ConfigError> {
    use base64::Engine as _;
    match (get(plain), get(cipher)) {
        (Some(_), Some(_)) => Err(invalid(plain, format!("set either {plain} or {cipher}, not both"))),
        (Some(value), None) => Ok(Some(SecretSource::Plain(SecretString::from(value)))),
        (None, Some(b64)) => {
            let ciphertext = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| invalid(cipher, "not base64"))?;
            Ok(Some(SecretSource::KmsCiphertext { variable: cipher, ciphertext }))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("DOCUSIGN_INTEGRATION_KEY", "ik"),
        ("DOCUSIGN_SECRET_KEY", "sk"),
        ("TOKEN_TABLE", "t"),
        ("TOKEN_KEY_ID", "alias/k"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_lookup(Needs::default(), env(BASE)).unwrap();
        assert_eq!(c.environment, DocuSignEnvironment::Sandbox);
        assert_eq!(c.oauth_base_url, "https://account-d.docusign.com");
        assert_eq!(c.scopes, vec!["signature", "extended"]);
        assert_eq!(c.crm_jwt_audience, "docusign-connector");
        assert!(c.account_id.is_none() && c.crm_origin.is_none());
        assert_eq!(c.api_hosts, ApiHosts::default());
        assert!(c.api_hosts.allows("https://na3.docusign.net") && !c.api_hosts.allows("https://x.example"));
    }

    #[test]
    fn production_uses_the_production_host_and_the_override_wins() {
        let c = Config::from_lookup(Needs::default(), env(&with(&[("DOCUSIGN_ENVIRONMENT", "production")]))).unwrap();
        assert_eq!(c.oauth_base_url, "https://account.docusign.com");
        let c =
            Config::from_lookup(Needs::default(), env(&with(&[("DOCUSIGN_OAUTH_BASE_URL", "http://127.0.0.1:9/")])))
                .unwrap();
        assert_eq!(c.oauth_base_url, "http://127.0.0.1:9");
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for name in ["DOCUSIGN_INTEGRATION_KEY", "DOCUSIGN_SECRET_KEY", "TOKEN_TABLE", "TOKEN_KEY_ID"] {
            let pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != name).collect();
            let err = Config::from_lookup(Needs::default(), env(&pairs)).unwrap_err();
            assert_eq!(err, ConfigError::Missing { variable: name }, "{name}");
            assert!(err.to_string().contains(name));
        }
        let needs = Needs { redirect_uri: true, crm_jwt: true, docusign_secret: true, crm_origin: false };
        let err = Config::from_lookup(needs, env(BASE)).unwrap_err();
        assert_eq!(err, ConfigError::Missing { variable: "DOCUSIGN_REDIRECT_URI" });
        let err =
            Config::from_lookup(needs, env(&with(&[("DOCUSIGN_REDIRECT_URI", "https://x.example/cb")]))).unwrap_err();
        assert_eq!(err, ConfigError::Missing { variable: "CRM_JWT_SECRET" });
    }

    #[test]
    fn invalid_values_are_named() {
        for (name, value) in [
            ("DOCUSIGN_ENVIRONMENT", "staging"),
            ("DOCUSIGN_OAUTH_BASE_URL", "not a url"),
            ("DOCUSIGN_REDIRECT_URI", "ftp://x/cb"),
            ("CRM_ORIGIN", "https://crm.example/app"),
            ("DOCUSIGN_SECRET_KEY_CIPHERTEXT", "###"),
            ("DOCUSIGN_API_HOSTS", "https://x.example"),
            ("DOCUSIGN_API_HOSTS", " , "),
        ] {
            let err = Config::from_lookup(Needs::default(), env(&with(&[(name, value)]))).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn the_callback_needs_the_crm_origin() {
        let err = Config::from_lookup(
            Needs::OAUTH_CALLBACK,
            env(&with(&[("DOCUSIGN_REDIRECT_URI", "https://x.example/cb")])),
        )
        .unwrap_err();
        assert_eq!(err, ConfigError::Missing { variable: "CRM_ORIGIN" });
        let c = Config::from_lookup(
            Needs::OAUTH_CALLBACK,
            env(&with(&[("DOCUSIGN_REDIRECT_URI", "https://x.example/cb"), ("CRM_ORIGIN", "https://crm.example")])),
        )
        .unwrap();
        assert_eq!(c.crm_origin.as_deref(), Some("https://crm.example"));
    }

    #[test]
    fn a_secret_ciphertext_is_decoded_for_kms() {
        let pairs: Vec<_> = BASE
            .iter()
            .copied()
            .filter(|(k, _)| *k != "DOCUSIGN_SECRET_KEY")
            .chain([("DOCUSIGN_SECRET_KEY_CIPHERTEXT", "AQID")])
            .collect();
        let c = Config::from_lookup(Needs::default(), env(&pairs)).unwrap();
        match c.secret_key {
            SecretSource::KmsCiphertext { ciphertext, .. } => assert_eq!(ciphertext, vec![1, 2, 3]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_next_client_secret_is_optional_plain_or_kms_and_never_both() {
        let c = Config::from_lookup(Needs::default(), env(BASE)).unwrap();
        assert!(c.secret_key_next.is_none());
        let c = Config::from_lookup(Needs::default(), env(&with(&[("DOCUSIGN_SECRET_KEY_NEXT", "sk2")]))).unwrap();
        assert!(matches!(c.secret_key_next, Some(SecretSource::Plain(_))));
        let c = Config::from_lookup(Needs::default(), env(&with(&[("DOCUSIGN_SECRET_KEY_NEXT_CIPHERTEXT", "AQID")])))
            .unwrap();
        match c.secret_key_next {
            Some(SecretSource::KmsCiphertext { variable, ciphertext }) => {
                assert_eq!((variable, ciphertext), ("DOCUSIGN_SECRET_KEY_NEXT_CIPHERTEXT", vec![1, 2, 3]))
            }
            other => panic!("{other:?}"),
        }
        let err = Config::from_lookup(
            Needs::default(),
            env(&with(&[("DOCUSIGN_SECRET_KEY_NEXT", "sk2"), ("DOCUSIGN_SECRET_KEY_NEXT_CIPHERTEXT", "AQID")])),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { variable: "DOCUSIGN_SECRET_KEY_NEXT", .. }), "{err}");
        let err = Config::from_lookup(Needs::default(), env(&with(&[("DOCUSIGN_SECRET_KEY_NEXT_CIPHERTEXT", "###")])))
            .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { variable: "DOCUSIGN_SECRET_KEY_NEXT_CIPHERTEXT", .. }), "{err}");
        let c = Config::from_lookup(Needs::default(), env(&with(&[("DOCUSIGN_SECRET_KEY_NEXT", "next-secret-value")])))
            .unwrap();
        assert!(!format!("{c:?}").contains("next-secret-value"));
    }

    #[test]
    fn debug_output_never_shows_a_plain_secret() {
        let c = Config::from_lookup(
            Needs::default(),
            env(&with(&[("CRM_JWT_SECRET", "jwt-secret-value-jwt-secret-value")])),
        )
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("jwt-secret-value") && !printed.contains("\"sk\""), "{printed}");
    }

    #[test]
    fn a_crm_jwt_secret_of_31_bytes_stops_the_function_naming_the_variable() {
        let short = "0123456789012345678901234567890";
        assert_eq!(short.len(), 31);
        let err = Config::from_lookup(Needs::CONNECTION, env(&with(&[("CRM_JWT_SECRET", short)]))).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { variable: "CRM_JWT_SECRET", .. }), "{err}");
        assert!(err.to_string().contains("CRM_JWT_SECRET") && err.to_string().contains("at least 32 bytes"), "{err}");
        assert!(!err.to_string().contains(short), "the message must not echo the secret: {err}");
        let c = Config::from_lookup(
            Needs::CONNECTION,
            env(&with(&[("CRM_JWT_SECRET", "01234567890123456789012345678901")])),
        )
        .unwrap();
        assert!(c.crm_jwt_secret.is_some());
    }

    #[test]
    fn a_jwks_url_alone_is_enough_for_crm_callers_and_must_be_https_or_loopback() {
        let c = Config::from_lookup(
            Needs::CONNECTION,
            env(&with(&[
                ("CRM_JWT_JWKS_URL", "https://idp.example/.well-known/jwks.json"),
                ("CRM_JWT_ISSUER", "https://idp.example/"),
            ])),
        )
        .unwrap();
        assert!(c.crm_jwt_secret.is_none());
        assert_eq!(c.crm_jwt_jwks_url.unwrap().as_str(), "https://idp.example/.well-known/jwks.json");
        assert_eq!(c.crm_jwt_issuer.as_deref(), Some("https://idp.example/"));
        for local in ["http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/jwks"] {
            Config::from_lookup(Needs::CONNECTION, env(&with(&[("CRM_JWT_JWKS_URL", local)]))).unwrap();
        }
        for bad in ["http://idp.example/jwks", "ftp://idp.example/jwks", "not a url", "https://u:p@idp.example/jwks"] {
            let err = Config::from_lookup(Needs::CONNECTION, env(&with(&[("CRM_JWT_JWKS_URL", bad)]))).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { variable: "CRM_JWT_JWKS_URL", .. }), "{bad}: {err}");
        }
    }
}
