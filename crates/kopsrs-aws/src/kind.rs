//! The resource kinds the AWS target manages, as one enum in dependency order: names and
//! order only. What each kind does is its own file's [`Handler`](crate::handler::Handler),
//! reached from a [`Kind`] through `dispatch.rs`.
//!
//! Why an enum and not trait objects: every dispatch is a `match` the compiler checks for
//! exhaustiveness, the futures need no boxing, and the declaration order *is* the dependency
//! order (parents before children) that discovery matches in and creation follows. Adding a
//! kind is one line here, one line in `dispatch.rs` (the compiler refuses one without the
//! other) and its file implementing the handler; a kind the model writes that is not listed
//! stops `update cluster` at plan time with its name ([`Kind::parse`]), never half-way through
//! an apply.

/// Declares the kinds in dependency order: `Variant = "terraform_type"`.
macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A resource kind of the AWS target, in dependency order (parents first).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $($(#[$doc])* $variant,)*
        }

        impl Kind {
            /// Every kind, in dependency order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The model's (and Terraform's) name of the kind.
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $name),* }
            }

            /// The kind of a model address, if the AWS target manages it.
            pub fn parse(name: &str) -> Option<Kind> {
                match name { $($name => Some(Kind::$variant),)* _ => None }
            }
        }
    };
}

kinds! {
    /// DHCP options: the instances' domain and name servers.
    VpcDhcpOptions = "aws_vpc_dhcp_options",
    /// The cluster's VPC.
    Vpc = "aws_vpc",
    /// An additional IPv4 block of the VPC (`spec.additionalNetworkCIDRs`).
    VpcCidrBlock = "aws_vpc_ipv4_cidr_block_association",
    /// The VPC's DHCP options.
    VpcDhcpOptionsAssociation = "aws_vpc_dhcp_options_association",
    /// The internet gateway of public and utility subnets.
    InternetGateway = "aws_internet_gateway",
    /// IPv6 egress of private subnets.
    EgressOnlyInternetGateway = "aws_egress_only_internet_gateway",
    /// A subnet.
    Subnet = "aws_subnet",
    /// The cluster's tag on a shared subnet.
    SubnetTag = "aws_ec2_tag",
    /// A route table.
    RouteTable = "aws_route_table",
    /// An elastic IP (a NAT gateway's).
    Eip = "aws_eip",
    /// A NAT gateway.
    NatGateway = "aws_nat_gateway",
    /// A route of a route table.
    Route = "aws_route",
    /// A subnet's association with a route table.
    RouteTableAssociation = "aws_route_table_association",
    /// A security group.
    SecurityGroup = "aws_security_group",
    /// A rule of a security group.
    SecurityGroupRule = "aws_security_group_rule",
    /// The SSH key pair.
    KeyPair = "aws_key_pair",
    /// An IAM role of instances or service accounts.
    IamRole = "aws_iam_role",
    /// An inline policy of a role.
    IamRolePolicy = "aws_iam_role_policy",
    /// A managed policy attached to a role.
    IamRolePolicyAttachment = "aws_iam_role_policy_attachment",
    /// An instance profile.
    IamInstanceProfile = "aws_iam_instance_profile",
    /// The OIDC provider of service-account roles.
    IamOidcProvider = "aws_iam_openid_connect_provider",
    /// An etcd volume.
    EbsVolume = "aws_ebs_volume",
    /// An instance group's launch template.
    LaunchTemplate = "aws_launch_template",
    /// A target group of the API load balancer.
    LbTargetGroup = "aws_lb_target_group",
    /// The API load balancer.
    Lb = "aws_lb",
    /// A listener of the API load balancer.
    LbListener = "aws_lb_listener",
    /// The node-termination-handler queue.
    SqsQueue = "aws_sqs_queue",
    /// An EventBridge rule feeding the queue.
    EventRule = "aws_cloudwatch_event_rule",
    /// A rule's target (the queue).
    EventTarget = "aws_cloudwatch_event_target",
    /// An instance group's auto scaling group.
    AutoscalingGroup = "aws_autoscaling_group",
    /// A lifecycle hook of a group.
    LifecycleHook = "aws_autoscaling_lifecycle_hook",
    /// A DNS record of the API name.
    Route53Record = "aws_route53_record",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_is_the_declaration_order() {
        for (i, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(Kind::parse(kind.as_str()), Some(*kind));
            assert_eq!(Kind::ALL.iter().position(|k| k == kind), Some(i));
        }
        assert_eq!(Kind::parse("aws_instance"), None);
        // Parents before children: what creation order and discovery's matching rely on.
        assert!(Kind::Vpc < Kind::Subnet && Kind::Subnet < Kind::NatGateway);
        assert!(Kind::RouteTable < Kind::Route && Kind::NatGateway < Kind::Route);
        assert!(Kind::SecurityGroup < Kind::SecurityGroupRule);
        assert!(Kind::IamRole < Kind::IamInstanceProfile);
        assert!(Kind::LaunchTemplate < Kind::AutoscalingGroup);
        assert!(Kind::LbTargetGroup < Kind::AutoscalingGroup);
        assert!(Kind::Lb < Kind::LbListener && Kind::Lb < Kind::Route53Record);
        assert!(Kind::SqsQueue < Kind::EventTarget);
    }
}
