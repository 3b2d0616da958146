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

pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

const CLOSE_AFTER_MS: u32 = 4000;

/// The page around a result message. The message stands once, verbatim, in
/// `<script type="application/json" id="docusign-consent-result">`; the
/// page's one script reads it from there and posts it to `window.opener`,
/// with `CRM_ORIGIN` as the target origin, so no other origin can ever
/// receive it. Without an opener (a tab not opened by the CRM: a forwarded
/// or copied consent link) it says that nothing was connected.
fn render(
    nonce: &str,
    title: &str,
    body: &str,
    message: &serde_json::Value,
    crm_origin: Option<&str>,
    approved: bool,
) -> String {
    let origin = script_json(&serde_json::json!(crm_origin));
    let message = script_json(message);
    let (on_sent, no_opener) = if approved {
        (
            format!("setTimeout(function () {{ window.close(); }}, {CLOSE_AFTER_MS});"),
            "var note = document.getElementById('next'); \
             if (note) {{ note.textContent = 'This tab was not opened by the CRM, so nothing was connected. \
             Connect DocuSign from the CRM window.'; note.setAttribute('data-opener', 'none'); }}"
                .replace("{{", "{")
                .replace("}}", "}"),
        )
    } else {
        (String::new(), String::new())
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
<script type="application/json" id="docusign-consent-result">{message}</script>
<script nonce="{nonce}">
(function () {{
  var origin = {origin};
  var message = JSON.parse(document.getElementById('docusign-consent-result').textContent);
  var sent = false;
  try {{
    if (origin && window.opener && !window.opener.closed) {{ window.opener.postMessage(message, origin); sent = true; }}
  }} catch (e) {{}}
  if (sent) {{ {on_sent} }} else {{ {no_opener} }}
}})();
</script>
</body>
</html>
"#
    )
}

/// The page of an approved consent: who DocuSign says approved, and the
/// one-time confirmation for the CRM window that opened this tab.
pub fn approved(
    nonce: &str,
    identity: &Identity,
    confirmation: &str,
    environment: &str,
    crm_origin: Option<&str>,
) -> String {
    let body = format!(
        r#"<h1 id="result" data-result="approved">DocuSign approved the connection</h1>
<p>DocuSign user <strong id="user-name">{name}</strong> (<span id="user-email">{email}</span>),
account <strong id="account-name">{account}</strong> (<span id="account-id">{account_id}</span>), {environment}.</p>
<p class="note" id="next">The CRM window that opened this tab finishes the connection. This tab closes by itself in a few seconds.</p>"#,
        name = escape_html(&identity.user_name),
        email = escape_html(&identity.user_email),
        account = escape_html(&identity.account_name),
        account_id = escape_html(&identity.account_id),
        environment = escape_html(environment),
    );
    let message = serde_json::json!({
        "type": RESULT_TYPE,
        "status": "approved",
        "confirmation": confirmation,
        "user_name": identity.user_name,
        "account_name": identity.account_name,
    });
    render(nonce, "DocuSign approved", &body, &message, crm_origin, true)
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
    let message = serde_json::json!({
        "type": RESULT_TYPE,
        "status": "failed",
        "code": failure.code(),
        "message": message_text,
    });
    render(nonce, "DocuSign not connected", &body, &message, crm_origin, false)
}

/// The `type` of every result message.
pub const RESULT_TYPE: &str = "docusign-consent";

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
        let html = approved("n0nce", &identity, "c0nfirmation", "sandbox", Some("https://crm.example"));
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("</script><img"));
        assert_eq!(html.matches("</script>").count(), 2, "the JSON element and the page's script");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains(r#""https://crm.example""#));
    }

    #[test]
    fn failure_pages_say_why_and_do_not_close() {
        let html = failed("n", &CallbackFailure::Declined, None);
        assert!(html.contains("declined"));
        assert!(!html.contains("window.close"));
    }

    /// The embedded result message, as a CRM or a test reads it.
    fn result(html: &str) -> serde_json::Value {
        let start = html.find(r#"id="docusign-consent-result">"#).unwrap() + r#"id="docusign-consent-result">"#.len();
        let end = start + html[start..].find("</script>").unwrap();
        serde_json::from_str(&html[start..end]).unwrap()
    }

    #[test]
    fn the_result_message_stands_in_the_page_verbatim() {
        let identity = Identity {
            user_id: "u".into(),
            user_name: "Ann <b>".into(),
            user_email: "a@b".into(),
            account_id: "1".into(),
            account_name: "Acme & Co".into(),
            base_uri: "https://x".into(),
        };
        let html = approved("n", &identity, "conf-123", "sandbox", Some("https://crm.example"));
        assert_eq!(
            result(&html),
            serde_json::json!({"type": "docusign-consent", "status": "approved", "confirmation": "conf-123",
                "user_name": "Ann <b>", "account_name": "Acme & Co"})
        );
        assert_eq!(html.matches("conf-123").count(), 1, "the confirmation stands once, in the JSON element");
        assert!(
            html.contains(r#"postMessage(message, origin)"#) && html.contains(r#"var origin = "https://crm.example";"#)
        );
        let html = failed("n", &CallbackFailure::Unavailable, Some("https://crm.example"));
        let message = result(&html);
        assert_eq!(message["type"], "docusign-consent");
        assert_eq!(message["status"], "failed");
        assert_eq!(message["code"], "upstream_unavailable");
        assert!(message["message"].as_str().unwrap().contains("temporarily unavailable"));
    }
}
