//! The cluster's PKI as data: kops keysets (`pki/private/<name>/keyset.yaml`) holding the
//! certificate authorities and the service-account key, their rotation (create, promote,
//! distrust, trust), client certificates signed by a CA, and kubeconfig merging.
//!
//! No I/O: the caller reads and writes the state store and passes the time in. Keys are
//! ECDSA P-256 (rcgen on aws-lc-rs, already in the build through the AWS SDK); kops uses RSA
//! 2048, which kubeadm does not require.

pub mod discovery;
mod kubeconfig;

pub use kubeconfig::{merge_kubeconfig, KubeconfigEntry};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The keysets every cluster has, created on the first `update cluster` and never
/// regenerated: the Kubernetes CA, the etcd CA (kubeadm signs etcd's server, peer and client
/// certificates with one CA), the front-proxy CA (kops's name) and the service-account
/// signing key.
pub const KEYSETS: &[&str] = &[
    "kubernetes-ca",
    "etcd-ca",
    "apiserver-aggregator-ca",
    "service-account",
];

/// CAs live ten years, as kops's do.
const CA_YEARS: i64 = 10;

/// What can go wrong with keysets and certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Generating a key, or building or signing a certificate, failed (rcgen).
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// A rotation step the keyset's state does not allow, or a key ID it does not have.
    #[error("keyset {keyset}: {message}")]
    Keyset {
        /// The keyset's name, e.g. `kubernetes-ca`.
        keyset: String,
        /// What is wrong, and what to do first where there is something.
        message: String,
    },
    /// Stored material does not decode: bad YAML, base64, UTF-8 or PEM.
    #[error("keyset {keyset}: stored material is not valid: {message}")]
    Corrupt {
        /// The keyset's name, or `?` when the YAML did not decode far enough to tell.
        keyset: String,
        /// The decoder's message.
        message: String,
    },
}

/// kops's `Keyset` document (`kops.k8s.io/v1alpha2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Keyset {
    /// `kops.k8s.io/v1alpha2`, as kops writes it.
    pub api_version: String,
    /// `Keyset`.
    pub kind: String,
    /// The keyset's name and creation time.
    pub metadata: Metadata,
    /// The keys and which one is primary.
    pub spec: KeysetSpec,
}

/// The `metadata` of a [`Keyset`]: the subset kops writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The keyset's name, one of [`KEYSETS`] for the keysets kopsrs makes.
    pub name: String,
    /// When the keyset was generated (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

/// The `spec` of a [`Keyset`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeysetSpec {
    /// kops's keyset type (`spec.type`): `Keypair` for every keyset kopsrs makes.
    #[serde(rename = "type")]
    pub kind: String,
    /// The ID of the key that signs new certificates (`spec.primaryID`).
    #[serde(
        rename = "primaryID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub primary_id: String,
    /// Every key, trusted or not, in the order they were added.
    #[serde(default)]
    pub keys: Vec<KeysetItem>,
}

/// One key of a keyset: a certificate, its private key, and whether it is still trusted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeysetItem {
    /// The key's ID: its creation time in nanoseconds, as decimal text, so IDs sort by age.
    pub id: String,
    /// Base64 of the PEM certificate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub public_material: String,
    /// Base64 of the PEM private key; empty in the public copy under `pki/issued/`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_material: String,
    /// When the key was distrusted (RFC 3339); `None` while it is trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distrust_timestamp: Option<String>,
}

/// One key of a keyset as `get keypairs` shows it (no private material).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// The keyset's name.
    pub keyset: String,
    /// The key's ID (see [`KeysetItem::id`]).
    pub id: String,
    /// Whether this key signs new certificates.
    pub primary: bool,
    /// Whether this key has been distrusted (left out of the trust bundle).
    pub distrusted: bool,
    /// When it was distrusted (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distrust_timestamp: Option<String>,
    /// The certificate's subject, e.g. `CN=kubernetes-ca`.
    pub subject: String,
    /// When the certificate expires (RFC 3339).
    pub not_after: String,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A key ID: the time in nanoseconds, as a decimal string. IDs sort by age, like kops's.
fn key_id(now: OffsetDateTime) -> String {
    now.unix_timestamp_nanos().max(1).to_string()
}

fn new_ca_item(keyset: &str, now: OffsetDateTime) -> Result<KeysetItem, PkiError> {
    let id = key_id(now);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, keyset);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // Backdated so a node whose clock runs behind still accepts the new CA.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365 * CA_YEARS);
    // A self-signed CA is its own issuer, so its serial only has to be positive and not reused;
    // the creation time in nanoseconds is both.
    params.serial_number = Some(SerialNumber::from_slice(
        &now.unix_timestamp_nanos().max(1).to_be_bytes(),
    ));
    let cert = params.self_signed(&key)?;
    Ok(KeysetItem {
        id,
        public_material: B64.encode(cert.pem()),
        private_material: B64.encode(key.serialize_pem()),
        distrust_timestamp: None,
    })
}

impl Keyset {
    /// A new keyset with one key, which is primary.
    pub fn generate(name: &str, now: OffsetDateTime) -> Result<Keyset, PkiError> {
        let item = new_ca_item(name, now)?;
        Ok(Keyset {
            api_version: "kops.k8s.io/v1alpha2".into(),
            kind: "Keyset".into(),
            metadata: Metadata {
                name: name.into(),
                creation_timestamp: Some(rfc3339(now)),
            },
            spec: KeysetSpec {
                kind: "Keypair".into(),
                primary_id: item.id.clone(),
                keys: vec![item],
            },
        })
    }

    /// The keyset's name (`metadata.name`).
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    fn error(&self, message: impl Into<String>) -> PkiError {
        PkiError::Keyset {
            keyset: self.name().to_string(),
            message: message.into(),
        }
    }

    /// Decodes a stored keyset, strictly.
    pub fn from_yaml(text: &str) -> Result<Keyset, PkiError> {
        serde_yaml_ng::from_str(text).map_err(|e| PkiError::Corrupt {
            keyset: "?".into(),
            message: e.to_string(),
        })
    }

    /// The keyset as YAML: the stored form under `pki/private/`, or `pki/issued/` for
    /// [`Keyset::public`].
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a keyset serializes")
    }

    /// The copy without private material, for `pki/issued/`.
    pub fn public(&self) -> Keyset {
        let mut public = self.clone();
        for key in &mut public.spec.keys {
            key.private_material.clear();
        }
        public
    }

    /// Adds a new key, trusted but not primary (`create keypair`): nodes learn to trust it
    /// before anything is signed with it. Returns its ID.
    pub fn create_key(&mut self, now: OffsetDateTime) -> Result<String, PkiError> {
        let mut item = new_ca_item(self.name(), now)?;
        // IDs are times; two keys made in the same nanosecond get distinct IDs anyway.
        while self.spec.keys.iter().any(|k| k.id == item.id) {
            item = new_ca_item(self.name(), now + time::Duration::nanoseconds(1))?;
        }
        let id = item.id.clone();
        self.spec.keys.push(item);
        Ok(id)
    }

    /// Makes the newest trusted key primary (`promote keypair`). Returns its ID.
    pub fn promote(&mut self) -> Result<String, PkiError> {
        let newest = self
            .spec
            .keys
            .iter()
            .filter(|k| k.distrust_timestamp.is_none())
            .max_by_key(|k| k.id.parse::<u128>().unwrap_or(0))
            .map(|k| k.id.clone())
            .ok_or_else(|| self.error("has no trusted key to promote"))?;
        if newest == self.spec.primary_id {
            return Err(self.error(format!(
                "the newest trusted key {newest} is already primary; run `create keypair {}` first",
                self.name()
            )));
        }
        self.spec.primary_id = newest.clone();
        Ok(newest)
    }

    /// Distrusts keys (`distrust keypair`): the given IDs, or every trusted key older than
    /// the primary. The primary itself can never be distrusted. Returns the IDs distrusted.
    pub fn distrust(
        &mut self,
        ids: &[String],
        now: OffsetDateTime,
    ) -> Result<Vec<String>, PkiError> {
        let primary: u128 = self.spec.primary_id.parse().unwrap_or(0);
        if ids.contains(&self.spec.primary_id) {
            return Err(self.error(format!(
                "key {} is primary and cannot be distrusted; promote another key first",
                self.spec.primary_id
            )));
        }
        for id in ids {
            if !self.spec.keys.iter().any(|k| &k.id == id) {
                return Err(self.error(format!("has no key {id}")));
            }
        }
        let mut done = Vec::new();
        for key in &mut self.spec.keys {
            let chosen = match ids.is_empty() {
                true => key.id.parse::<u128>().unwrap_or(0) < primary,
                false => ids.contains(&key.id),
            };
            if chosen && key.distrust_timestamp.is_none() {
                key.distrust_timestamp = Some(rfc3339(now));
                done.push(key.id.clone());
            }
        }
        Ok(done)
    }

    /// Trusts a distrusted key again (`trust keypair`).
    pub fn trust(&mut self, id: &str) -> Result<(), PkiError> {
        let name = self.name().to_string();
        let key = self
            .spec
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| PkiError::Keyset {
                keyset: name,
                message: format!("has no key {id}"),
            })?;
        key.distrust_timestamp = None;
        Ok(())
    }

    fn primary(&self) -> Result<&KeysetItem, PkiError> {
        self.spec
            .keys
            .iter()
            .find(|k| k.id == self.spec.primary_id)
            .ok_or_else(|| self.error(format!("primary key {} is missing", self.spec.primary_id)))
    }

    fn decode(&self, material: &str) -> Result<String, PkiError> {
        let bytes = B64.decode(material).map_err(|e| PkiError::Corrupt {
            keyset: self.name().into(),
            message: e.to_string(),
        })?;
        String::from_utf8(bytes).map_err(|e| PkiError::Corrupt {
            keyset: self.name().into(),
            message: e.to_string(),
        })
    }

    /// The primary certificate (PEM).
    pub fn primary_cert_pem(&self) -> Result<String, PkiError> {
        self.decode(&self.primary()?.public_material)
    }

    /// Every certificate that is not distrusted (PEM, concatenated): what nodes and clients
    /// trust, so a rotation never breaks what was signed by an older, still trusted key.
    pub fn trust_bundle(&self) -> Result<String, PkiError> {
        let mut bundle = String::new();
        for key in self
            .spec
            .keys
            .iter()
            .filter(|k| k.distrust_timestamp.is_none())
        {
            bundle.push_str(&self.decode(&key.public_material)?);
        }
        Ok(bundle)
    }

    /// Each key, for `get keypairs`.
    pub fn describe(&self) -> Result<Vec<KeyInfo>, PkiError> {
        self.spec
            .keys
            .iter()
            .map(|key| {
                let pem = self.decode(&key.public_material)?;
                let (subject, not_after) =
                    cert_summary(&pem).map_err(|message| PkiError::Corrupt {
                        keyset: self.name().into(),
                        message,
                    })?;
                Ok(KeyInfo {
                    keyset: self.name().into(),
                    id: key.id.clone(),
                    primary: key.id == self.spec.primary_id,
                    distrusted: key.distrust_timestamp.is_some(),
                    distrust_timestamp: key.distrust_timestamp.clone(),
                    subject,
                    not_after,
                })
            })
            .collect()
    }

    /// A client certificate signed by the primary key (`export kubeconfig --admin`).
    /// Returns (certificate PEM, private key PEM).
    pub fn sign_client(
        &self,
        common_name: &str,
        organizations: &[&str],
        now: OffsetDateTime,
        lifetime: time::Duration,
    ) -> Result<(String, String), PkiError> {
        let primary = self.primary()?;
        let ca_key = KeyPair::from_pem(&self.decode(&primary.private_material)?)?;
        let issuer = Issuer::from_ca_cert_pem(&self.decode(&primary.public_material)?, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for org in organizations {
            name.push(DnType::OrganizationName, *org);
        }
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        // A little backdating covers clock skew between this machine and the API server.
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + lifetime;
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Subject and expiry of a PEM certificate.
fn cert_summary(pem: &str) -> Result<(String, String), String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let cert = pem.parse_x509().map_err(|e| e.to_string())?;
    let not_after = cert.validity().not_after.to_datetime();
    Ok((cert.subject().to_string(), rfc3339(not_after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn a_keyset_round_trips_through_yaml_and_has_a_public_copy() {
        let keyset = Keyset::generate("kubernetes-ca", at(0)).unwrap();
        let text = keyset.to_yaml();
        assert!(text.contains("kind: Keyset"));
        assert!(text.contains("primaryID:"));
        assert_eq!(Keyset::from_yaml(&text).unwrap(), keyset);
        let public = keyset.public().to_yaml();
        assert!(!public.contains("privateMaterial"));
        assert!(keyset
            .primary_cert_pem()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        let info = keyset.describe().unwrap();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].subject, "CN=kubernetes-ca");
        assert!(info[0].primary);
    }

    #[test]
    fn rotation_create_promote_distrust_trust() {
        let mut keyset = Keyset::generate("kubernetes-ca", at(0)).unwrap();
        let first = keyset.spec.primary_id.clone();
        let second = keyset.create_key(at(10)).unwrap();
        // A new key is trusted (in the bundle) but not primary.
        assert_eq!(keyset.spec.primary_id, first);
        assert_eq!(
            keyset
                .trust_bundle()
                .unwrap()
                .matches("BEGIN CERTIFICATE")
                .count(),
            2
        );
        // The primary cannot be distrusted; promoting twice needs a newer key.
        assert!(keyset
            .distrust(std::slice::from_ref(&first), at(20))
            .is_err());
        assert_eq!(keyset.promote().unwrap(), second);
        assert!(keyset.promote().is_err());
        // Distrust without IDs: every key older than the primary.
        assert_eq!(keyset.distrust(&[], at(30)).unwrap(), vec![first.clone()]);
        let bundle = keyset.trust_bundle().unwrap();
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1);
        assert_eq!(bundle, keyset.primary_cert_pem().unwrap());
        assert!(keyset
            .distrust(std::slice::from_ref(&second), at(40))
            .is_err());
        keyset.trust(&first).unwrap();
        assert_eq!(
            keyset
                .trust_bundle()
                .unwrap()
                .matches("BEGIN CERTIFICATE")
                .count(),
            2
        );
        assert!(keyset.trust("nope").is_err());
    }

    #[test]
    fn client_certificates_name_the_user_and_groups() {
        let keyset = Keyset::generate("kubernetes-ca", at(0)).unwrap();
        let (cert, key) = keyset
            .sign_client(
                "kubecfg",
                &["system:masters"],
                at(0),
                time::Duration::hours(18),
            )
            .unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let (subject, not_after) = cert_summary(&cert).unwrap();
        assert_eq!(subject, "O=system:masters, CN=kubecfg");
        assert_eq!(not_after, rfc3339(at(18 * 3600)));
    }
}
