//! `GET` and `DELETE /docusign/connection`: the tenant's connection status, and disconnect.
use lambda_http::{service_fn, Error, Request};
use shared::{http, App, Needs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env(Needs::CONNECTION).await?;
    lambda_http::run(service_fn(|request: Request| http::connection(&app, request))).await
}
