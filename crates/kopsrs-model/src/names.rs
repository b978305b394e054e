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
    // Cut on a character boundary (names are ASCII when AWS accepts them, but a cut must
    // never panic on what it is given).
    let mut cut = base.min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = &name[..cut];
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

/// The SQS queue of the cluster's termination handler: `<cluster with dashes>-nth`, the
/// cluster part shortened to 75 characters with a hash as kops does (a queue name has at most
/// 80). Two clusters can share this name (`a.b` and `a-b`), so the provider also checks the
/// queue's ownership tag before it treats the queue as the cluster's.
pub fn termination_queue(cluster: &str) -> String {
    format!("{}-nth", truncate(&cluster.replace('.', "-"), 75, false))
}

/// The IAM role and instance profile of a role's instances (`masters.<cluster>`), at most
/// 64 characters as IAM allows: longer names are shortened with a hash, as kops does, so an
/// existing kops cluster's roles keep their names.
pub fn iam_role(role_prefix: &str, cluster: &str) -> String {
    truncate(&format!("{role_prefix}.{cluster}"), 64, false)
}

/// The EventBridge rule of the termination handler for one event (`<cluster>-ASGLifecycle`):
/// the cluster part shortened to 40 characters with a hash, as kops does, so every rule name
/// stays within EventBridge's 64.
pub fn termination_rule(cluster: &str, suffix: &str) -> String {
    format!("{}-{suffix}", truncate(cluster, 40, false))
}

/// The longest name AWS accepts for a resource kind's `name` (`None`: no limit kopsrs
/// writes near). Checked when the desired set is built, so a name still too long is an
/// error before anything changes.
pub fn limit(kind: &str) -> Option<usize> {
    Some(match kind {
        "aws_iam_role" | "aws_iam_instance_profile" => 64,
        "aws_iam_role_policy" => 128,
        "aws_cloudwatch_event_rule" => 64,
        "aws_sqs_queue" => 80,
        "aws_lb" | "aws_lb_target_group" | "aws_elb" => 32,
        "aws_launch_template" => 128,
        "aws_autoscaling_group" => 255,
        "aws_key_pair" => 255,
        _ => return None,
    })
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
        .map(|suffix| termination_rule(cluster, suffix))
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

    /// A 71-character cluster name: every name kopsrs gives it is within AWS's limits and
    /// equal to kops's. The expected names were computed outside this code, by a separate
    /// implementation of kops's rule (FNV-1a 32, base32hex, the first six characters) that
    /// also gives the load balancer names above.
    #[test]
    fn long_cluster_names_are_shortened_as_kops_does() {
        let cluster = "payments-checkout-production-eu-west-1a.platform.k8s.example-corp.co.uk";
        assert_eq!(cluster.len(), 71);
        assert_eq!(
            iam_role("masters", cluster),
            "masters.payments-checkout-production-eu-west-1a.platform.-o9alb2"
        );
        assert_eq!(
            iam_role("nodes", cluster),
            "nodes.payments-checkout-production-eu-west-1a.platform.k8-u6pc9k"
        );
        assert_eq!(
            iam_role("bastions", cluster),
            "bastions.payments-checkout-production-eu-west-1a.platform-knn5cd"
        );
        assert_eq!(
            termination_rules(cluster)[0],
            "payments-checkout-production-eu-w-9hotea-ASGLifecycle"
        );
        assert_eq!(
            termination_rule(cluster, "RebalanceRecommendation"),
            "payments-checkout-production-eu-w-9hotea-RebalanceRecommendation"
        );
        // 75 characters with dashes: within the limit, kept whole.
        assert_eq!(
            termination_queue(cluster),
            "payments-checkout-production-eu-west-1a-platform-k8s-example-corp-co-uk-nth"
        );
        let longer = format!("{}.example-corp-long-team-name-product.com", "a".repeat(40));
        assert_eq!(
            termination_queue(&longer),
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-example-corp-long-team-name-ufvasq-nth"
        );
        for name in [iam_role("masters", cluster), iam_role("bastions", &longer)] {
            assert!(name.len() <= limit("aws_iam_role").unwrap(), "{name}");
        }
        for name in termination_rules(&longer) {
            assert!(
                name.len() <= limit("aws_cloudwatch_event_rule").unwrap(),
                "{name}"
            );
        }
        assert!(termination_queue(&longer).len() <= limit("aws_sqs_queue").unwrap());
        // Short names are kept as they are.
        assert_eq!(iam_role("nodes", "a.example.com"), "nodes.a.example.com");
        assert_eq!(
            termination_rule("a.example.com", "ASGLifecycle"),
            "a.example.com-ASGLifecycle"
        );
    }

    #[test]
    fn truncation_cuts_on_character_boundaries() {
        let name = format!("{}é{}", "a".repeat(24), "b".repeat(20));
        let short = truncate(&name, 32, false);
        assert!(
            short.len() <= 33 && short.starts_with(&"a".repeat(24)),
            "{short}"
        );
    }
}
