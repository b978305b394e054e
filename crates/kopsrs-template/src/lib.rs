//! Cluster spec templates: `toolbox template`.
//!
//! Two engines, chosen by file name: kops-style Go templates (`gtmpl`, plus the sprig functions
//! that cluster templates use) and Jinja2 (`minijinja`) for `.j2` files. Values are merged from
//! files in order, then `--set` / `--set-string`. No I/O: callers pass text in.

mod kops;
mod sprig;

pub use kops::{ChannelLookups, Setup};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

/// Template rendering errors.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template's syntax is wrong, or it calls itself (see `recursive_template`).
    #[error("{name}: {message}")]
    Parse {
        /// The template's name (its file name).
        name: String,
        /// The engine's message.
        message: String,
    },
    /// Rendering failed: a function refused its arguments, a size limit was hit, and so on.
    #[error("{name}: {message}")]
    Render {
        /// The template's name (its file name).
        name: String,
        /// The engine's message.
        message: String,
    },
    /// With `fail_on_missing`, the template read a value that no values file or `--set` gave.
    #[error(
        "{name}: reads a value that is not set ({detail}); set it in a values file or with --set"
    )]
    Missing {
        /// The template's name (its file name).
        name: String,
        /// Where: the output line (Go templates) or the engine's message (Jinja2).
        detail: String,
    },
    /// A `--set` / `--set-string` argument without `=` or with an empty path.
    #[error("--set {0}: expected key.path=value")]
    BadSet(String),
    /// `--format-yaml` was asked for and the rendered output does not parse as YAML.
    #[error("{name}: output is not valid YAML: {message}")]
    NotYaml {
        /// The template's name (its file name).
        name: String,
        /// The YAML parser's message.
        message: String,
    },
}

/// Merges `overlay` into `base`: maps merge key by key, anything else is replaced.
pub fn merge_values(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_values(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Applies `key.path=value`. With `typed`, numbers, booleans and `null` are parsed (as Helm's
/// `--set` does); otherwise the value stays a string.
pub fn set_value(values: &mut Value, assignment: &str, typed: bool) -> Result<(), TemplateError> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| TemplateError::BadSet(assignment.to_string()))?;
    if path.is_empty() {
        return Err(TemplateError::BadSet(assignment.to_string()));
    }
    let value = if typed {
        match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            // Integers first, so `3` stays `3` rather than `3.0`.
            _ => raw
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| raw.parse::<f64>().map(Value::from))
                .unwrap_or_else(|_| Value::String(raw.into())),
        }
    } else {
        Value::String(raw.to_string())
    };
    // Walk the path, making maps as needed. A later assignment wins: a path through a value
    // that is not a map replaces it with one.
    let mut node = values;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        node = node
            .as_object_mut()
            .expect("object")
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    node.as_object_mut()
        .expect("object")
        .insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Which engine renders a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Go's text/template (gtmpl) with the sprig functions kops templates use.
    Go,
    /// Jinja2 (minijinja), with a `to_yaml` filter.
    Jinja,
}

impl Engine {
    /// `.j2` / `.jinja` / `.jinja2` files are Jinja2; everything else is a Go template.
    pub fn for_file(name: &str) -> Engine {
        if [".j2", ".jinja", ".jinja2"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            Engine::Jinja
        } else {
            Engine::Go
        }
    }
}

/// Renders one template. `name` names it in errors; with `setup.fail_on_missing`, reading a
/// value that is not set is a [`TemplateError::Missing`] rather than empty (Jinja2) or
/// `<no value>` (Go) in the output. Snippets are reachable as `include "name" .` and
/// `template "name" .` (Go) or `{% include "name" %}` (Jinja2).
pub fn render(
    name: &str,
    text: &str,
    values: &Value,
    engine: Engine,
    setup: &Setup,
) -> Result<String, TemplateError> {
    match engine {
        Engine::Go => kops::with_setup(setup, || render_go(name, text, values, setup)),
        Engine::Jinja => render_jinja(name, text, values, setup),
    }
}

/// A Go template with sprig's and kops's functions (kops's `indent` replaces sprig's),
/// parsed; refused when its `define`d templates call themselves.
fn go_template(text: &str) -> Result<gtmpl::Template, String> {
    if let Some(line) = non_ascii_in_action(text) {
        return Err(format!(
            "line {line}: a name inside {{{{ }}}} holds a character outside ASCII; use ASCII names (text outside actions and quoted strings may hold any character)"
        ));
    }
    if let Some(cycle) = recursive_template(text) {
        return Err(format!(
            "template {cycle} calls itself; recursive templates are not supported (they would exhaust the stack)"
        ));
    }
    let mut template = gtmpl::Template::default();
    // Functions are added before parsing: gtmpl resolves function names at parse time.
    template.add_funcs(sprig::FUNCTIONS);
    template.add_funcs(kops::FUNCTIONS);
    template.parse(text).map_err(|e| e.to_string())?;
    Ok(template)
}

fn to_gtmpl(value: &Value) -> gtmpl_value::Value {
    match value {
        Value::Null => gtmpl_value::Value::Nil,
        Value::Bool(b) => gtmpl_value::Value::Bool(*b),
        // Whole numbers stay integers and only fractions become floats, as Go's YAML decoding
        // hands values to kops templates; gtmpl keeps the two apart (`as_f64` is `None` for an
        // integer), so the choice decides what the sprig functions see.
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => gtmpl_value::Value::from(i),
            (_, Some(u), _) => gtmpl_value::Value::from(u),
            (_, _, Some(f)) => gtmpl_value::Value::from(f),
            _ => gtmpl_value::Value::Nil,
        },
        Value::String(s) => gtmpl_value::Value::String(s.clone()),
        Value::Array(items) => gtmpl_value::Value::Array(items.iter().map(to_gtmpl).collect()),
        Value::Object(map) => gtmpl_value::Value::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), to_gtmpl(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn render_go(
    name: &str,
    text: &str,
    values: &Value,
    setup: &Setup,
) -> Result<String, TemplateError> {
    let template = go_template(&kops::with_snippets(text, &setup.snippets)).map_err(|message| {
        TemplateError::Parse {
            name: name.into(),
            message,
        }
    })?;
    let context = gtmpl::Context::from(to_gtmpl(values));
    let output = template
        .render(&context)
        .map_err(|e| TemplateError::Render {
            name: name.into(),
            message: e.to_string(),
        })?;
    // gtmpl, like Go's text/template with missingkey=default, prints a missing value as
    // "<no value>"; that marker is how a missing key shows up after rendering.
    if setup.fail_on_missing {
        if let Some(line) = output.lines().position(|l| l.contains("<no value>")) {
            return Err(TemplateError::Missing {
                name: name.into(),
                detail: format!("output line {}", line + 1),
            });
        }
    }
    Ok(output)
}

/// A `define`d Go template that reaches itself through `template` calls, as
/// `"a" -> "b" -> "a"`. gtmpl has no depth limit (Go's text/template stops at 100,000 levels),
/// and a recursion would overflow the stack and abort the process, so such templates are
/// refused before rendering. Actions are scanned as text: `{{ define "x" }}` opens a
/// definition, `if`/`range`/`with`/`block` open a block, `end` closes the innermost one.
/// The line of the first action (`{{ ... }}`) with a non-ASCII character outside its
/// string constants. gtmpl's lexer slices names by bytes and panics on one (found by
/// fuzzing: `{{ $ˑx }}`); Go templates in kops's world name things in ASCII.
fn non_ascii_in_action(text: &str) -> Option<usize> {
    let mut offset = 0;
    for (i, part) in text.split("{{").enumerate() {
        if i > 0 {
            let body = part.split("}}").next().unwrap_or_default();
            let mut quote: Option<char> = None;
            let mut escaped = false;
            for c in body.chars() {
                match quote {
                    Some(q) => {
                        if escaped {
                            escaped = false;
                        } else if c == '\\' && q != '`' {
                            escaped = true;
                        } else if c == q {
                            quote = None;
                        }
                    }
                    None if matches!(c, '"' | '`' | '\'') => quote = Some(c),
                    None if !c.is_ascii() => {
                        return Some(text[..offset].matches('\n').count() + 1);
                    }
                    None => {}
                }
            }
        }
        offset += part.len() + 2;
    }
    None
}

fn recursive_template(text: &str) -> Option<String> {
    let mut calls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // The open blocks; a definition's entry holds its name.
    let mut open: Vec<Option<String>> = Vec::new();
    // A template's name is the first string constant of its action: Go takes it
    // double-quoted or raw (backticks); a name in neither form is taken whole so that a call
    // this reading cannot name still counts (as a call to a template of that text).
    let quoted = |s: &str| {
        let start = s.find(['"', '`'])?;
        let close = s[start..].chars().next()?;
        let rest = &s[start + 1..];
        let end = rest.find(close).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    };
    for action in text.split("{{").skip(1) {
        let body = action.split("}}").next().unwrap_or_default();
        let body = body.trim_start_matches('-').trim_end_matches('-').trim();
        let word = body.split_whitespace().next().unwrap_or_default();
        match word {
            "define" => open.push(quoted(body)),
            "if" | "range" | "with" | "block" => open.push(None),
            "end" => {
                open.pop();
            }
            "template" => {
                let current = open.iter().rev().flatten().next();
                if let (Some(current), Some(callee)) = (current, quoted(body)) {
                    calls.entry(current.clone()).or_default().insert(callee);
                }
            }
            _ => {}
        }
    }
    // Depth-first search for a cycle through the call graph.
    fn reaches(
        calls: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        target: &str,
        path: &mut Vec<String>,
    ) -> bool {
        for callee in calls.get(from).into_iter().flatten() {
            // A cycle that misses `target` is found from its own start; skipping it here
            // keeps this search from going round it for ever.
            if path.contains(callee) && callee != target {
                continue;
            }
            path.push(callee.clone());
            if callee == target || reaches(calls, callee, target, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    for start in calls.keys() {
        let mut path = vec![start.clone()];
        if reaches(&calls, start, start, &mut path) {
            return Some(
                path.iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(" -> "),
            );
        }
    }
    None
}

fn render_jinja(
    name: &str,
    text: &str,
    values: &Value,
    setup: &Setup,
) -> Result<String, TemplateError> {
    let fail_on_missing = setup.fail_on_missing;
    let mut environment = minijinja::Environment::new();
    let snippets = setup.snippets.clone();
    environment.set_loader(move |name| Ok(snippets.get(name).cloned()));
    let channel = setup.channel.clone();
    environment.add_function("ChannelRecommendedKopsKubernetesVersion", move || {
        channel.recommended_kubernetes()
    });
    let channel = setup.channel.clone();
    environment.add_function(
        "ChannelRecommendedKubernetesUpgradeVersion",
        move |version: String| {
            channel.upgrade(&version).ok_or_else(|| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("the channel has no advice for {version:?}"),
                )
            })
        },
    );
    let channel = setup.channel.clone();
    environment.add_function(
        "ChannelRecommendedImage",
        move |cloud: String, version: String, architecture: String| {
            channel
                .image(&cloud, &version, &architecture)
                .ok_or_else(|| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("no image for {cloud:?}, {version:?}, {architecture:?}"),
                    )
                })
        },
    );
    // Lenient is Jinja2's own default (an unset value renders empty); Strict makes reading one
    // an error, which becomes `TemplateError::Missing` below.
    environment.set_undefined_behavior(if fail_on_missing {
        minijinja::UndefinedBehavior::Strict
    } else {
        minijinja::UndefinedBehavior::Lenient
    });
    // Jinja2 drops a template's final newline by default; Go templates keep it, so keep it
    // here too and both engines render a file the same way.
    environment.set_keep_trailing_newline(true);
    // minijinja escapes by file name and takes `x.yml.j2` for YAML, where it writes every
    // value JSON-quoted (`master-"eu-west-1""a"`). A spec template composes YAML text
    // itself, as Jinja2 without autoescape does (kops users' and ReactiveOps' templates).
    environment.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // Python's methods on values (`.items()`, `.keys()`, `.get()`, `.upper()`, ...), which
    // Jinja2 templates written for Python call.
    environment.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    // The counterpart of sprig's `toYaml`, to write a values subtree into the spec.
    environment.add_filter(
        "to_yaml",
        |value: minijinja::Value| -> Result<String, minijinja::Error> {
            let json = serde_json::to_value(&value).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            })?;
            serde_yaml_ng::to_string(&json).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            })
        },
    );
    environment
        .add_template(name, text)
        .map_err(|e| TemplateError::Parse {
            name: name.into(),
            message: e.to_string(),
        })?;
    let template = environment.get_template(name).expect("just added");
    template
        .render(minijinja::Value::from_serialize(values))
        .map_err(|e| {
            if e.kind() == minijinja::ErrorKind::UndefinedError {
                TemplateError::Missing {
                    name: name.into(),
                    detail: e.to_string(),
                }
            } else {
                TemplateError::Render {
                    name: name.into(),
                    message: e.to_string(),
                }
            }
        })
}

/// Re-writes rendered output as clean YAML, document by document (`--format-yaml`).
pub fn format_yaml(name: &str, text: &str) -> Result<String, TemplateError> {
    use serde::Deserialize;
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value =
            serde_yaml_ng::Value::deserialize(document).map_err(|e| TemplateError::NotYaml {
                name: name.into(),
                message: e.to_string(),
            })?;
        // An empty document (a stray `---`, or only comments) would print as `null`.
        if value.is_null() {
            continue;
        }
        documents.push(
            serde_yaml_ng::to_string(&value).map_err(|e| TemplateError::NotYaml {
                name: name.into(),
                message: e.to_string(),
            })?,
        );
    }
    Ok(documents.join("---\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    /// A channel with fixed answers, to see the functions reach it.
    struct TestChannel;

    impl ChannelLookups for TestChannel {
        fn recommended_kubernetes(&self) -> String {
            "1.34.1".into()
        }
        fn upgrade(&self, version: &str) -> Option<String> {
            version.starts_with("1.33").then(|| "1.34.1".into())
        }
        fn image(&self, cloud: &str, _version: &str, architecture: &str) -> Option<String> {
            (cloud == "aws").then(|| format!("image-{architecture}"))
        }
    }

    fn setup(fail_on_missing: bool) -> Setup {
        Setup {
            fail_on_missing,
            snippets: BTreeMap::new(),
            channel: Arc::new(TestChannel),
        }
    }

    /// kops's functions: snippets through `include` and `template`, kops's `indent` (first
    /// and empty lines stay as they are), the channel look-ups.
    #[test]
    fn kops_functions() {
        let mut with_snippets = setup(true);
        with_snippets
            .snippets
            .insert("labels.yaml".into(), "team: {{ .team }}\n\nenv: dev".into());
        with_snippets
            .snippets
            .insert("loop".into(), "{{ include \"loop\" . }}".into());
        let text = "labels:\n  {{ include \"labels.yaml\" . | indent 2 }}\nagain: {{ template \"labels.yaml\" . }}\n\
                    k8s: {{ ChannelRecommendedKopsKubernetesVersion }} {{ ChannelRecommendedKubernetesUpgradeVersion \"1.33.2\" }}\n\
                    image: {{ ChannelRecommendedImage \"aws\" \"1.34.1\" \"arm64\" }}\n";
        let out = render(
            "t.yaml",
            text,
            &json!({"team": "sre"}),
            Engine::Go,
            &with_snippets,
        )
        .unwrap();
        assert_eq!(
            out,
            "labels:\n  team: sre\n\n  env: dev\nagain: team: sre\n\nenv: dev\nk8s: 1.34.1 1.34.1\nimage: image-arm64\n"
        );
        // Errors name what is wrong.
        let go = |text: &str| render("t.yaml", text, &json!({}), Engine::Go, &with_snippets);
        let missing = go("{{ include \"nope\" . }}").unwrap_err().to_string();
        assert!(
            missing.contains("no snippet \"nope\"") && missing.contains("labels.yaml"),
            "{missing}"
        );
        let looped = go("{{ include \"loop\" . }}").unwrap_err().to_string();
        assert!(looped.contains("nest more than"), "{looped}");
        let image = go("{{ ChannelRecommendedImage \"gce\" \"1.34.1\" \"amd64\" }}");
        assert!(image
            .unwrap_err()
            .to_string()
            .contains("no image for cloud \"gce\""));
        // The same in Jinja2.
        with_snippets
            .snippets
            .insert("labels.j2".into(), "team: {{ team }}".into());
        let jinja = render(
            "t.j2",
            "{% include 'labels.j2' %} {{ ChannelRecommendedImage('aws', '1.34.1', 'amd64') }}",
            &json!({"team": "sre"}),
            Engine::Jinja,
            &with_snippets,
        );
        assert_eq!(jinja.unwrap(), "team: sre image-amd64");
    }

    #[test]
    fn go_templates_with_sprig() {
        let values = json!({"name": "dev.example.com", "zones": ["eu-west-1a", "eu-west-1b"], "nodes": {"count": 3}});
        let text = r#"name: {{ .name | quote }}
zones: {{ join "," .zones }}
count: {{ .nodes.count }}
size: {{ default "t3.medium" .nodes.size }}
{{- range $i, $z := .zones }}
- {{ $i }}-{{ $z | upper }}
{{- end }}
labels:
{{ dict "team" "sre" | toYaml | nindent 2 | trimPrefix "\n" }}"#;
        let out = render("t.yaml", text, &values, Engine::Go, &setup(true)).unwrap();
        assert_eq!(
            out,
            "name: \"dev.example.com\"\nzones: eu-west-1a,eu-west-1b\ncount: 3\nsize: t3.medium\n- 0-EU-WEST-1A\n- 1-EU-WEST-1B\nlabels:\n  team: sre"
        );
    }

    /// sprig's `empty`: integer zero is empty (gtmpl keeps it an integer); arithmetic that
    /// overflows is an error, not a wrapped number.
    #[test]
    fn zero_is_empty_and_overflow_is_an_error() {
        let values = json!({"zero": 0, "big": i64::MAX});
        let out = render(
            "t.yaml",
            "{{ empty .zero }} {{ default 5 .zero }} {{ empty 1 }} {{ add 1 2 }}",
            &values,
            Engine::Go,
            &setup(true),
        )
        .unwrap();
        assert_eq!(out, "true 5 false 3");
        for text in [
            "{{ add .big 1 }}",
            "{{ mul .big 2 }}",
            "{{ sub 0 .big | sub 2 }}",
        ] {
            let err = render("t.yaml", text, &values, Engine::Go, &setup(true)).unwrap_err();
            assert!(err.to_string().contains("overflows"), "{text}: {err}");
        }
    }

    /// A `*.yml.j2` template as ReactiveOps and kops users write them: values unquoted, and
    /// Python's dict and string methods.
    #[test]
    fn jinja_yaml_templates_are_not_escaped_and_have_python_methods() {
        let values = json!({"region": "eu-west-1", "labels": {"team": "sre", "env": "dev"}});
        let text = "name: master-{{ region }}{{ 'a' }}\n\
                    {% for k, v in labels.items() %}{{ k }}={{ v.upper() }};{% endfor %}\n\
                    {{ labels.get('missing', 'none') }} {{ labels.keys() | list | length }}\n";
        let out = render("cluster.yml.j2", text, &values, Engine::Jinja, &setup(true)).unwrap();
        assert_eq!(out, "name: master-eu-west-1a\nenv=DEV;team=SRE;\nnone 2\n");
    }

    #[test]
    fn missing_values_fail_when_asked() {
        let err = render(
            "t.yaml",
            "a: {{ .missing }}\n",
            &json!({}),
            Engine::Go,
            &setup(true),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("reads a value that is not set"),
            "{err}"
        );
        assert!(render(
            "t.yaml",
            "a: {{ .missing }}\n",
            &json!({}),
            Engine::Go,
            &setup(false)
        )
        .is_ok());
        let err = render(
            "t.j2",
            "a: {{ missing }}\n",
            &json!({}),
            Engine::Jinja,
            &setup(true),
        )
        .unwrap_err();
        assert!(matches!(err, TemplateError::Missing { .. }), "{err}");
    }

    #[test]
    fn hostile_templates_fail_cleanly() {
        let go = |text: &str| render("t.tmpl", text, &json!({}), Engine::Go, &setup(false));
        // Recursion, direct and through another template, is refused before rendering.
        let direct = go(r#"{{define "x"}}{{template "x" .}}{{end}}{{template "x" .}}"#);
        assert!(
            matches!(&direct, Err(TemplateError::Parse { message, .. }) if message.contains("\"x\" -> \"x\" calls itself")),
            "{direct:?}"
        );
        let indirect = go(
            r#"{{define "a"}}{{if true}}{{template "b" .}}{{end}}{{end}}{{define "b"}}{{template "a" .}}{{end}}{{template "a" .}}"#,
        );
        assert!(indirect.is_err(), "{indirect:?}");
        // A non-ASCII name in an action is refused (gtmpl's lexer panicked on one, found by
        // fuzzing); any character is fine in text and in quoted strings.
        let e = go("ok\n{{ $ˑx.y }}").unwrap_err();
        assert!(
            matches!(&e, TemplateError::Parse { message, .. } if message.contains("line 2")),
            "{e:?}"
        );
        assert_eq!(
            go("ünïcode {{ \"ˑ\" }} `{{ `é` }}`").unwrap(),
            "ünïcode ˑ `é`"
        );
        // Raw (backtick) names are names too: this once overflowed the stack (exit 134).
        for text in [
            "{{define `x`}}{{template `x` .}}{{end}}{{template `x` .}}",
            "{{define \"x\"}}{{template `x` .}}{{end}}{{template \"x\" .}}",
        ] {
            let raw = go(text);
            assert!(
                matches!(&raw, Err(TemplateError::Parse { message, .. }) if message.contains("calls itself")),
                "{text}: {raw:?}"
            );
        }
        // Templates that call others without a cycle still render.
        let ok = go(
            r#"{{define "a"}}A{{end}}{{define "b"}}{{template "a" .}}B{{end}}{{template "b" .}}"#,
        );
        assert_eq!(ok.unwrap(), "AB");
        // Huge counts are errors, not aborts.
        for text in [
            "{{ until 100000000 | len }}",
            "{{ repeat 1000000000 \"abc\" }}",
            "{{ indent 100000000 \"a\" }}",
        ] {
            let result = go(text);
            assert!(
                matches!(&result, Err(TemplateError::Render { message, .. }) if message.contains("more than")),
                "{text}: {result:?}"
            );
        }
        assert_eq!(go("{{ until 3 | len }}").unwrap(), "3");
    }

    #[test]
    fn jinja_templates() {
        let out = render(
            "t.j2",
            "{% for z in zones %}- {{ z }}\n{% endfor %}",
            &json!({"zones": ["a", "b"]}),
            Engine::Jinja,
            &setup(true),
        )
        .unwrap();
        assert_eq!(out, "- a\n- b\n");
    }

    #[test]
    fn values_merge_in_order_then_sets() {
        let mut values = json!({"a": {"b": 1, "c": 2}, "l": [1]});
        merge_values(&mut values, json!({"a": {"b": 10}, "l": [2]}));
        set_value(&mut values, "a.d=true", true).unwrap();
        set_value(&mut values, "a.e=007", false).unwrap();
        assert_eq!(
            values,
            json!({"a": {"b": 10, "c": 2, "d": true, "e": "007"}, "l": [2]})
        );
    }
}
