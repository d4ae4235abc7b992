//! Microsoft Entra ID access tokens: the checks a resource API must make before it believes one
//! (learn.microsoft.com, "Access tokens in the Microsoft identity platform", "Validate tokens";
//! sources in `docs/security.md`):
//!
//! - the signature, RS256 only, with the tenant key the header's `kid` names (`jwks`);
//! - `iss`: the tenant's issuer (the metadata's, or `REGISTRY_ENTRA_ISSUER`), as a JSON string
//!   (RFC 7519 section 4.1.1; the JWT crate would also take an array holding it);
//! - `aud`: one of `REGISTRY_ENTRA_AUDIENCE`;
//! - `exp` and `nbf`, with `LEEWAY` for clock skew; both must be present.
//!
//! What the caller may do comes from its app roles (`roles`): `Registry.Read`, `Registry.Write`,
//! `Registry.Admin`, or a scoped `Registry.Write:<scope>` (`domain::access`), spelt exactly so.

use super::caller::{Caller, Identity};
use super::jwks::{KeyError, KeySource};
use crate::configuration::EntraSettings;
use crate::domain::Grants;
use crate::error::ApiError;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    roles: Vec<String>,
    oid: Option<String>,
    sub: Option<String>,
    /// Checked against the issuer by the JWT crate, which also accepts an array holding it: kept
    /// here only to refuse anything but a string.
    #[serde(default)]
    iss: serde_json::Value,
}

pub struct TokenVerifier {
    audiences: Vec<String>,
    keys: KeySource,
}

/// Whether a bearer credential has the shape of a JWT (three Base64url parts), so it is checked as
/// a token rather than looked up as an API key.
pub fn looks_like_jwt(credential: &str) -> bool {
    let parts: Vec<&str> = credential.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && credential
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl TokenVerifier {
    pub fn new(settings: &EntraSettings) -> Self {
        TokenVerifier {
            audiences: settings.audiences.clone(),
            keys: KeySource::new(settings),
        }
    }

    pub async fn caller(&self, token: &str) -> Result<Caller, ApiError> {
        let refused = |why: &str| ApiError::Unauthenticated {
            field: "Authorization",
            message: format!("the access token was refused: {why}"),
            presented: true,
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("malformed"))?;
        if header.alg != Algorithm::RS256 {
            return Err(refused("only RS256 tokens are accepted"));
        }
        let kid = header.kid.ok_or_else(|| refused("no key id (kid)"))?;
        let set = match self.keys.for_kid(&kid).await {
            Ok(set) => set,
            Err(KeyError::UnknownKid) => {
                return Err(refused("signed with a key the tenant does not publish"))
            }
            Err(KeyError::Unavailable(detail)) => {
                return Err(ApiError::IdentityUnavailable(detail))
            }
        };
        let key = set
            .get(&kid)
            .expect("for_kid returns a set holding the kid");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_audience(&self.audiences);
        validation.set_issuer(&[set.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::ImmatureSignature => "not valid yet (nbf)",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::MissingRequiredClaim(_) => {
                    "a required claim (exp, nbf, iss, aud) is missing"
                }
                _ => "malformed",
            };
            refused(why)
        })?;
        let claims = data.claims;
        if !claims.iss.is_string() {
            return Err(refused("the issuer (iss) must be a string"));
        }
        let subject = claims
            .oid
            .or(claims.sub)
            .ok_or_else(|| refused("no subject (oid or sub)"))?;
        let grants = Grants::from_app_roles(claims.roles.iter().map(String::as_str));
        Ok(Caller::new(Identity::Token(subject), grants))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_part_base64url_credentials_are_taken_for_tokens() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(looks_like_jwt("a.b."));
        for key in [
            "k-0123456789abcdef",
            "a.b",
            "a.b.c.d",
            ".b.c",
            "a b.c.d",
            "abc+/=.x.y",
        ] {
            assert!(!looks_like_jwt(key), "{key}");
        }
    }
}
