//! Copies between two real registries (Debian's `docker-registry`, Distribution 2.8) on
//! 127.0.0.1, with test images built here: an OCI index over two platforms in a nested
//! repository, and a Docker schema 2 manifest.

mod support;

use std::net::TcpListener;

use kopsrs_bootstrap::assets::mirror_name;
use kopsrs_registry::{sha256_digest, Copier, Platform, RegistryError};
use support::*;

/// A pushed multi-arch test image at `host/a/b/pause:3.10.1`.
struct MultiArch {
    amd64: Image,
    arm64: Image,
    index: Vec<u8>,
    index_digest: String,
}

impl MultiArch {
    /// The distinct blobs of both images.
    fn blobs(&self) -> Vec<Blob> {
        let mut out: Vec<Blob> = Vec::new();
        for b in self.amd64.blobs.iter().chain(&self.arm64.blobs) {
            if !out.iter().any(|o| o.digest == b.digest) {
                out.push(b.clone());
            }
        }
        out
    }
}

async fn push_multi_arch(a: &Registry) -> MultiArch {
    let client = http_client();
    let repo = reference(&format!("{}/a/b/pause:3.10.1", a.host()));
    let amd64 = image("amd64", false);
    let arm64 = image("arm64", false);
    push_image(&client, &repo, &amd64, None, OCI_MANIFEST).await;
    push_image(&client, &repo, &arm64, None, OCI_MANIFEST).await;
    let (index, index_digest) = index(&[("amd64", &amd64), ("arm64", &arm64)]);
    client
        .push_manifest_raw(&repo, index.clone(), OCI_INDEX.parse().unwrap())
        .await
        .unwrap();
    MultiArch {
        amd64,
        arm64,
        index,
        index_digest,
    }
}

/// GET of a manifest with `accept`: (content type, body).
async fn get_manifest(host: &str, repo: &str, reference: &str, accept: &str) -> (String, Vec<u8>) {
    let res = reqwest::Client::new()
        .get(format!("http://{host}/v2/{repo}/manifests/{reference}"))
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        200,
        "GET {repo}/manifests/{reference} at {host}"
    );
    let content_type = res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    (content_type, res.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_multi_arch_index_copies_byte_exact_and_a_second_copy_skips_every_blob() {
    let a = Registry::start();
    let b = Registry::start();
    let image = push_multi_arch(&a).await;
    let copier = Copier::new();
    let source = format!("{}/a/b/pause:3.10.1", a.host());
    assert_eq!(
        copier.digest(&source).await.unwrap(),
        Some(image.index_digest.clone())
    );

    // The destination as the nodes name it under spec.assets.containerRegistry: A stands in for
    // registry.k8s.io.
    let destination = mirror_name("registry.k8s.io/a/b/pause:3.10.1", &b.host());
    assert_eq!(destination, format!("{}/a-b-pause:3.10.1", b.host()));
    assert_eq!(
        copier.digest(&destination).await.unwrap(),
        None,
        "B starts empty"
    );

    let report = copier.copy(&source, &destination, &[]).await.unwrap();
    let distinct = image.blobs();
    assert_eq!(
        distinct.len(),
        5,
        "two configs, two own layers, one shared layer"
    );
    assert_eq!(report.digest, image.index_digest);
    assert_eq!(report.manifests, 3, "{report:?}");
    // The shared layer is uploaded with the first manifest and found by HEAD for the second.
    assert_eq!(
        (report.blobs_copied, report.blobs_skipped),
        (5, 1),
        "{report:?}"
    );
    assert_eq!(
        report.bytes,
        distinct.iter().map(|b| b.data.len() as u64).sum::<u64>()
    );
    assert!(!report.unfiltered);

    // The index at B: same digest, same bytes, same content type.
    assert_eq!(
        copier.digest(&destination).await.unwrap(),
        Some(image.index_digest.clone())
    );
    let (content_type, body) = get_manifest(&b.host(), "a-b-pause", "3.10.1", OCI_INDEX).await;
    assert_eq!(content_type, OCI_INDEX);
    assert_eq!(body, image.index, "the index bytes at B are A's");

    // Each child manifest and each blob is readable at B with its digest.
    let client = http_client();
    let b_repo = reference(&destination);
    for im in [&image.amd64, &image.arm64] {
        let (bytes, digest) = client
            .pull_manifest_raw(
                &b_repo.clone_with_digest(im.digest.clone()),
                &oci_client::secrets::RegistryAuth::Anonymous,
                &[OCI_MANIFEST],
            )
            .await
            .unwrap();
        assert_eq!(digest, im.digest);
        assert_eq!(bytes.as_ref(), im.bytes.as_slice());
        let (content_type, _) =
            get_manifest(&b.host(), "a-b-pause", &im.digest, OCI_MANIFEST).await;
        assert_eq!(content_type, OCI_MANIFEST);
    }
    for blob in &distinct {
        let mut out = Vec::new();
        client
            .pull_blob(&b_repo, blob.digest.as_str(), &mut out)
            .await
            .unwrap();
        assert_eq!(sha256_digest(&out), blob.digest);
        assert_eq!(out, blob.data);
    }

    // Again: every blob is at B already.
    let again = copier.copy(&source, &destination, &[]).await.unwrap();
    assert_eq!(again.digest, image.index_digest);
    assert_eq!(
        (
            again.manifests,
            again.blobs_copied,
            again.blobs_skipped,
            again.bytes
        ),
        (3, 0, 6, 0),
        "{again:?}"
    );

    // By digest, to a destination named by digest: the same digest, nothing transferred.
    let by_digest = format!("{}/a/b/pause@{}", a.host(), image.index_digest);
    let to = mirror_name(
        &format!("registry.k8s.io/a/b/pause@{}", image.index_digest),
        &b.host(),
    );
    let report = copier.copy(&by_digest, &to, &[]).await.unwrap();
    assert_eq!(report.digest, image.index_digest);
    assert_eq!(report.blobs_copied, 0);

    // A destination naming another digest than the source's is refused before anything moves.
    let wrong = format!("{}/elsewhere@{}", b.host(), image.amd64.digest);
    let err = copier.copy(&source, &wrong, &[]).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(
        copier
            .digest(&format!("{}/elsewhere:any", b.host()))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_missing_tag_or_registry_fails_naming_the_reference() {
    let a = Registry::start();
    let b = Registry::start();
    push_multi_arch(&a).await;
    let copier = Copier::new();

    let missing = format!("{}/a/b/pause:9.9.9", a.host());
    assert_eq!(copier.digest(&missing).await.unwrap(), None);
    assert_eq!(
        copier
            .digest(&format!("{}/no/such/repo:1", a.host()))
            .await
            .unwrap(),
        None
    );
    let err = copier
        .copy(&missing, &format!("{}/pause:9.9.9", b.host()), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&missing), "names the reference: {text}");
    assert!(
        text.contains(&format!("at {}", a.host())),
        "names the registry: {text}"
    );
    assert!(text.contains("hint:"), "{text}");

    // Nothing listens on the destination: a transport error naming it.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = format!("{}/a/b/pause:3.10.1", a.host());
    let err = copier
        .copy(&source, &format!("127.0.0.1:{closed}/pause:3.10.1"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{closed}")),
        "{err}"
    );

    // A platform filter that matches no child.
    let err = copier
        .copy(
            &source,
            &format!("{}/pause:3.10.1", b.host()),
            &[Platform::new("windows", "amd64")],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("windows/amd64"), "{err}");
}

#[tokio::test]
async fn a_blob_whose_bytes_do_not_match_its_digest_is_not_copied() {
    let a = Registry::start();
    let b = Registry::start();
    let image = push_multi_arch(&a).await;
    // Corrupt the amd64 image's own layer in A's storage: same length, other bytes. The registry
    // serves the file as it is.
    let victim = image.amd64.blobs[2].clone();
    let file = a.blob_file(&victim.digest);
    let mut data = std::fs::read(&file).unwrap();
    assert_eq!(data, victim.data);
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&file, &data).unwrap();

    let copier = Copier::new();
    let source = format!("{}/a/b/pause:3.10.1", a.host());
    let destination = format!("{}/a-b-pause:3.10.1", b.host());
    let err = copier.copy(&source, &destination, &[]).await.unwrap_err();
    match &err {
        RegistryError::DigestMismatch {
            what,
            expected,
            actual,
            ..
        } => {
            assert_eq!(expected, &victim.digest);
            assert!(what.contains(&victim.digest), "{what}");
            assert!(actual.starts_with(&sha256_digest(&data)), "{actual}");
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&format!("blob {}", victim.digest)),
        "{err}"
    );
    // B got neither the corrupt blob nor the tag.
    let client = http_client();
    assert!(!client
        .blob_exists(&reference(&destination), &victim.digest)
        .await
        .unwrap());
    assert_eq!(copier.digest(&destination).await.unwrap(), None);
}

#[tokio::test]
async fn a_docker_schema2_manifest_copies_byte_exact() {
    let a = Registry::start();
    let b = Registry::start();
    let client = http_client();
    let im = image("amd64", true);
    let repo = reference(&format!("{}/library/busybox:1.37", a.host()));
    push_image(&client, &repo, &im, Some("1.37"), DOCKER_MANIFEST).await;

    let copier = Copier::new();
    let destination = format!("{}/mirror/busybox:1.37", b.host());
    let report = copier
        .copy(
            &format!("{}/library/busybox:1.37", a.host()),
            &destination,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(report.digest, im.digest);
    assert_eq!(
        (report.manifests, report.blobs_copied, report.blobs_skipped),
        (1, 3, 0)
    );
    assert_eq!(
        copier.digest(&destination).await.unwrap(),
        Some(im.digest.clone())
    );
    let (content_type, body) =
        get_manifest(&b.host(), "mirror/busybox", "1.37", DOCKER_MANIFEST).await;
    assert_eq!(content_type, DOCKER_MANIFEST);
    assert_eq!(body, im.bytes);
    // A platform filter does not apply to a single-platform manifest.
    let again = copier
        .copy(
            &format!("{}/library/busybox:1.37", a.host()),
            &destination,
            &[Platform::new("linux", "arm64")],
        )
        .await
        .unwrap();
    assert_eq!(
        (again.digest.as_str(), again.blobs_skipped),
        (im.digest.as_str(), 3)
    );
}

/// Distribution 2.8 refuses an index whose children are not all there (`MANIFEST_BLOB_UNKNOWN`),
/// so a filtered copy ends up copying every child to keep the index byte-exact, and says so.
#[tokio::test]
async fn a_platform_filter_keeps_the_index_exact_and_reports_when_the_registry_needs_every_child() {
    let a = Registry::start();
    let b = Registry::start();
    let image = push_multi_arch(&a).await;
    let copier = Copier::new();
    let destination = format!("{}/a-b-pause:3.10.1", b.host());
    let report = copier
        .copy(
            &format!("{}/a/b/pause:3.10.1", a.host()),
            &destination,
            &[Platform::new("linux", "arm64")],
        )
        .await
        .unwrap();
    assert_eq!(report.digest, image.index_digest);
    assert!(
        report.unfiltered,
        "docker-registry 2.8 accepted an index with a missing child: {report:?}"
    );
    assert_eq!(
        (report.manifests, report.blobs_copied, report.blobs_skipped),
        (3, 5, 1),
        "{report:?}"
    );
    let (_, body) = get_manifest(&b.host(), "a-b-pause", "3.10.1", OCI_INDEX).await;
    assert_eq!(body, image.index);
}

#[tokio::test]
async fn blobs_are_mounted_between_repositories_of_one_registry() {
    let a = Registry::start();
    let image = push_multi_arch(&a).await;
    let copier = Copier::new();
    let destination = format!("{}/mirror/pause:3.10.1", a.host());
    let report = copier
        .copy(&format!("{}/a/b/pause:3.10.1", a.host()), &destination, &[])
        .await
        .unwrap();
    assert_eq!(report.digest, image.index_digest);
    // Every blob is new to the repository, and none crossed the wire.
    assert_eq!(
        (report.blobs_copied, report.blobs_skipped, report.bytes),
        (5, 1, 0),
        "{report:?}"
    );
    let client = http_client();
    for blob in image.blobs() {
        let mut out = Vec::new();
        client
            .pull_blob(&reference(&destination), blob.digest.as_str(), &mut out)
            .await
            .unwrap();
        assert_eq!(out, blob.data);
    }
}
