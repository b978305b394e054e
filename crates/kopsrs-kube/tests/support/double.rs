//! An in-process HTTP double of the Kubernetes API, for answers scripts/fake_kube.py cannot be
//! made to give on cue (an eviction refused twice then accepted, a 500 on the third call, a
//! conflict on every patch). A tokio listener on loopback with HTTP/1.1 parsed by hand:
//! requests with a Content-Length body (all kube sends), JSON answers, keep-alive. Each
//! request is answered by the test's handler and recorded.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kopsrs_kube::Kube;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::{write_kubeconfig, CLUSTER};

/// A request the double received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, `PATCH`...
    pub method: String,
    /// The path without the query: `/api/v1/namespaces/default/pods/a/eviction`.
    pub path: String,
    /// The query's pairs, decoded.
    pub query: Vec<(String, String)>,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
}

impl Request {
    /// The value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `"POST /api/v1/namespaces/default/pods/a/eviction"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The answer to a request.
pub struct Reply {
    pub code: u16,
    pub body: Value,
}

/// 200 with `body`.
pub fn ok(body: Value) -> Reply {
    Reply { code: 200, body }
}

/// A `Status` as the API server writes its errors (and eviction's 201).
pub fn status(code: u16, reason: &str, message: &str) -> Reply {
    let outcome = if code < 400 { "Success" } else { "Failure" };
    Reply {
        code,
        body: json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": outcome,
            "message": message, "reason": reason, "code": code,
        }),
    }
}

/// 404 NotFound for `kind` `name`.
pub fn not_found(kind: &str, name: &str) -> Reply {
    status(404, "NotFound", &format!("{kind} \"{name}\" not found"))
}

/// Answers a request, given how many times (1, 2...) its method and path have been asked.
type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// The double: its URL, a kubeconfig for it, and the requests it has seen.
pub struct Double {
    _dir: tempfile::TempDir,
    /// The double's URL.
    pub url: String,
    /// A kubeconfig whose context is named [`CLUSTER`].
    pub kubeconfig: PathBuf,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Double {
    /// Listens on a free loopback port on the current runtime, answering with `handler`,
    /// which is told the request and how many times its method and path have been asked
    /// (this time included).
    pub async fn start(
        handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Double {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, handler.clone(), recorded.clone()));
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = write_kubeconfig(dir.path(), &url);
        Double {
            _dir: dir,
            url,
            kubeconfig,
            seen,
        }
    }

    /// The crate's client for the double.
    pub async fn kube(&self) -> Kube {
        Kube::connect(CLUSTER, std::slice::from_ref(&self.kubeconfig))
            .await
            .unwrap()
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests were `method path` exactly.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }
}

/// One connection: requests answered in turn until the client closes it.
async fn serve(stream: TcpStream, handler: Arc<Handler>, seen: Arc<Mutex<Vec<Request>>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return;
        };
        let (method, target) = (method.to_string(), target.to_string());
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "transfer-encoding" => panic!("the double reads Content-Length bodies only"),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.unwrap();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let request = Request {
            method,
            path: path.to_string(),
            query: query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        let nth = {
            let mut seen = seen.lock().unwrap();
            seen.push(request.clone());
            seen.iter()
                .filter(|r| r.method == request.method && r.path == request.path)
                .count()
        };
        let reply = handler(&request, nth);
        let text = reply.body.to_string();
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            reply.code,
            if reply.code < 400 { "OK" } else { "Error" },
            text.len()
        );
        let stream = reader.get_mut();
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(text.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

/// A query component decoded: `%3D` and `+`.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}
