//! What can go wrong in the state store, classified from `object_store`'s errors.

use crate::s3;

/// What can go wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateStoreError {
    /// The URL names no store kopsrs can open.
    #[error("state store {url:?} is not supported: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it, usually with the forms that work.
        reason: String,
    },
    /// A conditional write lost: the object (named) changed after it was read.
    #[error("{0} changed since it was read; run the command again")]
    Conflict(String),
    /// A create-only write found the object (named) already there.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Any other failure, as its message: the store's own errors, or an unlock of a lock that
    /// is not there or not the one named.
    #[error("{0}")]
    Io(String),
    /// An object exists but does not decode as what its key should hold.
    #[error("{key} in the state store cannot be read: {reason}")]
    Corrupt {
        /// The object's key, relative to the store's root.
        key: String,
        /// The decoding error.
        reason: String,
    },
    /// Another run holds the cluster lock.
    #[error("cluster {cluster:?} is locked by {holder}")]
    Locked {
        /// The cluster's name.
        cluster: String,
        /// Who holds it, as [`LockInfo::describe`](crate::LockInfo::describe) prints it.
        holder: String,
    },
    /// A `file://` store's directory does not exist (and the command does not create stores).
    #[error("state store {0} does not exist")]
    Missing(String),
    /// The S3 bucket (named) does not exist.
    #[error("the state store's bucket {0:?} does not exist")]
    NoBucket(String),
    /// The S3 bucket (named) belongs to another AWS account than the expected one: it
    /// answered a request that named no owner and refused the same request naming this one.
    /// Nothing was read from it or written to it.
    #[error("the state store's bucket {bucket:?} is not owned by AWS account {expected}")]
    NotOwner {
        /// The bucket.
        bucket: String,
        /// The account ID it was expected to belong to.
        expected: String,
    },
    /// S3 (or the endpoint in `AWS_ENDPOINT_URL`) did not answer.
    #[error("cannot reach S3 at {url}: {reason}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why it failed, with its causes.
        reason: String,
    },
    /// The AWS credential chain gave no credentials.
    #[error("{}", match missing {
        true => "no AWS credentials found for the state store".to_string(),
        false => format!("AWS credentials for the state store could not be loaded: {message}"),
    })]
    Credentials {
        /// No provider of the chain had credentials (as opposed to one that failed).
        missing: bool,
        /// The chain's own account, one line.
        message: String,
    },
    /// S3 refused a request; its code and message (`AccessDenied: Access Denied`).
    #[error("S3 refused the request: {0}")]
    Refused(String),
}

impl From<object_store::Error> for StateStoreError {
    fn from(error: object_store::Error) -> Self {
        match error {
            object_store::Error::Precondition { path, .. } => StateStoreError::Conflict(path),
            object_store::Error::AlreadyExists { path, .. } => StateStoreError::AlreadyExists(path),
            other => {
                if let Some(failure) = s3::credentials_failure(&other) {
                    return StateStoreError::Credentials {
                        missing: failure.missing,
                        message: failure.message.clone(),
                    };
                }
                let text = other.to_string();
                match s3::s3_error_words(&text) {
                    Some(words) => StateStoreError::Refused(words),
                    None => StateStoreError::Io(text),
                }
            }
        }
    }
}
