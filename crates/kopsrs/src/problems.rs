//! How errors reach the user: `error:` lines with `hint:`s, all at once, in one place.

use std::fmt;
use std::process::ExitCode;

use kopsrs_api::{Severity, ValidationReport};

/// One problem with its hint.
#[derive(Debug, Clone)]
pub struct Problem {
    pub message: String,
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
pub fn credentials_hint() -> String {
    match std::env::var("AWS_PROFILE") {
        Ok(profile) => format!(
            "AWS_PROFILE is {profile:?}: check that ~/.aws/config or ~/.aws/credentials defines it (`aws configure list-profiles`), and for SSO run `aws sso login --profile {profile}`"
        ),
        Err(_) => "set AWS_PROFILE to a profile in ~/.aws/config (run `aws sso login --profile NAME` first for SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; `aws sts get-caller-identity` shows what the AWS CLI finds".to_string(),
    }
}

/// An AWS API error while `doing` something ("reading NAME from AWS"), with the hint that
/// fits: how to set credentials when the chain found none or failed, else `otherwise`.
pub fn aws(doing: &str, error: &kopsrs_aws::Error, otherwise: &str) -> Problems {
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

/// Prints warnings of a report to stderr and turns its errors into [`Problems`].
pub fn check(report: &ValidationReport) -> Result<(), Problems> {
    for issue in report.warnings() {
        eprintln!("warning: {issue}");
        if let Some(hint) = &issue.hint {
            eprintln!("  hint: {hint}");
        }
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

/// An exit with a given code and no message (`--detailed-exitcode` style results).
#[derive(Debug)]
pub struct ExitWith(pub u8);

impl fmt::Display for ExitWith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    let Err(error) = result else {
        return ExitCode::SUCCESS;
    };
    if let Some(ExitWith(code)) = error.downcast_ref::<ExitWith>() {
        return ExitCode::from(*code);
    }
    if let Some(Problems(problems)) = error.downcast_ref::<Problems>() {
        for problem in problems {
            eprintln!("error: {}", problem.message);
            if let Some(hint) = &problem.hint {
                eprintln!("  hint: {hint}");
            }
        }
        if problems.len() > 1 {
            eprintln!("{} errors; nothing was written", problems.len());
        }
        return ExitCode::FAILURE;
    }
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  Caused by: {cause}");
    }
    if let Some(hint) = hint_for(&error) {
        eprintln!("  hint: {hint}");
    }
    ExitCode::FAILURE
}

fn hint_for(error: &anyhow::Error) -> Option<String> {
    use kopsrs_state::StateStoreError as E;
    match error.downcast_ref::<E>()? {
        E::Conflict(_) => Some("another command changed it meanwhile; nothing was overwritten".into()),
        E::Locked { .. } => Some("wait for it to finish; if it crashed, run `kopsrs force-unlock <lock ID> --cluster NAME`".into()),
        E::AlreadyExists(_) => Some("use `kopsrs replace -f` or `kopsrs edit` to change an existing object".into()),
        E::Missing(_) => Some("check --state / KOPS_STATE_STORE for a typo; `kopsrs create cluster` or `kopsrs create -f` makes a new store".into()),
        E::NoBucket(bucket) => Some(format!("check --state / KOPS_STATE_STORE for a typo, or create the bucket: `aws s3 mb s3://{bucket}` (and turn on versioning, as kops advises: `aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled`)")),
        E::Unreachable { .. } => Some("check the network, and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 when set".into()),
        E::Credentials { .. } => Some(credentials_hint()),
        E::Corrupt { reason, .. } if reason.contains("unknown field") => Some(STALE_FIELD_HINT.into()),
        E::Refused(words) if words.starts_with("AccessDenied") => Some("the credentials need s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket; `aws sts get-caller-identity` shows whose they are".into()),
        _ => None,
    }
}
