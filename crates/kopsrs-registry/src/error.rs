//! The errors of an image copy or digest look-up, and their mapping from oci-client's errors.

use oci_client::errors::{DigestError, OciDistributionError, OciEnvelope, OciErrorCode};

/// What failed in a copy or a digest look-up. Every message names the image reference and the
/// registry involved, what failed, and ends with a hint.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference is not an image reference (`[registry/]repository[:tag][@digest]`).
    #[error("{reference:?} is not an image reference: {reason}; hint: write REGISTRY/REPOSITORY:TAG (or @sha256:DIGEST), repositories in lower case")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The registry says the manifest, blob or repository is not there.
    #[error("{reference} not found at {registry}: {what}; hint: check the repository and the tag or digest exist there")]
    NotFound {
        /// The image reference.
        reference: String,
        /// The registry host (`host[:port]`).
        registry: String,
        /// What is missing (a manifest, a blob by digest, the repository).
        what: String,
    },
    /// The registry wants credentials (or refused the ones it got).
    #[error("{reference}: {registry} requires authentication for {operation} ({detail}); hint: only anonymous and token access of public images is supported: make the repository public or copy with the registry's own tools")]
    AuthRequired {
        /// The image reference.
        reference: String,
        /// The registry host.
        registry: String,
        /// What was being done (`pull manifest`, `push blob sha256:...`, ...).
        operation: String,
        /// The registry's answer.
        detail: String,
    },
    /// Content read from a registry does not hash to the digest it was asked for.
    #[error("{reference}: {what} from {registry} does not match its digest: expected {expected}, got {actual}; hint: the registry or something between (a proxy) served other bytes: retry, or pull from another mirror")]
    DigestMismatch {
        /// The image reference.
        reference: String,
        /// The registry host that served the content.
        registry: String,
        /// What was read (`blob sha256:...`, `manifest`).
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The registry answered with an HTTP error status.
    #[error(
        "{reference}: {operation} at {registry} failed with HTTP {status}: {message}; hint: {hint}"
    )]
    Http {
        /// The image reference.
        reference: String,
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's error message (its error codes when it sent an OCI error envelope).
        message: String,
        /// What to check.
        hint: String,
    },
    /// The registry could not be reached, or the exchange broke off (DNS, TCP, TLS, timeout).
    #[error("{reference}: {operation} at {registry} failed: {message}; hint: check the registry is reachable from here (DNS, firewall, proxy) and speaks HTTPS (plain HTTP is used for loopback registries only)")]
    Transport {
        /// The image reference.
        reference: String,
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// The underlying error.
        message: String,
    },
    /// The manifest is of a kind this copier does not handle (schema 1, not JSON, unknown media type).
    #[error("{reference} at {registry}: {detail}; hint: only OCI image manifests and indexes and Docker schema 2 manifests and manifest lists can be copied")]
    Unsupported {
        /// The image reference.
        reference: String,
        /// The registry host.
        registry: String,
        /// What is unsupported.
        detail: String,
    },
}

/// Where an oci-client call was made: for the messages.
pub(crate) struct Context<'a> {
    /// The image reference as the caller wrote it.
    pub reference: &'a str,
    /// The registry host.
    pub registry: &'a str,
    /// What was being done.
    pub operation: String,
}

/// The registry's OCI error codes in `body`, when it is an OCI error envelope.
pub(crate) fn envelope_codes(body: &str) -> Vec<String> {
    match serde_json::from_str::<OciEnvelope>(body) {
        Ok(envelope) => envelope
            .errors
            .iter()
            .map(|e| {
                let code = serde_json::to_value(&e.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{:?}", e.code));
                if e.message.is_empty() {
                    code
                } else {
                    format!("{code} ({})", e.message)
                }
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Whether `err` is the registry refusing a manifest because content it references is missing
/// (`MANIFEST_BLOB_UNKNOWN`, as Distribution 2.8 answers for an index with a missing child).
pub(crate) fn is_manifest_blob_unknown(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::ServerError {
            code: 400, message, ..
        } => envelope_codes(message)
            .iter()
            .any(|c| c.starts_with("MANIFEST_BLOB_UNKNOWN")),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::ManifestBlobUnknown),
        _ => false,
    }
}

/// Whether `err` says "not there" (HTTP 404, or the OCI codes for unknown manifests, blobs and
/// repositories).
pub(crate) fn is_not_found(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::ServerError { code: 404, .. } => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        429 => "the registry rate-limits this client: wait and retry, or copy from a mirror",
        400 => "the registry refused the request as invalid: check the manifest or reference it was given",
        405 => "the registry does not allow this operation (a read-only mirror or pull-through cache?)",
        s if s >= 500 => "the registry failed: retry later",
        _ => "check the reference and the registry's logs",
    }
}

/// `err` as a [`RegistryError`] for `ctx`.
pub(crate) fn classify(err: OciDistributionError, ctx: Context<'_>) -> RegistryError {
    let reference = ctx.reference.to_string();
    let registry = ctx.registry.to_string();
    let operation = ctx.operation;
    if is_not_found(&err) {
        let detail = match &err {
            OciDistributionError::ServerError { message, .. } => {
                let codes = envelope_codes(message);
                if codes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", codes.join(", "))
                }
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes = envelope_codes(&serde_json::to_string(envelope).unwrap_or_default());
                format!(" ({})", codes.join(", "))
            }
            _ => String::new(),
        };
        return RegistryError::NotFound {
            reference,
            registry,
            what: format!("{operation}: HTTP 404{detail}"),
        };
    }
    match err {
        OciDistributionError::UnauthorizedError { url } => RegistryError::AuthRequired {
            reference,
            registry,
            operation,
            detail: format!("HTTP 401 from {url}"),
        },
        OciDistributionError::AuthenticationFailure(detail) => RegistryError::AuthRequired {
            reference,
            registry,
            operation,
            detail: format!("the token request failed: {}", detail.trim()),
        },
        OciDistributionError::ServerError { code, message, .. } if code == 401 || code == 403 => {
            RegistryError::AuthRequired {
                reference,
                registry,
                operation,
                detail: format!("HTTP {code}: {}", short(&message)),
            }
        }
        OciDistributionError::ServerError { code, message, .. } => {
            let codes = envelope_codes(&message);
            RegistryError::Http {
                reference,
                registry,
                operation,
                status: code,
                message: if codes.is_empty() {
                    short(&message)
                } else {
                    codes.join(", ")
                },
                hint: status_hint(code).to_string(),
            }
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let denied = envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied));
            let codes = envelope_codes(&serde_json::to_string(&envelope).unwrap_or_default());
            if denied {
                RegistryError::AuthRequired {
                    reference,
                    registry,
                    operation,
                    detail: codes.join(", "),
                }
            } else {
                let status = if envelope
                    .errors
                    .iter()
                    .any(|e| e.code == OciErrorCode::Toomanyrequests)
                {
                    429
                } else {
                    400
                };
                RegistryError::Http {
                    reference,
                    registry,
                    operation,
                    status,
                    message: codes.join(", "),
                    hint: status_hint(status).to_string(),
                }
            }
        }
        OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
            RegistryError::DigestMismatch {
                reference,
                registry,
                what: operation,
                expected,
                actual,
            }
        }
        OciDistributionError::UnsupportedMediaTypeError(media_type) => RegistryError::Unsupported {
            reference,
            registry,
            detail: format!("{operation}: media type {media_type}"),
        },
        OciDistributionError::UnsupportedSchemaVersionError(version) => {
            RegistryError::Unsupported {
                reference,
                registry,
                detail: format!("{operation}: schema version {version}"),
            }
        }
        other => RegistryError::Transport {
            reference,
            registry,
            operation,
            message: chain(&other),
        },
    }
}

/// The error and its sources, joined (reqwest's top-level message alone hides the cause).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// At most 300 characters of a registry's body, on one line.
fn short(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 300 {
        format!("{}...", line.chars().take(300).collect::<String>())
    } else if line.is_empty() {
        "(no body)".to_string()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            reference: "quay.io/a/b:1",
            registry: "quay.io",
            operation: "pull manifest".into(),
        }
    }

    #[test]
    fn a_404_is_not_found_naming_reference_and_registry() {
        let err = OciDistributionError::ServerError {
            code: 404,
            url: "https://quay.io/v2/a/b/manifests/1".into(),
            message: r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                .into(),
        };
        let e = classify(err, ctx());
        assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("quay.io/a/b:1") && text.contains("at quay.io"),
            "{text}"
        );
        assert!(text.contains("MANIFEST_UNKNOWN"), "{text}");
    }

    #[test]
    fn unauthorized_and_denied_are_auth_required() {
        let e = classify(
            OciDistributionError::UnauthorizedError { url: "u".into() },
            ctx(),
        );
        assert!(matches!(e, RegistryError::AuthRequired { .. }), "{e:?}");
        let envelope: OciEnvelope =
            serde_json::from_str(r#"{"errors":[{"code":"DENIED","message":"no"}]}"#).unwrap();
        let e = classify(
            OciDistributionError::RegistryError {
                envelope,
                url: "u".into(),
            },
            ctx(),
        );
        assert!(matches!(e, RegistryError::AuthRequired { .. }), "{e:?}");
        assert!(e.to_string().contains("DENIED"), "{e}");
    }

    #[test]
    fn other_statuses_keep_the_status_and_codes() {
        let err = OciDistributionError::ServerError {
            code: 400,
            url: "u".into(),
            message: r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#
                .into(),
        };
        assert!(is_manifest_blob_unknown(&err));
        let e = classify(err, ctx());
        match &e {
            RegistryError::Http {
                status, message, ..
            } => {
                assert_eq!(*status, 400);
                assert!(message.contains("MANIFEST_BLOB_UNKNOWN"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("hint:"), "{e}");
    }

    #[test]
    fn digest_errors_are_mismatches() {
        let err = OciDistributionError::DigestError(DigestError::VerificationError {
            expected: "sha256:aa".into(),
            actual: "sha256:bb".into(),
        });
        let e = classify(err, ctx());
        assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e:?}");
        assert!(e.to_string().contains("sha256:aa") && e.to_string().contains("sha256:bb"));
    }
}
