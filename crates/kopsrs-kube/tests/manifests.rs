//! What `manifests diff/apply/delete` ask of the API: discovery, the server's minor,
//! server-side apply as a field manager (conflicts, dry runs), paginated lists, deletes and
//! waiting for a CustomResourceDefinition, against scripts/fake_kube.py (server-side apply,
//! managed fields and CRDs as the real server does them) and, for what the fake serves no
//! example of, the in-process double.

mod support;

use std::time::Duration;

use kopsrs_kube::KubeError;
use serde_json::{json, Value};
use support::double::{not_found, ok, Double};
use support::{wait_until, FakeKube};

#[tokio::test]
async fn catalog_resolves_the_kinds_the_api_serves_with_their_scope() {
    let fake = FakeKube::start(&[]);
    let kube = fake.kube().await;

    let catalog = kube.catalog().await.unwrap();

    let deployment = catalog.resolve("apps/v1", "Deployment").unwrap();
    assert_eq!(deployment.plural(), "deployments.apps");
    assert_eq!(deployment.api_version(), "apps/v1");
    assert_eq!(deployment.kind(), "Deployment");
    assert!(deployment.namespaced && deployment.collectable);
    let config_map = catalog.resolve("v1", "ConfigMap").unwrap();
    assert_eq!(config_map.plural(), "configmaps");
    assert!(config_map.namespaced);
    let namespace = catalog.resolve("v1", "Namespace").unwrap();
    assert_eq!(namespace.plural(), "namespaces");
    assert!(!namespace.namespaced);
    let crd = catalog
        .resolve("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .unwrap();
    assert_eq!(
        crd.plural(),
        "customresourcedefinitions.apiextensions.k8s.io"
    );
    assert!(!crd.namespaced);
    // Versions and kinds the API does not serve.
    for (api_version, kind) in [
        ("apps/v1beta1", "Deployment"),
        ("v1", "Deployment"),
        ("example.com/v1", "Widget"),
    ] {
        assert!(
            catalog.resolve(api_version, kind).is_none(),
            "{api_version} {kind}"
        );
    }

    let collectable: Vec<String> = catalog.collectable().iter().map(|k| k.plural()).collect();
    for plural in [
        "configmaps",
        "namespaces",
        "deployments.apps",
        "poddisruptionbudgets.policy",
        "customresourcedefinitions.apiextensions.k8s.io",
    ] {
        assert!(
            collectable.iter().any(|p| p == plural),
            "{plural} in {collectable:?}"
        );
    }
    // Neither subresources (pods/eviction, deployments/scale) nor events.
    assert!(
        collectable
            .iter()
            .all(|p| !p.contains('/') && p != "events"),
        "{collectable:?}"
    );
}

fn resource(name: &str, kind: &str, namespaced: bool, verbs: &[&str]) -> Value {
    json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
           "verbs": verbs})
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Discovery of a core group with kinds that cannot be listed or deleted (as a real server
/// has them, the fake not), and a group serving two versions, v1 preferred.
async fn discovery_double() -> Double {
    Double::start(|request, _| match request.path.as_str() {
        "/api" => ok(json!({"kind": "APIVersions", "versions": ["v1"]})),
        "/api/v1" => ok(
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                resource("configmaps", "ConfigMap", true, ALL_VERBS),
                resource("events", "Event", true, ALL_VERBS),
                resource("bindings", "Binding", true, &["create"]),
                resource("componentstatuses", "ComponentStatus", false, &["get", "list"]),
                resource("pods", "Pod", true, ALL_VERBS),
                resource("pods/eviction", "Eviction", true, &["create"]),
                resource("pods/status", "Pod", true, &["get", "patch", "update"]),
            ]}),
        ),
        "/apis" => ok(
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                "name": "example.com",
                "versions": [
                    {"groupVersion": "example.com/v1", "version": "v1"},
                    {"groupVersion": "example.com/v1beta1", "version": "v1beta1"},
                ],
                "preferredVersion": {"groupVersion": "example.com/v1", "version": "v1"},
            }]}),
        ),
        path @ ("/apis/example.com/v1" | "/apis/example.com/v1beta1") => ok(json!({
            "kind": "APIResourceList", "groupVersion": &path[6..],
            "resources": [resource("widgets", "Widget", true, ALL_VERBS)],
        })),
        path => not_found("path", path),
    })
    .await
}

#[tokio::test]
async fn catalog_collects_what_can_be_listed_and_deleted_in_the_preferred_version() {
    let double = discovery_double().await;
    let kube = double.kube().await;

    let catalog = kube.catalog().await.unwrap();

    let mut collectable: Vec<(String, String)> = catalog
        .collectable()
        .iter()
        .map(|k| (k.plural(), k.api_version().to_string()))
        .collect();
    collectable.sort();
    assert_eq!(
        collectable,
        [
            ("configmaps".to_string(), "v1".to_string()),
            ("pods".into(), "v1".into()),
            ("widgets.example.com".into(), "example.com/v1".into()),
        ]
    );
    let status = catalog.resolve("v1", "ComponentStatus").unwrap();
    assert!(!status.collectable && !status.namespaced);
    assert!(!catalog.resolve("v1", "Binding").unwrap().collectable);
    // Any served version resolves, not only the preferred one.
    let beta = catalog.resolve("example.com/v1beta1", "Widget").unwrap();
    assert_eq!(beta.api_version(), "example.com/v1beta1");
    assert!(beta.collectable && beta.namespaced);
    assert!(catalog.resolve("example.com/v2", "Widget").is_none());
}

#[tokio::test]
async fn server_minor_is_read_from_the_version() {
    let fake = FakeKube::start(&["--kubernetes-version", "v1.31.2"]);
    assert_eq!(fake.kube().await.server_minor().await.unwrap(), "1.31");

    // Some distributions write the minor as `29+`.
    let double = Double::start(|request, _| match request.path.as_str() {
        "/version" => ok(json!({
            "major": "1", "minor": "29+", "gitVersion": "v1.29.4-eks-036c24b",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.22.2", "compiler": "gc",
            "platform": "linux/amd64",
        })),
        path => not_found("path", path),
    })
    .await;
    assert_eq!(double.kube().await.server_minor().await.unwrap(), "1.29");
}

fn config_map(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default", "labels": {"app": "shop"}},
           "data": data})
}

const SETTINGS: &str = "/api/v1/namespaces/default/configmaps/settings";

/// The managers of `object`'s managed fields, with their operations.
fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn apply_object_creates_and_updates_as_its_field_manager() {
    let fake = FakeKube::start(&[]);
    let kube = fake.kube().await;
    let catalog = kube.catalog().await.unwrap();
    let kind = catalog.resolve("v1", "ConfigMap").unwrap();
    let namespaces = catalog.resolve("v1", "Namespace").unwrap();

    let object = config_map("settings", json!({"color": "blue", "size": "L"}));
    let applied = kube
        .apply_object(&kind, &object, "kopsrs", false, false)
        .await
        .unwrap();

    assert_eq!(applied["data"], object["data"]);
    let stored = fake.get(SETTINGS);
    assert_eq!(stored["data"], object["data"]);
    assert_eq!(stored["metadata"]["labels"]["app"], "shop");
    assert_eq!(managers(&stored), [("kopsrs".into(), "Apply".into())]);
    assert_eq!(applied["metadata"]["uid"], stored["metadata"]["uid"]);
    assert_eq!(fake.calls("patch configmaps 201"), 1);

    // Applied again without `size`: a field this manager applied before and no longer
    // applies goes.
    let object = config_map("settings", json!({"color": "red"}));
    let applied = kube
        .apply_object(&kind, &object, "kopsrs", false, false)
        .await
        .unwrap();
    assert_eq!(applied["data"], json!({"color": "red"}));
    assert_eq!(fake.get(SETTINGS)["data"], json!({"color": "red"}));
    assert_eq!(fake.calls("patch configmaps 200"), 1);

    // A cluster-scoped object, with no namespace.
    let shop = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    kube.apply_object(&namespaces, &shop, "kopsrs", false, false)
        .await
        .unwrap();
    assert_eq!(
        managers(&fake.get("/api/v1/namespaces/shop")),
        [("kopsrs".into(), "Apply".into())]
    );
}

#[tokio::test]
async fn apply_object_conflicts_with_another_manager_unless_forced() {
    let fake = FakeKube::start(&[]);
    let kube = fake.kube().await;
    let kind = kube
        .catalog()
        .await
        .unwrap()
        .resolve("v1", "ConfigMap")
        .unwrap();
    let object = config_map("settings", json!({"color": "blue"}));
    kube.apply_object(&kind, &object, "kopsrs", false, false)
        .await
        .unwrap();
    // Someone edits the field by hand.
    fake.patch(
        &format!("{SETTINGS}?fieldManager=kubectl-edit"),
        json!({"data": {"color": "green"}}),
    );

    let err = kube
        .apply_object(&kind, &object, "kopsrs", false, false)
        .await
        .unwrap_err();

    let KubeError::Api { what, reason, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(what, "applying");
    assert!(
        reason.contains("conflict with \"kubectl-edit\"")
            && reason.contains(".data.color")
            && reason.ends_with("(409 Conflict)"),
        "{reason}"
    );
    assert_eq!(fake.get(SETTINGS)["data"]["color"], "green");

    // Forced: the value is applied and the field changes hands.
    let applied = kube
        .apply_object(&kind, &object, "kopsrs", true, false)
        .await
        .unwrap();
    assert_eq!(applied["data"]["color"], "blue");
    let stored = fake.get(SETTINGS);
    assert_eq!(stored["data"]["color"], "blue");
    for entry in stored["metadata"]["managedFields"].as_array().unwrap() {
        let owns_color = entry["fieldsV1"]["f:data"]["f:color"].is_object();
        assert_eq!(owns_color, entry["manager"] == "kopsrs", "{entry}");
    }
}

#[tokio::test]
async fn apply_object_dry_run_answers_without_storing() {
    let fake = FakeKube::start(&[]);
    let kube = fake.kube().await;
    let kind = kube
        .catalog()
        .await
        .unwrap()
        .resolve("v1", "ConfigMap")
        .unwrap();

    // A new object: the API answers what it would store, and stores nothing.
    let object = config_map("settings", json!({"color": "blue"}));
    let answer = kube
        .apply_object(&kind, &object, "kopsrs", false, true)
        .await
        .unwrap();
    assert_eq!(answer["data"]["color"], "blue");
    assert!(!fake.exists(SETTINGS));

    // A change to an existing one: the same.
    kube.apply_object(&kind, &object, "kopsrs", false, false)
        .await
        .unwrap();
    let before = fake.get(SETTINGS);
    let changed = config_map("settings", json!({"color": "red"}));
    let answer = kube
        .apply_object(&kind, &changed, "kopsrs", false, true)
        .await
        .unwrap();
    assert_eq!(answer["data"]["color"], "red");
    assert_eq!(fake.get(SETTINGS), before);
}

fn names(objects: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn list_objects_pages_by_five_hundred_and_selects_by_namespace_and_label() {
    let fake = FakeKube::start(&[]);
    for ns in ["bulk", "other"] {
        fake.create("/api/v1/namespaces", json!({"metadata": {"name": ns}}));
    }
    for i in 0..501 {
        let tier = if i % 250 == 0 { "gold" } else { "plain" };
        fake.create(
            "/api/v1/namespaces/bulk/configmaps",
            json!({"metadata": {"name": format!("cm-{i:03}"), "labels": {"tier": tier}}}),
        );
    }
    fake.create(
        "/api/v1/namespaces/other/configmaps",
        json!({"metadata": {"name": "x", "labels": {"tier": "gold"}}}),
    );
    // The fake's controllers add kube-root-ca.crt to every namespace.
    wait_until("kube-root-ca.crt in bulk", || {
        fake.exists("/api/v1/namespaces/bulk/configmaps/kube-root-ca.crt")
    });
    let kube = fake.kube().await;
    let catalog = kube.catalog().await.unwrap();
    let kind = catalog.resolve("v1", "ConfigMap").unwrap();
    fake.reset_calls();

    let all = kube.list_objects(&kind, Some("bulk"), None).await.unwrap();

    assert_eq!(all.len(), 502);
    assert_eq!(fake.calls("list configmaps"), 2);
    let listed = names(&all);
    assert_eq!(listed[0], "bulk/cm-000");
    assert_eq!(listed[500], "bulk/cm-500");
    assert_eq!(listed[501], "bulk/kube-root-ca.crt");
    // Lists leave each item's apiVersion and kind out; list_objects puts them back.
    assert!(all
        .iter()
        .all(|o| o["apiVersion"] == "v1" && o["kind"] == "ConfigMap"));

    let gold = kube
        .list_objects(&kind, Some("bulk"), Some("tier=gold"))
        .await
        .unwrap();
    assert_eq!(names(&gold), ["bulk/cm-000", "bulk/cm-250", "bulk/cm-500"]);
    let gold = kube
        .list_objects(&kind, None, Some("tier=gold"))
        .await
        .unwrap();
    assert_eq!(
        names(&gold),
        ["bulk/cm-000", "bulk/cm-250", "bulk/cm-500", "other/x"]
    );

    // A cluster-scoped kind ignores the namespace.
    let namespaces = catalog.resolve("v1", "Namespace").unwrap();
    let listed = kube
        .list_objects(&namespaces, Some("bulk"), None)
        .await
        .unwrap();
    let listed = names(&listed);
    assert!(
        ["/bulk", "/other", "/default", "/kube-system"]
            .iter()
            .all(|n| listed.iter().any(|l| l == n)),
        "{listed:?}"
    );
    let deployments = catalog.resolve("apps/v1", "Deployment").unwrap();
    assert!(kube
        .list_objects(&deployments, Some("bulk"), None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn delete_object_deletes_in_the_background_and_reports_whether_it_existed() {
    let fake = FakeKube::start(&[]);
    fake.create(
        "/apis/apps/v1/namespaces/default/deployments",
        json!({"metadata": {"name": "web"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "main",
                                                              "image": "nginx"}]}}}}),
    );
    let replica_sets = "/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dweb";
    wait_until("the Deployment's ReplicaSet", || {
        !fake.get(replica_sets)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    let kube = fake.kube().await;
    let catalog = kube.catalog().await.unwrap();
    let kind = catalog.resolve("apps/v1", "Deployment").unwrap();
    let web = "/apis/apps/v1/namespaces/default/deployments/web";

    assert!(kube
        .delete_object(&kind, Some("default"), "web", true)
        .await
        .unwrap());
    assert!(fake.exists(web), "a dry run deleted it");

    assert!(kube
        .delete_object(&kind, Some("default"), "web", false)
        .await
        .unwrap());
    // Gone at once (in the foreground it would wait for its dependents), and its ReplicaSet
    // collected after (an orphan would stay).
    assert!(!fake.exists(web));
    wait_until("the ReplicaSet collected", || {
        fake.get(replica_sets)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    });

    assert!(!kube
        .delete_object(&kind, Some("default"), "web", false)
        .await
        .unwrap());

    // A cluster-scoped object: the namespace given is not used.
    fake.create("/api/v1/namespaces", json!({"metadata": {"name": "shop"}}));
    let namespaces = catalog.resolve("v1", "Namespace").unwrap();
    assert!(kube
        .delete_object(&namespaces, Some("default"), "shop", false)
        .await
        .unwrap());
    wait_until("namespace shop gone", || {
        !fake.exists("/api/v1/namespaces/shop")
    });
    assert!(fake.exists("/api/v1/namespaces/default"));
}

fn crd(plural: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.example.com")},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {
                     "openAPIV3Schema": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": true}}}]},
    })
}

fn established(crd: &Value) -> bool {
    crd["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    })
}

#[tokio::test]
async fn wait_established_waits_until_the_kind_is_served() {
    let fake = FakeKube::start(&[]);
    fake.configure(json!({"crd_establish_after": 1.0}));
    let kube = fake.kube().await;
    let catalog = kube.catalog().await.unwrap();
    let crds = catalog
        .resolve("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .unwrap();
    kube.apply_object(&crds, &crd("widgets", "Widget"), "kopsrs", false, false)
        .await
        .unwrap();
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";
    assert!(!established(&fake.get(path)));

    kube.wait_established(
        &catalog,
        &["widgets.example.com".to_string()],
        Duration::from_secs(10),
    )
    .await
    .unwrap();

    assert!(established(&fake.get(path)));
    // The catalog is the API as it was; a new one serves the kind.
    assert!(catalog.resolve("example.com/v1", "Widget").is_none());
    let widgets = kube
        .catalog()
        .await
        .unwrap()
        .resolve("example.com/v1", "Widget")
        .unwrap();
    assert!(widgets.namespaced);
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                        "metadata": {"name": "w1", "namespace": "default"},
                        "spec": {"size": 3}});
    kube.apply_object(&widgets, &widget, "kopsrs", false, false)
        .await
        .unwrap();
    assert_eq!(
        fake.get("/apis/example.com/v1/namespaces/default/widgets/w1")["spec"]["size"],
        3
    );
}

#[tokio::test]
async fn wait_established_gives_up_after_the_timeout_and_on_a_missing_crd() {
    let fake = FakeKube::start(&[]);
    fake.configure(json!({"crd_establish_after": 60}));
    let kube = fake.kube().await;
    let catalog = kube.catalog().await.unwrap();
    let crds = catalog
        .resolve("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .unwrap();
    kube.apply_object(&crds, &crd("gadgets", "Gadget"), "kopsrs", false, false)
        .await
        .unwrap();

    let err = kube
        .wait_established(
            &catalog,
            &["gadgets.example.com".to_string()],
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "waiting for CustomResourceDefinition gadgets.example.com on \"t.example.com\": \
         not Established after 500ms"
    );

    let err = kube
        .wait_established(
            &catalog,
            &["nothing.example.com".to_string()],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    let KubeError::Api { what, reason, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(what, "reading CustomResourceDefinition nothing.example.com");
    assert!(reason.ends_with("(404 NotFound)"), "{reason}");
}
