//! Model values made concrete: references replaced by the IDs, ARNs and names of resources
//! that exist, file contents with their template variables filled in.

use std::collections::BTreeMap;

use kopsrs_model::{Attrs, Value};
use serde_json::Value as Json;

use crate::{Error, Outputs};

/// A resolved value: the JSON shape of the attribute (strings, numbers, lists, objects).
pub(crate) fn value(v: &Value, outputs: &Outputs) -> Result<Json, Error> {
    Ok(match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Str(s) => Json::String(s.clone()),
        Value::List(items) => Json::Array(
            items
                .iter()
                .map(|i| value(i, outputs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), value(v, outputs)?)))
                .collect::<Result<_, Error>>()?,
        ),
        Value::Blocks(blocks) => Json::Array(
            blocks
                .iter()
                .map(|b| attrs(b, outputs).map(Json::Object))
                .collect::<Result<_, _>>()?,
        ),
        Value::Ref(r) => Json::String(reference(&r.address, &r.attr, outputs)?),
        Value::File(f) => {
            let mut content = f.content.clone();
            for (name, r) in &f.vars {
                let resolved = reference(&r.address, &r.attr, outputs)?;
                content = content.replace(&format!("${{{name}}}"), &resolved);
            }
            if f.base64 {
                Json::String(encode_file(&content, f.gzip))
            } else {
                Json::String(content)
            }
        }
        Value::Expr(e) => {
            return Err(Error::permanent(format!(
                "cannot evaluate {e:?} outside Terraform"
            )))
        }
        Value::CidrSubnet {
            base,
            prefix,
            index,
        } => Json::String(cidr_subnet(
            &reference(&base.address, &base.attr, outputs)?,
            *prefix,
            *index,
        )?),
    })
}

pub(crate) fn attrs(a: &Attrs, outputs: &Outputs) -> Result<serde_json::Map<String, Json>, Error> {
    a.iter()
        .map(|(k, v)| Ok((k.clone(), value(v, outputs)?)))
        .collect()
}

pub(crate) fn reference(
    address: &kopsrs_model::Address,
    attr: &str,
    outputs: &Outputs,
) -> Result<String, Error> {
    outputs
        .get(address)
        .and_then(|o| o.get(attr))
        .cloned()
        .ok_or_else(|| Error {
            message: format!("{address}.{attr} is not known yet"),
            code: None,
            // A dependency created by another task moments ago: try again.
            retryable: true,
        })
}

/// The `index`th `/prefix` block inside the block `base` holds (`cidrsubnet()` in
/// Terraform), for IPv6 subnets cut from the VPC's block.
fn cidr_subnet(base: &str, prefix: u8, index: u64) -> Result<String, Error> {
    let bad =
        |why: &str| Error::permanent(format!("cannot take /{prefix} #{index} of {base:?}: {why}"));
    if base.is_empty() {
        return Err(bad(
            "the VPC has no IPv6 block; associate one, or give spec.subnets[].ipv6CIDR as blocks",
        ));
    }
    let (addr, len) = base
        .split_once('/')
        .ok_or_else(|| bad("not a CIDR block"))?;
    let addr: std::net::Ipv6Addr = addr.parse().map_err(|_| bad("not an IPv6 block"))?;
    let len: u32 = len.parse().map_err(|_| bad("not a CIDR block"))?;
    let prefix = u32::from(prefix);
    if prefix < len || prefix > 128 {
        return Err(bad("the subnet is larger than the block"));
    }
    let bits = prefix - len;
    if bits < 64 && index >= (1u64 << bits) {
        return Err(bad("the index is outside the block"));
    }
    let value = u128::from(addr) | (u128::from(index) << (128 - prefix));
    Ok(format!("{}/{prefix}", std::net::Ipv6Addr::from(value)))
}

/// Tags of a resolved resource (`tags = {...}`), as pairs.
pub(crate) fn tags(resolved: &serde_json::Map<String, Json>) -> BTreeMap<String, String> {
    resolved
        .get("tags")
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn str_of<'a>(
    resolved: &'a serde_json::Map<String, Json>,
    key: &str,
) -> Option<&'a str> {
    resolved.get(key).and_then(Json::as_str)
}

pub(crate) fn int_of(resolved: &serde_json::Map<String, Json>, key: &str) -> Option<i64> {
    resolved.get(key).and_then(Json::as_i64)
}

pub(crate) fn bool_of(resolved: &serde_json::Map<String, Json>, key: &str) -> Option<bool> {
    resolved.get(key).and_then(Json::as_bool)
}

pub(crate) fn strs_of(resolved: &serde_json::Map<String, Json>, key: &str) -> Vec<String> {
    resolved
        .get(key)
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The first block of a nested-block attribute.
pub(crate) fn block<'a>(
    resolved: &'a serde_json::Map<String, Json>,
    key: &str,
) -> Option<&'a serde_json::Map<String, Json>> {
    resolved
        .get(key)
        .and_then(Json::as_array)
        .and_then(|a| a.first())
        .and_then(Json::as_object)
}

pub(crate) fn blocks<'a>(
    resolved: &'a serde_json::Map<String, Json>,
    key: &str,
) -> Vec<&'a serde_json::Map<String, Json>> {
    resolved
        .get(key)
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_object).collect())
        .unwrap_or_default()
}

/// A file sent base64-encoded (user-data), gzip-compressed first when asked; the same bytes
/// for the same content (flate2 writes no timestamp).
fn encode_file(content: &str, gzip: bool) -> String {
    use base64::Engine as _;
    let bytes = if gzip {
        kopsrs_bootstrap::gzip(content)
    } else {
        content.as_bytes().to_vec()
    };
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::cidr_subnet;

    #[test]
    fn ipv6_subnets_are_cut_from_the_block_whatever_its_size() {
        assert_eq!(
            cidr_subnet("2600:1f18:aa:1100::/56", 64, 3).unwrap(),
            "2600:1f18:aa:1103::/64"
        );
        assert_eq!(
            cidr_subnet("2600:1f18:aa::/48", 64, 0x111).unwrap(),
            "2600:1f18:aa:111::/64"
        );
        assert!(cidr_subnet("2600:1f18:aa:1100::/56", 64, 256).is_err());
        assert!(cidr_subnet("2600:1f18:aa:1100::/56", 48, 0).is_err());
        assert!(cidr_subnet("", 64, 1)
            .unwrap_err()
            .message
            .contains("no IPv6 block"));
    }
}
