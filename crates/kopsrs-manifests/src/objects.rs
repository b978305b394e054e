//! Kubernetes objects found in evaluated configuration, as kubecfg finds them: a map with
//! `apiVersion` and `kind` is an object (a `...List` with `items` is flattened), any other map
//! is walked in key order, arrays in order, `null` is skipped, and any other value is an error
//! naming where it is.

use serde_json::Value;

/// One Kubernetes object and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The object.
    pub value: Value,
    /// The file it came from.
    pub source: String,
    /// Where in that file's value (`$.web.deployment`, `$[2]`).
    pub path: String,
}

impl Object {
    fn str(&self, pointer: &str) -> &str {
        self.value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `apps/v1`, `v1`.
    pub fn api_version(&self) -> &str {
        self.str("/apiVersion")
    }

    /// The API group (`apps`; empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The version (`v1`).
    pub fn version(&self) -> &str {
        let v = self.api_version();
        v.rsplit_once('/').map_or(v, |(_, version)| version)
    }

    /// The kind.
    pub fn kind(&self) -> &str {
        self.str("/kind")
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.str("/metadata/name")
    }

    /// `metadata.namespace` (empty when not set).
    pub fn namespace(&self) -> &str {
        self.str("/metadata/namespace")
    }

    /// The identity of the object in a cluster: group, kind, namespace, name.
    pub fn key(&self) -> (String, String, String, String) {
        (
            self.group().to_string(),
            self.kind().to_string(),
            self.namespace().to_string(),
            self.name().to_string(),
        )
    }

    /// How messages name the object: `Deployment.apps web -n team` or `Namespace team`.
    pub fn address(&self) -> String {
        let kind = match self.group() {
            "" => self.kind().to_string(),
            g => format!("{}.{g}", self.kind()),
        };
        match self.namespace() {
            "" => format!("{kind} {}", self.name()),
            ns => format!("{kind} {} -n {ns}", self.name()),
        }
    }

    /// The object is a CustomResourceDefinition.
    pub fn is_crd(&self) -> bool {
        self.group() == "apiextensions.k8s.io" && self.kind() == "CustomResourceDefinition"
    }
}

/// Every object in `value`, from `source`. All stray values are reported at once.
pub fn find(value: &Value, source: &str) -> Result<Vec<Object>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    walk(value, source, "$".into(), &mut out, &mut errors);
    match errors.is_empty() {
        true => Ok(out),
        false => Err(errors),
    }
}

fn walk(
    value: &Value,
    source: &str,
    path: String,
    out: &mut Vec<Object>,
    errors: &mut Vec<String>,
) {
    match value {
        Value::Null => {}
        Value::Object(map) if map.contains_key("apiVersion") && map.contains_key("kind") => {
            let kind = map["kind"].as_str().unwrap_or_default();
            if kind.ends_with("List") {
                if let Some(items) = map.get("items").and_then(Value::as_array) {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, source, format!("{path}.items[{i}]"), out, errors);
                    }
                    return;
                }
            }
            out.push(Object {
                value: value.clone(),
                source: source.to_string(),
                path,
            });
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            for key in keys {
                walk(&map[key], source, format!("{path}.{key}"), out, errors);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, source, format!("{path}[{i}]"), out, errors);
            }
        }
        other => {
            let what = match other {
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                _ => "a string",
            };
            errors.push(format!(
                "{source}: {path}: looking for a Kubernetes object (a map with apiVersion and kind), found {what}"
            ));
        }
    }
}

/// The objects without repeats: the same object twice is kept once; two different objects
/// with one identity are an error naming both places.
pub fn dedupe(objects: Vec<Object>) -> Result<Vec<Object>, Vec<String>> {
    let mut seen: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
    let mut out: Vec<Object> = Vec::with_capacity(objects.len());
    let mut errors = Vec::new();
    for object in objects {
        match seen.get(&object.key()) {
            Some(&i) if out[i].value == object.value => {}
            Some(&i) => errors.push(format!(
                "{} is defined twice, differently: {} {} and {} {}",
                object.address(),
                out[i].source,
                out[i].path,
                object.source,
                object.path
            )),
            None => {
                seen.insert(object.key(), out.len());
                out.push(object);
            }
        }
    }
    match errors.is_empty() {
        true => Ok(out),
        false => Err(errors),
    }
}

/// Built-in kinds that are not namespaced (Kubernetes 1.28 to 1.36).
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("certificates.k8s.io", "ClusterTrustBundle"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("node.k8s.io", "RuntimeClass"),
    ("policy", "PodSecurityPolicy"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("resource.k8s.io", "DeviceClass"),
    ("resource.k8s.io", "ResourceSlice"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "VolumeAttributesClass"),
    ("storagemigration.k8s.io", "StorageVersionMigration"),
    ("internal.apiserver.k8s.io", "StorageVersion"),
    ("authentication.k8s.io", "TokenReview"),
    ("authentication.k8s.io", "SelfSubjectReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectRulesReview"),
];

/// Whether `object`'s kind is namespaced: built-in kinds from Kubernetes's own list, custom
/// kinds from a CustomResourceDefinition among `crds`. `None`: unknown (a custom resource
/// whose definition is not in the configuration).
pub fn namespaced(
    object: &Object,
    crds: &[&Object],
    builtin: impl Fn(&str, &str) -> bool,
) -> Option<bool> {
    let (group, kind) = (object.group(), object.kind());
    if CLUSTER_SCOPED.contains(&(group, kind)) {
        return Some(false);
    }
    if let Some(crd) = crds
        .iter()
        .find(|c| c.value["spec"]["group"] == group && c.value["spec"]["names"]["kind"] == kind)
    {
        return Some(crd.value["spec"]["scope"] != "Cluster");
    }
    builtin(group, kind).then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_are_found_anywhere_and_lists_flattened() {
        let value = json!({
            "z": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "z"}},
            "a": [null, {"nested": {"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
            ]}}],
        });
        let found = find(&value, "f.jsonnet").unwrap();
        let paths: Vec<&str> = found.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, ["$.a[1].nested.items[0]", "$.z"]);
        let err = find(&json!({"a": {"b": [1]}, "c": "x"}), "f").unwrap_err();
        assert_eq!(
            err,
            [
                "f: $.a.b[0]: looking for a Kubernetes object (a map with apiVersion and kind), found a number",
                "f: $.c: looking for a Kubernetes object (a map with apiVersion and kind), found a string"
            ]
        );
    }

    #[test]
    fn repeats_are_merged_and_conflicts_named() {
        let cm = |data: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"k": data}});
        let mut objects = find(&json!([cm("1"), cm("1")]), "a").unwrap();
        assert_eq!(dedupe(objects.clone()).unwrap().len(), 1);
        objects.push(find(&json!([cm("2")]), "b").unwrap().remove(0));
        assert_eq!(
            dedupe(objects).unwrap_err(),
            ["ConfigMap c -n n is defined twice, differently: a $[0] and b $[0]"]
        );
    }
}
