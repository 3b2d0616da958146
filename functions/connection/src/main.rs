//! `GET` and `DELETE /docusign/connection`: the tenant's connection status, and disconnect.
use lambda_http::{Error, Request};
use shared::{gateway, http, App, Needs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env(Needs::CONNECTION).await?;
    gateway::run(|request: Request| http::connection(&app, request)).await
}
