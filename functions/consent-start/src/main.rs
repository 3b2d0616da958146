//! `POST /docusign/consent`: starts a DocuSign consent for the caller's tenant.
use lambda_http::{service_fn, Error, Request};
use shared::{http, App, Needs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env(Needs::CONSENT_START).await?;
    lambda_http::run(service_fn(|request: Request| http::consent_start(&app, request))).await
}
