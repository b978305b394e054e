//! IAM: roles with their inline policies, attached policies and instance profiles, and the
//! OIDC provider of service-account roles.
//!
//! IAM has no tag filter: one paginated GetAccountAuthorizationDetails returns every role
//! with its policies and profiles (one call instead of four or more per role), and kopsrs
//! keeps the roles that are the cluster's: carrying its ownership tag, or named exactly as
//! the desired set names them (never by a suffix: `masters.a.x.c` is not `x.c`'s).
//! Inside a role, only what kopsrs made is ever removed: inline policies with the names it
//! gives, managed policies it recorded attaching (see [`attachment_tag`]).

use std::collections::{BTreeMap, BTreeSet};

use kopsrs_engine::Change;
use kopsrs_model::Value;
use serde_json::Value as Json;

use crate::handler::{outputs, owned_by, tag_map, Handler, Item, Op, Out, Scan, R};
use crate::kind::Kind;
use crate::resolve::{str_of, strs_of};
use crate::{Aws, Error};

/// An IAM role records each managed policy kopsrs attached to it in a tag
/// `<ATTACHMENT_TAG_PREFIX><fnv1a32 of the ARN, hex>` = ARN: IAM attachments carry no tags of
/// their own, and only the ones kopsrs made may be detached.
pub(crate) const ATTACHMENT_TAG_PREFIX: &str = "kopsrs.k8s.io/attached-policy/";

/// The record tag of an attached policy (see [`ATTACHMENT_TAG_PREFIX`]).
pub(crate) fn attachment_tag(arn: &str) -> String {
    format!(
        "{ATTACHMENT_TAG_PREFIX}{:08x}",
        kopsrs_model::names::fnv1a32(arn)
    )
}

/// Whether an IAM error code means the entity is gone.
fn iam_gone(code: &str) -> bool {
    code == "NoSuchEntity"
}

fn iam_tags(tags: &BTreeMap<String, String>) -> Result<Vec<aws_sdk_iam::types::Tag>, Error> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(Error::from)
        })
        .collect()
}

fn tags_of(tags: &[aws_sdk_iam::types::Tag]) -> BTreeMap<String, String> {
    tag_map(tags.iter().map(|t| (t.key(), t.value())))
}

/// `aws_iam_role`: discovery also finds its policies, attachments and profiles.
pub(crate) struct Role;

impl Handler for Role {
    fn key(r: &R) -> Option<String> {
        str_of(r, "name").map(str::to_string)
    }

    fn forces_replacement(attr: &str) -> bool {
        attr == "name"
    }

    /// GetAccountAuthorizationDetails returns neither the trust policy in a comparable
    /// form nor every tag; both are set at creation.
    fn write_only(attr: &str) -> bool {
        attr == "assume_role_policy" || attr == "tags"
    }

    fn gone(code: &str) -> bool {
        iam_gone(code)
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let (aws, cluster, desired) = (scan.aws, scan.cluster, scan.desired);
        let wanted: BTreeSet<String> = desired
            .resources
            .iter()
            .filter(|r| r.address.kind.starts_with("aws_iam_"))
            .filter_map(|r| r.attrs.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let ours = |name: &str, tags: &BTreeMap<String, String>| {
            wanted.contains(name) || owned_by(tags, cluster)
        };
        let wanted_children = wanted_children(desired);
        let mut items = Vec::new();
        let mut seen_profiles = BTreeSet::new();
        // Every role of the account, with its policies and profiles: shared by a fleet.
        let roles = aws
            .shared_read(
                "iam:GetAccountAuthorizationDetails filter=Role".into(),
                |aws| async move {
                    let mut roles = Vec::new();
                    let mut pages = aws
                        .iam
                        .get_account_authorization_details()
                        .filter(aws_sdk_iam::types::EntityType::Role)
                        .max_items(1000)
                        .into_paginator()
                        .send();
                    while let Some(page) = pages.next().await {
                        aws.call();
                        roles.extend(page?.role_detail_list.unwrap_or_default());
                    }
                    Ok(roles)
                },
            )
            .await?;
        for role in roles.iter() {
            let name = role.role_name().unwrap_or_default();
            let role_tags = tags_of(role.tags());
            if !ours(name, &role_tags) {
                continue;
            }
            items.push(
                Item::new(Kind::IamRole, name, name)
                    .owned(true)
                    .with(&[("arn", role.arn().unwrap_or_default()), ("name", name)]),
            );
            items.extend(policies_of(role, &role_tags, &wanted_children));
            for profile in role.instance_profile_list() {
                let profile_name = profile.instance_profile_name();
                // kopsrs names a role's profile after the role; AWS may not list a
                // profile's tags here, so that name (of a role that is ours) counts too.
                if (profile_name == name || ours(profile_name, &tags_of(profile.tags())))
                    && seen_profiles.insert(profile_name.to_string())
                {
                    items.push(profile_item(profile, name));
                }
            }
        }
        // For deletion, also profiles that lost their role (a run killed between making the
        // profile and adding the role); a plan adopts those when it makes them again.
        if desired.resources.is_empty() {
            let mut pages = aws
                .iam
                .list_instance_profiles()
                .max_items(1000)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                aws.call();
                for profile in page?.instance_profiles() {
                    let name = profile.instance_profile_name();
                    if ours(name, &tags_of(profile.tags())) && seen_profiles.insert(name.into()) {
                        items.push(profile_item(profile, ""));
                    }
                }
            }
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let iam = &op.aws.iam;
        let created = iam
            .create_role()
            .role_name(op.s("name"))
            .assume_role_policy_document(op.s("assume_role_policy"))
            .set_permissions_boundary(str_of(op.r, "permissions_boundary").map(str::to_string))
            .set_tags(Some(iam_tags(&op.tags())?))
            .send()
            .await;
        let role = match created {
            Ok(created) => created
                .role
                .ok_or_else(|| Error::permanent("CreateRole returned no role"))?,
            // Made by a run killed before it recorded it (or by name, for adoption).
            Err(e) => {
                let e = Error::from(e);
                if !e.is("EntityAlreadyExists") {
                    return Err(e);
                }
                op.aws.call();
                iam.get_role()
                    .role_name(op.s("name"))
                    .send()
                    .await?
                    .role
                    .ok_or_else(|| Error::permanent("GetRole returned no role"))?
            }
        };
        Ok(outputs(&[
            ("id", role.role_name()),
            ("name", role.role_name()),
            ("arn", role.arn()),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        let Err(e) = aws.iam.delete_role().role_name(id).send().await else {
            return Ok(());
        };
        let e = Error::from(e);
        if !e.is("DeleteConflict") {
            return Err(e);
        }
        // Still on the role: policies kopsrs did not make (its own went in an earlier
        // wave). The role itself is going and IAM deletes no role with policies, so they go
        // with it, as a security group's rules go with the group.
        aws.call();
        let attached = aws
            .iam
            .list_attached_role_policies()
            .role_name(id)
            .send()
            .await?;
        for policy in attached.attached_policies() {
            aws.call();
            aws.iam
                .detach_role_policy()
                .role_name(id)
                .set_policy_arn(policy.policy_arn().map(str::to_string))
                .send()
                .await?;
        }
        aws.call();
        let inline = aws.iam.list_role_policies().role_name(id).send().await?;
        for name in inline.policy_names() {
            aws.call();
            aws.iam
                .delete_role_policy()
                .role_name(id)
                .policy_name(name)
                .send()
                .await?;
        }
        aws.call();
        aws.iam.delete_role().role_name(id).send().await?;
        Ok(())
    }
}

/// Inline policies and attachments the desired set names, as `role|name` / `role|arn`.
fn wanted_children(desired: &kopsrs_model::DesiredSet) -> BTreeSet<String> {
    desired
        .resources
        .iter()
        .filter_map(|r| {
            let name = match r.address.kind.as_str() {
                "aws_iam_role_policy" => r.attrs.get("name")?.as_str()?,
                "aws_iam_role_policy_attachment" => r.attrs.get("policy_arn")?.as_str()?,
                _ => return None,
            };
            let role = match r.attrs.get("role")? {
                Value::Ref(reference) => desired
                    .get(&reference.address)?
                    .attrs
                    .get("name")?
                    .as_str()?,
                other => other.as_str()?,
            };
            Some(format!("{role}|{name}"))
        })
        .collect()
}

/// A role's inline and attached policies, owned when kopsrs made them.
fn policies_of(
    role: &aws_sdk_iam::types::RoleDetail,
    role_tags: &BTreeMap<String, String>,
    wanted_children: &BTreeSet<String>,
) -> Vec<Item> {
    let name = role.role_name().unwrap_or_default();
    let made_here = |policy: &str| {
        wanted_children.contains(&format!("{name}|{policy}"))
            || kopsrs_model::names::inline_policies(name).contains(&policy.to_string())
    };
    let mut items = Vec::new();
    for policy in role.role_policy_list() {
        let policy_name = policy.policy_name().unwrap_or_default();
        let document = urlencoding_decode(policy.policy_document().unwrap_or_default());
        // Compared as the model writes it: pretty JSON with a final newline.
        let normalized = serde_json::from_str::<Json>(&document)
            .map(|j| serde_json::to_string_pretty(&j).unwrap_or_default() + "\n")
            .unwrap_or(document);
        let mut item = Item::new(
            Kind::IamRolePolicy,
            format!("{name}:{policy_name}"),
            format!("{name}|{policy_name}"),
        )
        .owned(made_here(policy_name))
        .child_of(true);
        item.attrs.insert(
            "policy".into(),
            Value::File(kopsrs_model::FileValue::new(policy_name, normalized)),
        );
        items.push(item);
    }
    for attached in role.attached_managed_policies() {
        let arn = attached.policy_arn().unwrap_or_default();
        let recorded = role_tags
            .get(&attachment_tag(arn))
            .is_some_and(|v| v == arn);
        let key = format!("{name}|{arn}");
        items.push(
            Item::new(Kind::IamRolePolicyAttachment, &key, &key)
                .owned(recorded)
                .child_of(true),
        );
    }
    items
}

fn profile_item(profile: &aws_sdk_iam::types::InstanceProfile, role: &str) -> Item {
    let name = profile.instance_profile_name();
    let role = profile
        .roles()
        .first()
        .map(|r| r.role_name())
        .unwrap_or(role);
    Item::new(Kind::IamInstanceProfile, name, name)
        .owned(true)
        .with(&[("arn", profile.arn()), ("name", name), ("role", role)])
}

/// IAM returns policy documents URL-encoded (RFC 3986); a few lines rather than a crate.
fn urlencoding_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `aws_iam_role_policy`: an inline policy, found with its role.
pub(crate) struct RolePolicy;

impl Handler for RolePolicy {
    fn key(r: &R) -> Option<String> {
        Some(format!("{}|{}", str_of(r, "role")?, str_of(r, "name")?))
    }

    fn forces_replacement(attr: &str) -> bool {
        attr != "policy"
    }

    fn gone(code: &str) -> bool {
        iam_gone(code)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        op.aws
            .iam
            .put_role_policy()
            .role_name(op.s("role"))
            .policy_name(op.s("name"))
            .policy_document(op.s("policy"))
            .send()
            .await?;
        Ok(outputs(&[(
            "id",
            &format!("{}:{}", op.s("role"), op.s("name")),
        )]))
    }

    /// PutRolePolicy replaces the document.
    async fn update(op: &Op<'_>, _id: &str, _change: &Change) -> Result<Out, Error> {
        Self::create(op).await
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        let (role, name) = id.split_once(':').unwrap_or((id, ""));
        aws.iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await?;
        Ok(())
    }
}

/// `aws_iam_role_policy_attachment`: a managed policy on a role, found with the role.
pub(crate) struct Attachment;

impl Handler for Attachment {
    const RECORDED: bool = true;
    /// Attach, then record it on the role.
    const CREATE_CALLS: usize = 2;
    /// Detach, then forget the record.
    const DELETE_CALLS: usize = 2;

    fn key(r: &R) -> Option<String> {
        Some(format!(
            "{}|{}",
            str_of(r, "role")?,
            str_of(r, "policy_arn")?
        ))
    }

    fn gone(code: &str) -> bool {
        iam_gone(code)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let (role, arn) = (op.s("role"), op.s("policy_arn"));
        op.aws
            .iam
            .attach_role_policy()
            .role_name(&role)
            .policy_arn(&arn)
            .send()
            .await?;
        // Recorded after it exists (attachments have no tags): only recorded attachments
        // are ever detached.
        op.aws.call();
        op.aws
            .iam
            .tag_role()
            .role_name(&role)
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key(attachment_tag(&arn))
                    .value(&arn)
                    .build()?,
            )
            .send()
            .await?;
        Ok(outputs(&[("id", &format!("{role}|{arn}"))]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        let (role, arn) = id.split_once('|').unwrap_or((id, ""));
        aws.iam
            .detach_role_policy()
            .role_name(role)
            .policy_arn(arn)
            .send()
            .await?;
        aws.call();
        aws.iam
            .untag_role()
            .role_name(role)
            .tag_keys(attachment_tag(arn))
            .send()
            .await?;
        Ok(())
    }
}

/// `aws_iam_instance_profile`, named after its role.
pub(crate) struct InstanceProfile;

impl Handler for InstanceProfile {
    /// Create, then add the role.
    const CREATE_CALLS: usize = 2;
    /// Remove the role, then delete.
    const DELETE_CALLS: usize = 2;

    fn key(r: &R) -> Option<String> {
        str_of(r, "name").map(str::to_string)
    }

    fn write_only(attr: &str) -> bool {
        attr == "tags"
    }

    fn gone(code: &str) -> bool {
        iam_gone(code)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let created = op
            .aws
            .iam
            .create_instance_profile()
            .instance_profile_name(op.s("name"))
            .set_tags(Some(iam_tags(&op.tags())?))
            .send()
            .await;
        let arn = match created {
            Ok(p) => p
                .instance_profile
                .map(|p| p.arn().to_string())
                .unwrap_or_default(),
            Err(e) => {
                let e = Error::from(e);
                if !e.is("EntityAlreadyExists") {
                    return Err(e);
                }
                String::new()
            }
        };
        if let Some(role) = str_of(op.r, "role") {
            op.aws.call();
            let added = op
                .aws
                .iam
                .add_role_to_instance_profile()
                .instance_profile_name(op.s("name"))
                .role_name(role)
                .send()
                .await;
            // A profile holds one role: LimitExceeded means a killed run added it already.
            if let Err(e) = added {
                let e = Error::from(e);
                if !e.is("LimitExceeded") {
                    return Err(e);
                }
            }
        }
        Ok(outputs(&[
            ("id", &op.s("name")),
            ("name", &op.s("name")),
            ("arn", &arn),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, found: &Out) -> Result<(), Error> {
        let role = found.get("role").map(String::as_str).unwrap_or_default();
        if !role.is_empty() {
            let removed = aws
                .iam
                .remove_role_from_instance_profile()
                .instance_profile_name(id)
                .role_name(role)
                .send()
                .await;
            if let Err(e) = removed {
                let e = Error::from(e);
                if !e.is("NoSuchEntity") {
                    return Err(e);
                }
            }
            aws.call();
        }
        aws.iam
            .delete_instance_profile()
            .instance_profile_name(id)
            .send()
            .await?;
        Ok(())
    }
}

/// `aws_iam_openid_connect_provider`: listed (one call) only when the cluster wants one or
/// is being deleted, and matched by URL.
pub(crate) struct OidcProvider;

impl Handler for OidcProvider {
    fn key(r: &R) -> Option<String> {
        str_of(r, "url").map(str::to_string)
    }

    fn write_only(attr: &str) -> bool {
        attr == "tags"
    }

    fn gone(code: &str) -> bool {
        iam_gone(code)
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let desired = scan.desired;
        let wanted: BTreeSet<&str> = desired
            .resources
            .iter()
            .filter(|r| r.address.kind == Kind::IamOidcProvider.as_str())
            .filter_map(|r| r.attrs.get("url").and_then(Value::as_str))
            .collect();
        if wanted.is_empty() && !desired.resources.is_empty() {
            return Ok(Vec::new());
        }
        let listed = scan
            .aws
            .shared_read("iam:ListOpenIDConnectProviders".into(), |aws| async move {
                aws.call();
                let listed = aws.iam.list_open_id_connect_providers().send().await?;
                Ok(listed.open_id_connect_provider_list.unwrap_or_default())
            })
            .await?;
        let mut items = Vec::new();
        for provider in listed.iter() {
            let arn = provider.arn().unwrap_or_default();
            let url = format!(
                "https://{}",
                arn.split_once(":oidc-provider/")
                    .map(|(_, u)| u)
                    .unwrap_or(arn)
            );
            if wanted.contains(url.as_str()) {
                items.push(
                    Item::new(Kind::IamOidcProvider, arn, url)
                        .owned(true)
                        .with(&[("arn", arn)]),
                );
            }
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let provider = op
            .aws
            .iam
            .create_open_id_connect_provider()
            .url(op.s("url"))
            .set_client_id_list(Some(strs_of(op.r, "client_id_list")))
            .set_thumbprint_list(Some(strs_of(op.r, "thumbprint_list")))
            .set_tags(Some(iam_tags(&op.tags())?))
            .send()
            .await?;
        let arn = provider.open_id_connect_provider_arn().unwrap_or_default();
        Ok(outputs(&[("id", arn), ("arn", arn)]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.iam
            .delete_open_id_connect_provider()
            .open_id_connect_provider_arn(id)
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
            "name": "masters.x.c", "role": "masters.x.c",
            "policy_arn": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
            "url": "https://oidc.x.c"
        }))
        .unwrap();
        assert_eq!(Role::key(&r).as_deref(), Some("masters.x.c"));
        assert_eq!(
            RolePolicy::key(&r).as_deref(),
            Some("masters.x.c|masters.x.c")
        );
        assert_eq!(
            Attachment::key(&r).as_deref(),
            Some("masters.x.c|arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
        );
        assert_eq!(OidcProvider::key(&r).as_deref(), Some("https://oidc.x.c"));
        assert!(!Role::forces_replacement("assume_role_policy"));
        assert!(Role::write_only("assume_role_policy"));
        assert!(!RolePolicy::forces_replacement("policy"));
        assert!(Role::gone("NoSuchEntity") && !Role::gone("DeleteConflict"));
    }

    #[test]
    fn attachment_records_are_per_arn() {
        let a = attachment_tag("arn:aws:iam::aws:policy/A");
        assert!(a.starts_with(ATTACHMENT_TAG_PREFIX));
        assert_ne!(a, attachment_tag("arn:aws:iam::aws:policy/B"));
        // IAM tag keys are at most 128 characters.
        assert!(a.len() <= 128);
    }

    #[test]
    fn policy_documents_are_url_decoded() {
        assert_eq!(urlencoding_decode("%7B%22a%22%3A1%7D"), "{\"a\":1}");
        assert_eq!(urlencoding_decode("100%"), "100%");
    }
}
