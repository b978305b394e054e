//! The Lease lock against scripts/fake_kube.py (whose Leases kubectl reads in
//! scripts/tests): one holder at a time, taken over only once its time ran out, released only
//! by its holder.

mod support;

use std::time::Duration;

use support::FakeKube;

#[tokio::test]
async fn one_holder_at_a_time_until_its_time_runs_out() {
    let fake = FakeKube::start(&[]);
    let kube = fake.kube().await;
    let minute = Duration::from_secs(60);
    let first = kube
        .acquire_lease("kube-system", "kopsrs-gc-shop", "ci@a run 1", minute)
        .await
        .unwrap()
        .expect("a missing lease is made");
    // The lease is in the cluster, with its holder and duration.
    let (code, lease) = fake.request(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kopsrs-gc-shop",
        None,
    );
    assert_eq!(code, 200, "{lease}");
    assert_eq!(lease["spec"]["holderIdentity"], "ci@a run 1");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 60);

    // A second run is refused, told who holds it and until when.
    let taken = kube
        .acquire_lease("kube-system", "kopsrs-gc-shop", "ci@b run 2", minute)
        .await
        .unwrap()
        .expect_err("held by the first run");
    assert_eq!(taken.holder, "ci@a run 1");
    assert!(!taken.until.is_empty());
    // The holder renews its own.
    let renewed = kube
        .acquire_lease("kube-system", "kopsrs-gc-shop", "ci@a run 1", minute)
        .await
        .unwrap()
        .expect("renewed");
    // A run that lost the lease leaves the holder's alone: the stale copy's release is a
    // no-op (its resourceVersion no longer matches).
    kube.release_lease(&first).await.unwrap();
    let (code, _) = fake.request(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kopsrs-gc-shop",
        None,
    );
    assert_eq!(code, 200, "the renewed lease is still held");
    kube.release_lease(&renewed).await.unwrap();
    let (code, _) = fake.request(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kopsrs-gc-shop",
        None,
    );
    assert_eq!(code, 404, "released");
    kube.acquire_lease("kube-system", "kopsrs-gc-shop", "ci@b run 2", minute)
        .await
        .unwrap()
        .expect("free once released");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over() {
    let fake = FakeKube::start(&[]);
    let kube = fake.kube().await;
    kube.acquire_lease(
        "kube-system",
        "kopsrs-gc-shop",
        "crashed run",
        Duration::from_secs(1),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let taken = kube
        .acquire_lease(
            "kube-system",
            "kopsrs-gc-shop",
            "next run",
            Duration::from_secs(60),
        )
        .await
        .unwrap()
        .expect("the crashed run's lease ran out");
    assert_eq!(taken.holder, "next run");
    let (_, lease) = fake.request(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kopsrs-gc-shop",
        None,
    );
    assert_eq!(lease["spec"]["holderIdentity"], "next run");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}
