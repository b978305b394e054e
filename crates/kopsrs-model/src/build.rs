//! The builder: shared context and helpers used by the per-area modules.

use std::collections::BTreeMap;

use kopsrs_api::{ClusterSpec, ClusterSubnetSpec, InstanceGroup, Role};

use crate::names::tf_name;
use crate::{Address, Attrs, DesiredSet, Existing, ModelError, ModelInput, Resource, Value};
use kopsrs_api::Cluster;

/// The state of one `build`: the spec, and the resources added so far by address.
pub(crate) struct Builder<'a> {
    /// The completed cluster spec.
    pub spec: &'a ClusterSpec,
    /// Every instance group of the cluster.
    pub groups: Vec<&'a InstanceGroup>,
    /// What the model needs besides the spec.
    pub input: &'a ModelInput<'a>,
    /// The cluster name (`minimal.example.com`).
    pub name: String,
    /// The AWS region, from the subnets' zones.
    pub region: String,
    /// Every subnet of the spec.
    pub subnets: Vec<&'a ClusterSubnetSpec>,
    /// Whether the cluster is IPv6 (`nonMasqueradeCIDR: ::/0`).
    pub ipv6: bool,
    resources: BTreeMap<Address, Attrs>,
    data: BTreeMap<Address, Attrs>,
    /// Terraform outputs (and locals), by name.
    pub outputs: BTreeMap<String, Value>,
    existing: Vec<Existing>,
    /// The SSH key pair, once added; launch templates refer to it.
    pub key_pair: Option<Address>,
    /// The instance group of each per-group resource.
    pub group_of: BTreeMap<Address, String>,
    /// What the groups Karpenter manages need outside AWS.
    pub(crate) karpenter: KarpenterGroups,
}

/// What the groups Karpenter manages need outside AWS: objects for the cluster and scripts
/// for the state store (karpenter.rs; one [`crate::GeneratedAddon`] once built).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct KarpenterGroups {
    /// Each group's bootstrap script by its key under the cluster's folder in the state store
    /// (`igconfig/node/<group>/bootstrap-<sha256 prefix>.sh`: a new script is a new key, so a
    /// node started from an older node class still finds the script its user-data names).
    pub scripts: BTreeMap<String, String>,
    /// Every group's `EC2NodeClass` and `NodePool`, by group name.
    pub objects: Vec<serde_json::Value>,
}

pub(crate) fn err(field: impl Into<String>, message: impl Into<String>) -> ModelError {
    ModelError {
        field: field.into(),
        message: message.into(),
    }
}

impl<'a> Builder<'a> {
    /// The builder for `cluster`; fails when no subnet names a zone the region can be read from.
    pub fn new(
        cluster: &'a Cluster,
        groups: &'a [InstanceGroup],
        input: &'a ModelInput<'a>,
    ) -> Result<Builder<'a>, ModelError> {
        let spec = &cluster.spec;
        let subnets: Vec<&ClusterSubnetSpec> = spec.subnets.iter().flatten().collect();
        let zone = subnets
            .iter()
            .find_map(|s| s.zone.as_deref())
            .ok_or_else(|| {
                err(
                    "spec.subnets",
                    "no subnet has a zone; the region comes from the zones",
                )
            })?;
        let region = kopsrs_api::validate::region_of_zone(zone).ok_or_else(|| {
            err(
                "spec.subnets",
                format!("zone {zone:?} does not name an AWS region"),
            )
        })?;
        Ok(Builder {
            spec,
            groups: groups.iter().collect(),
            input,
            name: cluster.metadata.name.clone(),
            region,
            subnets,
            ipv6: spec.non_masquerade_cidr.as_deref() == Some("::/0"),
            resources: BTreeMap::new(),
            data: BTreeMap::new(),
            outputs: BTreeMap::new(),
            existing: Vec::new(),
            key_pair: None,
            group_of: BTreeMap::new(),
            karpenter: Default::default(),
        })
    }

    /// Adds every area's resources and returns the set, sorted by address.
    pub fn build(mut self) -> Result<DesiredSet, ModelError> {
        self.network()?;
        self.security_groups()?;
        self.iam()?;
        self.service_account_roles()?;
        self.ssh_key();
        self.api_load_balancer()?;
        self.bastion_load_balancer()?;
        self.dns();
        self.etcd_volumes()?;
        self.termination_handler_queue();
        self.instance_groups()?;
        self.cluster_outputs();
        self.check_name_limits()?;
        let optional_addons = self.optional_addons();
        let generated = [
            self.termination_handler_addon(),
            std::mem::take(&mut self.karpenter).addon(),
        ];
        Ok(DesiredSet {
            cluster_name: self.name,
            region: self.region,
            resources: self
                .resources
                .into_iter()
                .map(|(address, attrs)| Resource { address, attrs })
                .collect(),
            data_sources: self
                .data
                .into_iter()
                .map(|(address, attrs)| Resource { address, attrs })
                .collect(),
            outputs: self.outputs,
            existing: self.existing,
            instance_groups: self.group_of,
            generated: generated
                .into_iter()
                .flatten()
                .map(crate::GeneratedAddon::annotated)
                .collect(),
            optional_addons,
        })
    }

    /// Adds a managed resource named after `name` (kops's object name, `nodes.example.com`).
    pub fn add(&mut self, kind: &str, name: &str, attrs: Attrs) -> Address {
        let address = Address::new(kind, &tf_name(name));
        self.resources.insert(address.clone(), attrs);
        address
    }

    /// Adds a data source named after `name`, as `add` does for managed resources.
    pub fn add_data(&mut self, kind: &str, name: &str, attrs: Attrs) -> Address {
        let address = Address::data(kind, &tf_name(name));
        self.data.insert(address.clone(), attrs);
        address
    }

    /// Whether a managed resource exists at `address`.
    pub fn has(&self, address: &Address) -> bool {
        self.resources.contains_key(address)
    }

    /// Records a resource made outside the cluster that it uses (named by `field` in the spec).
    /// Records a resource the cluster uses but does not own, to be checked by the target.
    pub fn existing(&mut self, existing: Existing) {
        self.existing.push(existing);
    }

    /// The tags every owned resource carries: `KubernetesCluster`, `Name`,
    /// `kubernetes.io/cluster/<name>=owned`, then `spec.cloudLabels`.
    pub fn tags(&self, name: &str) -> BTreeMap<String, Value> {
        let mut tags = BTreeMap::new();
        if let Some(labels) = &self.spec.cloud_labels {
            for (k, v) in labels {
                tags.insert(k.clone(), Value::str(v));
            }
        }
        tags.insert("KubernetesCluster".into(), Value::str(&self.name));
        tags.insert("Name".into(), Value::str(name));
        tags.insert(
            format!("kubernetes.io/cluster/{}", self.name),
            Value::str("owned"),
        );
        tags
    }

    /// Every name within the limit AWS sets for its kind (`names::limit`): one that is not
    /// (a long instance group name with a long cluster name) is an error before anything is
    /// made, rather than a failed call half-way through an apply.
    fn check_name_limits(&self) -> Result<(), ModelError> {
        for (address, attrs) in &self.resources {
            let Some(limit) = crate::names::limit(&address.kind) else {
                continue;
            };
            let Some(Value::Str(name)) = attrs.get("name") else {
                continue;
            };
            if name.chars().count() > limit {
                return Err(err(
                    "metadata.name",
                    format!(
                        "makes the {} name {name:?} ({} characters), over the {limit} AWS allows; shorten the cluster name or the instance group name",
                        address.kind,
                        name.chars().count()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `name.<cluster>`, the name kops gives most per-cluster objects.
    pub fn scoped(&self, name: &str) -> String {
        format!("{name}.{}", self.name)
    }

    /// The groups of one role.
    pub fn groups_with(&self, role: Role) -> impl Iterator<Item = &'a InstanceGroup> + '_ {
        self.groups
            .iter()
            .copied()
            .filter(move |g| g.role() == Some(role))
    }

    /// Whether any group has `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.groups_with(role).next().is_some()
    }

    /// The subnet called `name`.
    pub fn subnet(&self, name: &str) -> Option<&'a ClusterSubnetSpec> {
        self.subnets
            .iter()
            .copied()
            .find(|s| s.name.as_deref() == Some(name))
    }

    /// The VPC's ID: a reference to the VPC we manage, or the ID of an existing one.
    pub fn vpc_id(&self) -> Value {
        match &self.spec.network_id {
            Some(id) => Value::str(id),
            None => Address::new("aws_vpc", &tf_name(&self.name)).id(),
        }
    }

    /// Whether the cluster uses an existing VPC (`spec.networkID`).
    pub fn shared_vpc(&self) -> bool {
        self.spec.network_id.is_some()
    }

    /// The address of the subnet kopsrs manages for `subnet` (`aws_subnet.<name>-<cluster>`).
    pub fn subnet_address(&self, subnet: &ClusterSubnetSpec) -> Address {
        let name = subnet.name.as_deref().unwrap_or_default();
        Address::new("aws_subnet", &tf_name(&self.scoped(name)))
    }

    /// The subnet's ID: the existing one the spec names, else a reference to the managed subnet.
    pub fn subnet_id(&self, subnet: &ClusterSubnetSpec) -> Value {
        match &subnet.id {
            Some(id) => Value::str(id),
            None => self.subnet_address(subnet).id(),
        }
    }

    /// `spec.subnets[].type`; `Public` when unset.
    pub fn subnet_type(subnet: &ClusterSubnetSpec) -> &str {
        subnet.r#type.as_deref().unwrap_or("Public")
    }

    /// Where a resource in this partition lives (`arn:aws:...`, `arn:aws-cn:...`).
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else if self.region.starts_with("us-test-") {
            // kops's test region, so its test cases' ARNs compare.
            "aws-test"
        } else {
            "aws"
        }
    }
}

pub(crate) fn sg_name(role: &str, cluster: &str) -> String {
    format!("{role}.{cluster}")
}
