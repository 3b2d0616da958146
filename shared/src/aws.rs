//! The AWS SDK's configuration, with an HTTP client of our own instead of the
//! SDK's `default-https-client`, which measured costly at cold start
//! (BENCHMARKS.md):
//!
//! - TLS is rustls on *ring*, the crypto library reqwest already links for
//!   DocuSign, instead of a second one (aws-lc-rs);
//! - the trust store is Mozilla's root certificates compiled into the binary
//!   (`webpki-root-certs`, the set reqwest trusts for DocuSign too) instead of
//!   the system's certificate files, which the default client reads and parses
//!   before the first poll (on Debian, a bundle and then 146 files);
//! - the client, and with it the trust store (about 1 ms to parse), is built
//!   once, at the first request, and shared by every SDK client of the
//!   process (`BuildOnFirstUse`).
//!
//! Updating the roots is a dependency update and a rebuild, as for reqwest.

use std::borrow::Cow;
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_kms::config::{ConfigBag, SharedHttpClient};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use base64::Engine as _;

/// Mozilla's root certificates as PEM, the form the SDK's trust store takes.
fn mozilla_roots() -> TrustStore {
    let mut store = TrustStore::empty().with_native_roots(false);
    for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        store.add_pem_certificate(pem(der));
    }
    store
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The smithy hyper client builds a connector (trust store included) each
/// time a configuration is validated, and throws it away: once when the
/// `SdkConfig` is loaded and once per SDK client built, so that native
/// certificates are read early. It builds and caches the one it uses at the
/// first request. Measured (`bench/init-steps`), those throw-away builds were
/// about 3.5 ms of a 7 ms init. This wrapper leaves validation out and builds
/// the client, PEM roots included, at the first request: the trust store is
/// parsed once per process, when a request needs it.
#[derive(Debug, Default)]
struct BuildOnFirstUse(OnceLock<SharedHttpClient>);

impl BuildOnFirstUse {
    fn client(&self) -> &SharedHttpClient {
        self.0.get_or_init(|| {
            let context = TlsContext::builder()
                .with_trust_store(mozilla_roots())
                .build()
                .expect("a rustls TLS context with a trust store always builds");
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .tls_context(context)
                .build_https()
        })
    }
}

impl HttpClient for BuildOnFirstUse {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.client().http_connector(settings, components)
    }

    fn validate_final_config(&self, components: &RuntimeComponents, cfg: &ConfigBag) -> Result<(), BoxError> {
        self.client().validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        // What the wrapped hyper client reports, without building it.
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
}

/// The HTTPS client every SDK client of the process shares.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(BuildOnFirstUse::default())
}

/// The SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`), with [`http_client`].
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).load().await
}

#[cfg(test)]
mod tests {
    use super::pem;

    #[test]
    fn every_root_is_wrapped_as_pem() {
        let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS;
        assert!(roots.len() > 100, "{} roots", roots.len());
        let text = pem(&roots[0]);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\nMII"));
        assert!(text.ends_with("\n-----END CERTIFICATE-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64));
    }
}
