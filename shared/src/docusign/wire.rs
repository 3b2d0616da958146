//! DocuSign's JSON as it comes: lenient where DocuSign's own SDKs disagree
//! (`expires_in` and `is_default` as numbers/booleans or strings).
//!
//! A token answer is DocuSign's only copy of the tokens it just issued (a
//! refresh has already spent the previous refresh token): once it carries an
//! access token, nothing else in it may make it unusable. `expires_in` in
//! particular is kept as the raw JSON text and read by [`access_lifetime`],
//! which cannot fail.

use chrono::Duration;
use oauth2::basic::BasicTokenType;
use oauth2::{AccessToken, RefreshToken, Scope, TokenResponse};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
// `raw_value` is on in this graph (lambda_http enables it): the raw text is
// captured without converting numbers, so even `1e400` (beyond f64, which
// serde_json refuses to convert) leaves the answer parsable.
use serde_json::value::RawValue;

use super::{Account, OAuthError, TokenGrant, UserInfo, DEFAULT_ACCESS_SECS, MAX_ACCESS_SECS, MIN_ACCESS_SECS};

/// The token endpoint's answer, as oauth2 parses it (`DsTokenResponse`
/// through serde_json), kept to what the connector uses.
impl From<DsTokenResponse> for TokenGrant {
    fn from(answer: DsTokenResponse) -> Self {
        let lifetime = answer.lifetime();
        TokenGrant {
            access_token: SecretString::from(answer.access_token().secret().to_owned()),
            refresh_token: answer.refresh_token().map(|r| SecretString::from(r.secret().to_owned())),
            lifetime,
        }
    }
}

/// The access token's life from `expires_in` as DocuSign sent it (its raw
/// JSON text), always within 1 second ..= 30 days.
///
/// A whole or fractional number of seconds, or a string holding one, counts
/// (fractions are dropped). Missing, `null`, not a number, not finite, below
/// one second or above 30 days: DocuSign's documented 8 hours instead. Never
/// fails and never panics, whatever the text.
pub fn access_lifetime(expires_in: Option<&RawValue>) -> Duration {
    let default = Duration::seconds(DEFAULT_ACCESS_SECS as i64);
    let Some(raw) = expires_in else { return default };
    let seconds = match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(serde_json::Value::Number(n)) => n.as_f64(),
        Ok(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        // Other JSON, or a number beyond f64 (`1e400`).
        _ => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s >= MIN_ACCESS_SECS as f64 && s <= MAX_ACCESS_SECS as f64 => {
            // In range, so the conversion is exact for whole seconds.
            Duration::seconds(s.trunc() as i64)
        }
        _ => default,
    }
}

/// `/oauth/userinfo`'s answer body. The body is never quoted in the error:
/// it may hold personal data.
pub fn userinfo(body: &[u8]) -> Result<UserInfo, OAuthError> {
    let wire: UserInfoWire = serde_json::from_slice(body)
        .map_err(|_| OAuthError::InvalidResponse("userinfo answer is not the expected JSON"))?;
    Ok(UserInfo {
        sub: wire.sub,
        name: wire.name.unwrap_or_default(),
        email: wire.email.unwrap_or_default(),
        accounts: wire
            .accounts
            .into_iter()
            .map(|a| Account {
                account_name: a.account_name.unwrap_or_else(|| a.account_id.clone()),
                account_id: a.account_id,
                base_uri: a.base_uri.trim_end_matches('/').to_owned(),
                is_default: a.is_default,
            })
            .collect(),
    })
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct DsTokenResponse {
    pub access_token: AccessToken,
    #[serde(skip_deserializing, default = "bearer")]
    pub token_type: BasicTokenType,
    /// `expires_in` exactly as sent, whatever JSON it is: read it through
    /// [`DsTokenResponse::lifetime`].
    #[serde(default)]
    pub expires_in: Option<Box<RawValue>>,
    #[serde(default)]
    pub refresh_token: Option<RefreshToken>,
}

impl DsTokenResponse {
    /// The access token's life: [`access_lifetime`] of `expires_in`.
    pub fn lifetime(&self) -> Duration {
        access_lifetime(self.expires_in.as_deref())
    }
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

impl TokenResponse for DsTokenResponse {
    type TokenType = BasicTokenType;
    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<std::time::Duration> {
        self.lifetime().to_std().ok()
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        None
    }
}

#[derive(Debug, Deserialize)]
pub struct UserInfoWire {
    pub sub: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub accounts: Vec<AccountWire>,
}

#[derive(Debug, Deserialize)]
pub struct AccountWire {
    pub account_id: String,
    #[serde(default, deserialize_with = "bool_or_string")]
    pub is_default: bool,
    #[serde(default)]
    pub account_name: Option<String>,
    pub base_uri: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrStr {
    Bool(bool),
    Str(String),
}

fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Option::<BoolOrStr>::deserialize(d)? {
        Some(BoolOrStr::Bool(b)) => b,
        Some(BoolOrStr::Str(s)) => s.trim().eq_ignore_ascii_case("true"),
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    fn grant(body: &str) -> TokenGrant {
        TokenGrant::from(serde_json::from_str::<DsTokenResponse>(body).unwrap_or_else(|e| panic!("{body}: {e}")))
    }

    /// The lifetime of a token answer whose `expires_in` is `raw` (JSON text),
    /// or that has none (`None`).
    fn lifetime_of(raw: Option<&str>) -> Duration {
        let body = match raw {
            Some(raw) => {
                format!(r#"{{"access_token":"a","token_type":"Bearer","refresh_token":"r","expires_in":{raw}}}"#)
            }
            None => r#"{"access_token":"a","token_type":"Bearer","refresh_token":"r"}"#.to_owned(),
        };
        let g = grant(&body);
        assert_eq!(g.access_token.expose_secret(), "a", "{body}");
        assert_eq!(g.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()).as_deref(), Some("r"), "{body}");
        g.lifetime
    }

    #[test]
    fn expires_in_may_be_a_number_or_a_string() {
        for raw in ["28800", r#""28800""#, r#"" 28800 ""#, "28800.0", "2.88e4", "28800.9"] {
            assert_eq!(lifetime_of(Some(raw)), Duration::hours(8), "{raw}");
        }
        assert_eq!(lifetime_of(Some("3600")), Duration::hours(1));
        assert_eq!(lifetime_of(Some(r#""3600""#)), Duration::hours(1));
        assert_eq!(lifetime_of(Some("3600.0")), Duration::hours(1));
        assert_eq!(lifetime_of(Some("1")), Duration::seconds(1), "the shortest believed");
        assert_eq!(lifetime_of(Some("2592000")), Duration::days(30), "the longest believed");
    }

    #[test]
    fn an_odd_expires_in_still_gives_the_tokens_with_eight_hours() {
        let eight_hours = Duration::seconds(DEFAULT_ACCESS_SECS as i64);
        assert_eq!(eight_hours, Duration::hours(8));
        assert_eq!(lifetime_of(None), eight_hours, "missing");
        for raw in [
            "9223372036854775807",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-1",
            "0",
            "0.5",
            "-0.0",
            r#""soon""#,
            r#""""#,
            r#""NaN""#,
            r#""inf""#,
            r#""-inf""#,
            r#""1e999""#,
            "1e300",
            "1e400",
            "-1e400",
            "2592001",
            "null",
            "true",
            "false",
            "[]",
            "[3600]",
            "{}",
            r#"{"seconds":3600}"#,
        ] {
            assert_eq!(lifetime_of(Some(raw)), eight_hours, "expires_in {raw}");
        }
    }

    #[test]
    fn the_stored_expiry_of_any_answer_is_between_one_second_and_thirty_days_away() {
        let now = chrono::Utc::now();
        for raw in ["9223372036854775807", "-1", r#""soon""#, "1e300", "1e400", "1", "2592000", "28800"] {
            let at = now + lifetime_of(Some(raw));
            assert!(at >= now + Duration::seconds(1) && at <= now + Duration::days(30), "{raw}: {at}");
        }
    }

    #[test]
    fn any_json_value_as_expires_in_leaves_the_answer_usable() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        for raw in [
            r#"{"a":1,"a":2}"#,
            r#"[1e400,"\ud800",{"x":[null,true]}]"#,
            r#""\u0033\u0036\u0030\u0030""#,
            "123456789012345678901234567890",
            "-0",
            "1E+2",
            " 7 ",
            deep.as_str(),
        ] {
            let lifetime = lifetime_of(Some(raw));
            assert!(lifetime >= Duration::seconds(1) && lifetime <= Duration::days(30), "{raw}: {lifetime}");
        }
        assert_eq!(lifetime_of(Some(r#""\u0033\u0036\u0030\u0030""#)), Duration::hours(1), "an escaped \"3600\"");
        assert_eq!(lifetime_of(Some("1E+2")), Duration::seconds(100));
    }

    #[test]
    fn an_answer_without_an_access_token_is_still_refused() {
        for body in [r#"{"expires_in":3600}"#, r#"{"access_token":7}"#, "[]", "null", r#"{"access_token":"a""#] {
            assert!(serde_json::from_str::<DsTokenResponse>(body).is_err(), "{body}");
        }
    }

    #[test]
    fn is_default_may_be_a_boolean_or_a_string() {
        let u: UserInfoWire = serde_json::from_str(
            r#"{"sub":"s","accounts":[{"account_id":"1","is_default":"true","base_uri":"b"},
                {"account_id":"2","is_default":false,"base_uri":"b"},{"account_id":"3","is_default":"false","base_uri":"b"}]}"#,
        )
        .unwrap();
        let d: Vec<bool> = u.accounts.iter().map(|a| a.is_default).collect();
        assert_eq!(d, vec![true, false, false]);
    }
}
