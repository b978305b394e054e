#!/usr/bin/env python3
"""moto_server for kopsrs's tests and benchmarks, with twelve additions.

1. S3 writes are atomic. moto checks `If-Match` / `If-None-Match` and then stores the object
   in two steps on a threaded server, so two racing conditional PUTs can both succeed (a lost
   update that real S3 never allows). A lock around object writes gives S3's semantics, which
   the state store's compare-and-swap relies on.
2. A fault-injecting, counting layer in front of moto (WSGI middleware in the same process,
   so it adds no hop of its own): latency per call, throttling and 5xx errors every Nth call
   in the wire format of the called service, and a count of the calls per service and action.
3. Launch templates report their current tags. moto copies a template's tags when it is
   created, so `CreateTags` on it later shows in `DescribeTags` but not in
   `DescribeLaunchTemplates`; AWS shows them in both, and kopsrs records a template's
   content digest in a tag.
4. IPv6-only subnets report 0 available IPv4 addresses, as AWS does. moto counts the /64's
   2^64 addresses, which overflows EC2's 32-bit `availableIpAddressCount` and makes every
   AWS SDK fail to parse CreateSubnet and DescribeSubnets.
5. S3 refuses a request signed for a region other than the bucket's, as S3 does
   (400 AuthorizationHeaderMalformed naming the expected region, with `x-amz-bucket-region`);
   moto serves any region. Unsigned requests (a client resolving the region with `HEAD`) pass,
   and an unsigned `HEAD` always carries the header, refused or not, as on S3.
6. IAM enforcement (off until `POST /moto-api/reset-auth` with `0`) knows the policy variable
   `${aws:userid}` (`ROLEID:SESSION` for a role session, the user's ID for a user), which
   AWS substitutes in a policy's Resource and moto matched literally; and EC2's handing out
   of instance-role credentials (below), which in AWS needs no caller. moto re-signs a
   request with its query in SigV4's canonical encoding (it used the decoded query, so a
   signed S3 list by a prefix with '/' always failed) and an S3 key's path encoded as S3
   signs it (a key with ':' always failed), and with an empty payload for a REST
   read (it hashed the parsed query).
7. An auto scaling group's instance reports the launch-template version it was launched
   with, as AWS does. moto reported the template's current default version for every
   instance, so an instance never looked out of date (or always did) and a rolling update
   could not tell old instances from their replacements. And a template version made by
   `CreateLaunchTemplateVersion` keeps its user data as `CreateLaunchTemplate` does (moto
   stored it raw, and launching from that version then failed with a 500, after moto had
   already taken the instance out of its group).
8. S3 checks the bucket owner a request names (`x-amz-expected-bucket-owner`, the SDKs'
   `ExpectedBucketOwner`), as S3 does: a bucket another account owns answers 403
   AccessDenied (S3's own words and XML; no body for `HEAD`), and a signed request whose
   signature does not cover the header answers 403 "There were headers present in the request
   which were not signed". moto ignored the header. The owner of a bucket is the account that
   created it: moto's default 123456789012, or the one a request names with moto's
   `x-moto-account-id` header or signs for with an access key of another account's IAM
   (path-style requests only, as 5.).
9. A target group's name may hold consecutive hyphens (`tcp-a--b`), as AWS accepts and kops's
   names have them; moto refused them with a pattern of its own.
10. `DeleteLaunchTemplateVersions`, which moto lacks: the versions named are deleted (the
   default version is refused, as AWS refuses it, and a version that does not exist is
   reported, not an error), and no call shows them any more; the numbers of the others stay.
11. Warm pools hold instances, as in AWS. moto stored a group's warm-pool settings and
   `DescribeWarmPool` always answered no instances, so nothing could test what a rolling
   update does to them. Now the pool is filled to its size (`MaxGroupPreparedCapacity`, or
   the group's maximum, less the desired capacity, and never below `MinSize`; shrunk by
   terminating the extra ones) with stopped instances launched from the group's current template (`PoolState` Running: left running),
   when it is put and each time it is described; `DescribeWarmPool` lists them with their
   lifecycle state and launch-template version; a terminated one leaves the pool (and is
   replaced at the next refill); deleting the pool or the group terminates them.
12. Two Auto Scaling calls moto lacks. `CompleteLifecycleAction`: the group, its hook and the
   instance (in service or warm in that group) must exist, as AWS checks (a ValidationError
   otherwise); each completion is recorded (`GET /__kopsrs/lifecycle-actions`).
   `DisableMetricsCollection`: the metrics named (all when none is) are no longer collected.

Control, on the same port (no S3 bucket can be named like this):
  POST /__kopsrs/faults  {"latency_ms": 100, "throttle_rps": 20, "throttle_burst": 10,
                          "throttle_every": 5, "error_every": 7}
                         sets the faults and resets the counters. `throttle_rps` throttles
                         as AWS does, with a token bucket per account (a client that slows
                         down gets through), only writes with "throttle_mutating": true;
                         `throttle_every` throttles every Nth call.
  POST /__kopsrs/instance-credentials {"role_arn": ARN, "session": INSTANCE_ID}
                         a session of the role, as EC2 gives an instance of a profile
                         (`AccessKeyId`, `SecretAccessKey`, `Token`).
  GET  /__kopsrs/lifecycle-actions
                         [{"group": G, "hook": H, "instance": ID, "result": "CONTINUE"}]
                         (addition 12's record)
  GET  /__kopsrs/calls   {"total": N, "injected": N, "throttled": N,
                          "by_action": {"ec2:DescribeVpcs": N},
                          "s3_without_owner": {"s3:GET /bucket": N}}
                         (`s3_without_owner`: signed S3 calls that named no bucket owner)

Usage: moto_server.py [-H HOST] [-p PORT]
"""

import argparse
import collections
import io
import json
import os
import re
import threading
import time
import urllib.parse

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.autoscaling import models as _autoscaling
from moto.elbv2 import models as _elbv2
from moto.ec2.models import launch_templates as _launch_templates
from moto.ec2.models import subnets as _subnets
from moto.ec2 import utils as _ec2_utils
from moto.iam import access_control as _access_control
from moto.s3 import responses as s3_responses
from werkzeug.serving import run_simple

_S3_WRITE = threading.Lock()
_key_response = s3_responses.S3Response._key_response


# KOPSRS_MOTO_TRACE=FILE: each request's service, action and path appended to FILE (debugging).
_TRACE = os.environ.get("KOPSRS_MOTO_TRACE")

def _atomic_key_response(self, request, full_url):
    if request.method in ("PUT", "POST", "DELETE"):
        with _S3_WRITE:
            return _key_response(self, request, full_url)
    return _key_response(self, request, full_url)


s3_responses.S3Response._key_response = _atomic_key_response


# 9.: moto's elbv2 checks a target group's name with a pattern that forbids "--"; AWS's own
# rules (alphanumerics and hyphens, 32 at most, no hyphen first or last) stay in force.
_MOTO_TARGET_GROUP_NAME = r"(?!.*--)(?!^-)(?!.*-$)^[A-Za-z0-9-]+$"


class _ElbV2Patterns:
    """The `re` moto's elbv2 module sees: its target-group pattern without the `--` rule."""

    def __getattr__(self, name):
        return getattr(re, name)

    @staticmethod
    def match(pattern, string, *args, **kwargs):
        if pattern == _MOTO_TARGET_GROUP_NAME:
            pattern = r"(?!^-)(?!.*-$)^[A-Za-z0-9-]+$"
        return re.match(pattern, string, *args, **kwargs)


_elbv2.re = _ElbV2Patterns()


def _launch_template_tags(self):
    return self.get_tags()


# Read from the tag store each time, as AWS does; the assignment in moto's constructor is
# ignored.
_launch_templates.LaunchTemplate.tags = property(_launch_template_tags, lambda self, value: None)

_available_ips = _subnets.Subnet.available_ip_address_count.fget


def _available_ip_address_count(self):
    if not self.cidr_block:
        return 0
    return _available_ips(self)


_subnets.Subnet.available_ip_address_count = property(_available_ip_address_count)

_create_version = _launch_templates.LaunchTemplate.create_version


def _create_version_parsed(self, data, description):
    if isinstance(data.get("UserData"), (str, bytes)):
        data = dict(data, UserData=_ec2_utils.parse_user_data(data["UserData"]))
    return _create_version(self, data, description)


_launch_templates.LaunchTemplate.create_version = _create_version_parsed

# 10.: deleted launch-template versions keep their place (moto numbers versions by position)
# and are hidden from every call.
_get_version = _launch_templates.LaunchTemplate.get_version


def _get_version_live(self, num):
    version = _get_version(self, num)
    if getattr(version, "kopsrs_deleted", False):
        from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound

        raise InvalidLaunchTemplateVersionNotFound(template_id=self.id, version=num)
    return version


_launch_templates.LaunchTemplate.get_version = _get_version_live
_describe_versions = _launch_templates.LaunchTemplateBackend.describe_launch_template_versions


def _describe_live_versions(self, *args, **kwargs):
    return [
        (t, v)
        for t, v in _describe_versions(self, *args, **kwargs)
        if not getattr(v, "kopsrs_deleted", False)
    ]


_launch_templates.LaunchTemplateBackend.describe_launch_template_versions = _describe_live_versions


def _delete_launch_template_versions(self):
    from moto.core.responses import ActionResult

    name = self._get_param("LaunchTemplateName")
    template_id = self._get_param("LaunchTemplateId")
    template = (
        self.ec2_backend.get_launch_template_by_name(name)
        if name
        else self.ec2_backend.get_launch_template(template_id)
    )
    done, refused = [], []
    for number in self._get_param("Versions", []):
        entry = {
            "LaunchTemplateId": template.id,
            "LaunchTemplateName": template.name,
            "VersionNumber": int(number),
        }
        live = [v for v in template.versions if v.number == int(number)]
        if not live or getattr(live[0], "kopsrs_deleted", False):
            entry["ResponseError"] = {
                "Code": "launchTemplateVersionDoesNotExist",
                "Message": f"The specified launch template version does not exist: {number}",
            }
            refused.append(entry)
        elif template.is_default(live[0]):
            entry["ResponseError"] = {
                "Code": "launchTemplateVersionIsDefault",
                "Message": "The default version of a launch template cannot be deleted",
            }
            refused.append(entry)
        else:
            live[0].kopsrs_deleted = True
            done.append(entry)
    return ActionResult(
        {
            "SuccessfullyDeletedLaunchTemplateVersions": done,
            "UnsuccessfullyDeletedLaunchTemplateVersions": refused,
        }
    )


from moto.ec2.responses.launch_templates import LaunchTemplates as _LaunchTemplateResponses

_LaunchTemplateResponses.delete_launch_template_versions = _delete_launch_template_versions

_instance_state_init = _autoscaling.InstanceState.__init__


def _instance_state_init_recording(self, instance, *args, **kwargs):
    _instance_state_init(self, instance, *args, **kwargs)
    group = self.auto_scaling_group
    template = getattr(group, "ec2_launch_template", None)
    # Kept on the EC2 instance: the version it was launched with never changes.
    if template is not None and not hasattr(instance, "kopsrs_template_version"):
        instance.kopsrs_template_version = template.get_version(group.launch_template_version).number


def _instance_launch_template(self):
    template = getattr(self.auto_scaling_group, "ec2_launch_template", None)
    if template is None:
        return None
    version = getattr(self.instance, "kopsrs_template_version", template.default_version_number)
    return {"LaunchTemplateId": template.id, "LaunchTemplateName": template.name,
            "Version": str(version)}


_autoscaling.InstanceState.__init__ = _instance_state_init_recording
_autoscaling.InstanceState.launch_template = property(_instance_launch_template)

# 11.: a warm pool's instances: EC2 instances the group launched and holds apart from its
# in-service ones (kept in `kopsrs_warm`, by ID).
def _warm_instances(group):
    ec2 = group.autoscaling_backend.ec2_backend
    live = []
    for instance_id in getattr(group, "kopsrs_warm", []):
        try:
            instance = ec2.get_instance(instance_id)
        except Exception:
            continue
        if instance.state not in ("terminated", "shutting-down"):
            live.append(instance)
    group.kopsrs_warm = [i.id for i in live]
    return live


def _fill_warm_pool(group):
    pool = group.warm_pool
    if pool is None:
        return []
    live = _warm_instances(group)
    prepared = pool.max_group_prepared_capacity
    if prepared is None or prepared < 0:
        prepared = group.max_size
    size = max(pool.min_size or 0, prepared - group.desired_capacity)
    missing = size - len(live)
    if missing < 0:
        extra = live[size:]
        live = live[:size]
        group.kopsrs_warm = [i.id for i in live]
        group.autoscaling_backend.ec2_backend.terminate_instances([i.id for i in extra])
    if missing > 0:
        before = len(group.instance_states)
        group.replace_autoscaling_group_instances(missing, group.get_propagated_tags())
        launched = group.instance_states[before:]
        del group.instance_states[before:]
        for state in launched:
            if pool.pool_state != "Running":
                state.instance.stop()
            live.append(state.instance)
            group.kopsrs_warm.append(state.instance.id)
    return live


def _terminate_warm(group):
    ids = [i.id for i in _warm_instances(group)]
    group.kopsrs_warm = []
    if ids:
        group.autoscaling_backend.ec2_backend.terminate_instances(ids)


_put_warm_pool = _autoscaling.AutoScalingBackend.put_warm_pool


def _put_warm_pool_filled(self, group_name, **kwargs):
    _put_warm_pool(self, group_name, **kwargs)
    _fill_warm_pool(self.describe_auto_scaling_groups([group_name])[0])


def _describe_warm_pool_with_instances(self):
    from moto.core.responses import ActionResult

    group_name = self._get_param("AutoScalingGroupName")
    group = self.autoscaling_backend.describe_auto_scaling_groups([group_name])[0]
    template = getattr(group, "ec2_launch_template", None)
    instances = []
    for instance in _fill_warm_pool(group):
        entry = {
            "InstanceId": instance.id,
            "InstanceType": instance.instance_type,
            "AvailabilityZone": instance.placement,
            "LifecycleState": "Warmed:Running" if instance.state == "running" else "Warmed:Stopped",
            "HealthStatus": "Healthy",
        }
        if template is not None:
            entry["LaunchTemplate"] = {
                "LaunchTemplateId": template.id,
                "LaunchTemplateName": template.name,
                "Version": str(getattr(instance, "kopsrs_template_version", template.default_version_number)),
            }
        instances.append(entry)
    return ActionResult({"WarmPoolConfiguration": group.warm_pool, "Instances": instances})


_delete_warm_pool = _autoscaling.AutoScalingBackend.delete_warm_pool


def _delete_warm_pool_terminating(self, group_name):
    _terminate_warm(self.describe_auto_scaling_groups([group_name])[0])
    _delete_warm_pool(self, group_name)


_delete_group = _autoscaling.AutoScalingBackend.delete_auto_scaling_group


def _delete_group_with_warm_pool(self, group_name):
    group = self.autoscaling_groups.get(group_name)
    if group is not None:
        _terminate_warm(group)
    _delete_group(self, group_name)


_autoscaling.AutoScalingBackend.put_warm_pool = _put_warm_pool_filled
_autoscaling.AutoScalingBackend.delete_warm_pool = _delete_warm_pool_terminating
_autoscaling.AutoScalingBackend.delete_auto_scaling_group = _delete_group_with_warm_pool

from moto.autoscaling.responses import AutoScalingResponse as _AutoScalingResponses

_AutoScalingResponses.describe_warm_pool = _describe_warm_pool_with_instances

# 12.: CompleteLifecycleAction, recorded per instance.
LIFECYCLE_ACTIONS = []


def _complete_lifecycle_action(self):
    from moto.autoscaling.exceptions import ValidationError
    from moto.core.responses import EmptyResult

    group_name = self._get_param("AutoScalingGroupName")
    hook = self._get_param("LifecycleHookName")
    instance_id = self._get_param("InstanceId")
    result = self._get_param("LifecycleActionResult")
    backend = self.autoscaling_backend
    group = backend.autoscaling_groups.get(group_name)
    if group is None:
        raise ValidationError(f"Group {group_name} not found")
    if not backend.describe_lifecycle_hooks(group_name, [hook]):
        raise ValidationError(f"No Lifecycle Hook named {hook} found for group {group_name}")
    members = {s.instance.id for s in group.instance_states} | set(getattr(group, "kopsrs_warm", []))
    if instance_id not in members:
        raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
    if result not in ("CONTINUE", "ABANDON"):
        raise ValidationError(f"LifecycleActionResult {result} is not CONTINUE or ABANDON")
    LIFECYCLE_ACTIONS.append({"group": group_name, "hook": hook, "instance": instance_id,
                              "result": result})
    return EmptyResult()


_AutoScalingResponses.complete_lifecycle_action = _complete_lifecycle_action


def _disable_metrics_collection(self):
    from moto.core.responses import EmptyResult

    group = self.autoscaling_backend.describe_auto_scaling_groups(
        [self._get_param("AutoScalingGroupName")])[0]
    named = self._get_param("Metrics") or []
    group.metrics = [m for m in group.metrics if named and m not in named]
    return EmptyResult()


_AutoScalingResponses.disable_metrics_collection = _disable_metrics_collection

_CALLER = threading.local()
_check_action_permitted = _access_control.IAMRequestBase.check_action_permitted
_match = _access_control.IAMPolicyStatement._match


def _caller_userid(access_key):
    """aws:userid of the signer: ROLEID:SESSION for a role session, else the user's ID."""
    session = getattr(access_key, "_session_name", None)
    if session is not None:
        role = access_key.backend.get_role(access_key._owner_role_name)
        return f"{role.id}:{session}"
    user = getattr(access_key, "_owner_user_name", None)
    return access_key.backend.get_user(user).id if user else ""


def _check_action_permitted_with_caller(self, resource):
    _CALLER.userid = _caller_userid(self._access_key)
    try:
        return _check_action_permitted(self, resource)
    finally:
        _CALLER.userid = None


def _match_with_variables(pattern, string):
    userid = getattr(_CALLER, "userid", None)
    if userid is not None and "${aws:userid}" in pattern:
        pattern = pattern.replace("${aws:userid}", userid)
    return _match(pattern, string)


_create_aws_request = _access_control.IAMRequestBase._create_aws_request


def _create_canonical_aws_request(self):
    """The request moto re-signs, its query in SigV4's canonical encoding. The URL moto reads
    the query from has it decoded ('/' for %2F), and botocore takes it as it is, so every
    signed request with a '/' in a query value (an S3 list by prefix) failed the check."""
    request = _create_aws_request(self)
    if self._method in ("GET", "HEAD", "DELETE") and not self._body:
        # The payload is the body, empty here; moto hashed the parsed query instead, so
        # every signed REST read with a query (Route 53's ListHostedZonesByName) failed.
        request.data = b""
    path, _, query = request.url.partition("?")
    if isinstance(self, _access_control.S3IAMRequest):
        # Likewise the path: moto has it decoded (':' for %3A in a key), S3 signs it encoded.
        path = urllib.parse.quote(urllib.parse.unquote(path), safe="/~")
        request.url = path + ("?" + query if query else "")
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        request.url = path + "?" + urllib.parse.urlencode(
            pairs, quote_via=urllib.parse.quote, safe="-_.~")
    return request


_access_control.IAMRequestBase._create_aws_request = _create_canonical_aws_request
_access_control.IAMRequestBase.check_action_permitted = _check_action_permitted_with_caller
_access_control.IAMPolicyStatement._match = staticmethod(_match_with_variables)


def iam_enforced():
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


def instance_credentials(role_arn, session):
    from moto.sts.models import sts_backends

    role = sts_backends["123456789012"]["aws"].assume_role(
        region_name="us-east-1", role_session_name=session, role_arn=role_arn,
        policy=None, duration=3600, external_id=None)
    return {"AccessKeyId": role.access_key_id, "SecretAccessKey": role.secret_access_key,
            "Token": role.session_token}


_SIGNED_HEADERS = re.compile(r"SignedHeaders=([^,\s]+)")
_EXPECTED_OWNER = "x-amz-expected-bucket-owner"


def bucket_owner(environ):
    """The account that owns the bucket a path-style request names; None when there is none."""
    bucket = environ.get("PATH_INFO", "").lstrip("/").split("/")[0]
    if not bucket or bucket.startswith("__") or bucket == "moto-api":
        return None
    from moto.s3.models import s3_backends

    found = s3_backends.bucket_accounts.get(bucket)
    return found[1] if found else None


def refused_by_expected_owner(environ):
    """S3's refusal of a request naming a bucket owner (403 and its XML), or None to serve it:
    the header left out of the signature, or an owner the bucket does not have."""
    expected = environ.get("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
    if expected is None:
        return None
    signed = _SIGNED_HEADERS.search(environ.get("HTTP_AUTHORIZATION", ""))
    if signed and _EXPECTED_OWNER not in signed.group(1).lower().split(";"):
        return (
            "<Code>AccessDenied</Code><Message>There were headers present in the request "
            f"which were not signed</Message><HeadersNotSigned>{_EXPECTED_OWNER}</HeadersNotSigned>"
        )
    owner = bucket_owner(environ)
    if owner is not None and owner != expected.strip():
        return "<Code>AccessDenied</Code><Message>Access Denied</Message>"
    return None


_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_REGION = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/s3/aws4_request")


def bucket_region(environ):
    """The region of the bucket a path-style request names; None when there is none."""
    bucket = environ.get("PATH_INFO", "").lstrip("/").split("/")[0]
    if not bucket or bucket.startswith("__") or bucket == "moto-api":
        return None
    from moto.s3.models import s3_backends

    for account in list(s3_backends.keys()):
        found = s3_backends[account]["global"].buckets.get(bucket)
        if found is not None:
            return found.region_name
    return None


def wrong_s3_region(environ):
    """The bucket's region when an S3 request is signed for another one (path-style only)."""
    signed = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not signed:
        return None
    region = bucket_region(environ)
    return region if region and region != signed.group(1) else None


class Faults:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.reset({})

    def reset(self, config):
        if _TRACE:
            with open(_TRACE, "a") as trace:
                trace.write("--- counters reset\n")
        self.latency = float(config.get("latency_ms", 0)) / 1000.0
        self.throttle_every = int(config.get("throttle_every", 0))
        self.error_every = int(config.get("error_every", 0))
        self.rps = float(config.get("throttle_rps", 0))
        self.burst = float(config.get("throttle_burst", self.rps))
        self.tokens = self.burst
        # EC2 keeps separate buckets for mutating and read calls; this throttles only writes.
        self.mutating_only = bool(config.get("throttle_mutating", False))
        self.refilled = time.monotonic()
        self.total = 0
        self.injected = 0
        self.throttled = 0
        self.by_action = collections.Counter()
        self.s3_without_owner = collections.Counter()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/__kopsrs/"):
            return self.control(path, environ, start_response)

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        service, action = self.describe(environ, body)
        if _TRACE:
            with self.lock, open(_TRACE, "a") as trace:
                query = environ.get("QUERY_STRING", "")
                trace.write(f"{service}:{action} {path}{'?' + query if query else ''}\n")
        with self.lock:
            self.total += 1
            number = self.total
            self.by_action[f"{service}:{action}"] += 1
            if service == "s3" and "HTTP_X_AMZ_EXPECTED_BUCKET_OWNER" not in environ:
                self.s3_without_owner[f"{service}:{action}"] += 1
            latency = self.latency
            fault = None
            mutating = not action.startswith(("Describe", "List", "Get", "GET "))
            if self.rps and (mutating or not self.mutating_only):
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rps)
                self.refilled = now
                if self.tokens < 1:
                    fault = "throttle"
                else:
                    self.tokens -= 1
            if fault:
                pass
            elif self.throttle_every and number % self.throttle_every == 0:
                fault = "throttle"
            elif self.error_every and number % self.error_every == 0:
                fault = "error"
            if fault:
                self.injected += 1
                self.throttled += fault == "throttle"
        if latency:
            time.sleep(latency)
        if fault:
            status, headers, content = error_response(service, environ, fault)
            start_response(status, headers)
            return [content]
        expected = wrong_s3_region(environ) if service == "s3" else None
        if expected:
            signed = _REGION.search(environ["HTTP_AUTHORIZATION"]).group(1)
            content = (
                "<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization "
                f"header is malformed; the region '{signed}' is wrong; expecting '{expected}'"
                f"</Message><Region>{expected}</Region></Error>"
            ).encode()
            headers = [("Content-Type", "application/xml"), ("x-amz-bucket-region", expected)]
            start_response("400 Bad Request", headers)
            return [content]
        refusal = refused_by_expected_owner(environ) if service in ("s3", "unsigned") else None
        if refusal:
            content = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{refusal}'
                "<RequestId>kopsrs-moto</RequestId><HostId>kopsrs-moto</HostId></Error>"
            ).encode()
            if environ.get("REQUEST_METHOD") == "HEAD":
                content = b""
            start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                             ("Content-Length", str(len(content)))])
            return [content]
        if service == "unsigned" and environ.get("REQUEST_METHOD") == "HEAD":
            # S3 names the bucket's region to anyone who asks, even when it refuses the
            # request (IAM enforcement on); moto only when it serves it.
            region = bucket_region(environ)
            if region and iam_enforced():
                # moto fails an unsigned request (500) once IAM is enforced; S3 refuses it.
                start_response("403 Forbidden", [("x-amz-bucket-region", region),
                                                 ("Content-Length", "0")])
                return [b""]
            if region:
                def start_with_region(status, headers, *rest):
                    if not any(k.lower() == "x-amz-bucket-region" for k, _ in headers):
                        headers = list(headers) + [("x-amz-bucket-region", region)]
                    return start_response(status, headers, *rest)

                return self.app(environ, start_with_region)
        return self.app(environ, start_response)

    def describe(self, environ, body):
        match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = match.group(1) if match else "unsigned"
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            return service, target.split(".")[-1]
        if body and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            if "Action" in form:
                return service, form["Action"][0]
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if "Action" in query:
            return service, query["Action"][0]
        return service, f"{environ.get('REQUEST_METHOD')} {route(environ.get('PATH_INFO', ''))}"

    def control(self, path, environ, start_response):
        if path == "/__kopsrs/faults":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            config = json.loads(environ["wsgi.input"].read(length) or b"{}")
            with self.lock:
                self.reset(config)
            content = b"{}"
        elif path == "/__kopsrs/instance-credentials":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length))
            content = json.dumps(instance_credentials(request["role_arn"], request["session"])).encode()
        elif path == "/__kopsrs/lifecycle-actions":
            content = json.dumps(LIFECYCLE_ACTIONS).encode()
        else:
            with self.lock:
                content = json.dumps(
                    {
                        "total": self.total,
                        "injected": self.injected,
                        "throttled": self.throttled,
                        "by_action": dict(sorted(self.by_action.items())),
                        "s3_without_owner": dict(sorted(self.s3_without_owner.items())),
                    }
                ).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(content)))],
        )
        return [content]


def route(path):
    """A REST path with its identifiers left out, so calls group by operation."""
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts[:3] if parts and parts[0] == "2013-04-01" else parts[:1])


def error_response(service, environ, fault):
    """An error as the service itself would send it, so the SDK classifies it as it would AWS's."""
    throttle = fault == "throttle"
    request_id = "kopsrs-injected"
    if service == "ec2":
        code = "RequestLimitExceeded" if throttle else "InternalError"
        status = "503 Service Unavailable" if throttle else "500 Internal Server Error"
        content = (
            f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
            f"<Message>injected by the test proxy</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return status, [("Content-Type", "text/xml")], content.encode()
    if service == "s3":
        code = "SlowDown" if throttle else "InternalError"
        status = "503 Slow Down" if throttle else "500 Internal Server Error"
        content = f"<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
        return status, [("Content-Type", "application/xml")], content.encode()
    if environ.get("HTTP_X_AMZ_TARGET"):
        code = "ThrottlingException" if throttle else "InternalFailure"
        status = "400 Bad Request" if throttle else "500 Internal Server Error"
        content = json.dumps({"__type": code, "message": "injected by the test proxy"})
        headers = [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-query-error", f"{code};{'Sender' if throttle else 'Receiver'}"),
        ]
        return status, headers, content.encode()
    code = "Throttling" if throttle else "InternalFailure"
    status = "400 Bad Request" if throttle else "500 Internal Server Error"
    kind = "Sender" if throttle else "Receiver"
    content = (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
        f"<Message>injected by the test proxy</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, [("Content-Type", "text/xml")], content.encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto_server does (queue URLs)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, Faults(app), threaded=True)


if __name__ == "__main__":
    main()
