//! The node-termination-handler's queue and the EventBridge rules (with their targets) that
//! feed it.
//!
//! The queue has exactly the name the model gives it ([`kopsrs_model::names::termination_queue`]):
//! SQS lists by prefix, so names that only start with it (`x-co-nth` for `x.c`) are dropped,
//! and the ownership tag decides between clusters whose names differ only in `.` and `-`
//! (a fleet reads every queue's tags at once, through the Resource Groups Tagging API).
//! Rules have exactly the names of [`kopsrs_model::names::termination_rules`]; each rule
//! records its target in its description ([`TARGET_MARK`]), which ListRules returns, so a
//! plan needs no ListTargetsByRule per rule.

use std::collections::BTreeMap;

use crate::handler::{outputs, owned_by, Handler, Item, Op, Out, Scan, R};
use crate::kind::Kind;
use crate::resolve::{int_of, str_of};
use crate::{Aws, Error};

/// An EventBridge rule's description records its target: `<TARGET_MARK><target id> <arn>`.
pub(crate) const TARGET_MARK: &str = "kopsrs target ";

fn queue_gone(code: &str) -> bool {
    code == "AWS.SimpleQueueService.NonExistentQueue" || code == "QueueDoesNotExist"
}

/// `aws_sqs_queue`.
pub(crate) struct Queue;

impl Handler for Queue {
    fn key(r: &R) -> Option<String> {
        str_of(r, "name").map(str::to_string)
    }

    /// SQS returns the policy re-serialised and the tags in another call: both are set at
    /// creation and not compared.
    fn write_only(attr: &str) -> bool {
        attr == "policy" || attr == "tags"
    }

    fn gone(code: &str) -> bool {
        queue_gone(code)
    }

    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let aws = scan.aws;
        let queue_name = kopsrs_model::names::termination_queue(scan.cluster);
        // A fleet lists every queue once; alone, the ones named like the cluster's.
        let prefix = (!aws.in_fleet()).then(|| queue_name.clone());
        let key = format!("sqs:ListQueues prefix={prefix:?}");
        let queues = aws
            .shared_read(key, |aws| async move {
                let mut urls = Vec::new();
                let mut token = None;
                loop {
                    aws.call();
                    let page = aws
                        .sqs
                        .list_queues()
                        .set_queue_name_prefix(prefix.clone())
                        .max_results(1000)
                        .set_next_token(token)
                        .send()
                        .await?;
                    urls.extend(page.queue_urls.unwrap_or_default());
                    match page.next_token {
                        Some(next) if !next.is_empty() => token = Some(next),
                        _ => break,
                    }
                }
                Ok(urls)
            })
            .await?;
        // A fleet reads every queue's tags in one read of the tagging API.
        let fleet_tags = match aws.in_fleet() {
            true => Some(
                aws.shared_read("tagging:GetResources sqs:queue".into(), |aws| async move {
                    queues_tags(&aws).await
                })
                .await?,
            ),
            false => None,
        };
        let mut items = Vec::new();
        for url in queues.iter() {
            let name = url.rsplit('/').next().unwrap_or_default();
            if name != queue_name {
                continue;
            }
            let arn = aws.queue_arn(url).await?;
            let tags = match fleet_tags.as_deref().and_then(Option::as_ref) {
                Some(by_arn) => by_arn.get(&arn).cloned().unwrap_or_default(),
                None => queue_tags(aws, url).await?,
            };
            if !owned_by(&tags, scan.cluster) {
                continue;
            }
            items.push(Item::new(Kind::SqsQueue, url, name).owned(true).with(&[
                ("arn", &arn),
                ("url", url),
                ("name", name),
            ]));
        }
        Ok(items)
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let mut request = op.aws.sqs.create_queue().queue_name(op.s("name"));
        if let Some(retention) = int_of(op.r, "message_retention_seconds") {
            request = request.attributes(
                QueueAttributeName::MessageRetentionPeriod,
                retention.to_string(),
            );
        }
        if let Some(policy) = str_of(op.r, "policy") {
            request = request.attributes(QueueAttributeName::Policy, policy);
        }
        for (k, v) in &op.tags() {
            request = request.tags(k, v);
        }
        let url = request.send().await?.queue_url.unwrap_or_default();
        let arn = op.aws.queue_arn(&url).await?;
        Ok(outputs(&[
            ("id", &url),
            ("url", &url),
            ("arn", &arn),
            ("name", &op.s("name")),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.sqs.delete_queue().queue_url(id).send().await?;
        Ok(())
    }
}

/// The tags of the queue at `url`.
async fn queue_tags(aws: &Aws, url: &str) -> Result<BTreeMap<String, String>, Error> {
    aws.call();
    let listed = aws.sqs.list_queue_tags().queue_url(url).send().await?;
    Ok(listed.tags.unwrap_or_default().into_iter().collect())
}

/// The tags of every tagged queue in the region, by queue ARN, from the Resource Groups
/// Tagging API (a page holds 100 queues; SQS reads one queue's tags per call). None when
/// the identity may not call it (`tag:GetResources`): each queue's tags are read then.
async fn queues_tags(
    aws: &Aws,
) -> Result<Option<BTreeMap<String, BTreeMap<String, String>>>, Error> {
    let request = aws
        .tagging
        .get_resources()
        .resource_type_filters("sqs:queue")
        .resources_per_page(100);
    let mappings = async { Ok::<_, Error>(all_pages!(aws, request, resource_tag_mapping_list)) };
    let mappings = match mappings.await {
        Ok(mappings) => mappings,
        Err(e) if e.is("AccessDeniedException") || e.is("AccessDenied") => return Ok(None),
        Err(e) => return Err(e),
    };
    let by_arn = mappings
        .into_iter()
        .map(|m| {
            let tags = m
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            (m.resource_arn.unwrap_or_default(), tags)
        })
        .collect();
    Ok(Some(by_arn))
}

impl Aws {
    /// A queue's ARN: built from its URL (`.../<account>/<name>`) and the region's
    /// partition, asking SQS only when the URL does not have that form.
    pub(crate) async fn queue_arn(&self, url: &str) -> Result<String, Error> {
        let mut parts = url.rsplit('/');
        if let (Some(name), Some(account)) = (parts.next(), parts.next()) {
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
                let partition = match self.region.as_str() {
                    r if r.starts_with("cn-") => "aws-cn",
                    r if r.starts_with("us-gov-") => "aws-us-gov",
                    _ => "aws",
                };
                return Ok(format!(
                    "arn:{partition}:sqs:{}:{account}:{name}",
                    self.region
                ));
            }
        }
        self.call();
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?;
        Ok(attributes
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default())
    }
}

/// `aws_cloudwatch_event_rule`; discovery also finds each rule's target.
pub(crate) struct Rule;

impl Handler for Rule {
    fn key(r: &R) -> Option<String> {
        str_of(r, "name").map(str::to_string)
    }

    /// ListRules returns the pattern re-serialised and no tags: set at creation.
    fn write_only(attr: &str) -> bool {
        attr == "event_pattern" || attr == "tags"
    }

    /// Listed (one call) only when the cluster wants rules or is being deleted.
    async fn discover(scan: &Scan<'_>) -> Result<Vec<Item>, Error> {
        let (aws, cluster, desired) = (scan.aws, scan.cluster, scan.desired);
        let wants_rules = desired.resources.is_empty()
            || desired
                .resources
                .iter()
                .any(|r| r.address.kind == Kind::EventRule.as_str());
        if !wants_rules {
            return Ok(Vec::new());
        }
        // A fleet lists every rule once; alone, the ones named like the cluster's.
        let prefix = (!aws.in_fleet()).then(|| format!("{cluster}-"));
        let key = format!("events:ListRules prefix={prefix:?}");
        let rules = aws
            .shared_read(key, |aws| async move {
                let mut rules = Vec::new();
                let mut token = None;
                loop {
                    aws.call();
                    let page = aws
                        .events
                        .list_rules()
                        .set_name_prefix(prefix.clone())
                        .limit(100)
                        .set_next_token(token)
                        .send()
                        .await?;
                    rules.extend(page.rules.unwrap_or_default());
                    match page.next_token {
                        Some(next) if !next.is_empty() => token = Some(next),
                        _ => break,
                    }
                }
                Ok(rules)
            })
            .await?;
        // Only the exact names the cluster's rules have (`x.co-...` starts with `x.c`).
        let names = kopsrs_model::names::termination_rules(cluster);
        let per_rule = rules
            .iter()
            .filter(|rule| names.iter().any(|n| Some(n.as_str()) == rule.name()))
            .map(|rule| async move {
                let name = rule.name().unwrap_or_default();
                let target = |id: &str, arn: &str| {
                    Item::new(
                        Kind::EventTarget,
                        format!("{name}|{id}"),
                        format!("{name}|{arn}"),
                    )
                    .owned(true)
                    .with(&[("target_id", id)])
                };
                let recorded = rule
                    .description()
                    .and_then(|d| d.strip_prefix(TARGET_MARK))
                    .and_then(|d| d.split_once(' '));
                let mut items: Vec<Item> = match recorded {
                    Some((id, arn)) => vec![target(id, arn)],
                    None => {
                        aws.call();
                        let targets = aws.events.list_targets_by_rule().rule(name).send().await?;
                        targets
                            .targets()
                            .iter()
                            .map(|t| target(t.id(), t.arn()))
                            .collect()
                    }
                };
                items.push(
                    Item::new(Kind::EventRule, name, name)
                        .owned(true)
                        .with(&[("arn", rule.arn().unwrap_or_default())]),
                );
                Ok::<_, Error>(items)
            });
        Ok(futures::future::try_join_all(per_rule)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let mut request = op
            .aws
            .events
            .put_rule()
            .name(op.s("name"))
            .set_event_pattern(str_of(op.r, "event_pattern").map(str::to_string));
        for (k, v) in &op.tags() {
            request = request.tags(
                aws_sdk_eventbridge::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()?,
            );
        }
        let rule = request.send().await?;
        Ok(outputs(&[
            ("id", &op.s("name")),
            ("arn", rule.rule_arn().unwrap_or_default()),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        aws.events.delete_rule().name(id).send().await?;
        Ok(())
    }
}

/// `aws_cloudwatch_event_target`: the queue as a rule's target, found with the rule.
pub(crate) struct Target;

impl Handler for Target {
    /// PutTargets and DescribeRule at once, then the record in the rule's description.
    const CREATE_CALLS: usize = 2;

    fn key(r: &R) -> Option<String> {
        Some(format!("{}|{}", str_of(r, "rule")?, str_of(r, "arn")?))
    }

    async fn create(op: &Op<'_>) -> Result<Out, Error> {
        let (rule, arn) = (op.s("rule"), op.s("arn"));
        let target_id: String = op.address.name.chars().take(64).collect();
        let events = &op.aws.events;
        let put = async {
            events
                .put_targets()
                .rule(&rule)
                .targets(
                    aws_sdk_eventbridge::types::Target::builder()
                        .id(&target_id)
                        .arn(&arn)
                        .build()?,
                )
                .send()
                .await?;
            Ok::<_, Error>(())
        };
        let describe = async {
            op.aws.call();
            Ok::<_, Error>(events.describe_rule().name(&rule).send().await?)
        };
        let ((), described) = tokio::try_join!(put, describe)?;
        // Recorded after the target exists: a crash in between leaves an unrecorded target,
        // which discovery then lists with ListTargetsByRule.
        op.aws.call();
        events
            .put_rule()
            .name(&rule)
            .set_event_pattern(described.event_pattern)
            .set_state(described.state)
            .description(format!("{TARGET_MARK}{target_id} {arn}"))
            .send()
            .await?;
        Ok(outputs(&[
            ("id", &format!("{rule}|{target_id}")),
            ("target_id", &target_id),
        ]))
    }

    async fn delete(aws: &Aws, id: &str, _found: &Out) -> Result<(), Error> {
        let (rule, target) = id.split_once('|').unwrap_or((id, ""));
        aws.events
            .remove_targets()
            .rule(rule)
            .ids(target)
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
            "name": "x-c-nth", "rule": "x.c-ASGLifecycle", "arn": "arn:aws:sqs:r:1:x-c-nth"
        }))
        .unwrap();
        assert_eq!(Queue::key(&r).as_deref(), Some("x-c-nth"));
        assert_eq!(Rule::key(&r).as_deref(), Some("x-c-nth"));
        assert_eq!(
            Target::key(&r).as_deref(),
            Some("x.c-ASGLifecycle|arn:aws:sqs:r:1:x-c-nth")
        );
        assert!(Queue::write_only("policy"));
        assert!(Queue::gone("AWS.SimpleQueueService.NonExistentQueue"));
        assert!(Rule::write_only("event_pattern"));
    }
}
