//! `kopsrs controller install`: what runs the controller in a management cluster, as
//! Kubernetes objects: the CustomResourceDefinitions (from `kopsrs_api::crd`, the same
//! types as `toolbox schema`), a namespace, a service account, the least RBAC the controller
//! uses, its Deployment (probes on `/healthz` and `/readyz`) and the Service of its
//! `/metrics`.

use serde_json::{json, Value};

/// The objects' names.
pub const NAME: &str = "kopsrs-controller";

/// What to install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The namespace the controller runs in (and holds its Lease in).
    pub namespace: String,
    /// The controller's image.
    pub image: String,
    /// Replicas (one leads; the others wait on the Lease).
    pub replicas: u32,
    /// The default state store of clusters whose spec names none (`spec.configBase`).
    pub state: String,
    /// An IAM role for the controller's service account (IRSA), when given.
    pub role_arn: Option<String>,
}

/// The objects, in the order they apply.
pub fn objects(options: &InstallOptions) -> Vec<Value> {
    let ns = options.namespace.as_str();
    let labels = json!({"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "kopsrs"});
    let mut service_account = json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": NAME, "namespace": ns, "labels": labels},
    });
    if let Some(role) = &options.role_arn {
        service_account["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": role});
    }
    let mut out = kopsrs_api::crd::custom_resource_definitions();
    out.extend([
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}),
        service_account,
        // What the controller does in every namespace: read kops's resources, write a
        // Cluster's finalizers and status, record Events, read namespaces. Nothing else.
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": NAME, "labels": labels},
            "rules": [
                {"apiGroups": ["kops.k8s.io"], "resources": ["clusters", "instancegroups"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["kops.k8s.io"], "resources": ["clusters"], "verbs": ["patch"]},
                {"apiGroups": ["kops.k8s.io"], "resources": ["clusters/status"],
                 "verbs": ["get", "patch"]},
                {"apiGroups": ["kops.k8s.io"], "resources": ["clusters/finalizers"],
                 "verbs": ["update"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
                // A namespace's annotations name the AWS role of its clusters.
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}],
        }),
        // Leader election: its one Lease, in its own namespace.
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "rules": [
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "resourceNames": [NAME], "verbs": ["get", "update", "delete"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}],
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "spec": {
                "replicas": options.replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": NAME,
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                            },
                        }]}},
                        "containers": [{
                            "name": "controller",
                            "image": options.image,
                            "args": ["controller", "run",
                                     "--lease-namespace", ns, "--lease-name", NAME,
                                     "--identity", "$(POD_NAME)",
                                     "--metrics-address", "0.0.0.0:8080"],
                            "ports": [{"name": "metrics", "containerPort": 8080}],
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"},
                                              "periodSeconds": 20},
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"},
                                               "periodSeconds": 10},
                            "env": [
                                {"name": "KOPS_STATE_STORE", "value": options.state},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            ],
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                          "limits": {"memory": "512Mi"}},
                            "securityContext": {"allowPrivilegeEscalation": false,
                                                "readOnlyRootFilesystem": true,
                                                "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }],
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("{NAME}-metrics"), "namespace": ns, "labels": labels},
            "spec": {
                "selector": {"app.kubernetes.io/name": NAME},
                "ports": [{"name": "metrics", "port": 8080, "targetPort": "metrics"}],
            },
        }),
    ]);
    out
}
