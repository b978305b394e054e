//! Security groups and their rules: control plane, nodes, bastion and load balancers.

use crate::build::{err, sg_name, Builder};
use crate::names::tf_name;
use crate::{attrs, Address, Attrs, ModelError, Value};
use kopsrs_api::Role;

/// Where a rule's traffic comes from (ingress) or goes to (egress).
enum Peer<'a> {
    Cidr(&'a str),
    Group(&'a str),
}

/// One security group a role's rules are written on: the cluster's own for the role, or a
/// group given in the spec (`securityGroupOverride`), which kopsrs uses and writes the
/// role's rules on but never makes or deletes (it is not the cluster's).
struct Member {
    /// The name rules are named after: the cluster's group's name, or kops's
    /// `<id>-<role>` for a given one.
    name: String,
    id: Value,
    /// `-<id>` for a given group, empty for the cluster's own (kops's rule-name suffix).
    suffix: String,
}

/// kops's suffix for a rule between two groups: none between the cluster's own groups,
/// else both sides' (`-default` for the cluster's own).
fn join_suffixes(src: &Member, dst: &Member) -> String {
    if src.suffix.is_empty() && dst.suffix.is_empty() {
        return String::new();
    }
    let side = |m: &Member| match m.suffix.is_empty() {
        true => "-default".to_string(),
        false => m.suffix.clone(),
    };
    format!("{}{}", side(src), side(dst))
}

impl Builder<'_> {
    pub(crate) fn sg_address(&self, role: &str) -> Address {
        Address::new("aws_security_group", &tf_name(&sg_name(role, &self.name)))
    }

    /// The ID of a role's security group: the cluster's, or the API load balancer's
    /// `securityGroupOverride`.
    pub(crate) fn sg_ref(&self, role: &str) -> Value {
        match (role, self.api_security_group_override()) {
            ("api-elb", Some(id)) => Value::str(id),
            _ => self.sg_address(role).id(),
        }
    }

    /// `spec.api.loadBalancer.securityGroupOverride`.
    fn api_security_group_override(&self) -> Option<&str> {
        self.spec
            .api
            .as_ref()
            .and_then(|a| a.load_balancer.as_ref())
            .and_then(|l| l.security_group_override.as_deref())
    }

    /// The security groups a role's rules go on: the cluster's own, then each distinct
    /// `securityGroupOverride` of the instance groups that use the role's group (control
    /// planes and API servers: `masters`; nodes: `nodes`), in the spec's order.
    fn members(&self, role: &str) -> Vec<Member> {
        let mut out = vec![Member {
            name: sg_name(role, &self.name),
            id: self.sg_ref(role),
            suffix: String::new(),
        }];
        let (roles, kops_role): (&[Role], &str) = match role {
            "masters" => (&[Role::ControlPlane, Role::ApiServer], "ControlPlane"),
            "nodes" => (&[Role::Node], "Node"),
            _ => return out,
        };
        for group in self.groups.iter() {
            let Some(id) = group.spec.security_group_override.as_deref() else {
                continue;
            };
            if !group.role().is_some_and(|r| roles.contains(&r))
                || out.iter().any(|m| m.id == Value::str(id))
            {
                continue;
            }
            out.push(Member {
                name: format!("{id}-{kops_role}"),
                id: Value::str(id),
                suffix: format!("-{id}"),
            });
        }
        out
    }

    /// What a rule's peer is on each of its groups: its name in the rule's name, the
    /// attributes, and the member (none for a block).
    fn peers(&self, peer: &Peer<'_>) -> Vec<(String, Attrs, Option<Member>)> {
        match peer {
            Peer::Cidr(cidr) => {
                let key = if cidr.contains(':') {
                    "ipv6_cidr_blocks"
                } else {
                    "cidr_blocks"
                };
                vec![(
                    cidr.to_string(),
                    attrs! { key => Value::strs([*cidr]) },
                    None,
                )]
            }
            Peer::Group(role) => self
                .members(role)
                .into_iter()
                .map(|m| {
                    let a = attrs! { "source_security_group_id" => m.id.clone() };
                    (m.name.clone(), a, Some(m))
                })
                .collect(),
        }
    }

    /// A rule named the way kops names rules it derives from their content:
    /// `from-<source>-<ingress|egress>-<protocol>-<from>to<to>-<target>`; one per pair of
    /// the groups of `group` and of `peer` (more than one with `securityGroupOverride`).
    fn rule(
        &mut self,
        group: &str,
        peer: Peer<'_>,
        egress: bool,
        protocol: &str,
        ports: (i64, i64),
    ) {
        let proto_name = if protocol == "-1" { "all" } else { protocol };
        // kops names port-less protocols (IPIP, `4`) `0to0` whatever the port range says.
        let ports_name = if protocol == "4" { (0, 0) } else { ports };
        for dst in self.members(group) {
            for (peer_name, mut a, _) in self.peers(&peer) {
                let group_name = &dst.name;
                let name = if egress {
                    format!(
                        "from-{group_name}-egress-{proto_name}-{}to{}-{peer_name}",
                        ports_name.0, ports_name.1
                    )
                } else {
                    format!(
                        "from-{peer_name}-ingress-{proto_name}-{}to{}-{group_name}",
                        ports_name.0, ports_name.1
                    )
                };
                fill_rule(&mut a, dst.id.clone(), egress, protocol, ports);
                self.add("aws_security_group_rule", &name, a);
            }
        }
    }

    /// A rule with a fixed name (kops names the load-balancer rules explicitly), suffixed
    /// as kops does when a group given in the spec is on either side.
    fn named_rule(
        &mut self,
        name: &str,
        group: &str,
        peer: Peer<'_>,
        protocol: &str,
        ports: (i64, i64),
    ) {
        for dst in self.members(group) {
            for (_, mut a, src) in self.peers(&peer) {
                let suffix = match &src {
                    Some(src) => join_suffixes(src, &dst),
                    None => dst.suffix.clone(),
                };
                fill_rule(&mut a, dst.id.clone(), false, protocol, ports);
                self.add("aws_security_group_rule", &format!("{name}{suffix}"), a);
            }
        }
    }

    fn group(&mut self, role: &str, description: &str) {
        let name = sg_name(role, &self.name);
        // The load balancer's given group is used as it is: its rules are written on it.
        let given = role == "api-elb" && self.api_security_group_override().is_some();
        for cidr in ["0.0.0.0/0", "::/0"] {
            self.rule(role, Peer::Cidr(cidr), true, "-1", (0, 0));
        }
        if given {
            return;
        }
        self.add(
            "aws_security_group",
            &name,
            attrs! {
                "description" => description,
                "name" => name.clone(),
                "tags" => self.tags(&name),
                "vpc_id" => self.vpc_id(),
            },
        );
    }

    pub(crate) fn api_load_balancer_enabled(&self) -> bool {
        self.spec
            .api
            .as_ref()
            .and_then(|a| a.load_balancer.as_ref())
            .is_some()
    }

    pub(crate) fn bastion_enabled(&self) -> bool {
        self.has_role(Role::Bastion)
    }

    pub(crate) fn security_groups(&mut self) -> Result<(), ModelError> {
        // kops refuses it too: a bastion's rules name the bastion's own group.
        if let Some(group) = self
            .groups_with(Role::Bastion)
            .find(|g| g.spec.security_group_override.is_some())
        {
            return Err(err(
                format!(
                    "InstanceGroup {}: spec.securityGroupOverride",
                    group.metadata.name
                ),
                format!(
                    "{:?} is not supported on a Bastion group; remove it, or add the group with spec.additionalSecurityGroups",
                    group.spec.security_group_override.as_deref().unwrap_or_default()
                ),
            ));
        }
        self.group("masters", "Security group for masters");
        self.group("nodes", "Security group for nodes");

        // Within the cluster.
        self.rule("masters", Peer::Group("masters"), false, "-1", (0, 0));
        self.rule("nodes", Peer::Group("masters"), false, "-1", (0, 0));
        self.rule("nodes", Peer::Group("nodes"), false, "-1", (0, 0));
        let amazon_vpc = self
            .spec
            .networking
            .as_ref()
            .is_some_and(|n| n.amazonvpc.is_some());
        if amazon_vpc {
            // Pods on VPC addresses reach the control plane on any protocol; kops keeps the
            // port rules below as well.
            self.rule("masters", Peer::Group("nodes"), false, "-1", (0, 0));
        }
        {
            // Nodes reach the control plane on every port but etcd's.
            let cilium_etcd = self
                .spec
                .networking
                .as_ref()
                .and_then(|n| n.cilium.as_ref())
                .is_some_and(|c| c.etcd_managed == Some(true));
            let mut blocked = vec![2380, 2381, 4001, 4002];
            if cilium_etcd {
                blocked.push(2382);
            }
            blocked.sort();
            let mut from = 1;
            for port in blocked.iter().copied().chain([65536]) {
                if port > from {
                    self.rule(
                        "masters",
                        Peer::Group("nodes"),
                        false,
                        "tcp",
                        (from, port - 1),
                    );
                }
                from = port + 1;
            }
            self.rule("masters", Peer::Group("nodes"), false, "udp", (1, 65535));
            let ipip = self
                .spec
                .networking
                .as_ref()
                .is_some_and(|n| n.calico.is_some() || n.kuberouter.is_some());
            if ipip {
                self.rule("masters", Peer::Group("nodes"), false, "4", (0, 65535));
            }
        }

        // SSH: straight to the instances, or through the bastion.
        let ssh: Vec<String> = self.spec.ssh_access.clone().unwrap_or_default();
        if self.bastion_enabled() {
            self.group("bastion", "Security group for bastion");
            self.group("bastion-elb", "Security group for bastion ELB");
            self.rule("masters", Peer::Group("bastion"), false, "tcp", (22, 22));
            self.rule("nodes", Peer::Group("bastion"), false, "tcp", (22, 22));
            self.rule(
                "bastion",
                Peer::Group("bastion-elb"),
                false,
                "tcp",
                (22, 22),
            );
            self.rule("bastion", Peer::Group("bastion-elb"), false, "icmp", (3, 4));
            self.rule("bastion-elb", Peer::Group("bastion"), false, "icmp", (3, 4));
            let mut sources = ssh.clone();
            // The load balancer's own subnets (health checks and client IP preservation).
            for subnet in self.bastion_subnets() {
                if let Some(cidr) = &subnet.cidr {
                    sources.push(cidr.clone());
                }
            }
            for cidr in &sources {
                self.rule("bastion-elb", Peer::Cidr(cidr), false, "tcp", (22, 22));
                let (name, proto, ports) = if cidr.contains(':') {
                    (format!("icmpv6-pmtu-ssh-nlb-{cidr}"), "icmpv6", (-1, -1))
                } else {
                    (format!("icmp-pmtu-ssh-nlb-{cidr}"), "icmp", (3, 4))
                };
                self.named_rule(&name, "bastion-elb", Peer::Cidr(cidr), proto, ports);
            }
        } else {
            for cidr in &ssh {
                self.rule("masters", Peer::Cidr(cidr), false, "tcp", (22, 22));
                self.rule("nodes", Peer::Cidr(cidr), false, "tcp", (22, 22));
            }
        }

        // The Kubernetes API: through its load balancer, or straight to the control plane.
        let api: Vec<String> = self.spec.kubernetes_api_access.clone().unwrap_or_default();
        if self.api_load_balancer_enabled() {
            self.group("api-elb", "Security group for api ELB");
            for cidr in &api {
                self.rule("api-elb", Peer::Cidr(cidr), false, "tcp", (443, 443));
                let (name, proto, ports) = if cidr.contains(':') {
                    (format!("icmpv6-pmtu-api-elb-{cidr}"), "icmpv6", (-1, -1))
                } else {
                    (format!("icmp-pmtu-api-elb-{cidr}"), "icmp", (3, 4))
                };
                self.named_rule(&name, "api-elb", Peer::Cidr(cidr), proto, ports);
            }
            self.named_rule(
                "https-elb-to-master",
                "masters",
                Peer::Group("api-elb"),
                "tcp",
                (443, 443),
            );
            self.named_rule(
                "icmp-pmtu-elb-to-cp",
                "masters",
                Peer::Group("api-elb"),
                "icmp",
                (3, 4),
            );
            self.named_rule(
                "icmp-pmtu-cp-to-elb",
                "api-elb",
                Peer::Group("masters"),
                "icmp",
                (3, 4),
            );
            if self.dns_none() {
                // Without DNS, nodes find the API through the load balancer.
                self.named_rule("node-to-elb", "api-elb", Peer::Group("nodes"), "-1", (0, 0));
            }
        } else {
            for cidr in &api {
                self.rule("masters", Peer::Cidr(cidr), false, "tcp", (443, 443));
            }
        }

        let node_ports = self.node_port_range()?;
        for cidr in self.spec.node_port_access.clone().unwrap_or_default() {
            for proto in ["tcp", "udp"] {
                self.named_rule(
                    &format!("nodeport-{proto}-external-to-node-{cidr}"),
                    "nodes",
                    Peer::Cidr(&cidr),
                    proto,
                    node_ports,
                );
            }
        }
        Ok(())
    }

    /// `spec.kubeAPIServer.serviceNodePortRange` (`28000-32767`), else Kubernetes's
    /// default 30000-32767.
    pub(crate) fn node_port_range(&self) -> Result<(i64, i64), ModelError> {
        let Some(text) = self
            .spec
            .kube_api_server
            .as_ref()
            .and_then(|a| a.service_node_port_range.as_deref())
        else {
            return Ok((30000, 32767));
        };
        let range = kopsrs_api::validate::parse_port_range(text)
            .map(|(first, last)| (i64::from(first), i64::from(last)));
        range.ok_or_else(|| {
            err(
                "spec.kubeAPIServer.serviceNodePortRange",
                format!("{text:?} is not a port range; write FIRST-LAST, e.g. 30000-32767"),
            )
        })
    }

    pub(crate) fn dns_none(&self) -> bool {
        self.spec
            .topology
            .as_ref()
            .and_then(|t| t.dns.as_ref())
            .and_then(|d| d.r#type.as_deref())
            == Some("None")
            || self.name.ends_with(".k8s.local")
    }
}

/// A rule's ports, protocol, group and direction.
fn fill_rule(a: &mut Attrs, group: Value, egress: bool, protocol: &str, ports: (i64, i64)) {
    a.insert("from_port".into(), Value::Int(ports.0));
    a.insert("to_port".into(), Value::Int(ports.1));
    a.insert("protocol".into(), Value::str(protocol));
    a.insert("security_group_id".into(), group);
    a.insert(
        "type".into(),
        Value::str(if egress { "egress" } else { "ingress" }),
    );
}
