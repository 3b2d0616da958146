//! DocuSign's JSON as it comes: lenient where DocuSign's own SDKs disagree
//! (`expires_in` and `is_default` as numbers/booleans or strings).

use oauth2::basic::BasicTokenType;
use oauth2::{AccessToken, RefreshToken, Scope, TokenResponse};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use super::{Account, OAuthError, TokenGrant, UserInfo};

/// The token endpoint's answer, as oauth2 parses it (`DsTokenResponse`
/// through serde_json), kept to what the connector uses.
impl From<DsTokenResponse> for TokenGrant {
    fn from(answer: DsTokenResponse) -> Self {
        TokenGrant {
            access_token: SecretString::from(answer.access_token().secret().to_owned()),
            refresh_token: answer.refresh_token().map(|r| SecretString::from(r.secret().to_owned())),
            expires_in: answer.expires_in,
        }
    }
}

/// `/oauth/userinfo`'s answer body. The body is never quoted in the error:
/// it may hold personal data.
pub fn userinfo(body: &[u8]) -> Result<UserInfo, OAuthError> {
    let wire: UserInfoWire =
        serde_json::from_slice(body).map_err(|_| OAuthError::InvalidResponse("userinfo answer is not the expected JSON"))?;
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

#[derive(Debug, Deserialize, Serialize)]
pub struct DsTokenResponse {
    pub access_token: AccessToken,
    #[serde(skip_deserializing, default = "bearer")]
    pub token_type: BasicTokenType,
    #[serde(default, deserialize_with = "number_or_string")]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<RefreshToken>,
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
        self.expires_in.map(std::time::Duration::from_secs)
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
enum NumOrStr {
    Num(u64),
    Float(f64),
    Str(String),
}

fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::Num(n)) => Ok(Some(n)),
        Some(NumOrStr::Float(f)) if f >= 0.0 && f.fract() == 0.0 => Ok(Some(f as u64)),
        Some(NumOrStr::Str(s)) => s.trim().parse().map(Some).map_err(|_| D::Error::custom("expires_in is not a number")),
        Some(NumOrStr::Float(_)) => Err(D::Error::custom("expires_in is not a whole number")),
    }
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

    #[test]
    fn expires_in_may_be_a_number_or_a_string() {
        for body in [
            r#"{"access_token":"a","token_type":"Bearer","refresh_token":"r","expires_in":28800}"#,
            r#"{"access_token":"a","token_type":"bearer","refresh_token":"r","expires_in":"28800"}"#,
        ] {
            let t: DsTokenResponse = serde_json::from_str(body).unwrap();
            assert_eq!(t.expires_in, Some(28800));
            assert_eq!(t.refresh_token.unwrap().secret(), "r");
        }
        let t: DsTokenResponse = serde_json::from_str(r#"{"access_token":"a","token_type":"Bearer"}"#).unwrap();
        assert_eq!(t.expires_in, None);
        assert!(serde_json::from_str::<DsTokenResponse>(r#"{"access_token":"a","expires_in":"soon"}"#).is_err());
        let _ = secrecy::SecretString::from("x").expose_secret().len();
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
