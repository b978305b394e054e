//! The resource kinds the AWS target manages, as one enum in dependency order, and the
//! [`Handler`] each kind implements in its own file.
//!
//! Why an enum and not trait objects: every dispatch below is a `match` the compiler checks
//! for exhaustiveness, the futures need no boxing, and the declaration order *is* the
//! dependency order (parents before children) that discovery matches in and creation follows.
//! Adding a kind is one line in [`kinds!`] below plus its file implementing [`Handler`]; a kind
//! the model writes that is not listed stops `update cluster` at plan time with its name
//! ([`Kind::parse`]), never half-way through an apply.

use std::collections::BTreeMap;

use futures::future::{BoxFuture, Shared};
use kopsrs_engine::Change;
use kopsrs_model::{Address, DesiredSet, Existing};
use serde_json::{Map, Value as Json};

use crate::discover::Item;
use crate::resolve::{self, str_of};
use crate::{Aws, Error, Outputs};

/// A resolved resource: references replaced by IDs, in the JSON shape of its attributes.
pub(crate) type R = Map<String, Json>;

/// Attributes a create or update reports (`id`, `arn`, `name`, ...) for references.
pub(crate) type Out = BTreeMap<String, String>;

/// How a kind's tags change in place, when tags are all that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tagging {
    /// Tags cannot be changed in place (or are not compared).
    None,
    /// EC2's CreateTags / DeleteTags on the resource ID.
    Ec2,
    /// Elastic Load Balancing's AddTags / RemoveTags on the ARN.
    Elb,
}

/// What a create or an update of one resource works from.
pub(crate) struct Op<'a> {
    pub aws: &'a Aws,
    pub cluster: &'a str,
    pub address: &'a Address,
    /// The desired attributes, references resolved.
    pub r: &'a R,
}

impl Op<'_> {
    /// A string attribute, empty when absent.
    pub fn s(&self, key: &str) -> String {
        str_of(self.r, key).unwrap_or_default().to_string()
    }

    /// The resource's `tags`.
    pub fn tags(&self) -> BTreeMap<String, String> {
        resolve::tags(self.r)
    }
}

/// What discovery works from: the clients, the cluster, the desired set (IAM and DNS are
/// read by the names it gives), and the data sources once resolved.
pub(crate) struct Scan<'a> {
    pub aws: &'a Aws,
    pub cluster: &'a str,
    pub desired: &'a DesiredSet,
    /// Data sources (the hosted zone, the AMI), shared by the kinds that need them so the
    /// other kinds' reads do not wait for them.
    pub data: Shared<BoxFuture<'a, Result<Outputs, Error>>>,
}

/// Everything the AWS target knows about one kind. Associated functions rather than methods:
/// kinds are unit types dispatched by [`Kind`], never values.
///
/// `create` and `delete` have no default, so a kind cannot be listed without them.
pub(crate) trait Handler {
    /// How a desired resource is recognised among what discovery found: the key its
    /// [`Item`] carries (a `Name` tag, a name, a parent ID and destination, ...), once the
    /// references it needs resolve.
    fn key(r: &R) -> Option<String>;

    /// Whether a change of `attr` needs a new resource. Tags never do (see
    /// [`crate::AwsSchema`]); by default every other attribute does.
    fn forces_replacement(_attr: &str) -> bool {
        true
    }

    /// Attributes written at creation that discovery does not read back (a launch
    /// template's content, an IAM role's trust policy): never compared.
    fn write_only(_attr: &str) -> bool {
        false
    }

    /// How tags change in place.
    const TAGGING: Tagging = Tagging::None;

    /// Dependent API round trips a create makes (a VPC, then its DNS attributes: 2). The
    /// apply's critical path is counted in these.
    const CREATE_CALLS: usize = 1;

    /// Dependent API round trips of an in-place update.
    const UPDATE_CALLS: usize = 1;

    /// Dependent API round trips of a delete.
    const DELETE_CALLS: usize = 1;

    /// Whether an error code from a delete means the resource is already gone.
    fn gone(code: &str) -> bool {
        code.ends_with(".NotFound") || code == "ResourceNotFoundException"
    }

    /// What exists of this kind. Kinds read with their parent (a route with its table)
    /// return nothing here.
    async fn discover(_scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        Ok(Vec::new())
    }

    /// Creates the resource; returns its `id` and the attributes others refer to.
    async fn create(op: &Op<'_>) -> Result<Out, Error>;

    /// Changes the resource in place (the plan said no field forces a replacement).
    async fn update(op: &Op<'_>, id: &str, change: &Change) -> Result<Out, Error> {
        crate::apply::update_tags(op, id, change, Self::TAGGING).await
    }

    /// Deletes the resource `id`; `found` is what discovery reported of it.
    async fn delete(aws: &Aws, id: &str, found: &Out) -> Result<(), Error>;

    /// Checks resources of this kind that the cluster uses but does not own (a shared VPC,
    /// subnets, NAT gateways) against what the spec says, in one call for all of them; one
    /// sentence per problem. Kinds the model never names as existing check nothing.
    async fn verify(_aws: &Aws, _existing: &[&Existing]) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
}

/// Declares the kinds in dependency order: `Variant = "terraform_type" => HandlerType`.
macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal => $handler:ty,)*) => {
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

            pub(crate) fn key(self, r: &R) -> Option<String> {
                match self { $(Kind::$variant => <$handler>::key(r)),* }
            }

            pub(crate) fn forces_replacement(self, attr: &str) -> bool {
                match self { $(Kind::$variant => <$handler>::forces_replacement(attr)),* }
            }

            pub(crate) fn write_only(self, attr: &str) -> bool {
                match self { $(Kind::$variant => <$handler>::write_only(attr)),* }
            }

            /// Dependent API round trips of a create (see [`Handler::CREATE_CALLS`]).
            pub fn create_calls(self) -> usize {
                match self { $(Kind::$variant => <$handler>::CREATE_CALLS),* }
            }

            /// Dependent API round trips of an update (see [`Handler::UPDATE_CALLS`]).
            pub fn update_calls(self) -> usize {
                match self { $(Kind::$variant => <$handler>::UPDATE_CALLS),* }
            }

            /// Dependent API round trips of a delete (see [`Handler::DELETE_CALLS`]).
            pub fn delete_calls(self) -> usize {
                match self { $(Kind::$variant => <$handler>::DELETE_CALLS),* }
            }

            pub(crate) fn gone(self, code: &str) -> bool {
                match self { $(Kind::$variant => <$handler>::gone(code)),* }
            }

            pub(crate) async fn discover(self, scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
                match self { $(Kind::$variant => <$handler>::discover(scan).await),* }
            }

            pub(crate) async fn create(self, op: &Op<'_>) -> Result<Out, Error> {
                match self { $(Kind::$variant => <$handler>::create(op).await),* }
            }

            pub(crate) async fn update(
                self,
                op: &Op<'_>,
                id: &str,
                change: &Change,
            ) -> Result<Out, Error> {
                match self { $(Kind::$variant => <$handler>::update(op, id, change).await),* }
            }

            pub(crate) async fn verify(
                self,
                aws: &Aws,
                existing: &[&Existing],
            ) -> Result<Vec<String>, Error> {
                match self { $(Kind::$variant => <$handler>::verify(aws, existing).await),* }
            }

            pub(crate) async fn delete(self, aws: &Aws, id: &str, found: &Out) -> Result<(), Error> {
                match self { $(Kind::$variant => <$handler>::delete(aws, id, found).await),* }
            }
        }
    };
}

use crate::{
    autoscaling, dns, gateways, iam, key_pair, launch_templates, load_balancers, routes,
    security_groups, subnets, termination_queue, volumes, vpc,
};

kinds! {
    /// DHCP options: the instances' domain and name servers.
    VpcDhcpOptions = "aws_vpc_dhcp_options" => vpc::DhcpOptions,
    /// The cluster's VPC.
    Vpc = "aws_vpc" => vpc::Vpc,
    /// An additional IPv4 block of the VPC (`spec.additionalNetworkCIDRs`).
    VpcCidrBlock = "aws_vpc_ipv4_cidr_block_association" => vpc::CidrBlock,
    /// The VPC's DHCP options.
    VpcDhcpOptionsAssociation = "aws_vpc_dhcp_options_association" => vpc::DhcpAssociation,
    /// The internet gateway of public and utility subnets.
    InternetGateway = "aws_internet_gateway" => gateways::InternetGateway,
    /// IPv6 egress of private subnets.
    EgressOnlyInternetGateway = "aws_egress_only_internet_gateway" => gateways::EgressOnly,
    /// A subnet.
    Subnet = "aws_subnet" => subnets::Subnet,
    /// A route table.
    RouteTable = "aws_route_table" => routes::RouteTable,
    /// An elastic IP (a NAT gateway's).
    Eip = "aws_eip" => gateways::Eip,
    /// A NAT gateway.
    NatGateway = "aws_nat_gateway" => gateways::NatGateway,
    /// A route of a route table.
    Route = "aws_route" => routes::Route,
    /// A subnet's association with a route table.
    RouteTableAssociation = "aws_route_table_association" => routes::Association,
    /// A security group.
    SecurityGroup = "aws_security_group" => security_groups::SecurityGroup,
    /// A rule of a security group.
    SecurityGroupRule = "aws_security_group_rule" => security_groups::Rule,
    /// The SSH key pair.
    KeyPair = "aws_key_pair" => key_pair::KeyPair,
    /// An IAM role of instances or service accounts.
    IamRole = "aws_iam_role" => iam::Role,
    /// An inline policy of a role.
    IamRolePolicy = "aws_iam_role_policy" => iam::RolePolicy,
    /// A managed policy attached to a role.
    IamRolePolicyAttachment = "aws_iam_role_policy_attachment" => iam::Attachment,
    /// An instance profile.
    IamInstanceProfile = "aws_iam_instance_profile" => iam::InstanceProfile,
    /// The OIDC provider of service-account roles.
    IamOidcProvider = "aws_iam_openid_connect_provider" => iam::OidcProvider,
    /// An etcd volume.
    EbsVolume = "aws_ebs_volume" => volumes::Volume,
    /// An instance group's launch template.
    LaunchTemplate = "aws_launch_template" => launch_templates::LaunchTemplate,
    /// A target group of the API load balancer.
    LbTargetGroup = "aws_lb_target_group" => load_balancers::TargetGroup,
    /// The API load balancer.
    Lb = "aws_lb" => load_balancers::LoadBalancer,
    /// A listener of the API load balancer.
    LbListener = "aws_lb_listener" => load_balancers::Listener,
    /// The node-termination-handler queue.
    SqsQueue = "aws_sqs_queue" => termination_queue::Queue,
    /// An EventBridge rule feeding the queue.
    EventRule = "aws_cloudwatch_event_rule" => termination_queue::Rule,
    /// A rule's target (the queue).
    EventTarget = "aws_cloudwatch_event_target" => termination_queue::Target,
    /// An instance group's auto scaling group.
    AutoscalingGroup = "aws_autoscaling_group" => autoscaling::Group,
    /// A lifecycle hook of a group.
    LifecycleHook = "aws_autoscaling_lifecycle_hook" => autoscaling::Hook,
    /// A DNS record of the API name.
    Route53Record = "aws_route53_record" => dns::Record,
}

/// The data sources the AWS target reads (never changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataKind {
    Ami,
    Route53Zone,
    InternetGateway,
    Vpc,
}

impl DataKind {
    pub fn parse(name: &str) -> Option<DataKind> {
        Some(match name {
            "aws_ami" => DataKind::Ami,
            "aws_route53_zone" => DataKind::Route53Zone,
            "aws_internet_gateway" => DataKind::InternetGateway,
            "aws_vpc" => DataKind::Vpc,
            _ => return None,
        })
    }

    /// Reads the data source `address` with its resolved arguments.
    pub async fn read(self, aws: &Aws, address: &Address, r: &R) -> Result<Out, Error> {
        match self {
            DataKind::Ami => launch_templates::read_ami(aws, address, r).await,
            DataKind::Route53Zone => dns::read_zone(aws, address, r).await,
            DataKind::InternetGateway => gateways::read_internet_gateway(aws, address, r).await,
            DataKind::Vpc => vpc::read_vpc(aws, address, r).await,
        }
    }
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
