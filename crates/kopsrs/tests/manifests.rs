//! `kopsrs manifests` on the worked example (examples/manifests: a kube-style library of this
//! project's own, a common stack, two clusters, the committed JSON tree): the tree is up to
//! date and its drift is found; the offline checks find what a server would refuse; apply,
//! diff, garbage collection and delete run against scripts/fake_kube.py, read back with
//! `kubectl`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::kube::FakeKube;

fn example() -> PathBuf {
    support::repo_root().join("examples/manifests")
}

/// `kopsrs manifests ARGS` in `dir`.
fn manifests(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kopsrs"))
        .current_dir(dir)
        .env_remove("KOPS_CLUSTER_NAME")
        .env_remove("JSONNET_PATH")
        .arg("manifests")
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walk(from) {
        let target = to.join(entry.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => out.extend(walk(&path)),
            false => out.push(path),
        }
    }
    out.sort();
    out
}

#[test]
fn the_committed_tree_is_up_to_date_and_drift_is_reported_file_by_file() {
    let example = example();
    for cluster in ["dev.example.com", "prod.example.com"] {
        let main = format!("clusters/{cluster}/main.jsonnet");
        let out_dir = format!("generated/{cluster}");
        let out = manifests(
            &example,
            &[
                "tree", "-J", "lib", "-J", ".", &main, "--out", &out_dir, "--check",
            ],
        );
        assert!(out.status.success(), "{cluster}: {}", text(&out));
        let out = manifests(&example, &["check", "-J", "lib", "-J", ".", &main]);
        assert!(out.status.success(), "{cluster}: {}", text(&out));
    }

    // A copy whose tree drifted: one file edited, one removed, one left over.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&example, dir.path());
    let tree = dir.path().join("generated/prod.example.com");
    std::fs::write(tree.join("shop/deployment-web.json"), "{}\n").unwrap();
    std::fs::remove_file(tree.join("shop/service-api.json")).unwrap();
    std::fs::write(
        tree.join("shop/deployment-old.json"),
        "{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\"}\n",
    )
    .unwrap();
    // Not an object: not the tree's, never reported or removed.
    std::fs::write(tree.join("notes.json"), "{\"owner\": \"shop team\"}\n").unwrap();
    let args = [
        "tree",
        "-J",
        "lib",
        "-J",
        ".",
        "clusters/prod.example.com/main.jsonnet",
        "--out",
        "generated/prod.example.com",
        "--check",
    ];
    let out = manifests(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "generated/prod.example.com/shop/deployment-old.json: extra\n\
         generated/prod.example.com/shop/deployment-web.json: differs\n\
         generated/prod.example.com/shop/service-api.json: missing\n"
    );
    // Regenerating repairs exactly that.
    let out = manifests(dir.path(), &args[..args.len() - 1]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(manifests(dir.path(), &args).status.success());
    assert!(tree.join("notes.json").exists());
    assert!(!tree.join("shop/deployment-old.json").exists());
    assert_eq!(
        std::fs::read(tree.join("shop/deployment-web.json")).unwrap(),
        std::fs::read(example.join("generated/prod.example.com/shop/deployment-web.json")).unwrap()
    );

    // Each file is the object as the C++ jsonnet writes it.
    let cpp = Command::new("python3")
        .current_dir(&example)
        .arg(support::repo_root().join("scripts/cpp_jsonnet.py"))
        .args(["-J", "lib", "-J", ".", "-e"])
        .arg("(import 'clusters/prod.example.com/main.jsonnet').api.deployment")
        .output()
        .unwrap();
    if cpp.status.success() {
        assert_eq!(
            cpp.stdout,
            std::fs::read(example.join("generated/prod.example.com/shop/deployment-api.json"))
                .unwrap()
        );
        // The example's sources pass the C++ formatter's check (its default style), as the
        // CI recipe in docs/manifests.md asks of a team's.
        for file in walk(&example) {
            let name = file.display().to_string();
            if !(name.ends_with(".jsonnet") || name.ends_with(".libsonnet")) {
                continue;
            }
            let formatted = Command::new("python3")
                .arg(support::repo_root().join("scripts/cpp_jsonnet.py"))
                .arg("fmt")
                .arg(&file)
                .output()
                .unwrap();
            assert!(formatted.status.success(), "{name}");
            assert_eq!(
                String::from_utf8_lossy(&formatted.stdout),
                std::fs::read_to_string(&file).unwrap(),
                "{name} is not formatted as jsonnetfmt formats it"
            );
        }
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI needs the C++ jsonnet");
    }
}

#[test]
fn check_reports_each_mistake_with_its_object_and_field() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&example(), dir.path());
    std::fs::write(
        dir.path().join("broken.jsonnet"),
        r#"
local kube = import 'kube.libsonnet';
local stack = (import 'common/stack.libsonnet')('dev.example.com');
stack {
  // A namespaced object without a namespace.
  stray: kube.ConfigMap('stray', null) { data: { a: 'b' } },
  // An unknown field, and a wrong type.
  api+: { deployment+: { spec+: { replicass: 2 } } },
  web+: { deployment+: { spec+: { replicas: 'three' } } },
  // An API removed in 1.16.
  legacy: kube.Object('extensions/v1beta1', 'Deployment', 'legacy', 'shop'),
}
"#,
    )
    .unwrap();
    let out = manifests(
        dir.path(),
        &[
            "check",
            "-J",
            "lib",
            "-J",
            ".",
            "broken.jsonnet",
            "--kubernetes-version",
            "1.31",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kubernetesVersion"], "1.31");
    let got: Vec<(String, String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["check"].as_str().unwrap().to_string(),
                p["object"].as_str().unwrap().to_string(),
                p["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("schema", "Deployment.apps api -n shop", "spec.replicass"),
        (
            "removed-api",
            "Deployment.extensions legacy -n shop",
            "apiVersion",
        ),
        ("namespace", "ConfigMap stray", "metadata.namespace"),
        ("schema", "Deployment.apps web -n shop", "spec.replicas"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want, "{report:#}");
    let messages = report.to_string();
    assert!(messages.contains("replicass"), "{messages}");
    assert!(
        messages.contains("removed in Kubernetes 1.16"),
        "{messages}"
    );
    assert!(messages.contains("use apps/v1"), "{messages}");
    assert!(messages.contains("is not of type integer"), "{messages}");

    // A version kopsrs has no schemas for is refused, naming the ones it has.
    let out = manifests(
        dir.path(),
        &["check", "broken.jsonnet", "--kubernetes-version", "1.15"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("1.28, 1.29"), "{}", text(&out));
}

/// The example configuration against the fake API, as `manifests` runs it.
struct Api<'a> {
    dir: &'a Path,
    kube: &'a FakeKube,
    cluster: &'a str,
    kubeconfig: String,
}

impl Api<'_> {
    fn run(&self, verb: &str, file: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            verb,
            "-J",
            "lib",
            "-J",
            ".",
            file,
            "--name",
            self.cluster,
            "--kubeconfig",
            &self.kubeconfig,
        ];
        args.extend(extra);
        manifests(self.dir, &args)
    }

    fn calls(&self) -> serde_json::Value {
        self.kube.get("/__fake/calls")
    }

    fn reset(&self) {
        self.kube.control("DELETE", "/__fake/calls", "")
    }
}

const MAIN: &str = "clusters/prod.example.com/main.jsonnet";

#[test]
fn apply_diff_garbage_collection_and_delete_against_the_api() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&example(), dir.path());
    let cluster = "prod.example.com";
    let kube = FakeKube::standalone(dir.path(), cluster);
    let api = Api {
        dir: dir.path(),
        kube: &kube,
        cluster,
        kubeconfig: kube.kubeconfig.display().to_string(),
    };
    apply_then_change_out_of_band(&api);
    garbage_is_only_what_kopsrs_applied(&api);
    one_apply_per_tag_at_a_time(&api);
    bad_configurations_write_nothing(&api);
    definitions_first_and_delete_in_reverse(&api);
}

/// Apply in dependency order, re-apply without writes, drift shown by diff.
fn apply_then_change_out_of_band(api: &Api) {
    let (run, kube, main) = (
        |v: &str, f: &str, e: &[&str]| api.run(v, f, e),
        api.kube,
        MAIN,
    );
    let calls = || api.calls();
    let reset = || api.reset();
    // Before: everything would be created.
    let out = run("diff", main, &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("8 would change"), "{}", text(&out));

    // A dry run changes nothing.
    let out = run("apply", main, &["--gc-tag", "shop", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let ns = kube.kubectl(&["get", "namespaces", "-o", "name"], None);
    assert!(!String::from_utf8_lossy(&ns.stdout).contains("shop"));

    let out = run("apply", main, &["--gc-tag", "shop"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.matches(" created").count(), 8, "{printed}");
    // Dependency order: the namespace first, the Deployments last.
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines[0].starts_with("Namespace shop"), "{printed}");
    assert!(
        lines[5..].iter().all(|l| l.starts_with("Deployment.apps")),
        "{printed}"
    );

    // kubectl reads them back through the same API.
    let get = kube.kubectl(&["get", "deployments", "-n", "shop", "-o", "json"], None);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap();
    let mut names: Vec<(String, i64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [("api".into(), 3), ("web".into(), 4), ("worker".into(), 1)]
    );
    assert_eq!(
        list["items"][0]["metadata"]["labels"]["kopsrs.io/gc-tag"],
        "shop"
    );

    // Re-applying changes nothing and writes nothing: one list per kind and namespace.
    reset();
    let out = run("apply", main, &["--gc-tag", "shop"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("8 unchanged"), "{}", text(&out));
    let by_call = calls()["by_call"].clone();
    let writes: Vec<&String> = by_call
        .as_object()
        .unwrap()
        .keys()
        // The tag's lease is taken and given back (its own test is below).
        .filter(|k| !k.starts_with("list ") && !k.starts_with("get ") && !k.contains("leases"))
        .collect();
    assert!(writes.is_empty(), "{by_call:#}");
    assert_eq!(
        run("diff", main, &["--detailed-exitcode"]).status.code(),
        Some(0)
    );

    // Changed out of band: diff shows the field the configuration sets, exit 2.
    let scale = kube.kubectl(
        &[
            "scale",
            "deployment",
            "web",
            "-n",
            "shop",
            "--replicas",
            "7",
        ],
        None,
    );
    assert!(
        scale.status.success(),
        "{}",
        String::from_utf8_lossy(&scale.stderr)
    );
    let out = run("diff", main, &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        diff.contains("--- Deployment.apps web -n shop (live)"),
        "{diff}"
    );
    assert!(diff.contains("-  replicas: 7\n+  replicas: 4"), "{diff}");
    assert!(text(&out).contains("1 would change"), "{}", text(&out));
}

/// Garbage collection deletes only what kopsrs applied with the tag.
fn garbage_is_only_what_kopsrs_applied(api: &Api) {
    let (run, kube, dir) = (
        |v: &str, f: &str, e: &[&str]| api.run(v, f, e),
        api.kube,
        api.dir,
    );
    // Garbage: the worker leaves the configuration and goes. A label proves nothing: a
    // ConfigMap someone tagged by hand stays, here and in another namespace, and so do the
    // Endpoints the endpoints controller makes for a Service with its labels copied. One
    // applied by kopsrs but annotated to be kept stays, and so does what the tag does not
    // mark. (kubectl's `create configmap` sends protobuf, which the fake refuses: `create -f`.)
    let by_hand = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tagged, namespace: shop, labels: {kopsrs.io/gc-tag: shop}}\n---\n\
                   apiVersion: v1\nkind: Namespace\nmetadata: {name: other-team}\n---\n\
                   apiVersion: v1\nkind: ConfigMap\nmetadata: {name: theirs, namespace: other-team, labels: {kopsrs.io/gc-tag: shop}}\n---\n\
                   apiVersion: v1\nkind: Endpoints\nmetadata: {name: web, namespace: shop, labels: {kopsrs.io/gc-tag: shop, app: web}}\nsubsets: [{addresses: [{ip: 10.0.0.7}], ports: [{port: 8080}]}]\n---\n\
                   apiVersion: v1\nkind: ConfigMap\nmetadata: {name: untagged, namespace: shop}\n";
    let create = kube.kubectl(&["create", "-f", "-"], Some(by_hand));
    assert!(
        create.status.success(),
        "{}",
        String::from_utf8_lossy(&create.stderr)
    );
    // Applied by kopsrs with the tag, then annotated by a person to be kept.
    std::fs::write(
        dir.join("kept.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: shop}\n",
    )
    .unwrap();
    let out = run("apply", "kept.yaml", &["--gc-tag", "shop-kept"]);
    assert!(out.status.success(), "{}", text(&out));
    let annotate = kube.kubectl(
        &[
            "annotate",
            "configmap",
            "kept",
            "-n",
            "shop",
            "kopsrs.io/keep=true",
            "kopsrs.io/gc-tag=shop",
            "--overwrite",
        ],
        None,
    );
    assert!(
        annotate.status.success(),
        "{}",
        String::from_utf8_lossy(&annotate.stderr)
    );
    let label = kube.kubectl(
        &[
            "label",
            "configmap",
            "kept",
            "-n",
            "shop",
            "kopsrs.io/gc-tag=shop",
            "--overwrite",
        ],
        None,
    );
    assert!(
        label.status.success(),
        "{}",
        String::from_utf8_lossy(&label.stderr)
    );
    std::fs::write(
        dir.join("without-worker.jsonnet"),
        "(import 'clusters/prod.example.com/main.jsonnet') { worker:: super.worker }\n",
    )
    .unwrap();
    // kubectl owns web's replicas now: the apply stops on the conflict, names it, and
    // collects no garbage; --force-conflicts takes the field back.
    let out = run("apply", "without-worker.jsonnet", &["--gc-tag", "shop"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("conflict with \"kubectl\""),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("garbage collection skipped"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("(garbage)"), "{}", text(&out));
    let out = run(
        "apply",
        "without-worker.jsonnet",
        &["--gc-tag", "shop", "--force-conflicts"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains("Deployment.apps worker -n shop deleted (garbage)"),
        "{printed}"
    );
    assert!(
        printed.contains("ConfigMap tagged -n shop kept: carries the tag label but not kopsrs's kopsrs.io/gc-tag annotation"),
        "{printed}"
    );
    assert!(
        printed.contains("ConfigMap theirs -n other-team kept: carries the tag label"),
        "{printed}"
    );
    assert!(
        printed.contains("Endpoints web -n shop kept: made by a controller"),
        "{printed}"
    );
    assert!(
        printed.contains("ConfigMap kept -n shop kept: annotated kopsrs.io/keep"),
        "{printed}"
    );
    assert!(
        printed.contains("Deployment.apps web -n shop configured"),
        "{printed}"
    );
    assert_eq!(printed.matches("deleted").count(), 1, "{printed}");
    let left = kube.kubectl(
        &["get", "deployments,configmaps", "-n", "shop", "-o", "name"],
        None,
    );
    let left = String::from_utf8_lossy(&left.stdout);
    for name in [
        "deployment.apps/api",
        "deployment.apps/web",
        "configmap/kept",
        "configmap/untagged",
        "configmap/tagged",
        "configmap/shop-config",
    ] {
        assert!(left.contains(name), "{name} in {left}");
    }
    assert!(!left.contains("worker"), "{left}");
    for (what, namespace) in [
        ("endpoints/web", "shop"),
        ("configmap/theirs", "other-team"),
    ] {
        let got = kube.kubectl(&["get", what, "-n", namespace], None);
        assert!(got.status.success(), "{what} survives");
    }
}

/// The tag's Lease: a second apply with the tag waits for nobody and writes nothing.
fn one_apply_per_tag_at_a_time(api: &Api) {
    let (run, kube, main) = (
        |v: &str, f: &str, e: &[&str]| api.run(v, f, e),
        api.kube,
        MAIN,
    );
    let calls = || api.calls();
    let reset = || api.reset();
    // One apply per tag at a time: while another run holds the tag's lease, an apply with
    // that tag stops before it writes anything, naming the holder.
    let held = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: kopsrs-gc-shop, namespace: kube-system}\n\
                spec: {holderIdentity: ci@other-runner pid 7, leaseDurationSeconds: 600, renewTime: \"2099-01-01T00:00:00.000000Z\"}\n";
    let create = kube.kubectl(&["create", "-f", "-"], Some(held));
    assert!(
        create.status.success(),
        "{}",
        String::from_utf8_lossy(&create.stderr)
    );
    reset();
    let out = run("apply", main, &["--gc-tag", "shop"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("holds the lease kube-system/kopsrs-gc-shop: ci@other-runner pid 7"),
        "{}",
        text(&out)
    );
    let by_call = calls()["by_call"].clone();
    assert!(
        by_call
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k.starts_with("get ") || k.starts_with("list ")),
        "nothing written: {by_call:#}"
    );
    let gone = kube.kubectl(
        &["delete", "lease", "kopsrs-gc-shop", "-n", "kube-system"],
        None,
    );
    assert!(gone.status.success());
    let out = run("apply", main, &["--gc-tag", "shop"]);
    assert!(out.status.success(), "{}", text(&out));
    let lease = kube.kubectl(
        &["get", "lease", "kopsrs-gc-shop", "-n", "kube-system"],
        None,
    );
    assert!(!lease.status.success(), "given back after the apply");
}

/// Refusals before anything is written.
fn bad_configurations_write_nothing(api: &Api) {
    let (run, kube, dir, main) = (
        |v: &str, f: &str, e: &[&str]| api.run(v, f, e),
        api.kube,
        api.dir,
        MAIN,
    );
    // Refused before anything is written: a namespaced object without a namespace, and an
    // object the schema of the server's minor refuses.
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write(
        "unplaced.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine, namespace: shop}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nowhere}\n",
    );
    let out = run("apply", "unplaced.yaml", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out)
            .contains("ConfigMap nowhere (unplaced.yaml $[1]): metadata.namespace is not set"),
        "{}",
        text(&out)
    );
    write(
        "invalid.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine, namespace: shop}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: shop}\nspec: {replicas: three}\n",
    );
    let out = run("apply", "invalid.yaml", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("nothing was applied") && text(&out).contains("spec.replicas"),
        "{}",
        text(&out)
    );
    let fine = kube.kubectl(&["get", "configmap", "fine", "-n", "shop"], None);
    assert!(!fine.status.success(), "nothing was written");
    // No tag, and no objects with a tag, are refused; so is a folder without configuration.
    let out = run("apply", main, &["--gc-tag", ""]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    std::fs::create_dir(dir.join("empty")).unwrap();
    let out = run("apply", "empty", &["--gc-tag", "shop"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no .jsonnet, .json, .yaml or .yml file"),
        "{}",
        text(&out)
    );
    // A Namespace is never garbage: it would take everything in it.
    write(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: scratch}\n",
    );
    write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine, namespace: shop}\n",
    );
    assert!(run("apply", "ns.yaml", &["--gc-tag", "scratch"])
        .status
        .success());
    let out = run("apply", "cm.yaml", &["--gc-tag", "scratch"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Namespace scratch kept: a Namespace is never garbage-collected"),
        "{}",
        text(&out)
    );
    assert!(kube
        .kubectl(&["get", "namespace", "scratch"], None)
        .status
        .success());
}

/// A definition and its custom resource in one apply; delete in reverse order.
fn definitions_first_and_delete_in_reverse(api: &Api) {
    let (run, kube, dir) = (
        |v: &str, f: &str, e: &[&str]| api.run(v, f, e),
        api.kube,
        api.dir,
    );
    // A custom resource and its definition in one apply: the definition is established first.
    std::fs::write(
        dir.join("widgets.yaml"),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: shop\nspec:\n  size: 3\n---\n\
         apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    plural: widgets\n    singular: widget\n    kind: Widget\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
    )
    .unwrap();
    let out = run("apply", "widgets.yaml", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.starts_with("CustomResourceDefinition.apiextensions.k8s.io widgets.example.com created\nWidget.example.com w1 -n shop created"), "{printed}");
    let widget = kube.kubectl(
        &[
            "get",
            "widgets",
            "-n",
            "shop",
            "w1",
            "-o",
            "jsonpath={.spec.size}",
        ],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&widget.stdout), "3");

    // Delete: reverse order, the namespace last.
    let out = run("delete", "without-worker.jsonnet", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.trim_end().ends_with("Namespace shop deleted"),
        "{printed}"
    );
    assert_eq!(printed.matches(" deleted").count(), 7, "{printed}");
}

#[test]
fn show_finds_objects_as_kubecfg_does_and_names_stray_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.jsonnet"),
        "{ b: { apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'n' } }] }, a: null }",
    )
    .unwrap();
    let out = manifests(dir.path(), &["show", "a.jsonnet", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "x");
    std::fs::write(dir.path().join("bad.jsonnet"), "{ a: { b: [1] } }").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kopsrs"))
        .current_dir(dir.path())
        .args(["manifests", "show", "bad.jsonnet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait().unwrap();
    assert_eq!(out.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("bad.jsonnet: $.a.b[0]: looking for a Kubernetes object"),
        "{err}"
    );
}

/// Bitnami's layout: one folder per cluster, each defining the same objects differently.
/// Checked as one configuration they clash, with the way out named; `--each` checks each
/// folder on its own.
#[test]
fn check_each_checks_several_clusters_folders_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    for (cluster, replicas) in [("dev", 1), ("public", 3)] {
        let folder = dir.path().join(cluster);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("app.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: nginx:1.27}}]\n"
            ),
        )
        .unwrap();
    }
    let together = manifests(dir.path(), &["check", "dev", "public"]);
    assert!(!together.status.success());
    assert!(
        text(&together).contains("defined twice") && text(&together).contains("--each"),
        "{}",
        text(&together)
    );
    let each = manifests(
        dir.path(),
        &["check", "--each", "dev", "public", "-o", "json"],
    );
    assert!(each.status.success(), "{}", text(&each));
    let report: serde_json::Value = serde_json::from_slice(&each.stdout).unwrap();
    let configurations = report["configurations"].as_array().unwrap();
    assert_eq!(configurations.len(), 2);
    assert!(configurations.iter().all(|c| c["objects"] == 1), "{report}");
    assert_eq!(configurations[1]["files"][0], "public");
    // A mistake in one folder fails the run and is reported under that folder.
    std::fs::write(
        dir.path().join("public/bad.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: web}\nspec: {ports: [{port: \"eighty\"}]}\n",
    )
    .unwrap();
    let each = manifests(dir.path(), &["check", "--each", "dev", "public"]);
    assert!(!each.status.success());
    let out = text(&each);
    let public = out.find("== public").expect("a section per folder");
    assert!(out[public..].contains("error:"), "{out}");
    assert!(!out[..public].contains("error:"), "{out}");
}
