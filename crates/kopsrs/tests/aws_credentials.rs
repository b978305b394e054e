//! AWS credentials and regions as AWS users expect them, through the binary: the S3 state
//! store reads profiles and follows its bucket's region; missing credentials, a missing
//! bucket and a refusing metadata service read as one sentence with a hint.

mod support;

use std::process::{Command, Output, Stdio};

use support::Moto;

/// kopsrs with nothing of the caller's AWS environment: HOME is `home`, instance metadata
/// off unless the test points it somewhere (always at loopback).
fn bare(home: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kopsrs"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("KUBECONFIG", home.join("kubeconfig"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What users must never see: SDK debug dumps, S3 XML, the metadata address.
fn assert_plain(text: &str) {
    for raw in [
        "CredentialsNotLoaded",
        "DispatchFailure",
        "ProviderChainError",
        "<?xml",
        "<Error>",
        "169.254.169.254",
        "Caused by",
    ] {
        assert!(!text.contains(raw), "{raw:?} reached the user:\n{text}");
    }
}

#[test]
fn the_s3_store_reads_aws_profile_and_the_buckets_own_region() {
    let moto = Moto::start();
    // A bucket in eu-west-1 while the profile's region is us-east-1: moto_server.py refuses
    // requests signed for the wrong region, as S3 does.
    moto.python(
        "aws('s3', 'eu-west-1').create_bucket(Bucket='eu-state', \
         CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})",
    );
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile dev]\nregion = us-east-1\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        "[dev]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        bare(home.path())
            .env("AWS_PROFILE", "dev")
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("KOPS_STATE_STORE", "s3://eu-state/clusters")
            .args(args)
            .output()
            .unwrap()
    };
    let created = run(&[
        "create",
        "cluster",
        "--name",
        "p.example.com",
        "--zones",
        "eu-west-1a",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    let listed = run(&["get", "clusters"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("p.example.com"));
    // The spec really is in the bucket, where boto3 (signing for eu-west-1) finds it.
    let keys = moto.python(
        "print(sorted(o['Key'] for o in aws('s3', 'eu-west-1')\
         .list_objects_v2(Bucket='eu-state')['Contents'])[0])",
    );
    assert_eq!(keys.trim(), "clusters/p.example.com/config");

    // A profile that does not exist: said, with the profile named.
    let unknown = bare(home.path())
        .env("AWS_PROFILE", "nope")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .args(["get", "clusters", "--state", "s3://eu-state/clusters"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    let text = stderr(&unknown);
    assert!(
        text.contains("error: no AWS credentials found for the state store")
            && text.contains("AWS_PROFILE is \"nope\""),
        "{text}"
    );
    assert_plain(&text);
}

#[test]
fn missing_credentials_and_buckets_read_as_one_sentence_with_a_hint() {
    let moto = Moto::start();
    moto.create_bucket("state");
    let home = tempfile::tempdir().unwrap();

    // No credentials anywhere: the state store.
    let output = bare(home.path())
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .args(["get", "clusters", "--state", "s3://state/x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.starts_with(
            "error: no AWS credentials found for the state store\n  hint: set AWS_PROFILE"
        ),
        "{text}"
    );
    assert_plain(&text);

    // A bucket that does not exist: how to make it.
    let output = bare(home.path())
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .args(["get", "clusters", "--state", "s3://no-such-bucket/x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("error: the state store's bucket \"no-such-bucket\" does not exist")
            && text.contains("aws s3 mb s3://no-such-bucket"),
        "{text}"
    );
    assert_plain(&text);

    // No credentials for the cloud side (the store is local).
    let (_dir, state) = support::file_store_with_cluster();
    let output = bare(home.path())
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .args(["update", "cluster", "test.example.com", "--state", &state])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(": no AWS credentials found\n  hint: set AWS_PROFILE"),
        "{text}"
    );
    assert_plain(&text);
}

/// An instance metadata service that refuses (403), as it does in a container without a hop
/// limit or with IMDS turned off for the instance.
#[test]
fn a_refusing_metadata_service_reads_as_one_sentence() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let imds = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let moto = Moto::start();
    moto.create_bucket("state");
    let home = tempfile::tempdir().unwrap();
    let output = bare(home.path())
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .args(["get", "clusters", "--state", "s3://state/x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("error: AWS credentials for the state store could not be loaded:")
            && text.contains("IMDS")
            && text.contains("hint: set AWS_PROFILE"),
        "{text}"
    );
    assert_plain(&text);
}
