//! Opening an `s3://` state store as the AWS CLI and the EC2 side of kopsrs would: credentials
//! from the standard AWS chain (environment, `AWS_PROFILE` and the shared config files with
//! SSO, web identity, ECS, instance metadata) and requests sent to the bucket's own region.
//!
//! object_store has its own, smaller chain (environment variables, web identity, instance
//! metadata: no profiles, no SSO) and signs for the region it is given; both are replaced here
//! through its `CredentialProvider` hook rather than re-implemented.
//!
//! With an expected owner, every request names it (`x-amz-expected-bucket-owner`), so S3
//! refuses a bucket another account owns. object_store signs its default headers into every
//! request but a listing (0.14.2), and S3 refuses an `x-amz-*` header the signature does not
//! cover: [`OwnerConnector`] adds the header to a listing and signs it again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsCredential, S3ConditionalPut};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};
use object_store::{ClientOptions, CredentialProvider};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use crate::{StateStoreError, StoreAccess};

/// The header that makes S3 refuse a request to a bucket another account owns.
pub(crate) const EXPECTED_OWNER: &str = "x-amz-expected-bucket-owner";

/// An opened S3 store.
pub(crate) struct Opened {
    /// The client every read and write goes through.
    pub(crate) store: AmazonS3,
    /// The same client without the owner header, to tell "another owner" from "no access"
    /// when the bucket refuses ([`check_owner`]); `None` without an expected owner.
    pub(crate) without_owner: Option<AmazonS3>,
    /// The region it signs for.
    pub(crate) region: String,
}

/// The S3 client for `bucket` and the region it signs for: the bucket's (or the one
/// `access` names, as kops's `S3_REGION`), the credentials from the standard chain, and
/// the expected owner in every request when `access` names one.
pub(crate) async fn open(bucket: &str, access: &StoreAccess) -> Result<Opened, StateStoreError> {
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
    let credentials = config.credentials_provider().map(|provider| {
        Arc::new(ChainCredentials {
            provider,
            cached: Mutex::new(None),
        })
    });
    let bad = |reason: String| StateStoreError::BadUrl {
        url: format!("s3://{bucket}"),
        reason,
    };
    let build = |owner: Option<&HeaderValue>| {
        let mut builder = AmazonS3Builder::new();
        if let Some(owner) = owner {
            // Client options first: the calls below change them (allow_http).
            let mut headers = HeaderMap::new();
            headers.insert(EXPECTED_OWNER, owner.clone());
            builder = builder
                .with_client_options(ClientOptions::new().with_default_headers(headers))
                .with_http_connector(OwnerConnector {
                    owner: owner.clone(),
                    credentials: credentials.clone(),
                    region: region.clone(),
                });
        }
        builder = builder
            .with_bucket_name(bucket)
            .with_region(&region)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        if let Some(credentials) = &credentials {
            builder = builder.with_credentials(credentials.clone());
        }
        if let Some(endpoint) = &endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        builder.build().map_err(|e| bad(e.to_string()))
    };
    let owner = access
        .bucket_owner
        .as_deref()
        .map(|account| {
            HeaderValue::from_str(account).map_err(|_| {
                bad(format!(
                    "the expected bucket owner {account:?} is not an AWS account ID"
                ))
            })
        })
        .transpose()?;
    Ok(Opened {
        store: build(owner.as_ref())?,
        without_owner: owner.is_some().then(|| build(None)).transpose()?,
        region,
    })
}

/// What asking the bucket with the owner header showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerCheck {
    /// The bucket answered a request naming the owner: it is the owner's.
    Confirmed,
    /// Refused with and without the owner header (no access at all): not known.
    Unknown,
    /// Refused with the header, answered without it: another account owns the bucket.
    Other,
}

/// Asks the bucket for a key that is never written (`HEAD`), once with the owner header and,
/// when that is refused, once without: S3 answers 404 (or 200) for a bucket the caller may
/// list and 403 for one it may not, so only the header can make the two differ. Nothing is
/// read from the bucket's answer but its status.
pub(crate) async fn check_owner(
    store: &AmazonS3,
    without_owner: &AmazonS3,
    probe: &object_store::path::Path,
) -> Result<OwnerCheck, StateStoreError> {
    use object_store::ObjectStoreExt as _;
    let answered = |result: object_store::Result<_>| match result {
        Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(true),
        Err(object_store::Error::PermissionDenied { .. }) => Ok(false),
        Err(other) => Err(StateStoreError::from(other)),
    };
    if answered(store.head(probe).await)? {
        return Ok(OwnerCheck::Confirmed);
    }
    Ok(match answered(without_owner.head(probe).await)? {
        true => OwnerCheck::Other,
        false => OwnerCheck::Unknown,
    })
}

/// object_store's HTTP client with the owner header in every request: a request that
/// lacks it (a listing) gets it and is signed again, since S3 refuses an `x-amz-*` header
/// the signature does not cover. The reqwest client underneath adds no default header of
/// its own, so nothing reaches S3 unsigned.
#[derive(Debug)]
struct OwnerConnector {
    owner: HeaderValue,
    credentials: Option<Arc<ChainCredentials>>,
    region: String,
}

impl HttpConnector for OwnerConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let plain = options.clone().with_default_headers(HeaderMap::new());
        Ok(HttpClient::new(OwnerService {
            inner: ReqwestConnector::default().connect(&plain)?,
            owner: self.owner.clone(),
            credentials: self.credentials.clone(),
            region: self.region.clone(),
        }))
    }
}

#[derive(Debug)]
struct OwnerService {
    inner: HttpClient,
    owner: HeaderValue,
    credentials: Option<Arc<ChainCredentials>>,
    region: String,
}

/// Why a request could not be signed again.
#[derive(Debug, thiserror::Error)]
#[error("signing an S3 request with the expected bucket owner: {0}")]
struct SignFailure(String);

#[async_trait::async_trait]
impl HttpService for OwnerService {
    async fn call(&self, mut request: HttpRequest) -> Result<HttpResponse, HttpError> {
        if !request.headers().contains_key(EXPECTED_OWNER) {
            request
                .headers_mut()
                .insert(EXPECTED_OWNER, self.owner.clone());
            if request.headers().contains_key(AUTHORIZATION) {
                self.sign(&mut request)
                    .await
                    .map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
            }
        }
        self.inner.execute(request).await
    }
}

impl OwnerService {
    /// Signs `request` again (SigV4 for S3, as object_store signs it), its headers as they are
    /// now; the payload hash object_store computed is kept.
    async fn sign(&self, request: &mut HttpRequest) -> Result<(), SignFailure> {
        use aws_sigv4::http_request::{
            sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
            SigningSettings, UriPathNormalizationMode,
        };
        let failed = |e: &dyn std::fmt::Display| SignFailure(e.to_string());
        let Some(credentials) = &self.credentials else {
            return Err(SignFailure("no credentials".into()));
        };
        let credential = credentials.get_credential().await.map_err(|e| failed(&e))?;
        let headers = request.headers_mut();
        for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
            headers.remove(name);
        }
        let payload = headers
            .remove("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok().map(str::to_string))
            .unwrap_or_else(|| "UNSIGNED-PAYLOAD".to_string());
        let identity = aws_credential_types::Credentials::new(
            &credential.key_id,
            &credential.secret_key,
            credential.token.clone(),
            None,
            "kopsrs",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let pairs = request
            .headers()
            .iter()
            .map(|(name, value)| Ok((name.as_str(), value.to_str()?)))
            .collect::<Result<Vec<_>, reqwest::header::ToStrError>>()
            .map_err(|e| failed(&e))?;
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            pairs.into_iter(),
            SignableBody::Precomputed(payload),
        )
        .map_err(|e| failed(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed(&e))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

/// How many times the bucket's region is asked when S3 answers with a server error.
const REGION_ATTEMPTS: u32 = 5;

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
    // A server error or throttling says nothing about the region: asked again (as the SDK
    // retries its own calls), never read as "a store that does not say".
    let mut attempt = 0;
    let response = loop {
        let response =
            client
                .head(&url)
                .send()
                .await
                .map_err(|e| StateStoreError::Unreachable {
                    url: url.clone(),
                    reason: plain(&e),
                })?;
        let status = response.status();
        let transient =
            status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        if !transient {
            break response;
        }
        attempt += 1;
        if attempt == REGION_ATTEMPTS {
            return Err(StateStoreError::Unreachable {
                url,
                reason: format!(
                    "HTTP {status} when asked for the bucket's region, {attempt} times"
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    };
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
