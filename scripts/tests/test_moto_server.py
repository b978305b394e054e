"""Tests of scripts/moto_server.py's additions, over HTTP with boto3 as AWS's own clients
would send them.

Run from the repository root: python3 -m unittest discover -s scripts/tests -v
"""

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MOTO_SERVER = REPO / "scripts" / "moto_server.py"
DEFAULT_ACCOUNT = "123456789012"
OTHER_ACCOUNT = "111111111111"

try:
    import boto3
    import botocore.exceptions
    import moto  # noqa: F401
    HAVE_MOTO = True
except ImportError:
    HAVE_MOTO = False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server():
    """A moto_server.py of its own on a free loopback port: yields its endpoint."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("moto_server did not start")
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@unittest.skipUnless(HAVE_MOTO, "moto is not importable (pip install 'moto[server]')")
class ExpectedBucketOwnerTest(unittest.TestCase):
    """8.: S3 refuses a request naming an owner the bucket does not have, as S3 does."""

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.log = tempfile.TemporaryFile()
        cls.proc = subprocess.Popen(
            [sys.executable, str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(cls.port)],
            stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                break
            except OSError:
                if cls.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.1)
        cls.endpoint = f"http://127.0.0.1:{cls.port}"

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=10)
        cls.log.close()

    def client(self, service="s3", account=None, key="testing", secret="testing"):
        client = boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                              aws_access_key_id=key, aws_secret_access_key=secret)
        if account:
            # moto's multi-account switch: the request acts as this account.
            def name_account(request, **_):
                request.headers["x-moto-account-id"] = account
            client.meta.events.register("before-sign.*.*", name_account)
        return client

    def refused(self, call):
        with self.assertRaises(botocore.exceptions.ClientError) as raised:
            call()
        error = raised.exception.response
        return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]

    def test_the_owner_is_checked_on_reads_writes_and_lists(self):
        s3 = self.client()
        s3.create_bucket(Bucket="mine")
        s3.put_object(Bucket="mine", Key="k", Body=b"v", ExpectedBucketOwner=DEFAULT_ACCOUNT)
        got = s3.get_object(Bucket="mine", Key="k", ExpectedBucketOwner=DEFAULT_ACCOUNT)
        self.assertEqual(got["Body"].read(), b"v")
        self.assertEqual(
            [o["Key"] for o in s3.list_objects_v2(
                Bucket="mine", ExpectedBucketOwner=DEFAULT_ACCOUNT)["Contents"]], ["k"])

        for call in (
            lambda: s3.put_object(Bucket="mine", Key="k2", Body=b"x",
                                  ExpectedBucketOwner=OTHER_ACCOUNT),
            lambda: s3.get_object(Bucket="mine", Key="k", ExpectedBucketOwner=OTHER_ACCOUNT),
            lambda: s3.list_objects_v2(Bucket="mine", ExpectedBucketOwner=OTHER_ACCOUNT),
            lambda: s3.delete_object(Bucket="mine", Key="k", ExpectedBucketOwner=OTHER_ACCOUNT),
            lambda: s3.head_object(Bucket="mine", Key="k", ExpectedBucketOwner=OTHER_ACCOUNT),
        ):
            status, code = self.refused(call)
            self.assertEqual(status, 403)
            self.assertIn(code, ("AccessDenied", "403"))  # HEAD has no body: boto3 says 403
        # Nothing was written or deleted by the refused requests.
        self.assertEqual([o["Key"] for o in s3.list_objects_v2(Bucket="mine")["Contents"]],
                         ["k"])

    def test_calls_that_name_no_owner_are_counted(self):
        s3 = self.client()
        s3.create_bucket(Bucket="counted")
        self.raw("POST", "/__kopsrs/faults", {})
        s3.put_object(Bucket="counted", Key="k", Body=b"v", ExpectedBucketOwner=DEFAULT_ACCOUNT)
        s3.put_object(Bucket="counted", Key="k", Body=b"v")
        status, body = self.raw("GET", "/__kopsrs/calls", {})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["s3_without_owner"], {"s3:PUT /counted": 1})

    def test_a_bucket_of_another_account_is_refused_unless_named(self):
        self.client(account=OTHER_ACCOUNT).create_bucket(Bucket="theirs")
        # The default account reaches it (moto allows cross-account access, like a bucket
        # policy that lets everyone in), which is what the header is for.
        s3 = self.client()
        s3.put_object(Bucket="theirs", Key="k", Body=b"v")
        status, code = self.refused(lambda: s3.get_object(
            Bucket="theirs", Key="k", ExpectedBucketOwner=DEFAULT_ACCOUNT))
        self.assertEqual((status, code), (403, "AccessDenied"))
        got = s3.get_object(Bucket="theirs", Key="k", ExpectedBucketOwner=OTHER_ACCOUNT)
        self.assertEqual(got["Body"].read(), b"v")

    def test_an_access_key_of_another_account_owns_what_it_creates(self):
        iam = self.client("iam", account=OTHER_ACCOUNT)
        iam.create_user(UserName="other")
        key = iam.create_access_key(UserName="other")["AccessKey"]
        other = self.client(key=key["AccessKeyId"], secret=key["SecretAccessKey"])
        self.assertEqual(self.client("sts", key=key["AccessKeyId"],
                                     secret=key["SecretAccessKey"])
                         .get_caller_identity()["Account"], OTHER_ACCOUNT)
        other.create_bucket(Bucket="keyed")
        other.put_object(Bucket="keyed", Key="k", Body=b"v", ExpectedBucketOwner=OTHER_ACCOUNT)
        status, _ = self.refused(lambda: other.put_object(
            Bucket="keyed", Key="k", Body=b"v", ExpectedBucketOwner=DEFAULT_ACCOUNT))
        self.assertEqual(status, 403)

    def raw(self, method, path, headers):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()

    def test_the_header_must_be_signed_and_s3s_xml_is_returned(self):
        self.client().create_bucket(Bucket="signed")
        authorization = ("AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request,"
                         " SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00")
        status, body = self.raw("GET", "/signed?list-type=2", {
            "Authorization": authorization, "x-amz-expected-bucket-owner": DEFAULT_ACCOUNT})
        self.assertEqual(status, 403)
        self.assertIn("<Code>AccessDenied</Code>", body)
        self.assertIn("There were headers present in the request which were not signed", body)
        self.assertIn("<HeadersNotSigned>x-amz-expected-bucket-owner</HeadersNotSigned>", body)

        status, body = self.raw("GET", "/signed?list-type=2", {
            "Authorization": authorization.replace(
                "x-amz-date,", "x-amz-date;x-amz-expected-bucket-owner,"),
            "x-amz-expected-bucket-owner": OTHER_ACCOUNT})
        self.assertEqual(status, 403)
        self.assertTrue(body.startswith('<?xml version="1.0" encoding="UTF-8"?>'), body)
        self.assertIn("<Error><Code>AccessDenied</Code><Message>Access Denied</Message>", body)

        # A bucket that does not exist is moto's to answer (404 NoSuchBucket), owner or not.
        status, body = self.raw("GET", "/no-such-bucket?list-type=2",
                                {"x-amz-expected-bucket-owner": DEFAULT_ACCOUNT})
        self.assertEqual(status, 404)
        self.assertIn("NoSuchBucket", body)


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(HAVE_MOTO, "moto is not importable (pip install 'moto[server]')")
class WarmPoolTest(unittest.TestCase):
    """11.: a warm pool holds stopped instances at its size, listed with their template
    version, refilled after a termination, shrunk, and terminated with the pool or group;
    12.: CompleteLifecycleAction and DisableMetricsCollection."""

    def test_the_pool_fills_refills_shrinks_and_goes_with_its_group(self):
        with moto_server() as endpoint:
            args = dict(endpoint_url=endpoint, region_name="eu-west-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
            ec2, asg = boto3.client("ec2", **args), boto3.client("autoscaling", **args)
            template = ec2.create_launch_template(
                LaunchTemplateName="nodes",
                LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
            )["LaunchTemplate"]["LaunchTemplateId"]
            asg.create_auto_scaling_group(
                AutoScalingGroupName="g", MinSize=2, MaxSize=4, DesiredCapacity=2,
                LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
                AvailabilityZones=["eu-west-1a"])
            asg.put_warm_pool(AutoScalingGroupName="g", MinSize=1, MaxGroupPreparedCapacity=5)

            def pool():
                return [(i["InstanceId"], i["LifecycleState"], i["LaunchTemplate"]["Version"])
                        for i in asg.describe_warm_pool(AutoScalingGroupName="g")["Instances"]]

            warm = pool()
            # Prepared capacity 5 less the desired 2; never among the group's instances.
            self.assertEqual(len(warm), 3)
            self.assertTrue(all(state == "Warmed:Stopped" and v == "1" for _, state, v in warm))
            group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["g"])
            self.assertEqual(len(group["AutoScalingGroups"][0]["Instances"]), 2)
            ec2.create_launch_template_version(
                LaunchTemplateId=template,
                LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"})
            ec2.terminate_instances(InstanceIds=[warm[0][0]])
            refilled = pool()
            self.assertEqual(len(refilled), 3)
            self.assertNotIn(warm[0][0], [i for i, _, _ in refilled])
            self.assertEqual(sorted(v for _, _, v in refilled), ["1", "1", "2"])
            asg.put_warm_pool(AutoScalingGroupName="g", MinSize=1, MaxGroupPreparedCapacity=3)
            self.assertEqual(len(pool()), 1)
            # 12.: a hook completed for a warm instance; DisableMetricsCollection.
            asg.put_lifecycle_hook(AutoScalingGroupName="g", LifecycleHookName="kops-warmpool",
                                   LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING")
            asg.complete_lifecycle_action(AutoScalingGroupName="g",
                                          LifecycleHookName="kops-warmpool",
                                          InstanceId=pool()[0][0],
                                          LifecycleActionResult="CONTINUE")
            with self.assertRaises(botocore.exceptions.ClientError):
                asg.complete_lifecycle_action(AutoScalingGroupName="g",
                                              LifecycleHookName="other",
                                              InstanceId=pool()[0][0],
                                              LifecycleActionResult="CONTINUE")
            with self.assertRaises(botocore.exceptions.ClientError):
                asg.complete_lifecycle_action(AutoScalingGroupName="g",
                                              LifecycleHookName="kops-warmpool",
                                              InstanceId="i-0000000000000000f",
                                              LifecycleActionResult="CONTINUE")
            asg.enable_metrics_collection(AutoScalingGroupName="g", Granularity="1Minute",
                                          Metrics=["GroupMinSize", "GroupMaxSize"])
            asg.disable_metrics_collection(AutoScalingGroupName="g", Metrics=["GroupMaxSize"])
            metrics = asg.describe_auto_scaling_groups(
                AutoScalingGroupNames=["g"])["AutoScalingGroups"][0]["EnabledMetrics"]
            self.assertEqual([m["Metric"] for m in metrics], ["GroupMinSize"])
            asg.delete_auto_scaling_group(AutoScalingGroupName="g", ForceDelete=True)
            states = {i["State"]["Name"] for r in ec2.describe_instances()["Reservations"]
                      for i in r["Instances"]}
            self.assertEqual(states, {"terminated"})


@unittest.skipUnless(HAVE_MOTO, "moto is not importable (pip install 'moto[server]')")
class TargetGroupNameTest(unittest.TestCase):
    """9.: a target group's name may hold "--" (kops's names do); AWS's other rules hold."""

    def test_consecutive_hyphens_are_accepted_and_the_other_rules_kept(self):
        with moto_server() as endpoint:
            args = dict(endpoint_url=endpoint, region_name="eu-west-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
            vpc = boto3.client("ec2", **args).create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            elb = boto3.client("elbv2", **args)
            made = elb.create_target_group(Name="tcp-dev-example--ab12", Protocol="TCP",
                                           Port=443, VpcId=vpc)["TargetGroups"][0]
            self.assertEqual(made["TargetGroupName"], "tcp-dev-example--ab12")
            for bad in ["-tcp", "tcp-", "tcp_a", "a" * 33]:
                with self.assertRaises(botocore.exceptions.ClientError, msg=bad):
                    elb.create_target_group(Name=bad, Protocol="TCP", Port=443, VpcId=vpc)
