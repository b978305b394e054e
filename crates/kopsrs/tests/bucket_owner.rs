//! The S3 state store's bucket owner, through the binary against moto (scripts/moto_server.py
//! refuses a request naming another owner, or naming it unsigned, as S3 does): the owner is
//! recorded on first use, every request names it, and a bucket of another account is refused
//! with the bucket, the expected owner and the fix named, before anything is written.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::Moto;

/// moto's default account: what STS says the test credentials belong to, and the owner of
/// every bucket they create.
const MOTO_ACCOUNT: &str = "123456789012";
const OTHER_ACCOUNT: &str = "111111111111";

/// A kopsrs command on `s3://BUCKET/clusters` with its own configuration directory.
fn kopsrs(moto: &Moto, bucket: &str, config: &Path) -> Command {
    let mut command = moto.kopsrs(bucket);
    command.env("XDG_CONFIG_HOME", config);
    command
}

fn record_of(config: &Path) -> PathBuf {
    config.join("kopsrs/state-store-owners")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn create_cluster(command: &mut Command, name: &str) -> Output {
    command
        .args(["create", "cluster", "--name", name, "--zones", "us-east-1a"])
        .output()
        .unwrap()
}

/// The keys in a bucket, as the default account lists them (without naming an owner).
fn keys(moto: &Moto, bucket: &str) -> String {
    moto.python(&format!(
        "print(sorted(o['Key'] for o in aws('s3', 'us-east-1').list_objects_v2(Bucket='{bucket}').get('Contents', [])))"
    ))
    .trim()
    .to_string()
}

#[test]
fn first_use_records_the_owner_and_every_request_names_it() {
    let moto = Moto::start();
    moto.create_bucket("owned-state");
    // Signatures checked from here on: a header the signature does not cover is refused, and
    // so is a request signed wrong.
    moto.enforce_iam();
    let config = tempfile::tempdir().unwrap();
    let record = record_of(config.path());
    moto.faults(serde_json::json!({}));

    let created = create_cluster(
        &mut kopsrs(&moto, "owned-state", config.path()),
        "p.example.com",
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let text = stderr(&created);
    assert!(
        text.contains(&format!(
            "first use of the state store's bucket \"owned-state\": recorded its owner, AWS account {MOTO_ACCOUNT} (your credentials' account), in {}",
            record.display()
        )),
        "{text}"
    );
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert!(
        recorded.ends_with(&format!("\nowned-state {MOTO_ACCOUNT}\n")),
        "{recorded}"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&record), 0o600);
    assert_eq!(mode(record.parent().unwrap()), 0o700);

    // Later runs check against the record and say nothing; listings (which object_store does
    // not sign its default headers into) and reads work.
    let listed = kopsrs(&moto, "owned-state", config.path())
        .args(["get", "clusters"])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("p.example.com"));
    assert!(
        !stderr(&listed).contains("first use"),
        "{}",
        stderr(&listed)
    );
    let groups = kopsrs(&moto, "owned-state", config.path())
        .args(["get", "instancegroups", "--name", "p.example.com"])
        .output()
        .unwrap();
    assert!(groups.status.success(), "{}", stderr(&groups));
    assert_eq!(std::fs::read_to_string(&record).unwrap(), recorded);

    // Every signed S3 request named the owner.
    let calls = moto.calls();
    assert!(
        calls["by_action"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("s3:GET") || k.starts_with("s3:PUT")),
        "{calls}"
    );
    assert_eq!(calls["s3_without_owner"], serde_json::json!({}), "{calls}");
}

#[test]
fn a_bucket_of_another_account_is_refused_and_nothing_is_written() {
    let moto = Moto::start();
    // The bucket sniping case: the name now belongs to someone else, who lets us in.
    moto.create_bucket_owned_by("sniped-state", OTHER_ACCOUNT);
    let config = tempfile::tempdir().unwrap();
    let record = record_of(config.path());

    // First use: the credentials' account is not the owner.
    let refused = create_cluster(
        &mut kopsrs(&moto, "sniped-state", config.path()),
        "s.example.com",
    );
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let text = stderr(&refused);
    assert!(
        text.starts_with(&format!(
            "error: the state store's bucket \"sniped-state\" is not owned by AWS account {MOTO_ACCOUNT}, the account of your AWS credentials (first use of this bucket): S3 refuses requests that name that owner; nothing was read or written\n  hint: "
        )) && text.contains("set KOPS_STATE_STORE_OWNER to that account's ID"),
        "{text}"
    );
    assert!(!record.exists(), "a refused owner was recorded");
    assert_eq!(keys(&moto, "sniped-state"), "[]");

    // A recorded owner that no longer owns the bucket.
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(&record, format!("sniped-state {MOTO_ACCOUNT}\n")).unwrap();
    for args in [
        &["get", "clusters"][..],
        &[
            "create",
            "cluster",
            "--name",
            "s.example.com",
            "--zones",
            "us-east-1a",
        ],
    ] {
        let refused = kopsrs(&moto, "sniped-state", config.path())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
        let text = stderr(&refused);
        assert!(
            text.starts_with(&format!(
                "error: the state store's bucket \"sniped-state\" is not owned by AWS account {MOTO_ACCOUNT}, the owner recorded for it in {}:",
                record.display()
            )) && text.contains(&format!(
                "change the line `sniped-state {MOTO_ACCOUNT}` in {}",
                record.display()
            )) && text.contains("deleted and re-created by another account"),
            "{args:?}: {text}"
        );
    }
    assert_eq!(keys(&moto, "sniped-state"), "[]");

    // KOPS_STATE_STORE_OWNER names the owner: before the record, and for what it names.
    let named = create_cluster(
        kopsrs(&moto, "sniped-state", config.path()).env("KOPS_STATE_STORE_OWNER", OTHER_ACCOUNT),
        "s.example.com",
    );
    assert!(named.status.success(), "{}", stderr(&named));
    assert!(keys(&moto, "sniped-state").contains("clusters/s.example.com/config"));
    let wrong = kopsrs(&moto, "sniped-state", config.path())
        .env("KOPS_STATE_STORE_OWNER", MOTO_ACCOUNT)
        .args(["get", "clusters"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).starts_with(&format!(
            "error: the state store's bucket \"sniped-state\" is not owned by AWS account {MOTO_ACCOUNT}, as KOPS_STATE_STORE_OWNER says"
        )),
        "{}",
        stderr(&wrong)
    );
    // The record is the user's: the variable neither replaces nor adds to it.
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        format!("sniped-state {MOTO_ACCOUNT}\n")
    );
}

#[test]
fn a_bad_owner_variable_is_refused_naming_it() {
    // Checked before any request: no server needed.
    let config = tempfile::tempdir().unwrap();
    let output = support::kopsrs("s3://some-bucket/clusters")
        .env("XDG_CONFIG_HOME", config.path())
        .env("KOPS_STATE_STORE_OWNER", "1234-5678-9012")
        .args(["get", "clusters"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.starts_with(
            "error: KOPS_STATE_STORE_OWNER is \"1234-5678-9012\", not an AWS account ID (12 digits)\n  hint: set it to the ID of the account that owns the state store's bucket"
        ),
        "{text}"
    );
    assert!(!record_of(config.path()).exists());
}
