//! Names and Terraform-safe resource names, as kops derives them.

use data_encoding::BASE32HEX_NOPAD;

/// A resource name usable in an address: kops replaces `.` by `-`, `/` by `--` and `:` by
/// `_`, and prefixes names that start with a digit.
pub fn tf_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '.' => out.push('-'),
            '/' => out.push_str("--"),
            ':' => out.push('_'),
            c => out.push(c),
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "prefix_");
    }
    out
}

/// Shortens `name` to `max` characters, adding a 6-character hash of the full name (always
/// when `always_hash`): the scheme kops uses for load balancer and target group names, so the
/// names match those of existing kops clusters. FNV-1a 32 in base32hex, lower case.
pub fn truncate(name: &str, max: usize, always_hash: bool) -> String {
    if !always_hash && name.len() <= max {
        return name.to_string();
    }
    let hash = fnv1a32(name);
    let encoded = BASE32HEX_NOPAD.encode(&hash.to_be_bytes()).to_lowercase();
    let hash = &encoded[..6];
    let base = max - hash.len() - 1;
    let prefix = if name.len() > base {
        &name[..base]
    } else {
        name
    };
    format!("{prefix}-{hash}")
}

/// FNV-1a, 32 bits: the hash kops puts into generated names. Eight lines, so written here
/// rather than pulled in as a crate.
pub fn fnv1a32(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The SQS queue of the cluster's termination handler: `<cluster with dashes>-nth`, as kops
/// names it. Two clusters can share this name (`a.b` and `a-b`), so the provider also checks
/// the queue's ownership tag before it treats the queue as the cluster's.
pub fn termination_queue(cluster: &str) -> String {
    format!("{}-nth", cluster.replace('.', "-"))
}

/// Suffixes of the EventBridge rules that feed the termination handler's queue
/// (`<cluster>-<suffix>`). The last one exists only with rebalance draining.
pub const TERMINATION_RULE_SUFFIXES: [&str; 5] = [
    "ASGLifecycle",
    "SpotInterruption",
    "InstanceStateChange",
    "InstanceScheduledChange",
    "RebalanceRecommendation",
];

/// Every EventBridge rule name the cluster can own. The suffixes have no `-`, so no other
/// cluster's rule can have one of these names: an exact match proves ownership.
pub fn termination_rules(cluster: &str) -> Vec<String> {
    TERMINATION_RULE_SUFFIXES
        .iter()
        .map(|suffix| format!("{cluster}-{suffix}"))
        .collect()
}

/// Names of the inline policies kopsrs gives an IAM role it makes: the role's own name and
/// `additional.<role>` (from `spec.additionalPolicies`). Any other inline policy on the role
/// was added by someone else and is left alone.
pub fn inline_policies(role: &str) -> [String; 2] {
    [role.to_string(), format!("additional.{role}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_names() {
        assert_eq!(tf_name("minimal.example.com"), "minimal-example-com");
        assert_eq!(tf_name("route-0.0.0.0/0"), "route-0-0-0-0--0");
        assert_eq!(tf_name("route-::/0"), "route-__--0");
        assert_eq!(tf_name("123.example.com"), "prefix_123-example-com");
    }

    #[test]
    fn truncation_matches_kops_names() {
        // Names kops gave these load balancers and target groups.
        assert_eq!(
            truncate("tcp-privatecilium-example-com", 32, true),
            "tcp-privatecilium-example-rga1vh"
        );
        assert_eq!(
            truncate("bastion-privatecilium-example-com", 32, true),
            "bastion-privatecilium-exa-l2ms01"
        );
        assert_eq!(
            truncate("api-privatecilium-example-com", 32, true),
            "api-privatecilium-example-fnt793"
        );
        assert_eq!(truncate("short", 32, false), "short");
    }
}
