//! `GET /docusign/callback`: DocuSign redirects the admin's browser here.
use lambda_http::{service_fn, Error, Request};
use shared::{http, App, Needs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env(Needs::OAUTH_CALLBACK).await?;
    lambda_http::run(service_fn(|request: Request| http::callback(&app, request))).await
}
