//! What API Gateway passes through as it came reaches the real binaries'
//! handlers: lambda_http 1.3 panicked on a raw query with a space while
//! building the request, and API Gateway answered 500 (`shared::gateway`
//! repairs the event first). Non-ASCII characters are encoded as well.

use std::time::Duration;

use integration_tests::runtime::FunctionProcess;
use integration_tests::*;
use serde_json::{json, Value};

fn event(method: &str, path: &str, query: &str, headers: &[(&str, &str)]) -> Value {
    serde_json::from_str(&apigw_event(method, path, query, headers, None)).unwrap()
}

#[tokio::test]
async fn a_query_with_a_space_or_non_ascii_gets_the_ordinary_answer() {
    let env = TestEnv::start().await;
    let vars = env.function_env().await;

    let callback = FunctionProcess::spawn("oauth-callback", &vars).await;
    for query in ["code=a b&state=acme.not issued", "state=t\u{e9}nant.x&code=\u{fc}", "code=x&state=acme.%zz \u{2603}"]
    {
        let page = callback
            .invoke(event("GET", "/docusign/callback", query, &[]), Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{query:?}: invocation error {e}: {}", callback.logs_tail(20)));
        assert_eq!(page["statusCode"], 400, "{query:?}: {page}");
        assert!(page["headers"]["content-type"].as_str().unwrap().starts_with("text/html"), "{page}");
        assert!(page["body"].as_str().unwrap().contains("Start again from the CRM"), "{page}");
    }
    // DocuSign's own `error_description` has spaces; a declined consent is
    // still shown as declined.
    let declined = callback
        .invoke(
            event("GET", "/docusign/callback", "error=access_denied&error_description=The user declined", &[]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(declined["statusCode"], 400, "{declined}");
    assert!(declined["body"].as_str().unwrap().contains("declined"), "{declined}");

    let connection = FunctionProcess::spawn("connection", &vars).await;
    let tenant = random_name("tenant");
    let bearer = format!("Bearer {}", user_token(&tenant));
    let status = connection
        .invoke(
            event("GET", "/docusign/connection", "view=f\u{fc}ll st\u{e4}tus", &[("authorization", &bearer)]),
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|e| panic!("invocation error {e}: {}", connection.logs_tail(20)));
    assert_eq!(status["statusCode"], 200, "{status}");
    assert_eq!(serde_json::from_str::<Value>(status["body"].as_str().unwrap()).unwrap(), json!({"connected": false}));
}
