//! The service-account issuer's OpenID discovery documents (IRSA): the JSON Web Key Set of
//! the `service-account` keyset's trusted keys and the discovery document that names it, as
//! the API server serves them at `/openid/v1/jwks` and `/.well-known/openid-configuration`.
//!
//! Every key that is not distrusted is published, so a token signed before a rotation
//! (`create keypair service-account`, `promote keypair service-account`) keeps verifying until
//! the old key is distrusted. A key's ID is the API server's: the unpadded base64url of the
//! sha256 of its public key's DER (`SubjectPublicKeyInfo`), so the `kid` of a token the API
//! server signs names a key of this set.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{Keyset, PkiError};

/// Where the JWKS is, under the issuer (`https://ISSUER/openid/v1/jwks`).
pub const JWKS_PATH: &str = "openid/v1/jwks";
/// Where the discovery document is, under the issuer.
pub const DISCOVERY_PATH: &str = ".well-known/openid-configuration";

/// The API server's key ID of a certificate's public key.
fn key_id(spki_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(spki_der))
}

/// One JSON Web Key of a PEM certificate's public key (EC P-256 or RSA).
fn jwk(keyset: &str, pem: &str) -> Result<Value, PkiError> {
    let corrupt = |message: String| PkiError::Corrupt {
        keyset: keyset.into(),
        message,
    };
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| corrupt(e.to_string()))?;
    let spki = cert.public_key();
    let kid = key_id(spki.raw);
    match spki.parsed().map_err(|e| corrupt(e.to_string()))? {
        x509_parser::public_key::PublicKey::EC(point) => {
            let bytes = point.data();
            // Uncompressed P-256: 0x04 || X (32) || Y (32).
            if bytes.len() != 65 || bytes[0] != 4 {
                return Err(corrupt(format!(
                    "an EC key of {} bytes is not an uncompressed P-256 point",
                    bytes.len()
                )));
            }
            Ok(json!({
                "use": "sig",
                "kty": "EC",
                "kid": kid,
                "crv": "P-256",
                "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(&bytes[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&bytes[33..]),
            }))
        }
        x509_parser::public_key::PublicKey::RSA(rsa) => {
            let trim = |b: &[u8]| {
                let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
                URL_SAFE_NO_PAD.encode(&b[start..])
            };
            Ok(json!({
                "use": "sig",
                "kty": "RSA",
                "kid": kid,
                "alg": "RS256",
                "n": trim(rsa.modulus),
                "e": trim(rsa.exponent),
            }))
        }
        other => Err(corrupt(format!(
            "a {other:?} key cannot sign service-account tokens"
        ))),
    }
}

impl Keyset {
    /// The JSON Web Key Set of every key that is not distrusted, primary first, as JSON text.
    pub fn jwks(&self) -> Result<String, PkiError> {
        let mut keys = Vec::new();
        let mut trusted: Vec<_> = self
            .spec
            .keys
            .iter()
            .filter(|k| k.distrust_timestamp.is_none())
            .collect();
        trusted.sort_by_key(|k| k.id != self.spec.primary_id);
        for key in trusted {
            let pem = self.decode(&key.public_material)?;
            keys.push(jwk(self.name(), &pem)?);
        }
        Ok(pretty(&json!({ "keys": keys })))
    }
}

/// The discovery document of the issuer `https://ISSUER` (`issuer` without its scheme).
pub fn discovery_document(issuer: &str) -> String {
    let issuer = format!("https://{}", issuer.trim_end_matches('/'));
    pretty(&json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/{JWKS_PATH}"),
        "authorization_endpoint": "urn:kubernetes:programmatic_authorization",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "claims_supported": ["sub", "iss"],
    }))
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trusted_key_is_published_primary_first() {
        let now = time::OffsetDateTime::now_utc();
        let mut keyset = Keyset::generate("service-account", now).unwrap();
        let first = keyset.spec.primary_id.clone();
        let one: Value = serde_json::from_str(&keyset.jwks().unwrap()).unwrap();
        assert_eq!(one["keys"].as_array().unwrap().len(), 1);
        let old_kid = one["keys"][0]["kid"].as_str().unwrap().to_string();
        assert_eq!(old_kid.len(), 43, "sha256, unpadded base64url");
        assert_eq!(one["keys"][0]["kty"], "EC");

        let new = keyset.create_key(now + time::Duration::seconds(1)).unwrap();
        keyset.promote().unwrap();
        assert_eq!(keyset.spec.primary_id, new);
        let two: Value = serde_json::from_str(&keyset.jwks().unwrap()).unwrap();
        let kids: Vec<&str> = two["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1], old_kid, "the old key stays, after the new primary");

        keyset.distrust(std::slice::from_ref(&first), now).unwrap();
        let after: Value = serde_json::from_str(&keyset.jwks().unwrap()).unwrap();
        assert_eq!(after["keys"].as_array().unwrap().len(), 1);
        assert_ne!(after["keys"][0]["kid"], old_kid.as_str());
    }

    #[test]
    fn the_discovery_document_names_the_jwks_under_the_issuer() {
        let doc: Value =
            serde_json::from_str(&discovery_document("oidc.s3.eu-west-1.amazonaws.com/c/"))
                .unwrap();
        assert_eq!(doc["issuer"], "https://oidc.s3.eu-west-1.amazonaws.com/c");
        assert_eq!(
            doc["jwks_uri"],
            "https://oidc.s3.eu-west-1.amazonaws.com/c/openid/v1/jwks"
        );
    }
}
