//! Tokens: minting (for operators, examples and tests) and checking on connect.
//!
//! A token is an HS256 JWT whose `sub` is the user id and `exp` its expiry, checked with
//! 60 s of leeway: all that docs/protocol.md asks for, so tokens minted by another issuer
//! work. `nbf` and `iat` are honoured when present (a token not valid yet, or issued in the
//! future, is refused) and never required.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_protocol::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::TokenError;

/// Clock leeway allowed when checking `exp`.
pub const LEEWAY_SECS: u64 = 60;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    // Seconds, as other issuers may write them: fractions allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<f64>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Mints a token for `user`, valid for `ttl`, signed with `secret`.
///
/// ```
/// use chat_protocol::UserId;
/// use std::time::Duration;
///
/// let alice = UserId::new("alice").unwrap();
/// let token = chat_server::mint_token("s3cret", &alice, Duration::from_secs(3600)).unwrap();
/// assert_eq!(chat_server::auth::verify_token("s3cret", &token).unwrap(), alice);
/// ```
pub fn mint_token(secret: &str, user: &UserId, ttl: Duration) -> Result<String, TokenError> {
    let iat = now_secs();
    let claims = Claims {
        sub: user.to_string(),
        exp: iat.saturating_add(ttl.as_secs()),
        iat: Some(iat as f64),
        nbf: None,
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// A token that passed its checks: whose it is and until when it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The user, from `sub`.
    pub user: UserId,
    /// `exp`, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// When the token a socket connected with stops being good; every request checks it, so a
/// token that expires mid-session is refused at the socket's next request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenExpiry {
    /// `exp` plus the leeway, in seconds since the Unix epoch.
    refused_after: u64,
}

impl TokenExpiry {
    /// A token with `exp` at `expires_at`, checked with `leeway`.
    pub(crate) fn new(expires_at: u64, leeway: Duration) -> Self {
        Self {
            refused_after: expires_at.saturating_add(leeway.as_secs()),
        }
    }

    /// Whether the token has expired, leeway included.
    pub(crate) fn has_passed(self) -> bool {
        now_secs() > self.refused_after
    }
}

/// Checks a token's signature and expiry (with [`LEEWAY_SECS`]) and returns its user.
pub fn verify_token(secret: &str, token: &str) -> Result<UserId, TokenError> {
    verify_token_with(secret, token, Duration::from_secs(LEEWAY_SECS)).map(|v| v.user)
}

/// Checks a token's signature and expiry, allowing `leeway` of clock difference, and
/// returns its user and expiry.
pub fn verify_token_with(
    secret: &str,
    token: &str,
    leeway: Duration,
) -> Result<Verified, TokenError> {
    let leeway = leeway.as_secs();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = leeway;
    validation.set_required_spec_claims(&["exp", "sub"]);
    // `nbf` is checked only when the token has one.
    validation.validate_nbf = true;
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )?;
    if data
        .claims
        .iat
        .is_some_and(|iat| iat > now_secs().saturating_add(leeway) as f64)
    {
        return Err(TokenError::IssuedInTheFuture);
    }
    Ok(Verified {
        user: UserId::new(data.claims.sub)?,
        expires_at: data.claims.exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_secret_and_garbage_are_refused() {
        let user = UserId::new("bob").expect("valid");
        let token = mint_token("a", &user, Duration::from_secs(60)).expect("mints");
        assert!(verify_token("b", &token).is_err());
        assert!(verify_token("a", "not.a.jwt").is_err());
        assert_eq!(verify_token("a", &token).expect("valid"), user);
    }

    #[test]
    fn expired_beyond_leeway_is_refused() {
        let token = signed(&serde_json::json!({
            "sub": "bob",
            "exp": now_secs() - LEEWAY_SECS - 5,
            "iat": now_secs() - 3600,
        }));
        assert!(verify_token("a", &token).is_err());
    }

    fn signed(claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(b"a"),
        )
        .expect("encodes")
    }

    #[test]
    fn sub_and_exp_are_enough_and_nbf_and_iat_are_honoured_when_present() {
        let bob = UserId::new("bob").expect("valid");
        let exp = now_secs() + 600;
        let minimal = signed(&serde_json::json!({ "sub": "bob", "exp": exp }));
        assert_eq!(
            verify_token("a", &minimal).expect("sub and exp suffice"),
            bob
        );
        let later = now_secs() + 2 * LEEWAY_SECS;
        let not_yet = signed(&serde_json::json!({ "sub": "bob", "exp": exp, "nbf": later }));
        assert!(verify_token("a", &not_yet).is_err(), "nbf in the future");
        let future = signed(&serde_json::json!({ "sub": "bob", "exp": exp, "iat": later }));
        assert!(matches!(
            verify_token("a", &future),
            Err(TokenError::IssuedInTheFuture)
        ));
        let past = signed(&serde_json::json!({
            "sub": "bob", "exp": exp, "iat": now_secs() as f64 - 10.5, "nbf": now_secs() - 10
        }));
        assert_eq!(verify_token("a", &past).expect("valid"), bob);
        assert!(verify_token("a", &signed(&serde_json::json!({ "sub": "bob" }))).is_err());
    }
}
