//! `manifests check`: what a Kubernetes API server of the target minor would refuse, found
//! offline and all at once: a namespaced object without `metadata.namespace`, fields unknown
//! to the schema or of the wrong type, APIs the minor no longer serves (with the replacement),
//! invalid names and labels.

use serde::Serialize;

use crate::objects::{namespaced, Object};
use crate::schema::Api;

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `namespace`, `schema`, `removed-api`, `name`, `label`, `unknown-kind`,
    /// `deterministic`.
    pub check: &'static str,
    /// `error` or `warning`.
    pub severity: &'static str,
    /// The object (`Deployment.apps web -n team`).
    pub object: String,
    /// The file it came from, and where in its value.
    pub source: String,
    /// The field (`spec.replicas`), empty for the whole object.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// APIs Kubernetes removed, with the minor that removed them and the replacement
/// (kubernetes.io/docs/reference/using-api/deprecation-guide).
const REMOVED: &[(&str, &[&str], u64, &str)] = &[
    (
        "extensions/v1beta1",
        &["Deployment", "DaemonSet", "ReplicaSet"],
        16,
        "apps/v1",
    ),
    (
        "apps/v1beta1",
        &["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"],
        16,
        "apps/v1",
    ),
    (
        "apps/v1beta2",
        &["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"],
        16,
        "apps/v1",
    ),
    (
        "extensions/v1beta1",
        &["NetworkPolicy"],
        16,
        "networking.k8s.io/v1",
    ),
    (
        "extensions/v1beta1",
        &["PodSecurityPolicy"],
        16,
        "policy/v1beta1 (itself removed in 1.25)",
    ),
    (
        "extensions/v1beta1",
        &["Ingress"],
        22,
        "networking.k8s.io/v1",
    ),
    (
        "networking.k8s.io/v1beta1",
        &["Ingress", "IngressClass"],
        22,
        "networking.k8s.io/v1",
    ),
    (
        "apiextensions.k8s.io/v1beta1",
        &["CustomResourceDefinition"],
        22,
        "apiextensions.k8s.io/v1",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        &[
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ],
        22,
        "admissionregistration.k8s.io/v1",
    ),
    (
        "apiregistration.k8s.io/v1beta1",
        &["APIService"],
        22,
        "apiregistration.k8s.io/v1",
    ),
    (
        "rbac.authorization.k8s.io/v1beta1",
        &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "scheduling.k8s.io/v1beta1",
        &["PriorityClass"],
        22,
        "scheduling.k8s.io/v1",
    ),
    (
        "storage.k8s.io/v1beta1",
        &["CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"],
        22,
        "storage.k8s.io/v1",
    ),
    (
        "coordination.k8s.io/v1beta1",
        &["Lease"],
        22,
        "coordination.k8s.io/v1",
    ),
    (
        "certificates.k8s.io/v1beta1",
        &["CertificateSigningRequest"],
        22,
        "certificates.k8s.io/v1",
    ),
    ("batch/v1beta1", &["CronJob"], 25, "batch/v1"),
    (
        "discovery.k8s.io/v1beta1",
        &["EndpointSlice"],
        25,
        "discovery.k8s.io/v1",
    ),
    ("events.k8s.io/v1beta1", &["Event"], 25, "events.k8s.io/v1"),
    (
        "autoscaling/v2beta1",
        &["HorizontalPodAutoscaler"],
        25,
        "autoscaling/v2",
    ),
    ("policy/v1beta1", &["PodDisruptionBudget"], 25, "policy/v1"),
    (
        "policy/v1beta1",
        &["PodSecurityPolicy"],
        25,
        "Pod Security Admission (namespace labels); there is no replacement kind",
    ),
    (
        "node.k8s.io/v1beta1",
        &["RuntimeClass"],
        25,
        "node.k8s.io/v1",
    ),
    (
        "autoscaling/v2beta2",
        &["HorizontalPodAutoscaler"],
        26,
        "autoscaling/v2",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        &["FlowSchema", "PriorityLevelConfiguration"],
        26,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    (
        "storage.k8s.io/v1beta1",
        &["CSIStorageCapacity"],
        27,
        "storage.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta2",
        &["FlowSchema", "PriorityLevelConfiguration"],
        29,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta3",
        &["FlowSchema", "PriorityLevelConfiguration"],
        32,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
];

/// Kinds whose names must be DNS labels (63 characters, no dots).
const LABEL_NAMED: &[(&str, &str)] = &[("", "Namespace")];

/// Kinds whose names are path segments (RBAC: `system:aggregate-to-view` is fine).
const SEGMENT_NAMED: &[(&str, &str)] = &[
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
];

/// Checks `objects` against the API of one minor (`api`, `1.34`). Problems come in object
/// order.
pub fn check(objects: &[Object], api: &mut Api) -> Vec<Problem> {
    let minor: u64 = api
        .minor()
        .split_once('.')
        .and_then(|(_, m)| m.parse().ok())
        .unwrap_or(0);
    let crds: Vec<&Object> = objects.iter().filter(|o| o.is_crd()).collect();
    let mut out = Vec::new();
    for object in objects {
        let problem = |check, severity, field: &str, message: String, hint: &str| Problem {
            check,
            severity,
            object: object.address(),
            source: format!("{} {}", object.source, object.path),
            field: field.to_string(),
            message,
            hint: hint.to_string(),
        };
        let (group, version, kind) = (object.group(), object.version(), object.kind());
        let gv = object.api_version();

        // The API: removed, unknown, or served (and then its schema).
        let removed = REMOVED
            .iter()
            .find(|(g, kinds, at, _)| *g == gv && kinds.contains(&kind) && minor >= *at);
        // Kubernetes's own groups: those the minor serves, and those it no longer serves.
        let builtin_group = group.is_empty()
            || api.serves_group(group)
            || REMOVED
                .iter()
                .any(|(gv, ..)| gv.rsplit_once('/').is_some_and(|(g, _)| g == group));
        if let Some((_, _, at, replacement)) = removed {
            out.push(problem(
                "removed-api",
                "error",
                "apiVersion",
                format!(
                    "{gv} {kind} was removed in Kubernetes 1.{at}; the target is {}",
                    api.minor()
                ),
                &format!("use {replacement}"),
            ));
        } else if let Some(violations) = api.validate(group, version, kind, &object.value) {
            for v in violations {
                out.push(problem(
                    "schema",
                    "error",
                    &v.path,
                    v.message,
                    "see `kubectl explain` for the field, or the API reference of this minor",
                ));
            }
        } else if builtin_group {
            let others = api.versions_of(kind);
            out.push(problem(
                "removed-api",
                "error",
                "apiVersion",
                format!("Kubernetes {} does not serve {gv} {kind}", api.minor()),
                &match others.as_slice() {
                    [] => format!("no API of Kubernetes {} has a kind {kind}", api.minor()),
                    o => format!("use {}", o.join(" or ")),
                },
            ));
        } else if let Some(crd) = crds
            .iter()
            .find(|c| c.value["spec"]["group"] == group && c.value["spec"]["names"]["kind"] == kind)
        {
            match crate::schema::validate_custom(&crd.value, version, &object.value) {
                Some(violations) => {
                    for v in violations {
                        out.push(problem(
                            "schema",
                            "error",
                            &v.path,
                            v.message,
                            &format!("see the schema of {gv} {kind} in its CustomResourceDefinition ({})", crd.name()),
                        ));
                    }
                }
                None => out.push(problem(
                    "schema",
                    "error",
                    "apiVersion",
                    format!(
                        "the CustomResourceDefinition {} has no schema for version {version}",
                        crd.name()
                    ),
                    "use a version the definition serves",
                )),
            }
        } else if !is_custom(group, &crds) {
            out.push(problem(
                "unknown-kind",
                "warning",
                "",
                format!("{gv} {kind} is a custom resource whose CustomResourceDefinition is not in the configuration: not validated"),
                "include the CustomResourceDefinition, or check that the cluster has it",
            ));
        }

        // Namespace.
        let is_namespaced = namespaced(object, &crds, |_, _| builtin_group);
        match (is_namespaced, object.namespace().is_empty()) {
            (Some(true), true) => out.push(problem(
                "namespace",
                "error",
                "metadata.namespace",
                format!("{kind} is namespaced and declares no namespace: it would land in the namespace of whoever applies it"),
                "set metadata.namespace",
            )),
            (Some(false), false) => out.push(problem(
                "namespace",
                "error",
                "metadata.namespace",
                format!("{kind} is cluster-scoped but declares namespace {:?}", object.namespace()),
                "remove metadata.namespace",
            )),
            _ => {}
        }

        // Name.
        let name = object.name();
        let name_problem = if (group, kind) == ("", "Service") {
            dns_1035_label(name)
        } else if LABEL_NAMED.contains(&(group, kind)) {
            dns_label(name)
        } else if SEGMENT_NAMED.contains(&(group, kind)) {
            path_segment(name)
        } else {
            dns_subdomain(name)
        };
        if let Err(why) = name_problem {
            out.push(problem(
                "name",
                "error",
                "metadata.name",
                format!("{name:?} {why}"),
                "use lowercase letters, digits and '-' (and '.' except for namespaces and services)",
            ));
        }
        if !object.namespace().is_empty() {
            if let Err(why) = dns_label(object.namespace()) {
                out.push(problem(
                    "name",
                    "error",
                    "metadata.namespace",
                    format!("{:?} {why}", object.namespace()),
                    "a namespace is a DNS label: lowercase letters, digits and '-', at most 63",
                ));
            }
        }

        // Labels, here and in pod templates and selectors.
        for pointer in [
            "/metadata/labels",
            "/spec/template/metadata/labels",
            "/spec/selector/matchLabels",
            "/spec/jobTemplate/spec/template/metadata/labels",
        ] {
            let Some(labels) = object.value.pointer(pointer).and_then(|v| v.as_object()) else {
                continue;
            };
            let field = pointer[1..].replace('/', ".");
            for (key, value) in labels {
                let mut why = label_key(key).err().map(|w| format!("key {key:?} {w}"));
                if why.is_none() {
                    why = match value.as_str() {
                        Some(v) => label_value(v)
                            .err()
                            .map(|w| format!("value {v:?} of {key:?} {w}")),
                        None => Some(format!("value of {key:?} is not a string")),
                    };
                }
                if let Some(why) = why {
                    out.push(problem(
                        "label",
                        "error",
                        &format!("{field}.{key}"),
                        format!("label {why}"),
                        "label values: at most 63 of letters, digits, '-', '_', '.', starting and ending alphanumeric; keys: an optional DNS prefix and '/'",
                    ));
                }
            }
        }
    }
    out
}

fn is_custom(group: &str, crds: &[&Object]) -> bool {
    crds.iter().any(|c| c.value["spec"]["group"] == group)
}

// The name and label rules are kopsrs-api's (the cluster spec checks the same ones).
use kopsrs_api::validate::{is_dns_subdomain, is_label_value, is_qualified_name};

fn dns_label(s: &str) -> Result<(), String> {
    match is_dns_subdomain(s) && !s.contains('.') && s.len() <= 63 {
        true => Ok(()),
        false => Err("is not a DNS label (at most 63 lowercase letters, digits and '-', starting and ending alphanumeric)".into()),
    }
}

/// Services: a DNS label that starts with a letter (RFC 1035), as their names become DNS
/// names.
fn dns_1035_label(s: &str) -> Result<(), String> {
    dns_label(s)?;
    match s.starts_with(|c: char| c.is_ascii_lowercase()) {
        true => Ok(()),
        false => Err("must start with a letter (a Service name is an RFC 1035 label)".into()),
    }
}

fn dns_subdomain(s: &str) -> Result<(), String> {
    match is_dns_subdomain(s) {
        true => Ok(()),
        false => Err("is not a DNS subdomain (at most 253 of lowercase letters, digits, '-' and '.', each part starting and ending alphanumeric)".into()),
    }
}

fn path_segment(s: &str) -> Result<(), String> {
    match s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('%') {
        true => Err("is not a valid name: empty, '.', '..', or contains '/' or '%'".into()),
        false => Ok(()),
    }
}

/// A valid label value that is not empty (`--gc-tag`).
pub fn tag_value(s: &str) -> Result<(), String> {
    match !s.is_empty() && is_label_value(s) {
        true => Ok(()),
        false => Err("is not a label value (1 to 63 of letters, digits, '-', '_' and '.', starting and ending alphanumeric)".into()),
    }
}

fn label_value(s: &str) -> Result<(), String> {
    match is_label_value(s) {
        true => Ok(()),
        false => Err("is not a valid label value".into()),
    }
}

fn label_key(key: &str) -> Result<(), String> {
    match is_qualified_name(key) {
        true => Ok(()),
        false => Err("is not a qualified name (an optional DNS prefix and '/', then at most 63 of letters, digits, '-', '_', '.')".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::find;
    use serde_json::json;

    #[test]
    fn each_problem_is_found_with_its_object_and_field() {
        let value = json!([
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "no-ns"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": {"bad label": "x", "ok": "-no"}}},
            {"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "old", "namespace": "team"}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "Web", "namespace": "team"},
             "spec": {"replicas": "2", "selector": {}, "template": {"spec": {"containers": [{"name": "c", "imagee": "x"}]}}}},
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "team"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:view-ish"}},
            // A custom resource in a *.k8s.io group (Gateway API) is not Kubernetes's own.
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "team"}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1api", "namespace": "team"}},
        ]);
        let objects = find(&value, "f.jsonnet").unwrap();
        let mut api = Api::load("1.34").unwrap();
        let got: Vec<(&str, &str, String, String)> = check(&objects, &mut api)
            .into_iter()
            .map(|p| (p.check, p.severity, p.object, p.field))
            .collect();
        let want = [
            (
                "namespace",
                "error",
                "ConfigMap no-ns",
                "metadata.namespace",
            ),
            (
                "label",
                "error",
                "Namespace team",
                "metadata.labels.bad label",
            ),
            ("label", "error", "Namespace team", "metadata.labels.ok"),
            (
                "removed-api",
                "error",
                "Deployment.extensions old -n team",
                "apiVersion",
            ),
            (
                "schema",
                "error",
                "Deployment.apps Web -n team",
                "spec.replicas",
            ),
            (
                "schema",
                "error",
                "Deployment.apps Web -n team",
                "spec.template.spec.containers[0].imagee",
            ),
            (
                "name",
                "error",
                "Deployment.apps Web -n team",
                "metadata.name",
            ),
            (
                "unknown-kind",
                "warning",
                "Widget.example.com w -n team",
                "",
            ),
            (
                "unknown-kind",
                "warning",
                "Gateway.gateway.networking.k8s.io gw -n team",
                "",
            ),
            ("name", "error", "Service 1api -n team", "metadata.name"),
        ];
        let want: Vec<(&str, &str, String, String)> = want
            .iter()
            .map(|(c, s, o, f)| (*c, *s, o.to_string(), f.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_removed_api_names_the_minor_and_replacement() {
        let objects = find(
            &json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "n"}}),
            "f",
        )
        .unwrap();
        let problems = check(&objects, &mut Api::load("1.30").unwrap());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].message,
            "batch/v1beta1 CronJob was removed in Kubernetes 1.25; the target is 1.30"
        );
        assert_eq!(problems[0].hint, "use batch/v1");
    }
}
