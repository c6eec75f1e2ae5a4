//! JWT bearer tokens with the claims of api.md: `sub`, `roles`, `region`, `exp` (and `aud`).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::config::JwtKey;
use crate::domain::principal::{Principal, Role, Scope};

/// Token claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User or system id.
    pub sub: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Region code of the subtree the principal may act in, or `*`.
    pub region: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
    /// Audience.
    pub aud: String,
    /// The handling unit the principal acts for (a department code), if any: the principal
    /// may sign for and handle cases dispatched to that unit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

/// Why a token was refused. The message is safe to return to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `authorization: Bearer <JWT>`")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Verifies tokens with the configured key.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

impl Verifier {
    /// A verifier for `key`, requiring audience `audience`.
    pub fn new(key: &JwtKey, audience: &str) -> anyhow::Result<Verifier> {
        let (key, alg) = match key {
            JwtKey::Hs256(secret) => (DecodingKey::from_secret(secret.bytes()), Algorithm::HS256),
            JwtKey::PublicPem(pem) => match DecodingKey::from_rsa_pem(pem.as_bytes()) {
                Ok(k) => (k, Algorithm::RS256),
                Err(_) => (
                    DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| {
                        anyhow::anyhow!("JWT public key is neither RSA nor EC PEM: {e}")
                    })?,
                    Algorithm::ES256,
                ),
            },
        };
        let mut validation = Validation::new(alg);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 30;
        Ok(Verifier { key, validation })
    }

    /// Verifies the value of an `authorization` header.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token)
    }

    /// Verifies a token and turns its claims into a principal.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            let why = match e.kind() {
                K::ExpiredSignature => "expired",
                K::InvalidSignature => "bad signature",
                K::InvalidAudience => "wrong audience",
                K::InvalidAlgorithm => "algorithm not accepted",
                K::MissingRequiredClaim(_) => "a required claim is missing",
                _ => "malformed",
            };
            AuthError::Invalid(why.to_owned())
        })?;
        let c = data.claims;
        if c.sub.trim().is_empty() {
            return Err(AuthError::Invalid("empty sub".into()));
        }
        let scope = Scope::parse(&c.region)
            .ok_or_else(|| AuthError::Invalid("region claim is not a region code".into()))?;
        let mut roles: Vec<Role> = c.roles.iter().filter_map(|r| Role::parse(r)).collect();
        roles.sort();
        roles.dedup();
        Ok(Principal {
            sub: c.sub,
            roles,
            scope,
            unit: Some(c.unit).filter(|u| !u.trim().is_empty()),
        })
    }
}

/// Signs tokens (development HS256 secret, or a private PEM key for RS256/ES256).
pub struct Issuer {
    key: EncodingKey,
    alg: Algorithm,
    audience: String,
}

impl Issuer {
    /// An HS256 issuer; tokens verify against a server with the same secret.
    pub fn hs256(secret: &crate::crypto::SecretKey, audience: &str) -> Issuer {
        Issuer {
            key: EncodingKey::from_secret(secret.bytes()),
            alg: Algorithm::HS256,
            audience: audience.to_owned(),
        }
    }

    /// An HS256 issuer from raw secret bytes (tests of algorithm confusion).
    #[cfg(test)]
    fn hs256_raw(secret: &[u8], audience: &str) -> Issuer {
        Issuer {
            key: EncodingKey::from_secret(secret),
            alg: Algorithm::HS256,
            audience: audience.to_owned(),
        }
    }

    /// An RS256 or ES256 issuer from a private key in PEM.
    pub fn from_private_pem(pem: &str, audience: &str) -> anyhow::Result<Issuer> {
        let (key, alg) = match EncodingKey::from_rsa_pem(pem.as_bytes()) {
            Ok(k) => (k, Algorithm::RS256),
            Err(_) => (EncodingKey::from_ec_pem(pem.as_bytes())?, Algorithm::ES256),
        };
        Ok(Issuer {
            key,
            alg,
            audience: audience.to_owned(),
        })
    }

    /// A signed token for `sub` with `roles` in `region`, valid for `ttl`.
    pub fn issue(
        &self,
        sub: &str,
        roles: &[String],
        region: &str,
        ttl: std::time::Duration,
    ) -> anyhow::Result<String> {
        self.issue_for_unit(sub, roles, region, "", ttl)
    }

    /// Like [`Issuer::issue`], for a principal acting for handling unit `unit` (empty: none).
    pub fn issue_for_unit(
        &self,
        sub: &str,
        roles: &[String],
        region: &str,
        unit: &str,
        ttl: std::time::Duration,
    ) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            roles: roles.to_vec(),
            region: region.to_owned(),
            exp: now + ttl.as_secs(),
            iat: now,
            aud: self.audience.clone(),
            unit: unit.to_owned(),
        };
        Ok(encode(&Header::new(self.alg), &claims, &self.key)?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::crypto::SecretKey;

    fn pair() -> (Issuer, Verifier) {
        let k = SecretKey::generate();
        (
            Issuer::hs256(&k, "gridhub"),
            Verifier::new(&JwtKey::Hs256(k), "gridhub").unwrap(),
        )
    }

    #[test]
    fn issued_token_verifies() {
        let (i, v) = pair();
        let t = i
            .issue(
                "w1",
                &["grid_worker".into(), "nonsense".into()],
                "500110111201",
                Duration::from_secs(60),
            )
            .unwrap();
        let p = v.verify_header(Some(&format!("Bearer {t}"))).unwrap();
        assert_eq!(p.sub, "w1");
        assert_eq!(p.roles, vec![Role::GridWorker]);
        assert_eq!(p.scope, Scope::parse("500110111201").unwrap());
    }

    #[test]
    fn missing_forged_expired_and_foreign_tokens_fail() {
        let (i, v) = pair();
        assert_eq!(v.verify_header(None), Err(AuthError::Missing));
        assert_eq!(v.verify_header(Some("Basic abc")), Err(AuthError::Missing));
        let (other, _) = pair();
        let forged = other
            .issue("x", &[], "50", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            v.verify(&forged),
            Err(AuthError::Invalid("bad signature".into()))
        );
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: "x".into(),
            roles: vec![],
            region: "50".into(),
            exp: now - 3600,
            iat: now - 7200,
            aud: "gridhub".into(),
            unit: String::new(),
        };
        let expired = encode(&Header::new(Algorithm::HS256), &claims, &i.key).unwrap();
        assert_eq!(
            v.verify(&expired),
            Err(AuthError::Invalid("expired".into()))
        );
        let wrong_aud = Issuer {
            audience: "other".into(),
            ..i
        };
        let t = wrong_aud
            .issue("x", &[], "50", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            v.verify(&t),
            Err(AuthError::Invalid("wrong audience".into()))
        );
    }

    #[test]
    fn rs256_and_es256_public_keys_verify_their_private_keys_tokens() {
        let keys = [
            (
                include_str!("../../fixtures/test-keys/rs256-private.pem"),
                include_str!("../../fixtures/test-keys/rs256-public.pem"),
            ),
            (
                include_str!("../../fixtures/test-keys/es256-private.pem"),
                include_str!("../../fixtures/test-keys/es256-public.pem"),
            ),
        ];
        for (private, public) in keys {
            let issuer = Issuer::from_private_pem(private, "gridhub").unwrap();
            let verifier = Verifier::new(&JwtKey::PublicPem(public.to_owned()), "gridhub").unwrap();
            let t = issuer
                .issue("ops", &["admin".into()], "500110", Duration::from_secs(60))
                .unwrap();
            assert_eq!(verifier.verify(&t).unwrap().sub, "ops");
            // An HS256 token signed with the public key text as secret must not pass
            // (the classic algorithm-confusion attack).
            let confused = Issuer::hs256_raw(public.as_bytes(), "gridhub")
                .issue("ops", &["admin".into()], "*", Duration::from_secs(60))
                .unwrap();
            assert!(verifier.verify(&confused).is_err());
        }
        // The RSA key does not verify the EC key's tokens.
        let ec = Issuer::from_private_pem(keys[1].0, "gridhub")
            .unwrap()
            .issue("x", &[], "50", Duration::from_secs(60))
            .unwrap();
        let rsa = Verifier::new(&JwtKey::PublicPem(keys[0].1.to_owned()), "gridhub").unwrap();
        assert!(rsa.verify(&ec).is_err());
    }

    #[test]
    fn bad_region_claim_fails() {
        let (i, v) = pair();
        let t = i.issue("x", &[], "abc", Duration::from_secs(60)).unwrap();
        assert!(v.verify(&t).is_err());
    }
}
