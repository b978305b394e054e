//! Apply order and garbage collection, as decisions on data.

use serde_json::Value;

use crate::objects::Object;

/// The label `apply --gc-tag TAG` puts on what it applies, and selects on to collect garbage.
pub const GC_LABEL: &str = "kopsrs.io/gc-tag";
/// The annotation `apply --gc-tag TAG` writes, with the tag as its value: what proves an
/// object was applied by kopsrs under that tag. The label alone proves nothing: controllers
/// copy labels (the endpoints controller puts a Service's labels on its Endpoints), and a
/// person can write one by hand; neither copies this annotation.
pub const GC_ANNOTATION: &str = "kopsrs.io/gc-tag";
/// Kinds a controller makes from another object, copying its labels: never garbage, whatever
/// they carry.
const DERIVED: &[(&str, &str)] = &[("v1", "Endpoints"), ("discovery.k8s.io/", "EndpointSlice")];
/// An annotation (`"true"`) that keeps an object from garbage collection.
pub const KEEP_ANNOTATION: &str = "kopsrs.io/keep";

/// Kinds that make pods: applied last, so what they mount and run as exists first.
const POD_BEARING: &[(&str, &str)] = &[
    ("", "Pod"),
    ("", "ReplicationController"),
    ("apps", "Deployment"),
    ("apps", "DaemonSet"),
    ("apps", "StatefulSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
];

/// Kinds that send API requests to pods (webhooks, aggregated APIs): applied after the
/// workloads that serve them, so a webhook that fails closed does not block the apply.
const CALLS_PODS: &[(&str, &str)] = &[
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("apiregistration.k8s.io", "APIService"),
];

/// The apply rank of an object: CustomResourceDefinitions, then Namespaces, then other
/// cluster-scoped kinds, then namespaced kinds, then the kinds that make pods, then webhooks
/// and aggregated APIs.
pub fn rank(object: &Object, namespaced: bool) -> u8 {
    match (object.group(), object.kind()) {
        _ if object.is_crd() => 0,
        ("", "Namespace") => 1,
        gk if CALLS_PODS.contains(&gk) => 5,
        _ if !namespaced => 2,
        gk if POD_BEARING.contains(&gk) => 4,
        _ => 3,
    }
}

/// `objects` in apply order (stable: the configuration's order within a rank);
/// `namespaced(i)` tells whether object `i` is namespaced.
pub fn apply_order(objects: &[Object], namespaced: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..objects.len()).collect();
    order.sort_by_key(|&i| rank(&objects[i], namespaced(i)));
    order
}

/// Why a live object listed by the GC label is not deleted, or `None` to delete it. `live` is
/// the object as the cluster has it; `rendered` whether the configuration still renders it;
/// `manager` the field manager `apply` uses. An object is garbage only when it carries the
/// tag as label **and** as kopsrs's annotation, and its managed fields show `manager`
/// applied it. Namespaces and CustomResourceDefinitions are never garbage (deleting one
/// deletes what is in it, tagged or not), nor are Endpoints and EndpointSlices (made by
/// controllers from Services).
pub fn keep_reason(live: &Value, tag: &str, rendered: bool, manager: &str) -> Option<&'static str> {
    if rendered {
        return Some("rendered");
    }
    // The label is checked again: an aggregated API may ignore the selector.
    if live["metadata"]["labels"][GC_LABEL] != tag {
        return Some("not tagged");
    }
    let kind = live["kind"].as_str().unwrap_or_default();
    let api_version = live["apiVersion"].as_str().unwrap_or_default();
    let derived = DERIVED.iter().any(|(version, k)| {
        *k == kind && (api_version == *version || api_version.starts_with(version))
    });
    if derived {
        return Some("made by a controller from a Service (which copies its labels): never garbage-collected");
    }
    if kind == "Namespace" && api_version == "v1" {
        return Some("a Namespace is never garbage-collected (it would take everything in it): delete it with `kopsrs manifests delete` or kubectl");
    }
    if kind == "CustomResourceDefinition" && api_version.starts_with("apiextensions.k8s.io/") {
        return Some("a CustomResourceDefinition is never garbage-collected (it would take every resource of its kind): delete it with `kopsrs manifests delete` or kubectl");
    }
    let controlled = live["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == true));
    if controlled {
        return Some("owned by a controller");
    }
    if live["metadata"]["annotations"][GC_ANNOTATION] != tag {
        return Some("carries the tag label but not kopsrs's kopsrs.io/gc-tag annotation: not applied by kopsrs with this tag, left alone");
    }
    let applied_by_us = live["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e["manager"] == manager && e["operation"] == "Apply")
        });
    if !applied_by_us {
        return Some(
            "tagged, but its managed fields show no apply by kopsrs's field manager: left alone",
        );
    }
    if live["metadata"]["annotations"][KEEP_ANNOTATION] == "true" {
        return Some("annotated kopsrs.io/keep");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::find;
    use serde_json::json;

    #[test]
    fn crds_then_namespaces_then_the_rest_with_workloads_last() {
        let objects = find(
            &json!([
                {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "hook"}},
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}},
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
                {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "w.example.com"}},
                {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "n"}},
            ]),
            "f",
        )
        .unwrap();
        let order = apply_order(&objects, |i| !objects[i].namespace().is_empty());
        let kinds: Vec<&str> = order.iter().map(|&i| objects[i].kind()).collect();
        assert_eq!(
            kinds,
            [
                "CustomResourceDefinition",
                "Namespace",
                "ClusterRole",
                "ConfigMap",
                "Widget",
                "Deployment",
                "ValidatingWebhookConfiguration"
            ]
        );
    }

    #[test]
    fn garbage_is_what_is_not_rendered_controlled_or_kept() {
        let tagged = |edit: &dyn Fn(&mut Value)| {
            let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": "x",
                "labels": {"kopsrs.io/gc-tag": "t"},
                "annotations": {"kopsrs.io/gc-tag": "t"},
                "managedFields": [
                    {"manager": "kube-controller-manager", "operation": "Update"},
                    {"manager": "kopsrs", "operation": "Apply"},
                ],
            }});
            edit(&mut v);
            v
        };
        let plain = tagged(&|_| {});
        assert_eq!(keep_reason(&plain, "t", true, "kopsrs"), Some("rendered"));
        assert_eq!(keep_reason(&plain, "t", false, "kopsrs"), None);
        assert_eq!(
            keep_reason(&plain, "other", false, "kopsrs"),
            Some("not tagged")
        );
        let owned = tagged(&|v| v["metadata"]["ownerReferences"] = json!([{"controller": true}]));
        assert_eq!(
            keep_reason(&owned, "t", false, "kopsrs"),
            Some("owned by a controller")
        );
        let kept = tagged(&|v| v["metadata"]["annotations"]["kopsrs.io/keep"] = json!("true"));
        assert_eq!(
            keep_reason(&kept, "t", false, "kopsrs"),
            Some("annotated kopsrs.io/keep")
        );
        for (api_version, kind) in [
            ("v1", "Namespace"),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            ("v1", "Endpoints"),
            ("discovery.k8s.io/v1", "EndpointSlice"),
        ] {
            let container = tagged(&|v| {
                v["apiVersion"] = json!(api_version);
                v["kind"] = json!(kind);
            });
            assert!(keep_reason(&container, "t", false, "kopsrs")
                .unwrap()
                .contains("never garbage-collected"));
        }
    }

    /// A label proves nothing: an object labelled by hand or by a controller copying labels,
    /// with no annotation of ours, or one another manager applied, is never garbage.
    #[test]
    fn the_label_alone_never_makes_garbage() {
        let labelled = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "x", "namespace": "other-team",
            "labels": {"kopsrs.io/gc-tag": "t"},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update"}],
        }});
        assert!(keep_reason(&labelled, "t", false, "kopsrs")
            .unwrap()
            .contains("annotation"));
        let other_tag = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "x", "labels": {"kopsrs.io/gc-tag": "t"},
            "annotations": {"kopsrs.io/gc-tag": "u"},
            "managedFields": [{"manager": "kopsrs", "operation": "Apply"}],
        }});
        assert!(keep_reason(&other_tag, "t", false, "kopsrs").is_some());
        let hand_annotated = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "x", "labels": {"kopsrs.io/gc-tag": "t"},
            "annotations": {"kopsrs.io/gc-tag": "t"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        }});
        assert!(keep_reason(&hand_annotated, "t", false, "kopsrs")
            .unwrap()
            .contains("field manager"));
        // Another field manager's apply is not ours either.
        assert!(keep_reason(&hand_annotated, "t", false, "kubectl").is_none());
    }
}
