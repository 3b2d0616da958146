//! The simulator's shared state and the OAuth bookkeeping rules.
//!
//! Everything here is synchronous: the state lives in an `Arc<Mutex<State>>`
//! that is never held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

use crate::types::{ConsentDecision, Endpoint, Fault, ReceivedEnvelope, SimAccount, SimConfig, SimUser, Stats};
use crate::util;

/// Authorization codes live this long (DocuSign: about 2 minutes).
pub(crate) const CODE_TTL_SECS: i64 = 120;
/// Access tokens live 8 hours.
pub(crate) const ACCESS_TTL_SECS: i64 = 8 * 3600;
/// Refresh tokens live about 30 days.
pub(crate) const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;

pub(crate) const DEFAULT_USER_SUB: &str = "11111111-1111-1111-1111-111111111111";

pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state, ignoring poisoning (a panicking test must not wedge the server).
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub user_sub: String,
    pub scopes: String,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
}

pub(crate) struct AccessToken {
    pub client_id: String,
    pub user_sub: String,
    pub expires_at: DateTime<Utc>,
    pub invalidated: bool,
}

pub(crate) struct RefreshToken {
    pub client_id: String,
    pub grant_id: u64,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
}

/// One consent: the chain of refresh tokens that descends from one code exchange.
pub(crate) struct Grant {
    pub user_sub: String,
    pub scopes: String,
    pub revoked: bool,
    /// Expiry of the first refresh token (kept by later ones without `extended`).
    pub first_refresh_expiry: DateTime<Utc>,
}

impl Grant {
    fn extended(&self) -> bool {
        self.scopes.split_whitespace().any(|s| s == "extended")
    }
}

/// Per-account rate-limit bookkeeping (reported in headers, not enforced).
#[derive(Default)]
pub(crate) struct RateWindow {
    pub hour_start: i64,
    pub hour_count: u64,
    pub burst_start: i64,
    pub burst_count: u64,
}

pub(crate) struct State {
    pub config: SimConfig,
    pub base_url: String,
    pub users: Vec<SimUser>,
    pub consent_decision: ConsentDecision,
    pub clock_offset_secs: i64,
    pub codes: HashMap<String, AuthCode>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub grants: HashMap<u64, Grant>,
    next_grant_id: u64,
    pub faults: HashMap<Endpoint, VecDeque<(Fault, u32)>>,
    pub expires_in_as_string: bool,
    /// `Some(v)`: token answers carry `"expires_in": v` exactly (any JSON,
    /// `null` included), overriding `expires_in_as_string`.
    pub expires_in_raw: Option<serde_json::Value>,
    pub is_default_as_string: bool,
    pub stats: Stats,
    pub envelopes: Vec<ReceivedEnvelope>,
    /// The bytes of the last envelope-creation request, as they arrived
    /// (whatever the answer).
    pub last_envelope_body: Option<Vec<u8>>,
    pub issued_secrets: Vec<String>,
    pub rate: HashMap<String, RateWindow>,
}

/// Tokens handed out by a successful grant.
pub(crate) struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub scopes: String,
}

/// Why a grant was refused (all are `invalid_grant` on the wire).
#[derive(Debug, thiserror::Error)]
pub(crate) enum GrantError {
    #[error("{0}")]
    InvalidGrant(&'static str),
}

pub(crate) fn default_user() -> SimUser {
    SimUser {
        sub: DEFAULT_USER_SUB.to_string(),
        name: "Sim Signer".to_string(),
        email: "signer@example.com".to_string(),
        accounts: vec![
            SimAccount {
                account_id: "acc-default-1".to_string(),
                account_name: "Sim Default Account".to_string(),
                is_default: true,
                base_uri: None,
            },
            SimAccount {
                account_id: "acc-second-2".to_string(),
                account_name: "Sim Second Account".to_string(),
                is_default: false,
                base_uri: None,
            },
        ],
    }
}

impl State {
    pub fn new(config: SimConfig, base_url: String) -> State {
        let issued_secrets = vec![config.client_secret.clone()];
        State {
            config,
            base_url,
            users: vec![default_user()],
            consent_decision: ConsentDecision::Approve { user_sub: DEFAULT_USER_SUB.to_string() },
            clock_offset_secs: 0,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            grants: HashMap::new(),
            next_grant_id: 1,
            faults: HashMap::new(),
            expires_in_as_string: false,
            expires_in_raw: None,
            is_default_as_string: false,
            stats: Stats::default(),
            envelopes: Vec::new(),
            last_envelope_body: None,
            issued_secrets,
            rate: HashMap::new(),
        }
    }

    /// The simulated clock: system time + offset.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::seconds(self.clock_offset_secs)
    }

    pub fn user(&self, sub: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| u.sub == sub)
    }

    pub fn add_user(&mut self, user: SimUser) {
        match self.users.iter_mut().find(|u| u.sub == user.sub) {
            Some(existing) => *existing = user,
            None => self.users.push(user),
        }
    }

    /// The integration key's secret changes: from now on only `secret`
    /// authenticates the client. Tokens and codes already issued stay valid.
    pub fn set_client_secret(&mut self, secret: &str) {
        self.config.client_secret = secret.to_string();
        if !self.issued_secrets.iter().any(|s| s == secret) {
            self.issued_secrets.push(secret.to_string());
        }
    }

    fn new_secret(&mut self, random_bytes: usize) -> String {
        let secret = util::random_token(random_bytes);
        self.issued_secrets.push(secret.clone());
        secret
    }

    // ----- faults -------------------------------------------------------

    pub fn push_fault(&mut self, endpoint: Endpoint, fault: Fault, times: u32) {
        if times == 0 {
            return;
        }
        self.faults.entry(endpoint).or_default().push_back((fault, times));
    }

    /// The fault the next request to `endpoint` gets, if any.
    pub fn take_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let queue = self.faults.get_mut(&endpoint)?;
        let (fault, remaining) = queue.front_mut()?;
        let fault = fault.clone();
        if *remaining != u32::MAX {
            *remaining -= 1;
            if *remaining == 0 {
                queue.pop_front();
            }
        }
        Some(fault)
    }

    // ----- authorization codes -----------------------------------------

    pub fn issue_code(
        &mut self,
        redirect_uri: &str,
        code_challenge: Option<String>,
        user_sub: &str,
        scopes: &str,
    ) -> String {
        let code = self.new_secret(48);
        let auth_code = AuthCode {
            client_id: self.config.client_id.clone(),
            redirect_uri: redirect_uri.to_string(),
            code_challenge,
            user_sub: user_sub.to_string(),
            scopes: scopes.to_string(),
            expires_at: self.now() + Duration::seconds(CODE_TTL_SECS),
            used: false,
        };
        self.codes.insert(code.clone(), auth_code);
        code
    }

    /// `grant_type=authorization_code`.
    pub fn exchange_code(
        &mut self,
        client_id: &str,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<IssuedTokens, GrantError> {
        use GrantError::InvalidGrant;
        let now = self.now();
        let code = code.filter(|c| !c.is_empty()).ok_or(InvalidGrant("The code is missing."))?;
        let entry = self.codes.get(code).ok_or(InvalidGrant("The authorization code is invalid."))?;
        if entry.used {
            return Err(InvalidGrant("The authorization code has already been used."));
        }
        if entry.client_id != client_id {
            return Err(InvalidGrant("The authorization code was issued to another client."));
        }
        if now >= entry.expires_at {
            return Err(InvalidGrant("The authorization code has expired."));
        }
        if redirect_uri != Some(entry.redirect_uri.as_str()) {
            return Err(InvalidGrant("The redirect_uri does not match the authorization request."));
        }
        if let Some(challenge) = &entry.code_challenge {
            let verifier = code_verifier.ok_or(InvalidGrant("The code_verifier is missing."))?;
            if !util::valid_pkce_verifier(verifier) {
                return Err(InvalidGrant("The code_verifier is malformed."));
            }
            if util::s256_challenge(verifier) != *challenge {
                return Err(InvalidGrant("The code_verifier does not match the code_challenge."));
            }
        }
        if self.user(&entry.user_sub).is_none() {
            return Err(InvalidGrant("The user no longer exists."));
        }
        let user_sub = entry.user_sub.clone();
        let scopes = entry.scopes.clone();
        if let Some(entry) = self.codes.get_mut(code) {
            entry.used = true;
        }

        let grant_id = self.next_grant_id;
        self.next_grant_id += 1;
        let refresh_expiry = now + Duration::seconds(REFRESH_TTL_SECS);
        self.grants.insert(
            grant_id,
            Grant {
                user_sub: user_sub.clone(),
                scopes: scopes.clone(),
                revoked: false,
                first_refresh_expiry: refresh_expiry,
            },
        );
        let access_token = self.issue_access_token(client_id, &user_sub);
        let refresh_token = self.issue_refresh_token(client_id, grant_id, refresh_expiry);
        self.stats.code_grants += 1;
        Ok(IssuedTokens { access_token, refresh_token, scopes })
    }

    // ----- refresh tokens ----------------------------------------------

    /// `grant_type=refresh_token`, with strict rotation and reuse detection.
    pub fn refresh(&mut self, client_id: &str, token: Option<&str>) -> Result<IssuedTokens, GrantError> {
        use GrantError::InvalidGrant;
        let now = self.now();
        let token = token.filter(|t| !t.is_empty()).ok_or(InvalidGrant("The refresh_token is missing."))?;
        let entry = self.refresh_tokens.get(token).ok_or(InvalidGrant("The refresh token is invalid."))?;
        let grant_id = entry.grant_id;
        if entry.used {
            // Rotation violation: revoke every refresh token of this consent.
            self.stats.refresh_token_reuse += 1;
            if let Some(grant) = self.grants.get_mut(&grant_id) {
                grant.revoked = true;
            }
            return Err(InvalidGrant("The refresh token has already been used."));
        }
        if entry.client_id != client_id {
            return Err(InvalidGrant("The refresh token was issued to another client."));
        }
        if now >= entry.expires_at {
            return Err(InvalidGrant("The refresh token has expired."));
        }
        let grant = self.grants.get(&grant_id).ok_or(InvalidGrant("The refresh token is invalid."))?;
        if grant.revoked {
            return Err(InvalidGrant("The consent has been revoked."));
        }
        if self.user(&grant.user_sub).is_none() {
            return Err(InvalidGrant("The user no longer exists."));
        }
        let user_sub = grant.user_sub.clone();
        let scopes = grant.scopes.clone();
        let new_expiry =
            if grant.extended() { now + Duration::seconds(REFRESH_TTL_SECS) } else { grant.first_refresh_expiry };
        if let Some(entry) = self.refresh_tokens.get_mut(token) {
            entry.used = true;
        }
        let access_token = self.issue_access_token(client_id, &user_sub);
        let refresh_token = self.issue_refresh_token(client_id, grant_id, new_expiry);
        self.stats.refresh_grants_ok += 1;
        Ok(IssuedTokens { access_token, refresh_token, scopes })
    }

    fn issue_access_token(&mut self, client_id: &str, user_sub: &str) -> String {
        let token = self.new_secret(96);
        let expires_at = self.now() + Duration::seconds(ACCESS_TTL_SECS);
        self.access_tokens.insert(
            token.clone(),
            AccessToken {
                client_id: client_id.to_string(),
                user_sub: user_sub.to_string(),
                expires_at,
                invalidated: false,
            },
        );
        token
    }

    fn issue_refresh_token(&mut self, client_id: &str, grant_id: u64, expires_at: DateTime<Utc>) -> String {
        let token = self.new_secret(64);
        self.refresh_tokens.insert(
            token.clone(),
            RefreshToken { client_id: client_id.to_string(), grant_id, expires_at, used: false },
        );
        token
    }

    pub fn current_refresh_token_valid(&self, token: &str) -> bool {
        let Some(entry) = self.refresh_tokens.get(token) else {
            return false;
        };
        let grant_ok = self.grants.get(&entry.grant_id).is_some_and(|g| !g.revoked);
        !entry.used && grant_ok && self.now() < entry.expires_at
    }

    // ----- access tokens -----------------------------------------------

    /// The user an access token belongs to, if it is valid now.
    pub fn access_token_user(&self, token: &str) -> Option<String> {
        let entry = self.access_tokens.get(token)?;
        if entry.invalidated || self.now() >= entry.expires_at || entry.client_id != self.config.client_id {
            return None;
        }
        Some(entry.user_sub.clone())
    }

    pub fn expire_access_tokens(&mut self, user_sub: &str) {
        for entry in self.access_tokens.values_mut() {
            if entry.user_sub == user_sub {
                entry.invalidated = true;
            }
        }
    }

    /// The user withdraws consent: refresh tokens (and pending codes) die,
    /// access tokens live on until they expire.
    pub fn revoke_consent(&mut self, user_sub: &str) {
        let client_id = self.config.client_id.clone();
        for grant in self.grants.values_mut() {
            if grant.user_sub == user_sub {
                grant.revoked = true;
            }
        }
        for code in self.codes.values_mut() {
            if code.user_sub == user_sub && code.client_id == client_id {
                code.used = true;
            }
        }
    }

    // ----- rate limits --------------------------------------------------

    /// Counts one API call on `account_id` and returns
    /// (hourly remaining, hourly reset epoch, burst remaining).
    pub fn count_api_call(&mut self, account_id: &str) -> (u64, i64, u64) {
        let now = self.now().timestamp();
        let hour_start = now - now.rem_euclid(3600);
        let burst_start = now - now.rem_euclid(30);
        let window = self.rate.entry(account_id.to_string()).or_default();
        if window.hour_start != hour_start {
            window.hour_start = hour_start;
            window.hour_count = 0;
        }
        if window.burst_start != burst_start {
            window.burst_start = burst_start;
            window.burst_count = 0;
        }
        window.hour_count += 1;
        window.burst_count += 1;
        (
            crate::esign::HOURLY_LIMIT.saturating_sub(window.hour_count),
            hour_start + 3600,
            crate::esign::BURST_LIMIT.saturating_sub(window.burst_count),
        )
    }
}
