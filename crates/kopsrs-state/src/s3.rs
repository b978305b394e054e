//! Opening an `s3://` state store as the AWS CLI and the EC2 side of kopsrs would: credentials
//! from the standard AWS chain (environment, `AWS_PROFILE` and the shared config files with
//! SSO, web identity, ECS, instance metadata) and requests sent to the bucket's own region.
//!
//! object_store has its own, smaller chain (environment variables, web identity, instance
//! metadata: no profiles, no SSO) and signs for the region it is given; both are replaced here
//! through its `CredentialProvider` hook rather than re-implemented.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsCredential, S3ConditionalPut};

use crate::{StateStoreError, StoreAccess};

/// The S3 client for `bucket` and the region it signs for: the bucket's (or the one
/// `access` names, as kops's `S3_REGION`), the credentials from the standard chain.
pub(crate) async fn open(
    bucket: &str,
    access: &StoreAccess,
) -> Result<(AmazonS3, String), StateStoreError> {
    let endpoint = access
        .s3_endpoint
        .as_deref()
        .map(|e| e.trim_end_matches('/').to_string());
    let region = match access.s3_region.clone() {
        Some(region) => region,
        None => match bucket_region(bucket, endpoint.as_deref()).await? {
            Some(region) => region,
            // Only a store that does not say: the configured region (whose chain may ask
            // instance metadata, so it is not asked when the bucket answered).
            None => aws_config::default_provider::region::DefaultRegionChain::builder()
                .build()
                .region()
                .await
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".to_string()),
        },
    };
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.clone()))
        .load()
        .await;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&region)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    if let Some(provider) = config.credentials_provider() {
        builder = builder.with_credentials(Arc::new(ChainCredentials {
            provider,
            cached: Mutex::new(None),
        }));
    }
    if let Some(endpoint) = &endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let store = builder.build().map_err(|e| StateStoreError::BadUrl {
        url: format!("s3://{bucket}"),
        reason: e.to_string(),
    })?;
    Ok((store, region))
}

/// The bucket's region from an unsigned `HEAD` (S3 answers it with `x-amz-bucket-region`
/// whatever the caller may read, including 301 and 403), `None` when the server does not
/// say (an S3-compatible store). A bucket that does not exist is an error here, before any
/// command reads "no clusters" from it.
async fn bucket_region(
    bucket: &str,
    endpoint: Option<&str>,
) -> Result<Option<String>, StateStoreError> {
    // S3's wildcard certificate covers one DNS label: dotted names go path-style.
    let url = match endpoint {
        Some(endpoint) => format!("{endpoint}/{bucket}"),
        None if bucket.contains('.') => format!("https://s3.amazonaws.com/{bucket}"),
        None => format!("https://{bucket}.s3.amazonaws.com"),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| StateStoreError::Io(e.to_string()))?;
    let response = client
        .head(&url)
        .send()
        .await
        .map_err(|e| StateStoreError::Unreachable {
            url: url.clone(),
            reason: plain(&e),
        })?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(StateStoreError::NoBucket(bucket.to_string()));
    }
    Ok(response
        .headers()
        .get("x-amz-bucket-region")
        .and_then(|r| r.to_str().ok())
        .map(str::to_string))
}

/// An error and its causes on one line (reqwest's own `Display` stops at "error sending
/// request").
fn plain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The SDK's credential chain behind object_store's hook, cached until five minutes before
/// the credentials expire (the chain's providers do not all cache on their own).
#[derive(Debug)]
struct ChainCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

/// A credential chain failure: not loaded anywhere (`missing`) or a provider that failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CredentialsFailure {
    pub(crate) missing: bool,
    pub(crate) message: String,
}

impl CredentialsFailure {
    fn from_sdk(error: &CredentialsError) -> CredentialsFailure {
        CredentialsFailure {
            missing: matches!(error, CredentialsError::CredentialsNotLoaded(_)),
            message: plain(error),
        }
    }
}

#[async_trait::async_trait]
impl object_store::CredentialProvider for ChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let fresh = |expiry: &Option<SystemTime>| {
            expiry.is_none_or(|at| at > SystemTime::now() + Duration::from_secs(300))
        };
        if let Some((credential, expiry)) = &*self.cached.lock().expect("credential cache") {
            if fresh(expiry) {
                return Ok(credential.clone());
            }
        }
        let loaded = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(CredentialsFailure::from_sdk(&e)),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: loaded.access_key_id().to_string(),
            secret_key: loaded.secret_access_key().to_string(),
            token: loaded.session_token().map(str::to_string),
        });
        *self.cached.lock().expect("credential cache") =
            Some((credential.clone(), loaded.expiry()));
        Ok(credential)
    }
}

/// The failure behind an object_store error when it is the credential chain's.
pub(crate) fn credentials_failure(error: &object_store::Error) -> Option<&CredentialsFailure> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(failure) = cause.downcast_ref::<CredentialsFailure>() {
            return Some(failure);
        }
        source = cause.source();
    }
    None
}

/// S3's own words from an error response body (`<Code>` and `<Message>`), instead of the XML.
pub(crate) fn s3_error_words(text: &str) -> Option<String> {
    let element = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].to_string())
    };
    let code = element("Code")?;
    Some(match element("Message") {
        Some(message) => format!("{code}: {message}"),
        None => code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_errors_read_as_code_and_message() {
        let body = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\
            <Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        assert_eq!(
            s3_error_words(body).as_deref(),
            Some("AccessDenied: Access Denied")
        );
        assert_eq!(s3_error_words("connection refused"), None);
    }
}
