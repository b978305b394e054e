//! Discovery reads shared by the clusters of one account and region (`kopsrs controller`):
//! one snapshot of each account-wide read (the VPCs, subnets, groups ... of every cluster,
//! the IAM roles, the load balancers, a hosted zone's records) serves every cluster planned
//! while it is fresh, so a fleet's resync makes about the calls of one cluster, not one
//! cluster's calls per cluster.
//!
//! The CLI has no [`FleetReads`]: each read is made for the one cluster, filtered in the
//! request, as before. In a fleet, EC2 reads ask for every cluster's tag key
//! (`kubernetes.io/cluster/*`) and each cluster keeps the resources that carry its exact tag
//! key, so a cluster sees exactly what its own filter would have returned; other reads are
//! account-wide already.
//!
//! A snapshot is dropped when it is older than its maximum age, and at once when any client
//! sharing it changes something (an apply, a deletion): a plan never reads what was there
//! before the controller's own last change.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt as _, Shared};

use aws_sdk_ec2::types as ec2t;

use crate::{Aws, Error};

/// A read in flight or done, its value type-erased (each key has one type).
type Entry = Shared<BoxFuture<'static, Result<Arc<dyn Any + Send + Sync>, Error>>>;

/// The shared snapshot of one account and region. Cheap to clone (an [`Arc`] inside).
#[derive(Clone)]
pub struct FleetReads {
    inner: Arc<Inner>,
}

struct Inner {
    max_age: Duration,
    state: Mutex<State>,
    /// The listener ARNs of each load balancer, by its ARN, and when they were read: kept
    /// across snapshots ([`FleetReads::remembered_listeners`]).
    listeners: Mutex<HashMap<String, (Vec<String>, Instant)>>,
}

/// How long a load balancer's listener ARNs are remembered. Elastic Load Balancing reads
/// listeners one load balancer at a time, or by listener ARN, many at once: a fleet reads
/// the listeners it knows by ARN in batches, and each load balancer's own list (which shows
/// a listener added outside kopsrs) at most this old.
pub(crate) const LISTENERS_REMEMBERED: Duration = Duration::from_secs(600);

struct State {
    /// When the first read of this snapshot was made.
    since: Instant,
    entries: HashMap<String, Entry>,
    /// Reads made from AWS (not served from the snapshot), for the metrics.
    fetched: u64,
    /// Reads served from the snapshot.
    served: u64,
}

/// How often reads were made and served, since the reads were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FleetStats {
    /// Reads sent to AWS.
    pub fetched: u64,
    /// Reads answered from the snapshot.
    pub served: u64,
}

impl FleetReads {
    /// A snapshot that lives at most `max_age`.
    pub fn new(max_age: Duration) -> FleetReads {
        FleetReads {
            inner: Arc::new(Inner {
                max_age,
                state: Mutex::new(State {
                    since: Instant::now(),
                    entries: HashMap::new(),
                    fetched: 0,
                    served: 0,
                }),
                listeners: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Drops the snapshot: something changed, the next read goes to AWS.
    pub fn forget(&self) {
        let mut state = self.inner.state.lock().expect("fleet reads");
        state.entries.clear();
    }

    /// The listener ARNs of load balancer `lb` read less than [`LISTENERS_REMEMBERED`] ago.
    pub(crate) fn remembered_listeners(&self, lb: &str) -> Option<Vec<String>> {
        let listeners = self.inner.listeners.lock().expect("fleet listeners");
        listeners
            .get(lb)
            .filter(|(_, read)| read.elapsed() < LISTENERS_REMEMBERED)
            .map(|(arns, _)| arns.clone())
    }

    /// Remembers the listener ARNs of load balancer `lb`, just read from its own list.
    pub(crate) fn remember_listeners(&self, lb: &str, arns: Vec<String>) {
        let mut listeners = self.inner.listeners.lock().expect("fleet listeners");
        listeners.insert(lb.to_string(), (arns, Instant::now()));
    }

    /// Forgets every remembered listener: kopsrs created or deleted one.
    pub(crate) fn forget_listeners(&self) {
        self.inner
            .listeners
            .lock()
            .expect("fleet listeners")
            .clear();
    }

    /// Reads made and served so far.
    pub fn stats(&self) -> FleetStats {
        let state = self.inner.state.lock().expect("fleet reads");
        FleetStats {
            fetched: state.fetched,
            served: state.served,
        }
    }

    /// The entry for `key`, started with `fetch` when the snapshot has none.
    fn entry(&self, key: String, fetch: impl FnOnce() -> Entry) -> Entry {
        let mut state = self.inner.state.lock().expect("fleet reads");
        if state.since.elapsed() > self.inner.max_age {
            state.entries.clear();
        }
        if state.entries.is_empty() {
            state.since = Instant::now();
        }
        if let Some(entry) = state.entries.get(&key).cloned() {
            state.served += 1;
            return entry;
        }
        state.fetched += 1;
        let entry = fetch();
        state.entries.insert(key, entry.clone());
        entry
    }

    /// Forgets `key` if it still holds a failed read, so the next one tries again.
    fn drop_failed(&self, key: &str) {
        let mut state = self.inner.state.lock().expect("fleet reads");
        if let Some(entry) = state.entries.get(key) {
            if matches!(entry.peek(), Some(Err(_))) {
                state.entries.remove(key);
            }
        }
    }
}

/// Called with the service and the operation of each AWS operation sent (retries not
/// counted): the controller's metrics by operation.
pub type OnCall = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// What the clients of one account and region share ([`Aws::connect_shared`]).
#[derive(Clone)]
pub struct Sharing {
    /// The reads' snapshot (none: each plan reads for itself).
    pub reads: Option<FleetReads>,
    /// The retry partition's name (with the service's): the SDK's throttling state (its
    /// token bucket, adaptive mode's rate) is shared by the clients that name it.
    pub partition: String,
    /// Called for each operation sent.
    pub on_call: Option<OnCall>,
}

/// The SDK interceptor behind [`Sharing::on_call`].
pub(crate) struct CountCalls(pub Option<OnCall>);

impl std::fmt::Debug for CountCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountCalls")
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "kopsrs-count-calls"
    }

    // Once per operation, after the operation's configuration (its `Metadata`) is in place.
    fn read_before_serialization(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let (Some(on_call), Some(metadata)) = (
            &self.0,
            cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>(),
        ) {
            on_call(metadata.service(), metadata.name());
        }
        Ok(())
    }
}

impl Aws {
    /// These clients with their reads shared through `reads` (one per account and region).
    #[cfg(test)]
    fn sharing(mut self, reads: FleetReads) -> Aws {
        self.fleet = Some(reads);
        self
    }

    /// Whether reads are shared with other clusters' plans (the controller).
    pub(crate) fn in_fleet(&self) -> bool {
        self.fleet.is_some()
    }

    /// kopsrs created or deleted a listener: a fleet reads each load balancer's list again.
    pub(crate) fn listeners_changed(&self) {
        if let Some(reads) = &self.fleet {
            reads.forget_listeners();
        }
    }

    /// The snapshot these clients share, in a fleet.
    pub(crate) fn fleet_reads(&self) -> Option<&FleetReads> {
        self.fleet.as_ref()
    }

    /// The snapshot is out of date: these clients (or others, in this account and region)
    /// changed something; the next read goes to AWS.
    pub fn changed(&self) {
        if let Some(reads) = &self.fleet {
            reads.forget();
        }
    }

    /// `fetch`'s value: made once per snapshot for every cluster sharing it under `key`, or
    /// made now without a fleet. `key` names the request exactly (operation and parameters),
    /// and has one value type.
    pub(crate) async fn shared_read<T, F, Fut>(
        &self,
        key: String,
        fetch: F,
    ) -> Result<Arc<T>, Error>
    where
        T: Send + Sync + 'static,
        F: FnOnce(Aws) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let Some(reads) = &self.fleet else {
            return fetch(self.clone()).await.map(Arc::new);
        };
        let aws = self.clone();
        let entry = reads.entry(key.clone(), move || {
            fetch(aws)
                .map(|r| r.map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>))
                .boxed()
                .shared()
        });
        match entry.await {
            Ok(value) => Ok(value
                .downcast::<T>()
                .unwrap_or_else(|_| panic!("fleet read {key}: one value type per key"))),
            Err(e) => {
                reads.drop_failed(&key);
                Err(e)
            }
        }
    }

    /// The EC2 filter of `cluster`'s tagged resources: its tag key; in a fleet, every
    /// cluster's ([`Aws::cluster_tagged`] keeps the cluster's own).
    pub(crate) fn tag_filter(&self, cluster: &str) -> aws_sdk_ec2::types::Filter {
        let key = match self.in_fleet() {
            true => "kubernetes.io/cluster/*".to_string(),
            false => Self::cluster_tag(cluster),
        };
        aws_sdk_ec2::types::Filter::builder()
            .name("tag-key")
            .values(key)
            .build()
    }

    /// Every resource a read by [`Aws::tag_filter`] returned, shared by the fleet under
    /// `operation`: in a fleet, every cluster's ([`keep`] keeps one cluster's).
    pub(crate) async fn tagged_read<T, F, Fut>(
        &self,
        cluster: &str,
        operation: &str,
        fetch: F,
    ) -> Result<Arc<Vec<T>>, Error>
    where
        T: Send + Sync + 'static,
        F: FnOnce(Aws, aws_sdk_ec2::types::Filter) -> Fut,
        Fut: Future<Output = Result<Vec<T>, Error>> + Send + 'static,
    {
        let filter = self.tag_filter(cluster);
        let key = format!("{operation} tag-key={:?}", filter.values());
        self.shared_read(key, |aws| fetch(aws, filter)).await
    }

    /// [`Aws::tagged_read`], only the resources that carry `cluster`'s exact tag key.
    pub(crate) async fn cluster_tagged<T, F, Fut>(
        &self,
        cluster: &str,
        operation: &str,
        fetch: F,
    ) -> Result<Vec<T>, Error>
    where
        T: Tagged + Clone + Send + Sync + 'static,
        F: FnOnce(Aws, aws_sdk_ec2::types::Filter) -> Fut,
        Fut: Future<Output = Result<Vec<T>, Error>> + Send + 'static,
    {
        let all = self.tagged_read(cluster, operation, fetch).await?;
        Ok(keep(&all, cluster))
    }
}

/// A resource with tags.
pub(crate) trait Tagged {
    /// Whether it carries the tag `key` (any value).
    fn has_tag_key(&self, key: &str) -> bool;
}

macro_rules! ec2_tagged {
    ($($t:ty),* $(,)?) => {$(
        impl Tagged for $t {
            fn has_tag_key(&self, key: &str) -> bool {
                self.tags().iter().any(|t| t.key() == Some(key))
            }
        }
    )*};
}

ec2_tagged!(
    ec2t::Vpc,
    ec2t::DhcpOptions,
    ec2t::Subnet,
    ec2t::RouteTable,
    ec2t::SecurityGroup,
    ec2t::SecurityGroupRule,
    ec2t::InternetGateway,
    ec2t::EgressOnlyInternetGateway,
    ec2t::Address,
    ec2t::NatGateway,
    ec2t::KeyPairInfo,
    ec2t::Volume,
    ec2t::LaunchTemplate,
    aws_sdk_autoscaling::types::AutoScalingGroup,
);

/// The resources among `all` that carry `cluster`'s tag key: what a read filtered by it
/// alone returns.
pub(crate) fn keep<T: Tagged + Clone>(all: &[T], cluster: &str) -> Vec<T> {
    let tag = Aws::cluster_tag(cluster);
    all.iter()
        .filter(|r| r.has_tag_key(&tag))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    async fn counted(aws: &Aws, key: &str, counter: Arc<AtomicU32>) -> Result<Arc<u32>, Error> {
        aws.shared_read(key.to_string(), move |_| async move {
            Ok(counter.fetch_add(1, Ordering::SeqCst) + 1)
        })
        .await
    }

    async fn offline() -> Aws {
        // Clients are built, never called: no request leaves.
        Aws::connect("eu-west-1", true).await
    }

    #[tokio::test]
    async fn a_fleet_reads_once_per_snapshot_and_again_after_a_change() {
        let reads = FleetReads::new(Duration::from_secs(60));
        let a = offline().await.sharing(reads.clone());
        let b = offline().await.sharing(reads.clone());
        let n = Arc::new(AtomicU32::new(0));
        assert_eq!(*counted(&a, "k", n.clone()).await.unwrap(), 1);
        assert_eq!(*counted(&b, "k", n.clone()).await.unwrap(), 1);
        assert_eq!(*counted(&b, "other", n.clone()).await.unwrap(), 2);
        a.changed();
        assert_eq!(*counted(&b, "k", n.clone()).await.unwrap(), 3);
        assert_eq!(
            reads.stats(),
            FleetStats {
                fetched: 3,
                served: 1
            }
        );
    }

    #[tokio::test]
    async fn without_a_fleet_every_read_is_made() {
        let aws = offline().await;
        let n = Arc::new(AtomicU32::new(0));
        counted(&aws, "k", n.clone()).await.unwrap();
        assert_eq!(*counted(&aws, "k", n.clone()).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn an_old_snapshot_is_read_again_and_a_failure_is_not_kept() {
        let reads = FleetReads::new(Duration::from_millis(30));
        let aws = offline().await.sharing(reads.clone());
        let n = Arc::new(AtomicU32::new(0));
        counted(&aws, "k", n.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(*counted(&aws, "k", n.clone()).await.unwrap(), 2);
        let failed: Result<Arc<u32>, Error> = aws
            .shared_read("bad".into(), |_| async { Err(Error::permanent("no")) })
            .await;
        assert!(failed.is_err());
        assert_eq!(*counted(&aws, "bad", n.clone()).await.unwrap(), 3);
    }
}
