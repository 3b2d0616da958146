//! `GET /docusign/callback`: DocuSign redirects the admin's browser here.
use lambda_http::{Error, Request};
use shared::{gateway, http, App, Needs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env(Needs::OAUTH_CALLBACK).await?;
    gateway::run(|request: Request| http::callback(&app, request)).await
}
