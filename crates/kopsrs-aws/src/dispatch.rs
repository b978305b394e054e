//! From a [`Kind`] to its file's [`Handler`]: one `match` per operation, which the compiler
//! checks covers every kind. This sits above the kinds' files (it names them) and below the
//! schedulers (`discover.rs`, `apply.rs`, `plan.rs`), which reach the kinds only through it.

use kopsrs_engine::Change;
use kopsrs_model::{Address, Existing};

use crate::handler::{Handler, Item, Op, Out, Scan, R};
use crate::kind::Kind;
use crate::{
    autoscaling, dns, gateways, iam, key_pair, launch_templates, load_balancers, routes,
    security_groups, subnet_tags, subnets, termination_queue, volumes, vpc,
};
use crate::{Aws, Error};

/// Declares each kind's handler: `Variant => HandlerType`.
macro_rules! handlers {
    ($($variant:ident => $handler:ty,)*) => {
        impl Kind {
            pub(crate) fn key(self, r: &R) -> Option<String> {
                match self { $(Kind::$variant => <$handler>::key(r)),* }
            }

            /// See [`Handler::RECORDED`].
            pub(crate) fn recorded(self) -> bool {
                match self { $(Kind::$variant => <$handler>::RECORDED),* }
            }

            pub(crate) fn forces_replacement(self, attr: &str) -> bool {
                match self { $(Kind::$variant => <$handler>::forces_replacement(attr)),* }
            }

            pub(crate) fn write_only(self, attr: &str) -> bool {
                match self { $(Kind::$variant => <$handler>::write_only(attr)),* }
            }

            pub(crate) fn always_reported(self, attr: &str) -> bool {
                match self { $(Kind::$variant => <$handler>::always_reported(attr)),* }
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

handlers! {
    VpcDhcpOptions => vpc::DhcpOptions,
    Vpc => vpc::Vpc,
    VpcCidrBlock => vpc::CidrBlock,
    VpcDhcpOptionsAssociation => vpc::DhcpAssociation,
    InternetGateway => gateways::InternetGateway,
    EgressOnlyInternetGateway => gateways::EgressOnly,
    Subnet => subnets::Subnet,
    SubnetTag => subnet_tags::SubnetTag,
    RouteTable => routes::RouteTable,
    Eip => gateways::Eip,
    NatGateway => gateways::NatGateway,
    Route => routes::Route,
    RouteTableAssociation => routes::Association,
    SecurityGroup => security_groups::SecurityGroup,
    SecurityGroupRule => security_groups::Rule,
    KeyPair => key_pair::KeyPair,
    IamRole => iam::Role,
    IamRolePolicy => iam::RolePolicy,
    IamRolePolicyAttachment => iam::Attachment,
    IamInstanceProfile => iam::InstanceProfile,
    IamOidcProvider => iam::OidcProvider,
    EbsVolume => volumes::Volume,
    LaunchTemplate => launch_templates::LaunchTemplate,
    LbTargetGroup => load_balancers::TargetGroup,
    Lb => load_balancers::LoadBalancer,
    LbListener => load_balancers::Listener,
    SqsQueue => termination_queue::Queue,
    EventRule => termination_queue::Rule,
    EventTarget => termination_queue::Target,
    AutoscalingGroup => autoscaling::Group,
    LifecycleHook => autoscaling::Hook,
    Route53Record => dns::Record,
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
    /// A fleet reads a data source once for every cluster that asks the same.
    pub async fn read(self, aws: &Aws, address: &Address, r: &R) -> Result<Out, Error> {
        let key = format!(
            "data {address} {}",
            serde_json::to_string(r).unwrap_or_default()
        );
        let (address, r) = (address.clone(), r.clone());
        let out = aws
            .shared_read(key, move |aws| async move {
                let (aws, address, r) = (&aws, &address, &r);
                match self {
                    DataKind::Ami => launch_templates::read_ami(aws, address, r).await,
                    DataKind::Route53Zone => dns::read_zone(aws, address, r).await,
                    DataKind::InternetGateway => {
                        gateways::read_internet_gateway(aws, address, r).await
                    }
                    DataKind::Vpc => vpc::read_vpc(aws, address, r).await,
                }
            })
            .await?;
        Ok((*out).clone())
    }
}
