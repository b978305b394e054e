//! The AWS provider: reads what exists (batched, by the cluster tag), and creates, updates and
//! deletes resources of the model's desired set through the AWS SDK.
//!
//! The engine decides *what* to change ([`kopsrs_engine::diff`]); this crate knows *how*:
//! which Describe calls find a kind of resource, how a found resource maps back to a model
//! address, and which API calls create, change or delete it.
//!
//! - **Discovery is per kind, not per resource**: a Describe (paginated) filtered by
//!   `kubernetes.io/cluster/<name>` for EC2 kinds, one List for IAM, ELB, EventBridge. Child
//!   resources come with their parents (routes and associations with route tables, rules with
//!   one DescribeSecurityGroupRules). A no-op plan makes the same calls at 2 or 200 groups.
//!   The controller's clusters of one account and region share these reads ([`fleet`]).
//! - **Addresses come back by natural keys**: the `Name` tag or the resource's name, and for
//!   untagged children the parent's ID plus what identifies the child (a route's destination).
//!   Owned resources that match nothing desired become deletions.
//! - **Crash safety**: every EC2 resource is tagged in its create call (`TagSpecifications`),
//!   so a run killed after a create finds and adopts it by tag; `ClientToken` where AWS offers
//!   it (NAT gateways, volumes, launch templates) makes a retried create return the first one.

/// Every page of a paginated request (`into_paginator`), one counted call per page: the
/// `$field` list of each page's output, concatenated. A macro because each operation's
/// paginator and output are types of their own.
macro_rules! all_pages {
    ($aws:expr, $request:expr, $field:ident) => {{
        let mut all = Vec::new();
        let mut pages = $request.into_paginator().send();
        while let Some(page) = pages.next().await {
            $aws.call();
            all.extend(page?.$field.unwrap_or_default());
        }
        all
    }};
}

mod apply;
mod discover;
mod dispatch;
pub mod fleet;
mod handler;
mod instances;
mod kind;
mod network_check;
mod plan;
mod resolve;
mod rolling;
mod template_versions;

// One file per kind or family of kinds; `kind.rs` lists them.
mod autoscaling;
mod dns;
mod gateways;
mod iam;
mod key_pair;
mod launch_templates;
mod load_balancers;
mod routes;
mod security_groups;
mod subnet_tags;
mod subnets;
mod termination_queue;
mod volumes;
mod vpc;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use kopsrs_engine::{Retryable, TimedOut};
use kopsrs_model::Address;

pub use apply::{apply, ApplyReport};
pub use fleet::{FleetReads, FleetStats, OnCall, Sharing};
pub use instances::{GroupSize, InstanceInfo};
pub use kind::Kind;
pub use kopsrs_engine::rolling::{RollingGroup, RollingInstance};
pub use plan::AwsSchema;
pub use rolling::{ClusterGroups, DETACHED_TAG};
pub use template_versions::StaleVersions;

/// Attributes known of an existing resource (`id`, `arn`, `name`, `dns_name`, ...), by
/// address; references in the desired set resolve against these.
pub type Outputs = BTreeMap<Address, BTreeMap<String, String>>;

/// Clients for every service the cluster uses, configured the standard way (profiles,
/// environment, `AWS_ENDPOINT_URL`), with the adaptive retry mode and 10 attempts.
#[derive(Clone)]
pub struct Aws {
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) autoscaling: aws_sdk_autoscaling::Client,
    pub(crate) elb: aws_sdk_elasticloadbalancingv2::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) route53: aws_sdk_route53::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) events: aws_sdk_eventbridge::Client,
    /// The Resource Groups Tagging API: a fleet's batched tag reads.
    pub(crate) tagging: aws_sdk_resourcegroupstagging::Client,
    /// The region the clients talk to.
    pub region: String,
    calls: Arc<AtomicU64>,
    /// Reads shared with the other clusters of this account and region (the controller).
    fleet: Option<FleetReads>,
}

/// The SDK retries throttling and transient errors itself (adaptive mode: it also slows
/// down client-side when throttled); the engine retries on top for eventual consistency.
pub const SDK_MAX_ATTEMPTS: u32 = 10;

/// A role the clients assume (STS `AssumeRole`) with the standard chain's credentials:
/// `kopsrs controller` acting in a team's account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssumeRole {
    /// The role's ARN.
    pub role_arn: String,
    /// The external ID its trust policy requires, if any.
    pub external_id: Option<String>,
    /// The session's name (CloudTrail shows it).
    pub session_name: String,
}

impl Aws {
    /// Clients for `region`, configured the standard way (see [`Aws`]). `retry_from_env`:
    /// the user chose the SDK's retries in the environment (`AWS_RETRY_MODE` /
    /// `AWS_MAX_ATTEMPTS`, which the SDK reads itself); otherwise adaptive mode with more
    /// attempts.
    pub async fn connect(region: &str, retry_from_env: bool) -> Aws {
        Aws::connect_as(region, retry_from_env, None).await
    }

    /// [`Aws::connect`], as `role` when given: the standard chain's credentials assume it,
    /// and the SDK renews the role's credentials before they run out.
    pub async fn connect_as(region: &str, retry_from_env: bool, role: Option<&AssumeRole>) -> Aws {
        Aws::connect_with(region, retry_from_env, role, None).await
    }

    /// [`Aws::connect_as`], sharing with the other clients made with the same
    /// [`fleet::Sharing`] (see [`fleet`]).
    pub async fn connect_shared(
        region: &str,
        retry_from_env: bool,
        role: Option<&AssumeRole>,
        sharing: &fleet::Sharing,
    ) -> Aws {
        Aws::connect_with(region, retry_from_env, role, Some(sharing)).await
    }

    async fn connect_with(
        region: &str,
        retry_from_env: bool,
        role: Option<&AssumeRole>,
        sharing: Option<&fleet::Sharing>,
    ) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()));
        if !retry_from_env {
            loader =
                loader.retry_config(RetryConfig::adaptive().with_max_attempts(SDK_MAX_ATTEMPTS));
        }
        let mut config = loader.load().await;
        if let Some(role) = role {
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(&role.role_arn)
                .session_name(&role.session_name)
                .configure(&config);
            if let Some(id) = &role.external_id {
                provider = provider.external_id(id);
            }
            let provider = provider.build().await;
            config = config
                .into_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build();
        }
        // Shared clients: their own retry partition (throttling is shared by the clients of
        // one account and region, not with other accounts), and each operation counted.
        macro_rules! client {
            ($sdk:ident, $service:literal) => {{
                let mut builder = $sdk::config::Builder::from(&config);
                if let Some(sharing) = sharing {
                    builder = builder
                        .retry_partition($sdk::config::retry::RetryPartition::new(format!(
                            "{}-{}",
                            $service, sharing.partition
                        )))
                        .interceptor(fleet::CountCalls(sharing.on_call.clone()));
                }
                $sdk::Client::from_conf(builder.build())
            }};
        }
        Aws {
            ec2: client!(aws_sdk_ec2, "ec2"),
            autoscaling: client!(aws_sdk_autoscaling, "autoscaling"),
            elb: client!(aws_sdk_elasticloadbalancingv2, "elasticloadbalancing"),
            iam: client!(aws_sdk_iam, "iam"),
            route53: client!(aws_sdk_route53, "route53"),
            sqs: client!(aws_sdk_sqs, "sqs"),
            events: client!(aws_sdk_eventbridge, "events"),
            tagging: client!(aws_sdk_resourcegroupstagging, "tagging"),
            region: region.to_string(),
            calls: Arc::new(AtomicU64::new(0)),
            fleet: sharing.and_then(|s| s.reads.clone()),
        }
    }

    /// Counts an API operation (a page of a paginated one counts once per page).
    pub(crate) fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The same clients with a call counter of their own ([`Aws::calls`]).
    pub fn counting_apart(&self) -> Aws {
        Aws {
            calls: Arc::new(AtomicU64::new(0)),
            ..self.clone()
        }
    }

    /// API operations made so far (SDK retries not included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// The AWS account ID of the caller's credentials (STS `GetCallerIdentity`), configured the
/// standard way; signed for the configured region, else `us-east-1` (STS answers in every
/// region of the partition).
pub async fn caller_account() -> Result<String, Error> {
    let mut config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    if config.region().is_none() {
        config = config
            .into_builder()
            .region(aws_config::Region::from_static("us-east-1"))
            .build();
    }
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await?;
    identity
        .account
        .ok_or_else(|| Error::permanent("STS GetCallerIdentity returned no account"))
}

/// An AWS error, classified: throttling, server errors, timeouts and the eventual
/// consistency of just-created resources (`*.NotFound`, IAM's `NoSuchEntity`, a role not yet
/// usable by an instance profile) are retryable; everything else is not.
#[derive(Debug, Clone)]
pub struct Error {
    /// What went wrong, in AWS's words (or kopsrs's), naming the resource when known.
    pub message: String,
    /// AWS's error code (`InvalidVpcID.NotFound`), or kopsrs's for its own checks.
    pub code: Option<String>,
    /// Whether another attempt may succeed.
    pub retryable: bool,
}

impl Error {
    /// An error no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            code: None,
            retryable: false,
        }
    }

    /// Something the spec names that the cloud does not have as the spec says (a DNS zone,
    /// an image, a free range for a subnet): code [`EXISTING_MISMATCH`], found at plan time.
    pub fn existing(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            code: Some(EXISTING_MISMATCH.to_string()),
            retryable: false,
        }
    }

    /// The same error, naming the resource it happened to.
    pub fn at(mut self, address: &Address) -> Error {
        self.message = format!("{address}: {}", self.message);
        self
    }

    /// Whether the error has `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for Error {}

impl Retryable for Error {
    fn retryable(&self) -> bool {
        self.retryable
    }
}

impl From<TimedOut> for Error {
    fn from(t: TimedOut) -> Error {
        Error {
            message: t.to_string(),
            code: None,
            retryable: true,
        }
    }
}

impl From<aws_smithy_types::error::operation::BuildError> for Error {
    fn from(e: aws_smithy_types::error::operation::BuildError) -> Error {
        Error::permanent(format!("building a request: {e}"))
    }
}

/// Codes worth another attempt: throttling, AWS-side failures, and eventual consistency.
fn retryable_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "SlowDown"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "Unavailable"
            | "NoSuchEntity"
            | "DependencyViolation"
            | "IncorrectState"
            | "ResourceInUse"
            | "ResourceInUseException"
            | "ServiceLinkedRoleNotFound"
    ) || code.ends_with(".NotFound")
}

impl<E, R> From<SdkError<E, R>> for Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug,
{
    fn from(err: SdkError<E, R>) -> Error {
        match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let code = e.code().map(str::to_string);
                // Without a message (an unparsable error body), the SDK's full description.
                let message = e.message().map(str::to_string).unwrap_or_else(|| {
                    format!(
                        "{}",
                        aws_smithy_types::error::display::DisplayErrorContext(&err)
                    )
                });
                let retryable = code.as_deref().is_some_and(retryable_code)
                    // An instance profile right after its creation, as EC2 sees it.
                    || message.contains("Invalid IAM Instance Profile")
                    || message.contains("cannot be assumed");
                Error {
                    message,
                    code,
                    retryable,
                }
            }
            SdkError::DispatchFailure(_) if credentials_failure(&err).is_some() => {
                let failure = credentials_failure(&err).expect("checked");
                Error {
                    message: one_line(failure),
                    code: Some(
                        match failure {
                            CredentialsError::CredentialsNotLoaded(_) => NO_CREDENTIALS,
                            _ => CREDENTIALS_FAILED,
                        }
                        .to_string(),
                    ),
                    retryable: false,
                }
            }
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => Error {
                message: format!(
                    "{}",
                    aws_smithy_types::error::display::DisplayErrorContext(&err)
                ),
                code: None,
                retryable: true,
            },
            _ => Error {
                message: format!(
                    "{}",
                    aws_smithy_types::error::display::DisplayErrorContext(&err)
                ),
                code: None,
                retryable: false,
            },
        }
    }
}

/// The code of an error for a request that found no credentials in the standard chain
/// (environment, profile, web identity, ECS, instance metadata).
pub const NO_CREDENTIALS: &str = "kopsrs.NoCredentials";

/// The code of an error for a request whose credential provider failed (an expired SSO
/// session, a profile that names a missing source); the message is the provider's.
pub const CREDENTIALS_FAILED: &str = "kopsrs.CredentialsFailed";

/// The credential chain's error behind a request that was not sent.
fn credentials_failure(err: &dyn std::error::Error) -> Option<&CredentialsError> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(failure) = cause.downcast_ref::<CredentialsError>() {
            return Some(failure);
        }
        source = cause.source();
    }
    None
}

/// An error and its causes on one line, as `Display` (the SDK's `Debug` is not for users).
fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The code of the error [`Aws::plan`] returns when resources the spec names but the cluster
/// does not own are missing or are not what the spec says.
pub const EXISTING_MISMATCH: &str = "kopsrs.ExistingResourceMismatch";
