//! kops flags kopsrs does not have, each with what kopsrs does instead. Consulted only when
//! clap refuses an argument as unknown, so a flag kopsrs has is never touched and clap's
//! "a similar argument exists" is replaced by the way to get the same result.

use kopsrs_ops::Problems;

/// A kops flag (its long name, without `--`) and what to use in kopsrs instead.
const KOPS_ONLY: &[(&str, &str)] = &[
    // update cluster
    (
        "phase",
        "kopsrs applies every phase (network, security, cluster) in dependency order in one run; \
         to change only some instance groups use `--instance-group-roles`, to review or apply \
         resources by hand use `--target terraform`",
    ),
    (
        "lifecycle-overrides",
        "kopsrs has no per-task lifecycles: resources it does not own (a shared VPC, subnets, NAT \
         gateways) are read and checked, never changed; use `--target terraform` to manage \
         resources yourself",
    ),
    (
        "reconcile",
        "use `kopsrs reconcile cluster NAME [--yes]`: update, roll the control plane, update, roll \
         the nodes, then prune",
    ),
    (
        "allow-kops-downgrade",
        "kopsrs records no kops version to downgrade from; a Kubernetes version the channel does \
         not support is refused whatever the flag",
    ),
    // rolling-update cluster
    (
        "interactive",
        "kopsrs has no prompt between instances; roll one group at a time with \
         `--instance-group NAME`, after a dry run without --yes",
    ),
    // create cluster
    (
        "associate-public-ip",
        "after `create cluster`, set it per instance group: \
         `kopsrs edit ig NAME --set spec.associatePublicIp=false`",
    ),
    (
        "api-ssl-certificate",
        "pass `--set spec.api.loadBalancer.sslCertificate=ARN` to `create cluster`",
    ),
    (
        "api-loadbalancer-class",
        "pass `--set spec.api.loadBalancer.class=Network` to `create cluster`",
    ),
    (
        "api-public-name",
        "pass `--set spec.masterPublicName=NAME` to `create cluster`",
    ),
    (
        "master-public-name",
        "pass `--set spec.masterPublicName=NAME` to `create cluster`",
    ),
    (
        "node-tenancy",
        "after `create cluster`, set it per instance group: \
         `kopsrs edit ig NAME --set spec.tenancy=dedicated`",
    ),
    (
        "control-plane-tenancy",
        "after `create cluster`, set it per instance group: \
         `kopsrs edit ig NAME --set spec.tenancy=dedicated`",
    ),
    (
        "master-tenancy",
        "after `create cluster`, set it per instance group: \
         `kopsrs edit ig NAME --set spec.tenancy=dedicated`",
    ),
    (
        "authorization",
        "kopsrs creates clusters with RBAC (kops's default); edit spec.authorization after \
         `create cluster` for another mode",
    ),
    (
        "project",
        "kopsrs builds clusters on AWS only (--cloud aws); GCE's project does not apply",
    ),
];

/// The targeted error for an argument clap refused as unknown, when it is a kops flag
/// kopsrs does not have; `None` leaves clap's own error.
pub fn explain(error: &clap::Error) -> Option<Problems> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(argument)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = argument.strip_prefix("--")?;
    let flag = flag.split_once('=').map_or(flag, |(name, _)| name);
    let hint = hint(flag)?;
    Some(Problems::one(
        format!("--{flag} is a kops flag kopsrs does not have"),
        hint,
    ))
}

/// What to use instead of the kops flag `flag` (its long name without `--`).
fn hint(flag: &str) -> Option<&'static str> {
    // kops's flags of other clouds (`--gce-service-account`, `--os-...`, `--azure-...`).
    if ["gce-", "os-", "azure-", "openstack-"]
        .iter()
        .any(|p| flag.starts_with(p))
    {
        return Some("kopsrs builds clusters on AWS only (--cloud aws)");
    }
    KOPS_ONLY
        .iter()
        .find(|(name, _)| *name == flag)
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Every flag of the table is one kopsrs really lacks on every verb, so the table is
    /// never consulted in place of a flag clap knows.
    #[test]
    fn no_listed_flag_is_a_kopsrs_flag() {
        fn walk(command: &clap::Command, found: &mut Vec<String>) {
            for arg in command.get_arguments() {
                found.extend(arg.get_long().map(str::to_string));
                found.extend(
                    arg.get_all_aliases()
                        .into_iter()
                        .flatten()
                        .map(String::from),
                );
            }
            for sub in command.get_subcommands() {
                walk(sub, found);
            }
        }
        let mut known = Vec::new();
        walk(&crate::cli::Cli::command(), &mut known);
        for (flag, _) in KOPS_ONLY {
            assert!(
                !known.iter().any(|k| k == flag),
                "--{flag} is a kopsrs flag"
            );
        }
    }

    #[test]
    fn explains_only_unknown_kops_flags() {
        use clap::Parser as _;
        let parse = |argv: &[&str]| crate::cli::Cli::try_parse_from(argv).unwrap_err();
        let error = parse(&["kopsrs", "update", "cluster", "x", "--phase=network"]);
        let problems = explain(&error).expect("--phase is explained");
        assert!(problems.0[0].message.contains("--phase"));
        let error = parse(&["kopsrs", "update", "cluster", "x", "--no-such-flag"]);
        assert!(explain(&error).is_none());
    }
}
