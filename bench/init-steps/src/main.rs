//! Times each step a function takes at cold start to build its AWS clients
//! (what `App::from_env` does), in one process, on stderr. Run the release
//! build with the environment a function gets (BENCHMARKS.md, "Where init
//! time goes"):
//!
//! ```sh
//! cargo build --release -p init-steps
//! env -i AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y target/release/init-steps
//! ```

use std::time::Instant;

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let mut last = started;
    let mut step = |name: &str| {
        let now = Instant::now();
        eprintln!("{name:>22}: {:>7.3} ms", (now - last).as_secs_f64() * 1000.0);
        last = now;
    };
    shared::telemetry::init();
    step("logging");
    let http = shared::aws::http_client();
    step("AWS HTTP client");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http).load().await;
    step("AWS config (defaults)");
    let kms = aws_sdk_kms::Client::new(&sdk);
    step("KMS client");
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    step("DynamoDB client");
    let docusign = shared::docusign::oauth::http_client();
    step("reqwest client");
    drop((kms, dynamo, docusign));
    eprintln!("{:>22}: {:>7.3} ms", "total", started.elapsed().as_secs_f64() * 1000.0);
}
