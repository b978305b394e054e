//! Apply order and garbage collection, as decisions on data.

use serde_json::Value;

use crate::objects::Object;

/// The label `apply --gc-tag TAG` puts on what it applies, and selects on to collect garbage.
pub const GC_LABEL: &str = "kopsrs.io/gc-tag";
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

/// The apply rank of an object: CustomResourceDefinitions, then Namespaces, then other
/// cluster-scoped kinds, then namespaced kinds, pod-bearing kinds last.
pub fn rank(object: &Object, namespaced: bool) -> u8 {
    match (object.group(), object.kind()) {
        _ if object.is_crd() => 0,
        ("", "Namespace") => 1,
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

/// Why a live object carrying the GC label is not deleted, or `None` to delete it. `live` is
/// the object as the cluster has it; `rendered` whether the configuration still renders it.
pub fn keep_reason(live: &Value, rendered: bool) -> Option<&'static str> {
    if rendered {
        return Some("rendered");
    }
    let controlled = live["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == true));
    if controlled {
        return Some("owned by a controller");
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
                "Deployment"
            ]
        );
    }

    #[test]
    fn garbage_is_what_is_not_rendered_controlled_or_kept() {
        let plain = json!({"metadata": {"name": "x"}});
        assert_eq!(keep_reason(&plain, true), Some("rendered"));
        assert_eq!(keep_reason(&plain, false), None);
        let owned = json!({"metadata": {"ownerReferences": [{"controller": true}]}});
        assert_eq!(keep_reason(&owned, false), Some("owned by a controller"));
        let kept = json!({"metadata": {"annotations": {"kopsrs.io/keep": "true"}}});
        assert_eq!(keep_reason(&kept, false), Some("annotated kopsrs.io/keep"));
    }
}
