//! HTML pages of the account server: the consent page and error pages.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::types::SimUser;
use crate::util::html_escape;

const STYLE: &str = "body{font-family:Helvetica,Arial,sans-serif;background:#f4f4f4;margin:0}\
header{background:#1e1e1e;color:#fff;padding:14px 24px;font-weight:bold;letter-spacing:.5px}\
main{max-width:520px;margin:40px auto;background:#fff;padding:28px 32px;border-radius:6px;\
box-shadow:0 1px 4px rgba(0,0,0,.15)}h1{font-size:20px}ul{padding-left:20px}\
.buttons{margin-top:24px;display:flex;gap:12px}button{padding:10px 22px;border-radius:4px;\
font-size:14px;cursor:pointer;border:1px solid #888;background:#fff}\
button#accept{background:#ffce00;border-color:#ffce00;font-weight:bold}\
.error{color:#b00020}select{padding:6px;min-width:100%}";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><header>DocuSign (simulator)</header><main>{body}</main></body></html>\n",
        title = html_escape(title),
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], html)
        .into_response()
}

/// An error page shown instead of redirecting (e.g. unknown redirect URI).
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let body =
        format!("<h1 class=\"error\">Something went wrong</h1><p id=\"error-message\">{}</p>", html_escape(message));
    page(status, "DocuSign - Error", &body)
}

/// What the consent page carries over to `POST /oauth/auth/decision`.
pub(crate) struct ConsentRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub state: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub code_challenge_method: Option<&'a str>,
}

fn scope_description(scope: &str) -> String {
    match scope {
        "signature" => "Create and send envelopes, and obtain links for starting signing sessions".into(),
        "extended" => "Keep access to your account without signing in again (extended refresh)".into(),
        "impersonation" => "Act on your behalf at any time".into(),
        "openid" => "Know who you are (OpenID Connect)".into(),
        other => format!("Scope \u{201c}{other}\u{201d}"),
    }
}

/// The DocuSign-like consent page (interactive mode).
pub(crate) fn consent_page(req: &ConsentRequest<'_>, users: &[SimUser], preselect: Option<&str>) -> Response {
    let hidden = |name: &str, value: Option<&str>| match value {
        Some(v) => format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", name, html_escape(v)),
        None => String::new(),
    };
    let scopes: String = req
        .scope
        .split_whitespace()
        .map(|s| format!("<li data-scope=\"{}\">{}</li>", html_escape(s), html_escape(&scope_description(s))))
        .collect();
    let options: String = users
        .iter()
        .map(|u| {
            let selected = if Some(u.sub.as_str()) == preselect { " selected" } else { "" };
            format!(
                "<option value=\"{}\"{}>{} &lt;{}&gt;</option>",
                html_escape(&u.sub),
                selected,
                html_escape(&u.name),
                html_escape(&u.email)
            )
        })
        .collect();
    let body = format!(
        "<h1>Allow access?</h1>\
         <p>The application <strong id=\"app-name\">{app}</strong> (integration key \
         <code>{key}</code>) is requesting permission to:</p>\
         <ul id=\"scopes\">{scopes}</ul>\
         <form method=\"post\" action=\"/oauth/auth/decision\" id=\"consent-form\">\
         {h_client}{h_redirect}{h_scope}{h_state}{h_challenge}{h_method}\
         <input type=\"hidden\" name=\"response_type\" value=\"code\">\
         <label for=\"user\">Sign in as</label><br>\
         <select name=\"user\" id=\"user\">{options}</select>\
         <div class=\"buttons\">\
         <button type=\"submit\" name=\"decision\" value=\"accept\" id=\"accept\">Accept</button>\
         <button type=\"submit\" name=\"decision\" value=\"cancel\" id=\"cancel\">Cancel</button>\
         </div></form>",
        app = "DocuSign Connector",
        key = html_escape(req.client_id),
        h_client = hidden("client_id", Some(req.client_id)),
        h_redirect = hidden("redirect_uri", Some(req.redirect_uri)),
        h_scope = hidden("scope", Some(req.scope)),
        h_state = hidden("state", req.state),
        h_challenge = hidden("code_challenge", req.code_challenge),
        h_method = hidden("code_challenge_method", req.code_challenge_method),
    );
    page(StatusCode::OK, "DocuSign - Allow access", &body)
}
