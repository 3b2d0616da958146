//! A DocuSign simulator: a real HTTP server on 127.0.0.1 that behaves like
//! DocuSign's account server (`/oauth/auth`, `/oauth/token`,
//! `/oauth/userinfo`) and the eSignature REST API (envelope creation).
//!
//! Use it in-process through [`Simulator`], or run the `docusign-sim`
//! binary and drive it through the JSON control API under `/_sim/`.
//! Nothing the simulator logs contains a secret, code or token: requests are
//! logged (through `tracing`) as method and path only.

mod control;
mod esign;
mod faults;
mod oauth;
mod pages;
mod state;
mod types;
mod util;
mod validate;

use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::oneshot;

use crate::state::{Shared, State};
pub use crate::types::{ConsentDecision, Endpoint, Fault, ReceivedEnvelope, SimAccount, SimConfig, SimUser, Stats};

/// A running simulator. Dropping it shuts the server down.
pub struct Simulator {
    shared: Shared,
    base_url: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Simulator {
    /// Starts a simulator on 127.0.0.1 with a free port.
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a simulator on `addr`.
    pub async fn start_on(config: SimConfig, addr: SocketAddr) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let base_url = format!("http://{local}");
        let shared: Shared = std::sync::Arc::new(std::sync::Mutex::new(State::new(config, base_url.clone())));
        let app = router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "docusign-sim server stopped");
            }
        });
        Ok(Simulator { shared, base_url, shutdown: Some(tx) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        state::lock(&self.shared)
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Adds a user, replacing any user with the same `sub`.
    pub fn add_user(&self, user: SimUser) {
        self.lock().add_user(user);
    }

    /// What a non-interactive `/oauth/auth` does from now on.
    pub fn set_consent_decision(&self, d: ConsentDecision) {
        self.lock().consent_decision = d;
    }

    /// The user revokes the app: their refresh tokens (and unused codes) stop
    /// working; access tokens stay valid until they expire.
    pub fn revoke_consent(&self, user_sub: &str) {
        self.lock().revoke_consent(user_sub);
    }

    /// Invalidates the user's current access tokens now.
    pub fn expire_access_tokens(&self, user_sub: &str) {
        self.lock().expire_access_tokens(user_sub);
    }

    /// Moves the simulated clock (system time + offset) by `secs`.
    pub fn advance_clock(&self, secs: i64) {
        let mut st = self.lock();
        st.clock_offset_secs = st.clock_offset_secs.saturating_add(secs);
    }

    pub fn clock_offset_secs(&self) -> i64 {
        self.lock().clock_offset_secs
    }

    /// The simulated clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.lock().now()
    }

    /// The next `times` requests to `endpoint` get `fault` (`u32::MAX`: until cleared).
    /// Faults pushed for the same endpoint apply one after another.
    pub fn push_fault(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.lock().push_fault(endpoint, fault, times);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Token answers give `"expires_in":"28800"` instead of a number.
    pub fn set_expires_in_as_string(&self, yes: bool) {
        self.lock().expires_in_as_string = yes;
    }

    /// `Some(v)`: token answers (code exchange and refresh) carry
    /// `"expires_in": v`, any JSON value (`null` included), whatever the
    /// access token's real life (8 hours). `None`: back to normal.
    pub fn set_expires_in_raw(&self, value: Option<serde_json::Value>) {
        self.lock().expires_in_raw = value;
    }

    /// The integration key's secret is rotated: from now on only `secret`
    /// authenticates at the token endpoint (others get `invalid_client`,
    /// before the grant is looked at). Issued tokens and codes stay valid.
    pub fn set_client_secret(&self, secret: &str) {
        self.lock().set_client_secret(secret);
    }

    /// userinfo gives `"is_default":"true"` instead of a boolean.
    pub fn set_is_default_as_string(&self, yes: bool) {
        self.lock().is_default_as_string = yes;
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Envelopes accepted so far, oldest first.
    pub fn envelopes(&self) -> Vec<ReceivedEnvelope> {
        self.lock().envelopes.clone()
    }

    /// The raw bytes of the last envelope-creation request received
    /// (accepted or not): what DocuSign would have parsed.
    pub fn last_envelope_body(&self) -> Option<Vec<u8>> {
        self.lock().last_envelope_body.clone()
    }

    /// The client secret and every authorization code, access token and
    /// refresh token ever issued.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.lock().issued_secrets.clone()
    }

    /// Issued, not expired and not invalidated.
    pub fn valid_access_token(&self, token: &str) -> bool {
        self.lock().access_token_user(token).is_some()
    }

    /// Issued, unused, unexpired and its consent not revoked.
    pub fn current_refresh_token_valid(&self, token: &str) -> bool {
        self.lock().current_refresh_token_valid(token)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/oauth/auth", get(oauth::auth))
        .route("/oauth/auth/decision", post(oauth::auth_decision))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/userinfo", get(oauth::userinfo))
        .route(
            "/restapi/v2.1/accounts/{account_id}/envelopes",
            post(esign::create_envelope).layer(DefaultBodyLimit::max(esign::MAX_BODY_BYTES)),
        )
        .merge(control::router())
        .layer(middleware::from_fn(log_request))
        .with_state(shared)
}

/// Logs method and path only: never the query string, headers or body.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if response.extensions().get::<faults::ConnectionDropped>().is_some() {
        tracing::info!(target: "docusign_sim", "{method} {path} -> connection dropped (fault)");
    } else {
        tracing::info!(target: "docusign_sim", "{method} {path} -> {}", response.status().as_u16());
    }
    response
}
