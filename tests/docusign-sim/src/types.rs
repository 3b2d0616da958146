//! Public data types shared by the Rust handle and the HTTP control API.

use serde::{Deserialize, Serialize};

/// How the simulated DocuSign integration (the "app") is registered.
#[derive(Clone)]
pub struct SimConfig {
    /// Integration key.
    pub client_id: String,
    /// Secret key of the integration key.
    pub client_secret: String,
    /// Registered redirect URIs (exact string match, as DocuSign does).
    pub redirect_uris: Vec<String>,
    /// true: `/oauth/auth` shows an HTML consent page with Accept / Cancel.
    pub interactive: bool,
}

impl SimConfig {
    /// A non-interactive configuration.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>, redirect_uris: Vec<String>) -> Self {
        SimConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uris,
            interactive: false,
        }
    }
}

// Never print the secret.
impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .field("interactive", &self.interactive)
            .finish()
    }
}

/// A DocuSign user who can consent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimUser {
    pub sub: String,
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub accounts: Vec<SimAccount>,
}

/// One account a user belongs to, as listed by `/oauth/userinfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimAccount {
    pub account_id: String,
    pub account_name: String,
    #[serde(default)]
    pub is_default: bool,
    /// `None`: the simulator's own base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_uri: Option<String>,
}

/// What a non-interactive `/oauth/auth` does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ConsentDecision {
    Approve { user_sub: String },
    Decline,
}

/// An endpoint faults can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `GET /oauth/auth`
    Auth,
    /// `POST /oauth/token`
    Token,
    /// `GET /oauth/userinfo`
    #[serde(rename = "userinfo", alias = "user_info")]
    UserInfo,
    /// `POST /restapi/v2.1/accounts/{accountId}/envelopes`
    Envelopes,
}

/// A failure injected ahead of normal handling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer this status. `body: None` gives a DocuSign-like default body;
    /// `retry_after` sets the `Retry-After` header (seconds).
    Status {
        status: u16,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Sleep, then behave normally. The request is processed after the delay
    /// even if the client has given up meanwhile (as a real server would).
    Delay { ms: u64 },
    /// 200 with a body that is not JSON.
    Garbage,
    /// Drop the connection without a complete answer.
    #[serde(rename = "close", alias = "close_connection")]
    CloseConnection,
}

/// Counters of what the simulator has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Successful authorization_code exchanges.
    pub code_grants: u64,
    /// Every refresh_token grant request that reached the token endpoint (any outcome, faults included).
    pub refresh_grants: u64,
    pub refresh_grants_ok: u64,
    /// Refresh tokens presented again after they were already used.
    pub refresh_token_reuse: u64,
    /// invalid_grant answers given by the token endpoint (not counting injected faults).
    pub invalid_grant: u64,
    /// All userinfo requests (faults included).
    pub userinfo_calls: u64,
    /// All envelope-creation requests (faults included).
    pub envelope_calls: u64,
    /// All token endpoint requests (faults included).
    pub token_calls: u64,
    /// Token requests refused with `invalid_client` (client authentication
    /// failed; the grant was not looked at).
    #[serde(default)]
    pub invalid_client: u64,
}

/// An envelope the simulator accepted (answered 201).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedEnvelope {
    pub account_id: String,
    /// `sub` of the user the access token belongs to.
    pub access_token_user: String,
    pub body: serde_json::Value,
    pub envelope_id: String,
    pub idempotency_header: Option<String>,
}
