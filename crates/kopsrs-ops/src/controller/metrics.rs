//! `controller run --metrics-address`: Prometheus metrics (`/metrics`, OpenMetrics text),
//! `/healthz` (the process serves) and `/readyz` (the management cluster's client is made and
//! the work loop runs, leading or waiting to lead).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The controller's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles, by outcome (`applied`, `planned`, `invalid`, `paused`, `not_managed`,
    /// `unchanged`, `deleted`, `failed`).
    pub reconciles: Family<Vec<(String, String)>, Counter>,
    /// AWS API operations sent for the clusters' cloud, by service and operation (a page of
    /// a paginated one counts once, retries do not; the state store's S3 is not counted).
    pub aws_calls: Family<Vec<(String, String)>, Counter>,
    /// Changes per plan made.
    pub plan_changes: Histogram,
    /// Seconds per reconcile that reached AWS.
    pub duration: Histogram,
    /// 1 while this replica leads.
    pub leader: Gauge,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("kopsrs_controller");
        let reconciles = Family::<Vec<(String, String)>, Counter>::default();
        let aws_calls = Family::<Vec<(String, String)>, Counter>::default();
        let plan_changes = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let duration = Histogram::new(exponential_buckets(0.5, 2.0, 12));
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles by outcome", reconciles.clone());
        registry.register(
            "aws_calls",
            "AWS API operations sent, by service and operation",
            aws_calls.clone(),
        );
        registry.register(
            "plan_changes",
            "Resource changes per plan",
            plan_changes.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Duration of reconciles that reached AWS",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        registry.register("leader", "1 while this replica leads", leader.clone());
        Metrics {
            registry,
            reconciles,
            aws_calls,
            plan_changes,
            duration,
            leader,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Counts one reconcile with `outcome`.
    pub fn reconciled(&self, outcome: &str) {
        self.reconciles
            .get_or_create(&vec![("outcome".to_string(), outcome.to_string())])
            .inc();
    }

    /// Counts one AWS operation sent.
    pub fn aws_call(&self, service: &str, operation: &str) {
        self.aws_calls
            .get_or_create(&vec![
                ("service".to_string(), service.to_string()),
                ("operation".to_string(), operation.to_string()),
            ])
            .inc();
    }

    /// Marks the controller ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The metrics as OpenMetrics text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String");
        out
    }

    fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        let (status, body, kind) = match path {
            "/metrics" => (
                StatusCode::OK,
                self.text(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            "/healthz" | "/livez" => (StatusCode::OK, "ok\n".into(), "text/plain"),
            "/readyz" => match self.ready.load(Ordering::Relaxed) {
                true => (StatusCode::OK, "ok\n".into(), "text/plain"),
                false => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready\n".into(),
                    "text/plain",
                ),
            },
            _ => (StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
        };
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    }
}

/// Listens on `address` (a taken port is an error now, before the controller starts).
pub async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("--metrics-address {address}: cannot listen"))
}

/// Serves the metrics and probes on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = metrics.answer(request.uri().path());
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
            // A client that goes away mid-request is its own business.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_openmetrics_text() {
        let metrics = Metrics::default();
        metrics.reconciled("applied");
        metrics.reconciled("applied");
        metrics.aws_call("ec2", "DescribeVpcs");
        metrics.aws_call("ec2", "DescribeVpcs");
        metrics.plan_changes.observe(3.0);
        let text = metrics.text();
        assert!(
            text.contains("kopsrs_controller_reconciles_total{outcome=\"applied\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "kopsrs_controller_aws_calls_total{service=\"ec2\",operation=\"DescribeVpcs\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("kopsrs_controller_plan_changes_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn readiness_follows_the_loop() {
        let metrics = Metrics::default();
        assert_eq!(
            metrics.answer("/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        metrics.set_ready(true);
        assert_eq!(metrics.answer("/readyz").status(), StatusCode::OK);
        assert_eq!(metrics.answer("/healthz").status(), StatusCode::OK);
        assert_eq!(metrics.answer("/nope").status(), StatusCode::NOT_FOUND);
    }
}
