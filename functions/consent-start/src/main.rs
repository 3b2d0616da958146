//! `POST /docusign/consent`: starts a DocuSign consent for the caller's tenant.
use lambda_http::{Error, Request};
use shared::{gateway, http, App, Needs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env(Needs::CONSENT_START).await?;
    gateway::run(|request: Request| http::consent_start(&app, request)).await
}
