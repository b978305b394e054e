//! Failures as values: one [`Problem`] per thing that is wrong (a field, a resource), each
//! with its hint, reported together. The caller renders them (`error:` / `hint:` lines).

use std::fmt;

use kopsrs_api::{Severity, ValidationReport};

/// One problem with its hint.
#[derive(Debug, Clone)]
pub struct Problem {
    /// What is wrong, naming the field or resource and the value.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Several problems found together (validation, decoding); rendered one per line.
#[derive(Debug)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s)", self.0.len())
    }
}

impl std::error::Error for Problems {}

impl Problems {
    /// Problems without hints.
    pub fn from_messages(messages: impl IntoIterator<Item = impl Into<String>>) -> Problems {
        Problems(
            messages
                .into_iter()
                .map(|m| Problem {
                    message: m.into(),
                    hint: None,
                })
                .collect(),
        )
    }

    /// One problem with its hint.
    pub fn one(message: impl Into<String>, hint: impl Into<String>) -> Problems {
        Problems(vec![Problem {
            message: message.into(),
            hint: Some(hint.into()),
        }])
    }
}

/// For an unknown field: a typo is fixed; a field kops stopped reading can be dropped.
pub const STALE_FIELD_HINT: &str = "fix the name; if it is a field kops no longer reads, --validate=warn drops it with a warning (--validate=ignore silently, as kops does)";

/// How to give kopsrs AWS credentials, for every "no credentials" error; about the profile
/// when `AWS_PROFILE` names one.
pub fn credentials_hint(aws_profile: Option<&str>) -> String {
    match aws_profile {
        Some(profile) => format!(
            "AWS_PROFILE is {profile:?}: check that ~/.aws/config or ~/.aws/credentials defines it (`aws configure list-profiles`), and for SSO run `aws sso login --profile {profile}`"
        ),
        None => "set AWS_PROFILE to a profile in ~/.aws/config (run `aws sso login --profile NAME` first for SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; `aws sts get-caller-identity` shows what the AWS CLI finds".to_string(),
    }
}

/// An AWS API error while `doing` something ("reading NAME from AWS"), with the hint that
/// fits: how to set credentials when the chain found none or failed, else `otherwise`.
pub fn aws(
    settings: &crate::Settings,
    doing: &str,
    error: &kopsrs_aws::Error,
    otherwise: &str,
) -> Problems {
    let credentials_hint = || credentials_hint(settings.aws_profile.as_deref());
    if error.is(kopsrs_aws::NO_CREDENTIALS) {
        return Problems::one(
            format!("{doing}: no AWS credentials found"),
            credentials_hint(),
        );
    }
    if error.is(kopsrs_aws::CREDENTIALS_FAILED) {
        return Problems::one(
            format!(
                "{doing}: AWS credentials could not be loaded: {}",
                error.message
            ),
            credentials_hint(),
        );
    }
    Problems::one(format!("{doing}: {error}"), otherwise)
}

/// Reports the warnings of a report and turns its errors into [`Problems`].
pub fn check(reporter: &dyn crate::Reporter, report: &ValidationReport) -> Result<(), Problems> {
    for issue in report.warnings() {
        reporter.warn(&issue.to_string(), issue.hint.as_deref());
    }
    let errors: Vec<Problem> = report
        .issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .map(|i| Problem {
            message: i.to_string(),
            hint: i.hint.clone(),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problems(errors))
    }
}

/// The operation was stopped by a signal (Ctrl-C, SIGTERM) after releasing the lock.
#[derive(Debug)]
pub struct Interrupted(pub i32);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interrupted (signal {}): stopped; run the command again to continue from what exists",
            self.0
        )
    }
}

impl std::error::Error for Interrupted {}

/// The hint for a state store error, if it has one.
pub fn state_hint(settings: &crate::Settings, error: &anyhow::Error) -> Option<String> {
    use kopsrs_state::StateStoreError as E;
    match error.downcast_ref::<E>()? {
        E::Conflict(_) => Some("another command changed it meanwhile; nothing was overwritten".into()),
        E::Locked { .. } => Some("wait for it to finish; if it crashed, run `kopsrs force-unlock <lock ID> --cluster NAME`".into()),
        E::AlreadyExists(_) => Some("use `kopsrs replace -f` or `kopsrs edit` to change an existing object".into()),
        E::Missing(_) => Some("check --state / KOPS_STATE_STORE for a typo; `kopsrs create cluster` or `kopsrs create -f` makes a new store".into()),
        E::NoBucket(bucket) => Some(format!("check --state / KOPS_STATE_STORE for a typo, or create the bucket: `aws s3 mb s3://{bucket}` (and turn on versioning, as kops advises: `aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled`)")),
        E::Unreachable { .. } => Some("check the network, and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 when set".into()),
        E::Credentials { .. } => Some(credentials_hint(settings.aws_profile.as_deref())),
        E::Corrupt { reason, .. } if reason.contains("unknown field") => Some(STALE_FIELD_HINT.into()),
        E::Refused(words) if words.starts_with("AccessDenied") => Some("the credentials need s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket; `aws sts get-caller-identity` shows whose they are. Every request names the bucket's expected owner, so S3 also refuses a bucket another account owns (docs/security.md)".into()),
        E::NotOwner { .. } => Some("check who owns the bucket; if it moved to another account on purpose, set KOPS_STATE_STORE_OWNER to that account's ID (docs/security.md)".into()),
        _ => None,
    }
}

/// An error as the lines a person reads: each problem with its hint, else the cause chain.
pub fn lines(e: &anyhow::Error) -> Vec<String> {
    match e.downcast_ref::<Problems>() {
        Some(problems) => problems
            .0
            .iter()
            .map(|p| match &p.hint {
                Some(hint) => format!("{} (hint: {hint})", p.message),
                None => p.message.clone(),
            })
            .collect(),
        None => vec![format!("{e:#}")],
    }
}
