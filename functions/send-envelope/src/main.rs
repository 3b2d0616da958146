//! `POST /docusign/envelopes`: sends an envelope through the tenant's connection.
use lambda_http::{service_fn, Error, Request};
use shared::{http, App, Needs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env(Needs::SEND_ENVELOPE).await?;
    lambda_http::run(service_fn(|request: Request| http::send_envelope(&app, request))).await
}
