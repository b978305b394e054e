//! IAM roles for service accounts end to end, on moto: `update cluster --yes` publishes the
//! service-account issuer's discovery document and JWKS to the discovery store; a token
//! signed with the cluster's service-account key (as the API server signs one) verifies
//! against the published JWKS with a maintained JWT library (`jsonwebtoken`); its issuer is
//! the discovery document's, the API server's flag and the IAM OIDC provider's URL; before a
//! rotation, during it (both keys published) and after the old key is distrusted; and
//! `delete cluster` removes the documents.

mod support;

use std::process::Command;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use support::{ok, Moto};

const NAME: &str = "irsa.example.com";
const IMAGE: &str = "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721";
const ISSUER: &str = "https://oidc.s3.eu-west-1.amazonaws.com/irsa.example.com";

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
}

fn k(moto: &Moto) -> Command {
    let mut c = moto.kopsrs("state");
    c.env("AWS_REGION", "eu-west-1");
    c
}

fn object(moto: &Moto, bucket: &str, key: &str) -> String {
    moto.python(&format!(
        "print(aws('s3').get_object(Bucket='{bucket}', Key='{key}')['Body'].read().decode(), end='')"
    ))
}

fn jwks(moto: &Moto) -> jsonwebtoken::jwk::JwkSet {
    serde_json::from_str(&object(moto, "oidc", &format!("{NAME}/openid/v1/jwks"))).unwrap()
}

/// The keys of the service-account keyset in the state store: (ID, certificate PEM, private
/// key PEM), and the primary's ID.
fn service_account_keys(moto: &Moto) -> (Vec<(String, String, String)>, String) {
    let text = object(
        moto,
        "state",
        &format!("clusters/{NAME}/pki/private/service-account/keyset.yaml"),
    );
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let decode = |v: &serde_yaml_ng::Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let keys = doc["spec"]["keys"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_string(),
                decode(&k["publicMaterial"]),
                decode(&k["privateMaterial"]),
            )
        })
        .collect();
    (keys, doc["spec"]["primaryID"].as_str().unwrap().to_string())
}

/// The API server's key ID of a certificate, computed with openssl alone: the unpadded
/// base64url of the sha256 of the public key's DER.
fn api_server_kid(cert_pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary",
            cert.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out.stdout)
}

/// A token as the API server issues one for IRSA (audience sts.amazonaws.com), signed with
/// `key_pem` and naming `kid`.
fn token(key_pem: &str, kid: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    let claims = Claims {
        iss: ISSUER.into(),
        sub: "system:serviceaccount:default:app".into(),
        aud: "sts.amazonaws.com".into(),
        exp: 4_000_000_000,
    };
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Whether `token` verifies against the published JWKS, as IAM checks it: the key its `kid`
/// names, the issuer, the audience.
fn verifies(moto: &Moto, token: &str) -> bool {
    let set = jwks(moto);
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let Some(jwk) = set.find(&kid) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&["sts.amazonaws.com"]);
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).is_ok()
}

#[test]
fn service_account_tokens_verify_against_the_published_issuer_through_a_rotation() {
    let moto = Moto::start();
    moto.create_bucket("state");
    // In the cluster's region: the issuer's address names it.
    moto.python("aws('s3').create_bucket(Bucket='oidc', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})");
    moto.python("aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')");
    ok(k(&moto).args([
        "create",
        "cluster",
        "--name",
        NAME,
        "--image",
        IMAGE,
        "--dns-zone",
        "example.com",
        "--zones",
        "eu-west-1a",
        "--discovery-store",
        "s3://oidc",
        "--yes",
    ]));

    // The discovery document names the issuer and its JWKS.
    let discovery: serde_json::Value = serde_json::from_str(&object(
        &moto,
        "oidc",
        &format!("{NAME}/.well-known/openid-configuration"),
    ))
    .unwrap();
    assert_eq!(discovery["issuer"], ISSUER);
    assert_eq!(discovery["jwks_uri"], format!("{ISSUER}/openid/v1/jwks"));
    // IAM's OIDC provider is that issuer.
    let provider = moto.python(
        "i=aws('iam')\n\
         arn=i.list_open_id_connect_providers()['OpenIDConnectProviderList'][0]['Arn']\n\
         p=i.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)\n\
         print(json.dumps([p['Url'], sorted(p['ClientIDList'])]))",
    );
    let provider: serde_json::Value = serde_json::from_str(provider.trim()).unwrap();
    assert_eq!(
        format!(
            "https://{}",
            provider[0].as_str().unwrap().trim_start_matches("https://")
        ),
        ISSUER
    );
    assert!(
        provider[1].to_string().contains("amazonaws.com"),
        "{provider}"
    );
    // The API server signs with that issuer first, and still accepts kubeadm's own (tokens
    // issued before IRSA was turned on).
    let user_data = moto.python(&format!(
        "import base64, gzip\n\
         e=aws('ec2')\n\
         lt=e.describe_launch_templates(LaunchTemplateNames=['control-plane-eu-west-1a.masters.{NAME}'])['LaunchTemplates'][0]\n\
         v=e.describe_launch_template_versions(LaunchTemplateId=lt['LaunchTemplateId'], Versions=['$Latest'])['LaunchTemplateVersions'][0]\n\
         print(gzip.decompress(base64.b64decode(v['LaunchTemplateData']['UserData'])).decode(), end='')"
    ));
    let args: Vec<(String, String)> = kopsrs_bootstrap::embedded_kubeadm_documents(&user_data)
        .iter()
        .flat_map(|d| kopsrs_bootstrap::kubeadm::decode(d).unwrap())
        .find_map(|d| match d {
            kopsrs_bootstrap::kubeadm::Document::Cluster(c) => Some(
                c.api_server
                    .extra_args
                    .iter()
                    .map(|a| (a.name.clone(), a.value.clone()))
                    .collect(),
            ),
            _ => None,
        })
        .unwrap();
    let issuers: Vec<&str> = args
        .iter()
        .filter(|(n, _)| n == "service-account-issuer")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        issuers,
        [ISSUER, "https://kubernetes.default.svc.cluster.local"],
        "{args:?}"
    );
    assert!(args.contains(&(
        "service-account-jwks-uri".into(),
        format!("{ISSUER}/openid/v1/jwks")
    )));

    // A token signed with the service-account key verifies; one signed with another key
    // does not.
    let (keys, primary) = service_account_keys(&moto);
    let (first_id, first_cert, first_key) = keys[0].clone();
    assert_eq!(first_id, primary);
    let first_kid = api_server_kid(&first_cert);
    let old_token = token(&first_key, &first_kid);
    assert!(verifies(&moto, &old_token));
    let stranger = rcgen::KeyPair::generate().unwrap().serialize_pem();
    assert!(!verifies(&moto, &token(&stranger, &first_kid)));

    // Rotation: a new key, promoted; both are published, so the old token still verifies
    // and a token of the new primary does too.
    ok(k(&moto).args(["create", "keypair", "service-account", "--name", NAME]));
    ok(k(&moto).args(["promote", "keypair", "service-account", "--name", NAME]));
    ok(k(&moto).args(["update", "cluster", NAME, "--yes"]));
    assert_eq!(jwks(&moto).keys.len(), 2);
    let (keys, primary) = service_account_keys(&moto);
    let (_, new_cert, new_key) = keys.iter().find(|(id, _, _)| *id == primary).unwrap();
    assert_ne!(primary, first_id);
    let new_token = token(new_key, &api_server_kid(new_cert));
    assert!(
        verifies(&moto, &old_token),
        "a token from before the rotation"
    );
    assert!(verifies(&moto, &new_token));

    // The old key distrusted: its tokens stop verifying; the new primary's do.
    ok(k(&moto).args(["distrust", "keypair", "service-account", "--name", NAME]));
    ok(k(&moto).args(["update", "cluster", NAME, "--yes"]));
    assert_eq!(jwks(&moto).keys.len(), 1);
    assert!(!verifies(&moto, &old_token));
    assert!(verifies(&moto, &new_token));
    // Publishing keys changes no launch template: the re-plan is empty, and says the
    // documents are published by --yes.
    let (code, plan) = support::detailed_plan(k(&moto), NAME);
    assert_eq!(code, 0, "{plan}");
    let dry = k(&moto).args(["update", "cluster", NAME]).output().unwrap();
    let said =
        String::from_utf8_lossy(&dry.stderr).to_string() + &String::from_utf8_lossy(&dry.stdout);
    assert!(
        said.contains(&format!("publishes the service-account issuer's documents ({ISSUER}/.well-known/openid-configuration")),
        "{said}"
    );

    // delete cluster removes the documents, and nothing else of the bucket.
    moto.python(
        "aws('s3').put_object(Bucket='oidc', Key='other.example.com/openid/v1/jwks', Body=b'{}')",
    );
    ok(k(&moto).args(["delete", "cluster", NAME, "--yes"]));
    let left = moto.python(
        "print(json.dumps(sorted(o['Key'] for o in aws('s3').list_objects_v2(Bucket='oidc').get('Contents', []))))",
    );
    assert_eq!(left.trim(), r#"["other.example.com/openid/v1/jwks"]"#);
}

/// Turning IRSA on for a cluster that runs: a control plane that joins (a roll after
/// `update cluster --yes`) brings its API server the spec's flags and records them in the
/// cluster's kubeadm configuration; one that joins with the flags the cluster has does
/// nothing. The boot script's functions run with stub `kubeadm` and `kubectl`.
#[test]
fn a_joining_control_plane_brings_the_api_server_flags_of_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("file://{}", dir.path().join("state").display());
    ok(support::kopsrs(&state).args(["create", "cluster", NAME, "--zones", "eu-west-1a"]));
    // kops's test store: an issuer with a host, a store kopsrs cannot write (a warning for the
    // Terraform target, whose output is for review).
    ok(support::kopsrs(&state)
        .args(["edit", "cluster", NAME])
        .arg("--set")
        .arg(format!(
            "spec.serviceAccountIssuerDiscovery.discoveryStore=memfs://discovery.example.com/{NAME}"
        ))
        .arg("--set")
        .arg("spec.serviceAccountIssuerDiscovery.enableAWSOIDCProvider=true"));
    let tf = dir.path().join("tf");
    let out = ok(support::kopsrs(&state)
        .args(["update", "cluster", NAME, "--target", "terraform", "--out"])
        .arg(&tf));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("documents are not published"), "{said}");
    let user_data = std::fs::read_to_string(tf.join(format!(
        "data/aws_launch_template_control-plane-eu-west-1a.masters.{NAME}_user_data"
    )))
    .unwrap();
    // Everything the script defines, without running its command.
    let defined = &user_data[..user_data.find("\ncase \"${1:-boot}\" in").unwrap()];

    let root = dir.path().join("node");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(root.join("etc/kopsrs")).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let stub = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt as _;
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    stub(
        "kubeadm",
        r#"echo "kubeadm $*" >>"$KOPSRS_ROOT/calls.log"
case "$*" in
  "token generate") echo abcdef.0123456789abcdef ;;
  *"--config "*) cp "${@: -1}" "$KOPSRS_ROOT/config-at-$3.yaml" ;;
esac"#,
    );
    stub(
        "kubectl",
        r#"cat "$KOPSRS_ROOT/cluster-configuration.yaml""#,
    );
    let run = |configuration: &str| {
        std::fs::write(root.join("cluster-configuration.yaml"), configuration).unwrap();
        std::fs::remove_file(root.join("calls.log")).ok();
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{defined}\nNODE_NAME=n1 NODE_IP=10.0.0.1 API_HOST=api.{NAME}\nreconcile_api_server"
            ))
            .env("KOPSRS_ROOT", &root)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(root.join("calls.log")).unwrap_or_default()
    };

    // The cluster was made before IRSA: its configuration has no issuer flags.
    let calls = run("apiServer:\n  certSANs: [api.irsa.example.com]\nkubernetesVersion: v1.34.1\n");
    assert!(
        calls.contains("kubeadm init phase control-plane apiserver --config")
            && calls.contains("kubeadm init phase upload-config kubeadm --config"),
        "{calls}"
    );
    // What the node's API server and the cluster's configuration get: the spec's issuer
    // first, kubeadm's own after it.
    let uploaded = std::fs::read_to_string(root.join("config-at-upload-config.yaml")).unwrap();
    assert_eq!(
        uploaded,
        std::fs::read_to_string(root.join("config-at-control-plane.yaml")).unwrap()
    );
    let issuers: Vec<&str> = uploaded
        .lines()
        .skip_while(|l| !l.contains("name: service-account-issuer"))
        .filter_map(|l| l.trim().strip_prefix("value: "))
        .take(2)
        .collect();
    assert_eq!(issuers.len(), 2, "{uploaded}");
    assert_eq!(issuers[0], format!("https://discovery.example.com/{NAME}"));
    assert_eq!(issuers[1], "https://kubernetes.default.svc.cluster.local");
    assert!(
        !root.join("etc/kopsrs/kubeadm-desired.yaml").exists(),
        "no token left behind"
    );

    // A configuration that has the spec's flags already: nothing to do.
    let calls = run(&uploaded);
    assert!(!calls.contains("init phase"), "{calls}");
}

/// Issue 29's whole shape on moto: IRSA with roles for the addons, the cluster autoscaler,
/// the termination handler (queue mode) and external-dns. Applied, the addons are published
/// with their own roles' ARNs (not the control plane's permissions), each role exists and
/// trusts its service account through the cluster's OIDC provider; the re-plan is empty;
/// `delete cluster` leaves no role, queue, document or state behind.
#[test]
fn irsa_with_the_autoscaler_termination_handler_and_external_dns_applies_replans_and_deletes() {
    let name = "fleet.example.com";
    let moto = Moto::start();
    moto.create_bucket("state");
    moto.python(
        "aws('s3').create_bucket(Bucket='oidc', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})\n\
         aws('route53').create_hosted_zone(Name='example.com', CallerReference='t')",
    );
    let k = || {
        let mut c = moto.kopsrs("state");
        c.env("AWS_REGION", "eu-west-1");
        c
    };
    ok(k()
        .args(["create", "cluster", "--name", name, "--zones", "eu-west-1a"])
        .args(["--dns-zone", "example.com", "--image", IMAGE])
        .args(["--discovery-store", "s3://oidc"]));
    ok(k().args(["edit", "cluster", name]).args([
        "--set",
        "spec.iam.useServiceAccountExternalPermissions=true",
        "--set",
        "spec.clusterAutoscaler.enabled=true",
        "--set",
        "spec.externalDns.provider=external-dns",
    ]));
    ok(k().args(["update", "cluster", name, "--yes"]));

    let channel: serde_yaml_ng::Value = serde_yaml_ng::from_str(&object(
        &moto,
        "state",
        &format!("clusters/{name}/addons/bootstrap-channel.yaml"),
    ))
    .unwrap();
    let addon = |addon: &str| {
        channel["addons"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|a| a["name"].as_str() == Some(addon))
            .cloned()
            .unwrap_or_else(|| panic!("{addon} not published"))
    };
    let ca = serde_json::to_value(addon("cluster-autoscaler")["values"].clone()).unwrap();
    assert_eq!(
        ca["extraEnv"]["AWS_ROLE_ARN"],
        format!("arn:aws:iam::@ACCOUNT_ID@:role/cluster-autoscaler.kube-system.sa.{name}")
    );
    let dns = serde_json::to_value(addon("external-dns")["values"].clone()).unwrap();
    assert!(dns["env"]
        .to_string()
        .contains(&format!("external-dns.kube-system.sa.{name}")));
    let nth = object(
        &moto,
        "state",
        &format!("clusters/{name}/addons/node-termination-handler.aws/manifest.yaml"),
    );
    assert!(nth.contains(&format!(
        "arn:aws:iam::@ACCOUNT_ID@:role/aws-node-termination-handler.kube-system.sa.{name}"
    )));
    // Each role exists, trusts its own service account through the cluster's provider, and
    // the control plane's role carries none of their permissions.
    let roles = moto.python(&format!(
        "i=aws('iam')\n\
         for r in ['cluster-autoscaler', 'external-dns', 'aws-node-termination-handler']:\n    \
             role=i.get_role(RoleName=r+'.kube-system.sa.{name}')['Role']\n    \
             print(r, json.dumps(role['AssumeRolePolicyDocument']))\n\
         print('masters', json.dumps(i.get_role_policy(RoleName='masters.{name}', PolicyName='masters.{name}')['PolicyDocument']))"
    ));
    for account in [
        "cluster-autoscaler",
        "external-dns",
        "aws-node-termination-handler",
    ] {
        let line = roles
            .lines()
            .find(|l| l.starts_with(&format!("{account} ")))
            .unwrap();
        assert!(
            line.contains(&format!("system:serviceaccount:kube-system:{account}"))
                && line.contains("oidc-provider/oidc.s3.eu-west-1.amazonaws.com"),
            "{line}"
        );
    }
    let masters = roles.lines().find(|l| l.starts_with("masters ")).unwrap();
    for action in [
        "autoscaling:SetDesiredCapacity",
        "route53:ChangeResourceRecordSets",
        "sqs:ReceiveMessage",
    ] {
        assert!(!masters.contains(action), "{action}: {masters}");
    }

    // Nothing to change on a second run.
    let again = k()
        .args(["update", "cluster", name, "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    ok(k().args(["delete", "cluster", name, "--yes"]));
    let left = moto.python(&format!(
        "i=aws('iam')\n\
         print(len([r for r in i.list_roles()['Roles'] if r['RoleName'].endswith('{name}')]))\n\
         print(len(aws('sqs').list_queues().get('QueueUrls', [])))\n\
         print(aws('s3').list_objects_v2(Bucket='oidc').get('KeyCount'))\n\
         print(aws('s3').list_objects_v2(Bucket='state', Prefix='clusters/{name}/').get('KeyCount'))"
    ));
    assert_eq!(
        left.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "0", "0"],
        "roles, queues, discovery documents, state left"
    );
}
