//! Tokens: minting (for operators, examples and tests) and checking on connect.
//!
//! A token is an HS256 JWT whose `sub` is the user id; `exp` is checked with 60 s of leeway.

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
    iat: u64,
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
        iat,
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// Checks a token's signature and expiry and returns its user.
pub fn verify_token(secret: &str, token: &str) -> Result<UserId, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )?;
    Ok(UserId::new(data.claims.sub)?)
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
        let claims = Claims {
            sub: "bob".into(),
            exp: now_secs() - LEEWAY_SECS - 5,
            iat: now_secs() - 3600,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"a"),
        )
        .expect("encodes");
        assert!(verify_token("a", &token).is_err());
    }
}
