//! `POST /docusign/envelopes`: sends an envelope through the tenant's connection.
use lambda_http::{Error, Request};
use shared::{gateway, http, App, Needs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env(Needs::SEND_ENVELOPE).await?;
    gateway::run(|request: Request| http::send_envelope(&app, request)).await
}
