//! Which AWS account must own an S3 state store's bucket, so that a bucket deleted and
//! re-created by someone else (or a name that points at another account's bucket) is refused
//! before anything is read from it or written to it: specs, CA keys and the addon channel
//! nodes run would otherwise come from, and go to, a stranger.
//!
//! The owner comes from, in order: `KOPS_STATE_STORE_OWNER`; the per-user record
//! `<config dir>/kopsrs/state-store-owners` (one `BUCKET ACCOUNT-ID` line each, as ssh's
//! `known_hosts`); else the account of the caller's credentials (STS `GetCallerIdentity`),
//! written to the record once the bucket has confirmed it (trust on first use, said once).
//! The record lives outside the bucket: whoever owns a bucket controls what is in it. The
//! state store then names the owner in every request (`x-amz-expected-bucket-owner`), and S3
//! refuses a bucket another account owns.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Result;
use kopsrs_state::{StateStore, StateStoreError};

use crate::problems::Problems;
use crate::{Reporter, Settings};

/// The record's file name, under `<config dir>/kopsrs/`.
pub const RECORD_FILE: &str = "state-store-owners";

/// The record's first lines, written with the first entry.
const RECORD_HEADER: &str =
    "# The AWS account that owns each S3 state store bucket kopsrs has used: BUCKET ACCOUNT-ID.
# kopsrs names it in every request, so S3 refuses a bucket another account owns.
# Recorded on first use; edit a line if a bucket moved accounts (docs/security.md).
";

/// Where an expected owner came from (what the user changes to change it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `KOPS_STATE_STORE_OWNER`.
    Variable,
    /// A line of the record file.
    Record(PathBuf),
    /// The account of the caller's credentials, first use of the bucket: written to the
    /// record (`None`: no configuration directory to keep one in) once the bucket confirms it.
    FirstUse(Option<PathBuf>),
}

/// The account an S3 store's bucket must belong to, and where that came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedOwner {
    /// The bucket.
    pub bucket: String,
    /// The 12-digit AWS account ID.
    pub account: String,
    /// Where the expectation came from.
    pub origin: Origin,
}

/// The record file of `settings`' user, when there is a configuration directory.
pub fn record_path(settings: &Settings) -> Option<PathBuf> {
    Some(
        settings
            .config_dir
            .as_ref()?
            .join("kopsrs")
            .join(RECORD_FILE),
    )
}

/// An AWS account ID: 12 digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The expected owner of the bucket of `url` (`None` for stores that are not on S3), from
/// `KOPS_STATE_STORE_OWNER`, the record, or the caller's credentials, in that order.
pub async fn expected(settings: &Settings, url: &str) -> Result<Option<ExpectedOwner>> {
    let Some(rest) = url.strip_prefix("s3://") else {
        return Ok(None);
    };
    let bucket = rest.split('/').next().unwrap_or_default().to_string();
    if let Some(value) = &settings.state_store_owner {
        let account = value.trim();
        if !is_account_id(account) {
            return Err(Problems::one(
                format!("KOPS_STATE_STORE_OWNER is {value:?}, not an AWS account ID (12 digits)"),
                "set it to the ID of the account that owns the state store's bucket (`aws sts get-caller-identity --query Account` run in that account prints it), or unset it to use the recorded owner",
            )
            .into());
        }
        return Ok(Some(ExpectedOwner {
            bucket,
            account: account.to_string(),
            origin: Origin::Variable,
        }));
    }
    let path = record_path(settings);
    if let Some(path) = &path {
        if let Some(account) = recorded(path, &bucket)? {
            return Ok(Some(ExpectedOwner {
                bucket,
                account,
                origin: Origin::Record(path.clone()),
            }));
        }
    }
    let account = kopsrs_aws::caller_account()
        .await
        .map_err(|e| caller_error(settings, &e))?;
    Ok(Some(ExpectedOwner {
        bucket,
        account,
        origin: Origin::FirstUse(path),
    }))
}

/// A failed `GetCallerIdentity`: as the state store itself reports credentials it cannot
/// load (it would have failed the same way), else with the hint to name the owner.
fn caller_error(settings: &Settings, error: &kopsrs_aws::Error) -> anyhow::Error {
    for (code, missing) in [
        (kopsrs_aws::NO_CREDENTIALS, true),
        (kopsrs_aws::CREDENTIALS_FAILED, false),
    ] {
        if error.is(code) {
            return StateStoreError::Credentials {
                missing,
                message: error.message.clone(),
            }
            .into();
        }
    }
    crate::problems::aws(
        settings,
        "asking AWS for the account of your credentials (the first use of this state store's bucket)",
        error,
        "kopsrs records the account that owns a state store's bucket on first use; set KOPS_STATE_STORE_OWNER to the bucket owner's account ID to name it yourself",
    )
    .into()
}

/// The account `path` records for `bucket`; a missing file records none.
fn recorded(path: &Path, bucket: &str) -> Result<Option<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Problems::one(
                format!("reading {}: {e}", path.display()),
                "the file records the AWS account of each state store bucket; make it readable, or set KOPS_STATE_STORE_OWNER",
            )
            .into())
        }
    };
    lookup(&text, path, bucket)
}

/// The account `text` (the record at `path`) gives `bucket`. A malformed line, or a bucket
/// recorded with two accounts, is an error: the record is what keeps a stranger's bucket
/// out, so it is not read past.
fn lookup(text: &str, path: &Path, bucket: &str) -> Result<Option<String>> {
    let mut found: Option<(String, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, account] = fields[..] else {
            return Err(malformed(path, number, line));
        };
        if !is_account_id(account) {
            return Err(malformed(path, number, line));
        }
        if name != bucket {
            continue;
        }
        match &found {
            Some((first, first_line)) if first != account => {
                return Err(Problems::one(
                    format!(
                        "{}: bucket {bucket:?} is recorded twice, as owned by {first} (line {first_line}) and by {account} (line {number})",
                        path.display()
                    ),
                    "keep only the line with the account that owns the bucket",
                )
                .into())
            }
            Some(_) => {}
            None => found = Some((account.to_string(), number)),
        }
    }
    Ok(found.map(|(account, _)| account))
}

fn malformed(path: &Path, number: usize, line: &str) -> anyhow::Error {
    Problems::one(
        format!(
            "{}:{number}: {line:?} is not `BUCKET ACCOUNT-ID` (a 12-digit AWS account ID)",
            path.display()
        ),
        "fix or delete the line; each line records the account that owns one state store bucket",
    )
    .into()
}

/// Appends `bucket account` to the record at `path` (made 0600, its folder 0700), under an
/// exclusive lock, unless a line for the bucket is there already (another run was first).
/// Returns whether it wrote.
fn record(path: &Path, bucket: &str, account: &str) -> std::io::Result<bool> {
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    file.lock()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    if matches!(lookup(&text, path, bucket), Ok(Some(_)) | Err(_)) {
        return Ok(false);
    }
    let mut line = String::new();
    if text.is_empty() {
        line.push_str(RECORD_HEADER);
    } else if !text.ends_with('\n') {
        line.push('\n');
    }
    line.push_str(&format!("{bucket} {account}\n"));
    file.write_all(line.as_bytes())?;
    Ok(true)
}

/// After the store opened: on first use, the owner is recorded when the bucket confirmed it,
/// and the user is told once.
pub fn after_open(store: &StateStore, expected: &ExpectedOwner, reporter: &dyn Reporter) {
    let Origin::FirstUse(path) = &expected.origin else {
        return;
    };
    let (bucket, account) = (&expected.bucket, &expected.account);
    if !store.s3_bucket_owner_confirmed() {
        reporter.warn(
            &format!("could not confirm that the state store's bucket {bucket:?} belongs to AWS account {account} (your credentials' account): the bucket refuses to list for them; every request still names that owner, but it is not recorded"),
            Some("set KOPS_STATE_STORE_OWNER to the bucket owner's account ID to name it yourself"),
        );
        return;
    }
    let Some(path) = path else {
        reporter.warn(
            &format!("the state store's bucket {bucket:?} belongs to AWS account {account}; with no configuration directory to record it in, kopsrs will ask again next time"),
            Some("set KOPS_STATE_STORE_OWNER to the account ID to name it yourself"),
        );
        return;
    };
    match record(path, bucket, account) {
        Ok(true) => reporter.warn(
            &format!(
                "first use of the state store's bucket {bucket:?}: recorded its owner, AWS account {account} (your credentials' account), in {}; kopsrs now refuses the bucket if another account owns it (trust on first use)",
                path.display()
            ),
            None,
        ),
        Ok(false) => {}
        Err(e) => reporter.warn(
            &format!(
                "the state store's bucket {bucket:?} belongs to AWS account {account}, but it could not be recorded in {}: {e}",
                path.display()
            ),
            Some("set KOPS_STATE_STORE_OWNER to the account ID to name it yourself"),
        ),
    }
}

/// A store refused because its bucket has another owner, as a problem naming the bucket, the
/// expected owner, where that came from, and what to do; other errors as they are.
pub fn refused(error: StateStoreError, expected: Option<&ExpectedOwner>) -> anyhow::Error {
    let (StateStoreError::NotOwner { .. }, Some(expected)) = (&error, expected) else {
        return error.into();
    };
    let (bucket, account) = (&expected.bucket, &expected.account);
    let check = format!(
        "`aws s3api head-bucket --bucket {bucket} --expected-bucket-owner ID` succeeds only for the owner's ID"
    );
    let (from, hint) = match &expected.origin {
        Origin::Variable => (
            "as KOPS_STATE_STORE_OWNER says".to_string(),
            format!("check KOPS_STATE_STORE_OWNER: it must be the ID of the account that owns the bucket ({check}); unset it to use the recorded owner"),
        ),
        Origin::Record(path) => (
            format!("the owner recorded for it in {}", path.display()),
            format!(
                "the bucket may have been deleted and re-created by another account: use it only once you know who owns it ({check}). If it moved to another account on purpose, set KOPS_STATE_STORE_OWNER to that account's ID, or change the line `{bucket} {account}` in {}",
                path.display()
            ),
        ),
        Origin::FirstUse(_) => (
            "the account of your AWS credentials (first use of this bucket)".to_string(),
            format!("check --state / KOPS_STATE_STORE for a typo; to use a bucket of another account on purpose, set KOPS_STATE_STORE_OWNER to that account's ID ({check})"),
        ),
    };
    Problems::one(
        format!("the state store's bucket {bucket:?} is not owned by AWS account {account}, {from}: S3 refuses requests that name that owner; nothing was read or written"),
        hint,
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(error: anyhow::Error) -> String {
        let problems = error.downcast::<Problems>().expect("a problem");
        format!(
            "{} / {}",
            problems.0[0].message,
            problems.0[0].hint.clone().unwrap_or_default()
        )
    }

    #[test]
    fn the_record_is_read_as_bucket_and_account_lines() {
        let path = Path::new("/home/u/.config/kopsrs/state-store-owners");
        let text =
            "# comment\n\nstate-a 111111111111\n  state-b   222222222222  \nstate-a 111111111111\n";
        assert_eq!(
            lookup(text, path, "state-a").unwrap().as_deref(),
            Some("111111111111")
        );
        assert_eq!(
            lookup(text, path, "state-b").unwrap().as_deref(),
            Some("222222222222")
        );
        assert_eq!(lookup(text, path, "state").unwrap(), None);
        for (bad, expected) in [
            (
                "state-a 1234\n",
                "state-store-owners:1: \"state-a 1234\" is not `BUCKET ACCOUNT-ID`",
            ),
            (
                "x 111111111111\nstate-a\n",
                "state-store-owners:2: \"state-a\" is not",
            ),
            (
                "state-a 111111111111 extra\n",
                "state-store-owners:1: \"state-a 111111111111 extra\" is not",
            ),
            (
                "state-a 111111111111\nstate-a 222222222222\n",
                "bucket \"state-a\" is recorded twice, as owned by 111111111111 (line 1) and by 222222222222 (line 2)",
            ),
        ] {
            let text = problem(lookup(bad, path, "state-a").unwrap_err());
            assert!(text.contains(expected), "{bad:?}: {text}");
        }
    }

    #[test]
    fn the_record_is_made_private_and_appended_once() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/kopsrs").join(RECORD_FILE);
        assert!(record(&path, "state-a", "111111111111").unwrap());
        assert!(!record(&path, "state-a", "111111111111").unwrap());
        assert!(!record(&path, "state-a", "222222222222").unwrap());
        assert!(record(&path, "state-b", "222222222222").unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(RECORD_HEADER), "{text}");
        assert!(
            text.ends_with("\nstate-a 111111111111\nstate-b 222222222222\n"),
            "{text}"
        );
        assert_eq!(
            recorded(&path, "state-b").unwrap().as_deref(),
            Some("222222222222")
        );
    }

    #[tokio::test]
    async fn a_bad_owner_variable_is_refused_naming_it() {
        let settings = Settings {
            state_store_owner: Some("12345".into()),
            ..Settings::default()
        };
        let text = problem(expected(&settings, "s3://b/p").await.unwrap_err());
        assert!(
            text.starts_with("KOPS_STATE_STORE_OWNER is \"12345\", not an AWS account ID (12 digits) / set it to the ID"),
            "{text}"
        );
        // Stores that are not on S3 have no owner to check.
        assert_eq!(expected(&settings, "file:///tmp/x").await.unwrap(), None);
        let settings = Settings {
            state_store_owner: Some(" 123456789012 ".into()),
            ..Settings::default()
        };
        assert_eq!(
            expected(&settings, "s3://b/p").await.unwrap(),
            Some(ExpectedOwner {
                bucket: "b".into(),
                account: "123456789012".into(),
                origin: Origin::Variable,
            })
        );
    }
}
