//! Route tables with their routes and subnet associations: one paginated
//! DescribeRouteTables by the cluster tag returns all three.
//!
//! A route or association is the cluster's only when its table is and it leads to a
//! gateway (or attaches a subnet) the cluster owns; a peering route a person added stays.

use aws_sdk_ec2::types as ec2t;

use crate::handler::{
    ec2_tags, exists_ok, outputs, tag_spec, Handler, Item, Op, Out, Scan, Tagging, R,
};
use crate::kind::Kind;
use crate::resolve::{self, str_of};
use crate::{Aws, Error};

/// `aws_route_table`.
pub(crate) struct RouteTable;

impl Handler for RouteTable {
    const TAGGING: Tagging = Tagging::Ec2;

    fn key(r: &R) -> Option<String> {
        resolve::tags(r).get("Name").cloned()
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let aws = scan.aws;
        let mut items = Vec::new();
        let tables = aws
            .cluster_tagged(
                scan.cluster,
                "ec2:DescribeRouteTables",
                |aws, filter| async move {
                    let request = aws
                        .ec2
                        .describe_route_tables()
                        .max_results(100)
                        .filters(filter);
                    Ok(all_pages!(aws, request, route_tables))
                },
            )
            .await?;
        for table in &tables {
            let tags = ec2_tags(table.tags());
            let id = table.route_table_id().unwrap_or_default();
            let item = Item::tagged(Kind::RouteTable, id, &tags, scan.cluster);
            let owned = item.owned;
            items.extend(routes_of(table, owned));
            items.push(item);
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let table = op
            .aws
            .ec2
            .create_route_table()
            .vpc_id(op.s("vpc_id"))
            .tag_specifications(tag_spec(ec2t::ResourceType::RouteTable, &op.tags()))
            .send()
            .await?;
        Ok(outputs(&[(
            "id",
            table
                .route_table()
                .and_then(|t| t.route_table_id())
                .unwrap_or_default(),
        )]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2
            .delete_route_table()
            .route_table_id(id)
            .send()
            .await?;
        Ok(())
    }
}

/// The routes (but the VPC's local one) and subnet associations (but the main one) of a
/// table; their ownership is settled once the gateways and subnets are known.
fn routes_of(table: &ec2t::RouteTable, owned: bool) -> Vec<Item> {
    let id = table.route_table_id().unwrap_or_default();
    let mut items = Vec::new();
    for route in table.routes() {
        if route.gateway_id() == Some("local") {
            continue;
        }
        let Some(dest) = route
            .destination_cidr_block()
            .or(route.destination_ipv6_cidr_block())
        else {
            continue;
        };
        let target = route
            .gateway_id()
            .or(route.nat_gateway_id())
            .or(route.egress_only_internet_gateway_id())
            .or(route.transit_gateway_id())
            .or(route.vpc_peering_connection_id())
            .or(route.network_interface_id())
            .or(route.instance_id())
            .unwrap_or_default();
        let key = format!("{id}|{dest}");
        let mut item = Item::new(Kind::Route, &key, &key)
            .owned(owned)
            .child_of(owned)
            .with(&[("target", target)]);
        item.owned_via = Some("target");
        items.push(item);
    }
    for assoc in table.associations() {
        let Some(subnet) = assoc.subnet_id().filter(|_| assoc.main() != Some(true)) else {
            continue;
        };
        let mut item = Item::new(
            Kind::RouteTableAssociation,
            assoc.route_table_association_id().unwrap_or_default(),
            format!("{id}|{subnet}"),
        )
        .owned(owned)
        .child_of(owned)
        .with(&[("subnet", subnet)]);
        item.owned_via = Some("subnet");
        items.push(item);
    }
    items
}

/// `aws_route`: found with its table, by table and destination.
pub(crate) struct Route;

impl Handler for Route {
    fn key(r: &R) -> Option<String> {
        let dest = str_of(r, "destination_cidr_block")
            .or_else(|| str_of(r, "destination_ipv6_cidr_block"))?;
        Some(format!("{}|{dest}", str_of(r, "route_table_id")?))
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let r = op.r;
        let opt = |k: &str| str_of(r, k).map(str::to_string);
        let request = op
            .aws
            .ec2
            .create_route()
            .route_table_id(op.s("route_table_id"))
            .set_destination_cidr_block(opt("destination_cidr_block"))
            .set_destination_ipv6_cidr_block(opt("destination_ipv6_cidr_block"))
            .set_nat_gateway_id(opt("nat_gateway_id"))
            .set_transit_gateway_id(opt("transit_gateway_id"))
            .set_egress_only_internet_gateway_id(opt("egress_only_gateway_id"))
            .set_gateway_id(opt("gateway_id"));
        // A route created by a run that was killed before it recorded it.
        let sent = request.send().await.map(|_| ()).map_err(Error::from);
        exists_ok(sent, "RouteAlreadyExists")?;
        let dest = str_of(r, "destination_cidr_block")
            .or(str_of(r, "destination_ipv6_cidr_block"))
            .unwrap_or_default();
        Ok(outputs(&[(
            "id",
            &format!("{}|{dest}", op.s("route_table_id")),
        )]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        let (table, dest) = id.split_once('|').unwrap_or((id, ""));
        let request = aws.ec2.delete_route().route_table_id(table);
        let request = match dest.contains(':') {
            true => request.destination_ipv6_cidr_block(dest),
            false => request.destination_cidr_block(dest),
        };
        request.send().await?;
        Ok(())
    }
}

/// `aws_route_table_association`: found with its table, by table and subnet.
pub(crate) struct Association;

impl Handler for Association {
    fn key(r: &R) -> Option<String> {
        Some(format!(
            "{}|{}",
            str_of(r, "route_table_id")?,
            str_of(r, "subnet_id")?
        ))
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let assoc = op
            .aws
            .ec2
            .associate_route_table()
            .route_table_id(op.s("route_table_id"))
            .subnet_id(op.s("subnet_id"))
            .send()
            .await?;
        Ok(outputs(&[(
            "id",
            assoc.association_id().unwrap_or_default(),
        )]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.ec2
            .disassociate_route_table()
            .association_id(id)
            .send()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_schema() {
        let r: R = serde_json::from_value(serde_json::json!({
            "route_table_id": "rtb-1", "destination_ipv6_cidr_block": "::/0",
            "subnet_id": "subnet-1", "tags": {"Name": "private-a.x.c"}
        }))
        .unwrap();
        assert_eq!(Route::key(&r).as_deref(), Some("rtb-1|::/0"));
        assert_eq!(Association::key(&r).as_deref(), Some("rtb-1|subnet-1"));
        assert_eq!(RouteTable::key(&r).as_deref(), Some("private-a.x.c"));
        assert!(Route::forces_replacement("nat_gateway_id"));
    }

    #[test]
    fn routes_of_a_table_skip_the_local_route_and_the_main_association() {
        let table = ec2t::RouteTable::builder()
            .route_table_id("rtb-1")
            .routes(
                ec2t::Route::builder()
                    .destination_cidr_block("10.0.0.0/16")
                    .gateway_id("local")
                    .build(),
            )
            .routes(
                ec2t::Route::builder()
                    .destination_cidr_block("0.0.0.0/0")
                    .nat_gateway_id("nat-1")
                    .build(),
            )
            .associations(ec2t::RouteTableAssociation::builder().main(true).build())
            .associations(
                ec2t::RouteTableAssociation::builder()
                    .route_table_association_id("rtbassoc-1")
                    .subnet_id("subnet-1")
                    .build(),
            )
            .build();
        let items = routes_of(&table, true);
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["rtb-1|0.0.0.0/0", "rtb-1|subnet-1"]);
        assert_eq!(items[0].outputs["target"], "nat-1");
        assert!(items.iter().all(|i| i.parent_owned));
    }
}
