//! Test registries and images, shared by this crate's tests and kopsrs's (`tests/assets.rs`
//! includes this file): Debian's `docker-registry` on a free 127.0.0.1 port, and small images
//! written by hand, pushed with oci-client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kopsrs_registry::sha256_digest;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::{Client, Reference};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A `docker-registry serve` process on a free 127.0.0.1 port, storing in a temp dir; killed
/// on drop.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: run scripts/ensure_registry.sh (scripts/test.sh does) to install Debian's docker-registry"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("log.txt")).unwrap();
        let mut cmd = Command::new(REGISTRY_BIN);
        cmd.arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // The registry's own REGISTRY_* variables would override the config.
        for (k, _) in std::env::vars() {
            if k.starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().expect("start docker-registry");
        let mut registry = Registry { child, port, dir };
        registry.wait_ready();
        registry
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited ({status}): {}", self.log());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer GET /v2/ on port {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log.txt")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry stores the bytes of blob `digest` (Distribution's filesystem layout).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http_client() -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    })
}

pub fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A blob of a test image.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: String,
    pub data: Vec<u8>,
    pub media_type: &'static str,
}

impl Blob {
    pub fn new(data: Vec<u8>, media_type: &'static str) -> Blob {
        Blob {
            digest: sha256_digest(&data),
            data,
            media_type,
        }
    }

    pub fn descriptor(&self) -> String {
        format!(
            "{{\"mediaType\": \"{}\", \"size\": {}, \"digest\": \"{}\"}}",
            self.media_type,
            self.data.len(),
            self.digest
        )
    }
}

/// A test image manifest: its bytes (written by hand, in an order and spacing no serializer
/// would pick, so a copy that re-serialized would change the digest) and its blobs.
#[derive(Clone, Debug)]
pub struct Image {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub blobs: Vec<Blob>,
}

pub fn image(arch: &str, docker: bool) -> Image {
    let (config_type, layer_type, manifest_type) = if docker {
        (
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            DOCKER_MANIFEST,
        )
    } else {
        (
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            OCI_MANIFEST,
        )
    };
    let own = Blob::new(
        gzip(
            format!("the pause binary for {arch}\n")
                .repeat(50)
                .as_bytes(),
        ),
        layer_type,
    );
    let shared = Blob::new(
        gzip(b"files every platform shares\n".repeat(80).as_slice()),
        layer_type,
    );
    let config = Blob::new(
        format!(
            "{{\"architecture\":\"{arch}\",\"os\":\"linux\",\"config\":{{\"Entrypoint\":[\"/pause\"]}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"{}\",\"{}\"]}}}}",
            sha256_digest(b"layer one"),
            sha256_digest(b"layer two")
        )
        .into_bytes(),
        config_type,
    );
    let bytes = format!(
        "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{manifest_type}\",\n   \"config\": {},\n   \"layers\": [\n      {},\n      {}\n   ]\n}}\n",
        config.descriptor(),
        shared.descriptor(),
        own.descriptor()
    )
    .into_bytes();
    Image {
        digest: sha256_digest(&bytes),
        bytes,
        blobs: vec![config, shared, own],
    }
}

/// An index over `images` (linux/amd64 and linux/arm64), with an annotation, hand-formatted.
pub fn index(images: &[(&str, &Image)]) -> (Vec<u8>, String) {
    let entries: Vec<String> = images
        .iter()
        .map(|(arch, im)| {
            format!(
                "    {{ \"mediaType\": \"{OCI_MANIFEST}\", \"digest\": \"{}\", \"size\": {},\n      \"platform\": {{ \"architecture\": \"{arch}\", \"os\": \"linux\" }} }}",
                im.digest,
                im.bytes.len()
            )
        })
        .collect();
    let bytes = format!(
        "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{OCI_INDEX}\",\n  \"manifests\": [\n{}\n  ],\n  \"annotations\": {{ \"org.example.test\": \"kopsrs\" }}\n}}\n",
        entries.join(",\n")
    )
    .into_bytes();
    let digest = sha256_digest(&bytes);
    (bytes, digest)
}

pub async fn push_image(
    client: &Client,
    repo: &Reference,
    im: &Image,
    tag: Option<&str>,
    media_type: &str,
) {
    for b in &im.blobs {
        client
            .push_blob(repo, b.data.clone(), &b.digest)
            .await
            .unwrap();
    }
    let target = match tag {
        Some(t) => Reference::with_tag(repo.registry().into(), repo.repository().into(), t.into()),
        None => repo.clone_with_digest(im.digest.clone()),
    };
    client
        .push_manifest_raw(&target, im.bytes.clone(), media_type.parse().unwrap())
        .await
        .unwrap();
}
