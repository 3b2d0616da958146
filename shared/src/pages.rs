//! The HTML the callback answers with: small, self-contained, no outside
//! resources, one inline script allowed by a per-response nonce.

use crate::connect::CallbackFailure;
use crate::store::Identity;

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside a `<script>` element.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

pub struct Page {
    pub html: String,
    pub nonce: String,
}

pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

const CLOSE_AFTER_MS: u32 = 4000;

fn render(nonce: &str, title: &str, body: &str, message: &serde_json::Value, crm_origin: Option<&str>, close: bool) -> String {
    let origin = script_json(&serde_json::json!(crm_origin));
    let message = script_json(message);
    let close_js = if close {
        format!("setTimeout(function () {{ window.close(); }}, {CLOSE_AFTER_MS});")
    } else {
        String::new()
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style nonce="{nonce}">
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem; color: #1d2330; }}
h1 {{ font-size: 1.4rem; }}
.note {{ color: #5b6473; font-size: .9rem; }}
</style>
</head>
<body>
{body}
<script nonce="{nonce}">
(function () {{
  var origin = {origin};
  var message = {message};
  try {{
    if (origin && window.opener && !window.opener.closed) {{ window.opener.postMessage(message, origin); }}
  }} catch (e) {{}}
  {close_js}
}})();
</script>
</body>
</html>
"#
    )
}

pub fn connected(nonce: &str, identity: &Identity, environment: &str, crm_origin: Option<&str>) -> String {
    let body = format!(
        r#"<h1 id="result" data-result="connected">DocuSign is connected</h1>
<p>Connected as <strong id="user-name">{name}</strong> (<span id="user-email">{email}</span>)
to the account <strong id="account-name">{account}</strong> (<span id="account-id">{account_id}</span>), {environment}.</p>
<p class="note">This tab closes by itself in a few seconds; you can also close it now.</p>"#,
        name = escape_html(&identity.user_name),
        email = escape_html(&identity.user_email),
        account = escape_html(&identity.account_name),
        account_id = escape_html(&identity.account_id),
        environment = escape_html(environment),
    );
    let message = serde_json::json!({
        "type": "docusign-connected",
        "user_name": identity.user_name,
        "user_email": identity.user_email,
        "account_id": identity.account_id,
        "account_name": identity.account_name,
        "environment": environment,
    });
    render(nonce, "DocuSign connected", &body, &message, crm_origin, true)
}

pub fn failed(nonce: &str, failure: &CallbackFailure, crm_origin: Option<&str>) -> String {
    let message_text = failure.message();
    let body = format!(
        r#"<h1 id="result" data-result="failed" data-reason="{code}">DocuSign was not connected</h1>
<p id="reason">{text}</p>
<p class="note">You can close this tab.</p>"#,
        code = failure.code(),
        text = escape_html(&message_text),
    );
    let message = serde_json::json!({ "type": "docusign-connect-failed", "reason": failure.code(), "message": message_text });
    render(nonce, "DocuSign not connected", &body, &message, crm_origin, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_docusign_cannot_inject_markup_or_script() {
        let identity = Identity {
            user_id: "u".into(),
            user_name: "<script>alert(1)</script>".into(),
            user_email: "a@b\"".into(),
            account_id: "1".into(),
            account_name: "</script><img src=x>".into(),
            base_uri: "https://x".into(),
        };
        let html = connected("n0nce", &identity, "sandbox", Some("https://crm.example"));
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("</script><img"));
        assert_eq!(html.matches("</script>").count(), 1);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains(r#""https://crm.example""#));
    }

    #[test]
    fn failure_pages_say_why_and_do_not_close() {
        let html = failed("n", &CallbackFailure::Declined, None);
        assert!(html.contains("declined"));
        assert!(!html.contains("window.close"));
    }
}
