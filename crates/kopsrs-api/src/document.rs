//! Top-level kops documents and their strict YAML/JSON decoding.
//!
//! A file may hold several documents (`---`) in any order. Each is decoded strictly: an unknown
//! field, a wrong type or malformed YAML is an error carrying the file name, the line, the field
//! path (`spec.subnets[1].cidrr`) and, for a misspelt field, the closest known name.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::generated::{ClusterSpec, InstanceGroupSpec, KeysetSpec, SshCredentialSpec};
use crate::meta::ObjectMeta;

/// The API version kops writes. `kops/v1alpha2`, an older spelling, is accepted on input.
pub const API_VERSION: &str = "kops.k8s.io/v1alpha2";

// The four kops kinds share one shape (apiVersion, kind, metadata, spec); only the spec
// type differs, so one macro keeps their derives and serde attributes identical.
macro_rules! document_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $spec:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct $name {
            /// `kops.k8s.io/v1alpha2`, or the older spelling `kops/v1alpha2`.
            pub api_version: String,
            /// The document's kind, e.g. `Cluster`.
            pub kind: String,
            /// Name, labels and timestamps; empty when the document has none.
            #[serde(default)]
            pub metadata: ObjectMeta,
            /// The kind's spec; empty when the document has none.
            #[serde(default)]
            pub spec: $spec,
        }

        impl $name {
            /// The `kind` of this document type.
            pub const KIND: &'static str = $kind;

            /// A new, empty document with the given name.
            pub fn new(name: impl Into<String>) -> Self {
                $name {
                    api_version: API_VERSION.to_string(),
                    kind: $kind.to_string(),
                    metadata: ObjectMeta { name: name.into(), ..ObjectMeta::default() },
                    spec: Default::default(),
                }
            }
        }
    };
}

document_type!(
    /// A kops `Cluster`.
    Cluster, "Cluster", ClusterSpec
);
document_type!(
    /// A kops `InstanceGroup`.
    InstanceGroup, "InstanceGroup", InstanceGroupSpec
);
document_type!(
    /// A kops `SSHCredential` (the admin SSH public key).
    SshCredential, "SSHCredential", SshCredentialSpec
);
document_type!(
    /// A kops `Keyset` (a CA or signing key with its rotation history).
    Keyset, "Keyset", KeysetSpec
);

/// One decoded document of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A `Cluster`.
    Cluster(Box<Cluster>),
    /// An `InstanceGroup`.
    InstanceGroup(Box<InstanceGroup>),
    /// An `SSHCredential`.
    SshCredential(Box<SshCredential>),
    /// A `Keyset`.
    Keyset(Box<Keyset>),
    /// A document of another API group (e.g. `KubeSchedulerConfiguration`), which kops stores
    /// beside the cluster as an "additional object" for the nodes. Kept verbatim.
    Additional(Box<serde_json::Value>),
}

impl Document {
    /// `Kind/name`, as messages print it.
    pub fn describe(&self) -> String {
        let (kind, name) = match self {
            Document::Cluster(c) => (Cluster::KIND, &c.metadata.name),
            Document::InstanceGroup(g) => (InstanceGroup::KIND, &g.metadata.name),
            Document::SshCredential(s) => (SshCredential::KIND, &s.metadata.name),
            Document::Keyset(k) => (Keyset::KIND, &k.metadata.name),
            Document::Additional(v) => {
                let kind = v["kind"].as_str().unwrap_or_default();
                let name = v["metadata"]["name"].as_str().unwrap_or_default();
                return format!("{kind}/{name}");
            }
        };
        format!("{kind}/{name}")
    }

    fn to_value(&self) -> serde_json::Value {
        let value = match self {
            Document::Cluster(c) => serde_json::to_value(c),
            Document::InstanceGroup(g) => serde_json::to_value(g),
            Document::SshCredential(s) => serde_json::to_value(s),
            Document::Keyset(k) => serde_json::to_value(k),
            Document::Additional(v) => Ok(v.as_ref().clone()),
        };
        value.expect("API types always serialize")
    }
}

/// A document that could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{source_name}{location}: {}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct DecodeError {
    /// Where the text came from (a file name, `-` for stdin, or an object key).
    pub source_name: String,
    /// `:line:column` (1-based) when known, else empty.
    pub location: String,
    /// The field path, e.g. `spec.subnets[0].cidrr`; empty for errors outside any field.
    pub path: String,
    /// What is wrong, with a suggestion where one is known.
    pub message: String,
}

/// The format documents are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// YAML, documents separated by `---`.
    #[default]
    Yaml,
    /// JSON: one object, or an array of them.
    Json,
}

#[derive(Deserialize)]
struct TypeMeta {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
}

/// Splits a YAML stream into documents with their first line (0-based).
///
/// serde_yaml_ng can iterate a stream, but a document's kind must be read before it can be
/// decoded strictly, which needs each document's text; YAML forbids `---` at the start of a line
/// inside content, so splitting on it is exact.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut documents = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (number, line) in text.lines().enumerate() {
        let marker =
            line == "---" || line.starts_with("--- ") || line == "..." || line.starts_with("---\t");
        if marker {
            documents.push((start, std::mem::take(&mut current)));
            // The line after the marker starts the next document; a marker may carry content
            // (`--- {a: 1}`), which we keep by replacing the marker with spaces.
            start = number;
            if let Some(rest) = line.strip_prefix("---") {
                current.push_str(&" ".repeat(3));
                current.push_str(rest);
            }
            current.push('\n');
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.push((start, current));
    documents
        .into_iter()
        .filter(|(_, doc)| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// The largest spec text kopsrs decodes. kops specs are a few kilobytes; this leaves room
/// for embedded files (`fileAssets`, `additionalUserData`) and refuses what is not a spec.
pub const MAX_SPEC_BYTES: usize = 4 << 20;

/// The deepest nesting a spec may have. kops's deepest field is about ten levels down; the
/// YAML parser's cost grows with the square of the depth, so deeper text is refused unread.
pub const MAX_DEPTH: usize = 64;

/// The line (1-based) where `text` first nests deeper than [`MAX_DEPTH`], and that depth: a
/// single linear scan counting block indentation levels, `- ` sequence entries and open flow
/// brackets outside quotes.
pub fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        if flow == 0 && !content.is_empty() && !content.starts_with('#') {
            let indent = line.len() - content.len();
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last().is_none_or(|&top| top < indent) {
                indents.push(indent);
            }
        }
        let dashes = content
            .split_inclusive(' ')
            .take_while(|part| part.trim_end() == "-")
            .count();
        let mut quote: Option<char> = None;
        let mut deepest_flow = flow;
        for c in content.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    flow += 1;
                    deepest_flow = deepest_flow.max(flow);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
        let depth = indents.len() + dashes + deepest_flow;
        if depth > MAX_DEPTH {
            return Some((number + 1, depth));
        }
    }
    None
}

/// How strictly specs are read: kubectl's `--validate` values. kops itself drops unknown
/// fields silently; kopsrs refuses them by default so that a typo is caught, and offers the
/// other two for specs that carry fields kops stopped reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validation {
    /// An unknown field is an error (the default).
    #[default]
    Strict,
    /// An unknown field is dropped and reported.
    Warn,
    /// An unknown field is dropped silently.
    Ignore,
}

impl Validation {
    /// Parses `strict`, `warn`, `ignore`, and kubectl's older `true` (strict) / `false`
    /// (ignore).
    pub fn parse(value: &str) -> Result<Validation, String> {
        match value {
            "strict" | "true" => Ok(Validation::Strict),
            "warn" => Ok(Validation::Warn),
            "ignore" | "false" => Ok(Validation::Ignore),
            other => Err(format!(
                "{other:?} is not a validation mode; use strict, warn or ignore"
            )),
        }
    }
}

/// Documents as decoded, with the unknown fields that were dropped to decode them (only
/// under [`Validation::Warn`] and [`Validation::Ignore`]), each as an error naming the field.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The documents, in order.
    pub documents: Vec<Document>,
    /// One entry per dropped field.
    pub dropped: Vec<DecodeError>,
}

/// Decodes every document in `text` strictly. `source_name` names the text in errors.
///
/// All documents are decoded before anything is returned, and every error is collected, so a
/// caller can report them all at once and write nothing.
pub fn decode_documents(text: &str, source_name: &str) -> Result<Vec<Document>, Vec<DecodeError>> {
    decode_documents_with(text, source_name, Validation::Strict).map(|d| d.documents)
}

/// [`decode_documents`] with unknown fields treated as `validation` says.
pub fn decode_documents_with(
    text: &str,
    source_name: &str,
    validation: Validation,
) -> Result<Decoded, Vec<DecodeError>> {
    let refuse = |location: String, message: String| {
        Err(vec![DecodeError {
            source_name: source_name.to_string(),
            location,
            path: String::new(),
            message,
        }])
    };
    if text.len() > MAX_SPEC_BYTES {
        return refuse(
            String::new(),
            format!(
                "is {} bytes, more than the {} MiB a spec may be; is this the right file?",
                text.len(),
                MAX_SPEC_BYTES >> 20
            ),
        );
    }
    if let Some((line, depth)) = too_deep(text) {
        return refuse(
            format!(":{line}"),
            format!("nests {depth} levels deep, more than the {MAX_DEPTH} a spec may; is this the right file?"),
        );
    }
    // Several documents as JSON are an array (what `get -o json` writes): read it back.
    let documents = if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<serde_json::Value>>(text) {
            Ok(items) => items
                .iter()
                .map(|item| {
                    (
                        0,
                        serde_json::to_string(item).expect("JSON values serialize"),
                    )
                })
                .collect(),
            Err(e) => {
                return refuse(
                    format!(":{}:{}", e.line(), e.column()),
                    format!("is not a JSON array of objects: {e}"),
                )
            }
        }
    } else {
        split_documents(text)
    };
    let mut decoded = Decoded::default();
    let mut errors = Vec::new();
    for (first_line, doc) in documents {
        let mut dropped = Vec::new();
        let lenient = (validation != Validation::Strict).then_some(&mut dropped);
        match decode_one(&doc, first_line, source_name, lenient) {
            Ok(document) => decoded.documents.push(document),
            Err(mut found) => errors.append(&mut found),
        }
        decoded
            .dropped
            .extend(dropped.into_iter().map(|path| DecodeError {
                source_name: source_name.to_string(),
                location: format!(":{}", first_line + 1),
                path,
                message: "unknown field, dropped".to_string(),
            }));
    }
    if errors.is_empty() {
        Ok(decoded)
    } else {
        Err(errors)
    }
}

/// One document; with `dropped`, unknown fields are removed (their paths pushed there)
/// instead of refused. Every error of its fields is returned, not only the first.
fn decode_one(
    text: &str,
    first_line: usize,
    source_name: &str,
    dropped: Option<&mut Vec<String>>,
) -> Result<Document, Vec<DecodeError>> {
    decode_header(text, first_line, source_name, dropped).map_err(|e| match e {
        Refused::One(error) => vec![error],
        Refused::Fields(errors) => errors,
    })
}

/// Why a document was refused: at its header (one error), or in its fields (each).
enum Refused {
    One(DecodeError),
    Fields(Vec<DecodeError>),
}

impl From<DecodeError> for Refused {
    fn from(error: DecodeError) -> Refused {
        Refused::One(error)
    }
}

fn decode_header(
    text: &str,
    first_line: usize,
    source_name: &str,
    dropped: Option<&mut Vec<String>>,
) -> Result<Document, Refused> {
    let error = |location: String, path: String, message: String| DecodeError {
        source_name: source_name.to_string(),
        location,
        path,
        message,
    };
    let type_meta: TypeMeta = serde_yaml_ng::from_str(text).map_err(|e| {
        let location = yaml_location(&e, first_line);
        error(location, String::new(), clean_message(&e.to_string()))
    })?;
    let here = format!(":{}", first_line + 1);
    match type_meta.api_version.as_deref() {
        Some(API_VERSION) | Some("kops/v1alpha2") => {}
        Some(other)
            if !other.starts_with("kops.k8s.io/")
                && !other.starts_with("kops/")
                && type_meta.kind.is_some() =>
        {
            let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
                error(
                    yaml_location(&e, first_line),
                    String::new(),
                    clean_message(&e.to_string()),
                )
            })?;
            let value = serde_json::to_value(value)
                .map_err(|e| error(here.clone(), String::new(), e.to_string()))?;
            // A YAML tag (`kind: !Foo`) reads as a string above but converts to a map here.
            for field in ["apiVersion", "kind"] {
                if !value[field].is_string() {
                    return Err(error(
                        here,
                        field.into(),
                        format!("must be a plain string, not {}", value[field]),
                    )
                    .into());
                }
            }
            return Ok(Document::Additional(Box::new(value)));
        }
        Some(other) => {
            return Err(error(
                here,
                "apiVersion".into(),
                format!("{other:?} is not supported; use {API_VERSION}"),
            )
            .into())
        }
        None => {
            return Err(error(
                here,
                "apiVersion".into(),
                format!("missing; add `apiVersion: {API_VERSION}`"),
            )
            .into())
        }
    }
    let kind = type_meta.kind.unwrap_or_default();
    let decoded = match kind.as_str() {
        "Cluster" => typed::<Cluster>(text, dropped).map(|d| Document::Cluster(Box::new(d))),
        "InstanceGroup" => typed::<InstanceGroup>(text, dropped).map(|d| Document::InstanceGroup(Box::new(d))),
        "SSHCredential" => typed::<SshCredential>(text, dropped).map(|d| Document::SshCredential(Box::new(d))),
        "Keyset" => typed::<Keyset>(text, dropped).map(|d| Document::Keyset(Box::new(d))),
        "" => return Err(error(here, "kind".into(), "missing; expected Cluster, InstanceGroup, SSHCredential or Keyset".into()).into()),
        other => {
            return Err(error(
                here,
                "kind".into(),
                format!("{other:?} is not a kops kind; expected Cluster, InstanceGroup, SSHCredential or Keyset"),
            ).into())
        }
    };
    decoded.map_err(|found| {
        Refused::Fields(
            found
                .into_iter()
                .map(|(path, e)| {
                    let location = match e.location() {
                        Some(_) => yaml_location(&e, first_line),
                        None => line_of(text, &path)
                            .map(|line| format!(":{}", first_line + line))
                            .unwrap_or_default(),
                    };
                    error(location, path, clean_message(&e.to_string()))
                })
                .collect(),
        )
    })
}

/// The line (1-based, within the document) of the last key of `path` when exactly one line
/// of `text` holds that key: where an error found after the first (which has no position of
/// its own) is shown.
fn line_of(text: &str, path: &str) -> Option<usize> {
    let key = path.rsplit(['.', ']']).next().filter(|k| !k.is_empty())?;
    let matches: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start().trim_start_matches("- ").trim_start();
            let line = line.trim_start_matches(['"', '\'']);
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start_matches(['"', '\'']).starts_with(':'))
        })
        .map(|(index, _)| index + 1)
        .collect();
    match matches.as_slice() {
        [line] => Some(*line),
        _ => None,
    }
}

/// Strict decoding, or with `dropped`, decoding that removes each unknown field the strict
/// decoder names and tries again (the types deny unknown fields; serde offers no switch to
/// ignore them at run time, so they are taken out of the value instead).
fn typed<T: serde::de::DeserializeOwned>(
    text: &str,
    dropped: Option<&mut Vec<String>>,
) -> Result<T, Vec<(String, serde_yaml_ng::Error)>> {
    let first = strict::<T>(text);
    let Some(dropped) = dropped else {
        // Strict: the first error, then every other field error the document has.
        return first.map_err(|first| {
            let more = later_errors::<T>(text, &first.0);
            std::iter::once(first).chain(more).collect()
        });
    };
    typed_lenient(text, first, dropped).map_err(|e| vec![e])
}

/// The field errors of a document after the first one (`first`, its path): each field
/// that fails is taken out of the value and the rest decoded again, until it decodes or an
/// error names no field that can be taken out. A bound keeps a pathological document cheap.
fn later_errors<T: serde::de::DeserializeOwned>(
    text: &str,
    first: &str,
) -> Vec<(String, serde_yaml_ng::Error)> {
    let Ok(mut value) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for _ in 0..100 {
        let Err(e) = serde_path_to_error::deserialize::<_, T>(value.clone()) else {
            break;
        };
        let path: Vec<serde_path_to_error::Segment> = e.path().iter().cloned().collect();
        let shown = e.path().to_string();
        if !remove(&mut value, &path) {
            break;
        }
        if shown != first {
            found.push((shown, e.into_inner()));
        }
    }
    found
}

/// Lenient decoding: each unknown field the strict decoder names is removed (its path
/// pushed to `dropped`) and the rest decoded again.
fn typed_lenient<T: serde::de::DeserializeOwned>(
    text: &str,
    first: Result<T, (String, serde_yaml_ng::Error)>,
    dropped: &mut Vec<String>,
) -> Result<T, (String, serde_yaml_ng::Error)> {
    match first {
        Err((_, ref e)) if e.to_string().contains("unknown field `") => {}
        other => return other,
    }
    let mut value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| (String::new(), e))?;
    loop {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(decoded) => return Ok(decoded),
            Err(e) => {
                let path: Vec<serde_path_to_error::Segment> = e.path().iter().cloned().collect();
                let shown = e.path().to_string();
                let inner = e.into_inner();
                let unknown = inner.to_string().contains("unknown field `");
                if !unknown || !remove(&mut value, &path) {
                    return Err((shown, inner));
                }
                dropped.push(shown);
            }
        }
    }
}

/// Removes the map entry at `path` (the last segment is the key); false when it is not there.
fn remove(value: &mut serde_yaml_ng::Value, path: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = value;
    for segment in parents {
        current = match (segment, current) {
            (Segment::Map { key }, serde_yaml_ng::Value::Mapping(map)) => {
                match map.get_mut(key.as_str()) {
                    Some(next) => next,
                    None => return false,
                }
            }
            (Segment::Seq { index }, serde_yaml_ng::Value::Sequence(items)) => {
                match items.get_mut(*index) {
                    Some(next) => next,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match (last, current) {
        (Segment::Map { key }, serde_yaml_ng::Value::Mapping(map)) => {
            map.remove(key.as_str()).is_some()
        }
        _ => false,
    }
}

fn strict<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (String, serde_yaml_ng::Error)> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        (
            if path == "." { String::new() } else { path },
            e.into_inner(),
        )
    })
}

fn yaml_location(error: &serde_yaml_ng::Error, first_line: usize) -> String {
    match error.location() {
        Some(mark) => format!(":{}:{}", first_line + mark.line(), mark.column()),
        None => String::new(),
    }
}

/// Drops serde_yaml's trailing location (we print our own) and turns serde's long
/// "expected one of …" list for an unknown field into the one closest name.
fn clean_message(message: &str) -> String {
    let message = match message.find(" at line ") {
        Some(index) => &message[..index],
        None => message,
    };
    // serde_yaml_ng prefixes its own path (`spec.subnets[0]: …`); we print ours.
    let message = match message.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') => rest,
        _ => message,
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected
            .strip_prefix(", expected one of")
            .or_else(|| expected.strip_prefix(", expected"))
            .unwrap_or("");
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return match crate::closest(field, known.iter().copied()) {
            Some(name) => format!("unknown field `{field}`; did you mean `{name}`?"),
            None if known.is_empty() => {
                format!("unknown field `{field}`; this object has no fields")
            }
            None => {
                format!("unknown field `{field}`; remove it (kops v1alpha2 has no such field here)")
            }
        };
    }
    message.to_string()
}

/// Writes documents as kops does: YAML documents separated by `---`, or JSON (one object, or a
/// list when there are several).
pub fn encode_documents(documents: &[Document], format: OutputFormat) -> String {
    match format {
        OutputFormat::Yaml => {
            let parts: Vec<String> = documents
                .iter()
                .map(|d| {
                    serde_yaml_ng::to_string(&d.to_value()).expect("JSON values always serialize")
                })
                .collect();
            parts.join("\n---\n\n")
        }
        OutputFormat::Json => {
            let value = match documents {
                [one] => one.to_value(),
                many => serde_json::Value::Array(many.iter().map(Document::to_value).collect()),
            };
            let mut text =
                serde_json::to_string_pretty(&value).expect("JSON values always serialize");
            text.push('\n');
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: a.example.com\nspec:\n  networkCIDR: 10.0.0.0/16\n";

    #[test]
    fn a_tagged_kind_is_refused() {
        // Found by the fuzzer: it decoded, but its kind became a map on the way out.
        let text = "apiVersion: example.com/v1\nkind: !Widget\nmetadata:\n  name: w\n";
        let errors = decode_documents(text, "t").unwrap_err();
        assert_eq!(errors[0].path, "kind", "{errors:?}");
        assert!(errors[0].message.contains("plain string"), "{errors:?}");
    }

    #[test]
    fn several_documents_written_as_json_read_back() {
        let text = format!(
            "{MINIMAL}---\n{}",
            MINIMAL.replace("a.example", "b.example")
        );
        let documents = decode_documents(&text, "t").unwrap();
        let json = encode_documents(&documents, OutputFormat::Json);
        assert!(json.starts_with('['), "{json}");
        assert_eq!(decode_documents(&json, "t").unwrap(), documents);
        let broken = decode_documents("[{\"kind\": ", "t").unwrap_err();
        assert!(broken[0].message.contains("JSON array"), "{broken:?}");
    }

    #[test]
    fn hostile_sizes_and_depths_are_refused_quickly() {
        let started = std::time::Instant::now();
        let flow = format!(
            "{MINIMAL}  x: {}{}\n",
            "[".repeat(200_000),
            "]".repeat(200_000)
        );
        let block = format!(
            "{MINIMAL}{}",
            (0..500)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i + 2)))
                .collect::<String>()
        );
        let dashes = format!("{MINIMAL}  x:\n  {}a\n", "- ".repeat(100));
        for (name, text) in [("flow", flow), ("block", block), ("sequence", dashes)] {
            let errors = decode_documents(&text, "deep.yaml").unwrap_err();
            assert!(
                errors[0].message.contains("levels deep"),
                "{name}: {errors:?}"
            );
            assert!(errors[0].location.starts_with(':'), "{name}: {errors:?}");
        }
        let big = format!("{MINIMAL}  # {}\n", "x".repeat(MAX_SPEC_BYTES));
        let errors = decode_documents(&big, "big.yaml").unwrap_err();
        assert!(errors[0].message.contains("MiB"), "{errors:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Quotes and comments do not count as nesting; real specs pass.
        let quoted = format!(
            "{MINIMAL}  configBase: \"{}\"  # {}\n",
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(too_deep(&quoted).is_none());
        assert!(decode_documents(MINIMAL, "ok.yaml").is_ok());
    }

    #[test]
    fn decodes_multi_document_streams_in_any_order() {
        let text = format!(
            "apiVersion: kops.k8s.io/v1alpha2\nkind: InstanceGroup\nmetadata:\n  name: nodes\nspec:\n  role: Node\n---\n{MINIMAL}"
        );
        let documents = decode_documents(&text, "f.yaml").unwrap();
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0].describe(), "InstanceGroup/nodes");
        assert_eq!(documents[1].describe(), "Cluster/a.example.com");
    }

    #[test]
    fn unknown_field_names_path_line_and_suggestion() {
        let text = format!("{MINIMAL}  subnets:\n  - name: a\n    cidrr: 10.0.0.0/24\n");
        let errors = decode_documents(&text, "c.yaml").unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "c.yaml:9:5: spec.subnets[0].cidrr: unknown field `cidrr`; did you mean `cidr`?"
        );
    }

    #[test]
    fn stale_fields_are_dropped_under_warn_and_ignore_only() {
        let text = format!(
            "{MINIMAL}  serviceOIDCProvider:\n    issuerURL: https://old\n  subnets:\n  - name: a\n    cidr: 10.0.0.0/24\n    legacy: true\n  kubeAPIServer:\n    bogus: 1\n    anonymousAuth: false\n"
        );
        let errors = decode_documents(&text, "c.yaml").unwrap_err();
        assert!(
            errors[0].to_string().contains("serviceOIDCProvider"),
            "{errors:?}"
        );
        for validation in [Validation::Warn, Validation::Ignore] {
            let decoded = decode_documents_with(&text, "c.yaml", validation).unwrap();
            let dropped: Vec<String> = decoded.dropped.iter().map(|d| d.to_string()).collect();
            assert_eq!(
                dropped,
                [
                    "c.yaml:1: spec.serviceOIDCProvider: unknown field, dropped",
                    "c.yaml:1: spec.kubeAPIServer.bogus: unknown field, dropped",
                    "c.yaml:1: spec.subnets[0].legacy: unknown field, dropped",
                ]
            );
            let Document::Cluster(cluster) = &decoded.documents[0] else {
                panic!("not a cluster")
            };
            // What is known stays.
            assert_eq!(
                cluster.spec.subnets.as_ref().unwrap()[0].cidr.as_deref(),
                Some("10.0.0.0/24")
            );
            assert_eq!(
                cluster
                    .spec
                    .kube_api_server
                    .as_ref()
                    .unwrap()
                    .anonymous_auth,
                Some(false)
            );
        }
        // Wrong types stay errors whatever the mode.
        let wrong = format!("{MINIMAL}  bogus: 1\n  subnets: 7\n");
        assert!(decode_documents_with(&wrong, "c.yaml", Validation::Ignore).is_err());
        assert_eq!(Validation::parse("false"), Ok(Validation::Ignore));
        assert!(Validation::parse("lax")
            .unwrap_err()
            .contains("strict, warn or ignore"));
    }

    #[test]
    fn line_numbers_count_from_the_start_of_the_file() {
        let text = format!("{MINIMAL}---\n{MINIMAL}  bogus: 1\n");
        let errors = decode_documents(&text, "c.yaml").unwrap_err();
        assert!(
            errors[0].to_string().starts_with("c.yaml:14:3: spec.bogus"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn wrong_types_are_errors() {
        let text = format!("{MINIMAL}  subnets: yes-please\n");
        let errors = decode_documents(&text, "c.yaml").unwrap_err();
        assert!(
            errors[0].to_string().contains("spec.subnets: invalid type"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn json_input_is_accepted() {
        let text = r#"{"apiVersion":"kops.k8s.io/v1alpha2","kind":"SSHCredential","metadata":{"name":"admin"},"spec":{"publicKey":"ssh-ed25519 AAAA"}}"#;
        let documents = decode_documents(text, "k.json").unwrap();
        assert_eq!(documents[0].describe(), "SSHCredential/admin");
    }

    #[test]
    fn other_kinds_and_versions_are_refused() {
        let errors = decode_documents(
            "apiVersion: kops.k8s.io/v1alpha3\nkind: Cluster\n",
            "p.yaml",
        )
        .unwrap_err();
        assert_eq!(errors[0].to_string(), "p.yaml:1: apiVersion: \"kops.k8s.io/v1alpha3\" is not supported; use kops.k8s.io/v1alpha2");
        let documents = decode_documents(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "p.yaml",
        )
        .unwrap();
        assert_eq!(documents[0].describe(), "ConfigMap/x");
        let errors = decode_documents("apiVersion: kops.k8s.io/v1alpha2\nkind: Pod\n", "p.yaml")
            .unwrap_err();
        assert!(errors[0].to_string().contains("\"Pod\" is not a kops kind"));
    }
}
