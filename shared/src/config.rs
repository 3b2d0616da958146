//! Typed configuration, read once at start-up from the environment exactly as
//! the contract lists it. A missing or invalid required variable is a
//! [`ConfigError`] naming the variable; the binary stops before serving.

use std::fmt;

use secrecy::SecretString;
use url::Url;

/// Which DocuSign platform the connector talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocuSignEnvironment {
    Sandbox,
    Production,
}

impl DocuSignEnvironment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Production => "production",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "sandbox" => Some(Self::Sandbox),
            "production" => Some(Self::Production),
            _ => None,
        }
    }

    /// DocuSign's account server for this environment.
    pub fn default_oauth_base(self) -> &'static str {
        match self {
            Self::Sandbox => "https://account-d.docusign.com",
            Self::Production => "https://account.docusign.com",
        }
    }
}

impl fmt::Display for DocuSignEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
}

impl Needs {
    pub const CONSENT_START: Self = Self { redirect_uri: true, crm_jwt: true, docusign_secret: false };
    pub const OAUTH_CALLBACK: Self = Self { redirect_uri: true, crm_jwt: false, docusign_secret: true };
    pub const CONNECTION: Self = Self { redirect_uri: false, crm_jwt: true, docusign_secret: false };
    pub const SEND_ENVELOPE: Self = Self { redirect_uri: false, crm_jwt: true, docusign_secret: true };
    pub const TOKEN_REFRESH: Self = Self { redirect_uri: false, crm_jwt: false, docusign_secret: true };
}

#[derive(Debug)]
pub struct Config {
    pub environment: DocuSignEnvironment,
    /// The OAuth host, validated, without a trailing slash.
    pub oauth_base_url: String,
    pub integration_key: String,
    pub secret_key: SecretSource,
    pub redirect_uri: Option<Url>,
    pub scopes: Vec<String>,
    pub account_id: Option<String>,
    pub token_table: String,
    pub token_key_id: String,
    pub crm_jwt_secret: Option<SecretSource>,
    pub crm_jwt_audience: String,
    pub crm_origin: Option<String>,
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
    pub fn from_lookup(
        needs: Needs,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing { variable: name });

        let environment = match get("DOCUSIGN_ENVIRONMENT") {
            None => DocuSignEnvironment::Sandbox,
            Some(v) => DocuSignEnvironment::parse(&v).ok_or_else(|| {
                invalid("DOCUSIGN_ENVIRONMENT", format!("expected `sandbox` or `production`, got `{v}`"))
            })?,
        };
        let oauth_base = get("DOCUSIGN_OAUTH_BASE_URL")
            .unwrap_or_else(|| environment.default_oauth_base().to_owned());
        let oauth_base_url = oauth_base.trim_end_matches('/').to_owned();
        parse_http_url("DOCUSIGN_OAUTH_BASE_URL", &oauth_base_url)?;

        let integration_key = required("DOCUSIGN_INTEGRATION_KEY")?;
        let secret_key = secret_source(
            &get,
            "DOCUSIGN_SECRET_KEY",
            "DOCUSIGN_SECRET_KEY_CIPHERTEXT",
        )?
        .ok_or(ConfigError::Missing { variable: "DOCUSIGN_SECRET_KEY" })?;

        let redirect_uri = if needs.redirect_uri {
            let raw = required("DOCUSIGN_REDIRECT_URI")?;
            Some(parse_http_url("DOCUSIGN_REDIRECT_URI", &raw)?)
        } else {
            get("DOCUSIGN_REDIRECT_URI")
                .map(|raw| parse_http_url("DOCUSIGN_REDIRECT_URI", &raw))
                .transpose()?
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
        if needs.crm_jwt && crm_jwt_secret.is_none() {
            return Err(ConfigError::Missing { variable: "CRM_JWT_SECRET" });
        }
        let crm_jwt_audience =
            get("CRM_JWT_AUDIENCE").unwrap_or_else(|| "docusign-connector".to_owned());
        let crm_origin = get("CRM_ORIGIN").map(|raw| parse_origin(&raw)).transpose()?;

        Ok(Self {
            environment,
            oauth_base_url,
            integration_key,
            secret_key,
            redirect_uri,
            scopes,
            account_id,
            token_table,
            token_key_id,
            crm_jwt_secret,
            crm_jwt_audience,
            crm_origin,
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
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
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
    }

    #[test]
    fn production_uses_the_production_host_and_the_override_wins() {
        let c = Config::from_lookup(Needs::default(), env(&with(&[("DOCUSIGN_ENVIRONMENT", "production")]))).unwrap();
        assert_eq!(c.oauth_base_url, "https://account.docusign.com");
        let c = Config::from_lookup(
            Needs::default(),
            env(&with(&[("DOCUSIGN_OAUTH_BASE_URL", "http://127.0.0.1:9/")])),
        )
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
        let needs = Needs { redirect_uri: true, crm_jwt: true, docusign_secret: true };
        let err = Config::from_lookup(needs, env(BASE)).unwrap_err();
        assert_eq!(err, ConfigError::Missing { variable: "DOCUSIGN_REDIRECT_URI" });
        let err = Config::from_lookup(needs, env(&with(&[("DOCUSIGN_REDIRECT_URI", "https://x.example/cb")]))).unwrap_err();
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
        ] {
            let err = Config::from_lookup(Needs::default(), env(&with(&[(name, value)]))).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
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
    fn debug_output_never_shows_a_plain_secret() {
        let c = Config::from_lookup(
            Needs::default(),
            env(&with(&[("CRM_JWT_SECRET", "jwt-secret-value")])),
        )
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("jwt-secret-value") && !printed.contains("\"sk\""), "{printed}");
    }
}
