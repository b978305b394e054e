//! CIDR arithmetic for subnet allocation, on `ipnet`.

use ipnet::Ipv4Net;

use crate::generated::ClusterSubnetSpec;

/// How many pieces the utility (little) range is cut into, as kops does.
const UTILITY_PIECES: usize = 8;

/// Splits `network` into the smallest power of two of equal pieces that is at least `count`.
pub fn split(network: Ipv4Net, count: usize) -> Result<Vec<Ipv4Net>, String> {
    let bits = count.max(1).next_power_of_two().trailing_zeros() as u8;
    let prefix = network.prefix_len() + bits;
    if prefix > 28 {
        return Err(format!("{network} is too small to hold {count} subnets"));
    }
    Ok(network
        .subnets(prefix)
        .map_err(|e| e.to_string())?
        .collect())
}

/// Gives every subnet that has neither a `cidr` nor an `id` a CIDR inside `network`, the way
/// kops lays them out: with utility subnets, the first piece of the network is cut into eight
/// small utility ranges; the other pieces go, in order, to the public/private/dual-stack subnets.
/// IPv6-only private subnets count as a piece but take no IPv4 range. Ranges that overlap a CIDR
/// the user already gave are skipped.
pub fn allocate_subnets(
    network: Ipv4Net,
    subnets: &mut [ClusterSubnetSpec],
    ipv6: bool,
) -> Result<(), String> {
    let needs = |s: &ClusterSubnetSpec| s.cidr.is_none() && s.id.is_none();
    let is_utility = |s: &ClusterSubnetSpec| s.r#type.as_deref() == Some("Utility");
    let ipv6_only = |s: &ClusterSubnetSpec| ipv6 && s.r#type.as_deref() == Some("Private");
    let taken: Vec<Ipv4Net> = subnets
        .iter()
        .filter_map(|s| s.cidr.as_deref()?.parse().ok())
        .collect();
    let free = move |net: &Ipv4Net| !taken.iter().any(|t| overlaps(t, net));

    let big: Vec<usize> = (0..subnets.len())
        .filter(|&i| needs(&subnets[i]) && !is_utility(&subnets[i]))
        .collect();
    // Subnets the user placed still take their share of the network.
    let placed = subnets
        .iter()
        .filter(|s| s.cidr.is_some() && !is_utility(s))
        .count();
    let little: Vec<usize> = (0..subnets.len())
        .filter(|&i| needs(&subnets[i]) && is_utility(&subnets[i]))
        .collect();
    if big.is_empty() && little.is_empty() {
        return Ok(());
    }
    let reserve = usize::from(!little.is_empty());
    let mut pieces = split(network, big.len() + placed + reserve)?.into_iter();
    let mut assigned: Vec<(usize, Ipv4Net)> = Vec::new();
    if !little.is_empty() {
        let utility_range = pieces.next().expect("split returns at least one piece");
        let mut small = split(utility_range, little.len().max(UTILITY_PIECES))?
            .into_iter()
            .filter(|n| free(n));
        for &i in &little {
            let net = small.next().ok_or_else(|| {
                format!("no room left in {network} for subnet {:?}", subnets[i].name)
            })?;
            assigned.push((i, net));
        }
    }
    let mut pieces = pieces.filter(|n| free(n));
    for &i in big.iter().filter(|&&i| !ipv6_only(&subnets[i])) {
        let net = pieces
            .next()
            .ok_or_else(|| format!("no room left in {network} for subnet {:?}", subnets[i].name))?;
        assigned.push((i, net));
    }
    for (i, net) in assigned {
        subnets[i].cidr = Some(net.to_string());
    }
    Ok(())
}

/// Whether two IPv4 networks share any address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(name: &str, kind: &str) -> ClusterSubnetSpec {
        ClusterSubnetSpec {
            name: Some(name.into()),
            r#type: Some(kind.into()),
            ..Default::default()
        }
    }

    fn cidrs(subnets: &[ClusterSubnetSpec]) -> Vec<Option<&str>> {
        subnets.iter().map(|s| s.cidr.as_deref()).collect()
    }

    #[test]
    fn layouts() {
        let network: Ipv4Net = "172.20.0.0/16".parse().unwrap();
        // (subnets, IPv6, the CIDR each subnet gets)
        type Case<'a> = (Vec<ClusterSubnetSpec>, bool, Vec<Option<&'a str>>);
        let cases: Vec<Case> = vec![
            (
                vec![subnet("a", "Public")],
                false,
                vec![Some("172.20.0.0/16")],
            ),
            (
                vec![
                    subnet("a", "Public"),
                    subnet("b", "Public"),
                    subnet("c", "Public"),
                ],
                false,
                vec![
                    Some("172.20.0.0/18"),
                    Some("172.20.64.0/18"),
                    Some("172.20.128.0/18"),
                ],
            ),
            (
                vec![subnet("a", "Private"), subnet("u", "Utility")],
                false,
                vec![Some("172.20.128.0/17"), Some("172.20.0.0/20")],
            ),
            (
                vec![
                    subnet("a", "Private"),
                    subnet("d", "DualStack"),
                    subnet("u", "Utility"),
                ],
                true,
                vec![None, Some("172.20.64.0/18"), Some("172.20.0.0/21")],
            ),
        ];
        for (mut subnets, ipv6, expected) in cases {
            allocate_subnets(network, &mut subnets, ipv6).unwrap();
            assert_eq!(cidrs(&subnets), expected);
        }
    }

    #[test]
    fn given_cidrs_are_kept_and_avoided() {
        let network: Ipv4Net = "10.0.0.0/16".parse().unwrap();
        let mut subnets = vec![subnet("a", "Public"), subnet("b", "Public")];
        subnets[0].cidr = Some("10.0.0.0/17".into());
        allocate_subnets(network, &mut subnets, false).unwrap();
        assert_eq!(
            cidrs(&subnets),
            vec![Some("10.0.0.0/17"), Some("10.0.128.0/17")]
        );
    }

    #[test]
    fn too_small_networks_are_errors() {
        let network: Ipv4Net = "10.0.0.0/28".parse().unwrap();
        let mut subnets = vec![subnet("a", "Public"), subnet("b", "Public")];
        assert!(allocate_subnets(network, &mut subnets, false)
            .unwrap_err()
            .contains("too small"));
    }
}
