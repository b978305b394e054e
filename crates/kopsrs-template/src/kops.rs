//! kops's own template functions, on top of sprig: `include` (snippets), kops's `indent`
//! and the channel look-ups (`ChannelRecommendedKopsKubernetesVersion`,
//! `ChannelRecommendedKubernetesUpgradeVersion`, `ChannelRecommendedImage`).
//!
//! gtmpl takes functions as plain `fn` pointers, which cannot capture the snippets or the
//! channel of a render; they are handed over in a thread-local for the duration of one
//! [`with_setup`] call (rendering is synchronous and single-threaded).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use gtmpl::{FuncError, Value};

use crate::sprig::{args as exactly, text};

/// What the channel functions read; the caller's channel answers (kopsrs's built-in one).
pub trait ChannelLookups {
    /// The Kubernetes version a new cluster gets (`ChannelRecommendedKopsKubernetesVersion`).
    fn recommended_kubernetes(&self) -> String;
    /// The version a cluster at `version` should move to
    /// (`ChannelRecommendedKubernetesUpgradeVersion`); `None` when the channel has no advice.
    fn upgrade(&self, version: &str) -> Option<String>;
    /// The image for a cloud, Kubernetes version and architecture (`ChannelRecommendedImage`);
    /// `None` when the channel has none.
    fn image(&self, cloud: &str, kubernetes_version: &str, architecture: &str) -> Option<String>;
}

/// Everything a render reads besides the values: `--fail-on-missing`, the `--snippets`
/// (by file name) and the channel.
#[derive(Clone)]
pub struct Setup {
    /// Reading a value that is not set is an error rather than empty (kops's default: true).
    pub fail_on_missing: bool,
    /// Snippet texts by name, for `include "name" .` and `template "name" .`.
    pub snippets: BTreeMap<String, String>,
    /// The channel the `Channel*` functions read.
    pub channel: Arc<dyn ChannelLookups + Send + Sync>,
}

/// How deep `include` may nest (a snippet including itself would never end).
const MAX_INCLUDE_DEPTH: usize = 32;

thread_local! {
    static CURRENT: RefCell<Option<(Arc<Setup>, usize)>> = const { RefCell::new(None) };
}

/// Runs `render` with `setup` visible to the functions below.
pub(crate) fn with_setup<T>(setup: &Setup, render: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|c| c.replace(Some((Arc::new(setup.clone()), 0))));
    let result = render();
    CURRENT.with(|c| *c.borrow_mut() = previous);
    result
}

fn current() -> Result<Arc<Setup>, FuncError> {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .map(|(setup, _)| setup.clone())
            .ok_or_else(|| FuncError::Generic("kops template functions outside a render".into()))
    })
}

/// The snippets as `define`d templates, appended to a template's text so that
/// `template "name" .` finds them (after the text, so its line numbers do not move).
pub(crate) fn with_snippets(text: &str, snippets: &BTreeMap<String, String>) -> String {
    let mut all = text.to_string();
    for (name, body) in snippets {
        all.push_str(&format!("{{{{define {name:?}}}}}{body}{{{{end}}}}"));
    }
    all
}

/// The functions kops adds, by their names; `indent` replaces sprig's.
pub(crate) const FUNCTIONS: &[(&str, crate::sprig::Func)] = &[
    ("include", include),
    ("indent", indent),
    (
        "ChannelRecommendedKopsKubernetesVersion",
        recommended_kubernetes,
    ),
    (
        "ChannelRecommendedKubernetesUpgradeVersion",
        recommended_upgrade,
    ),
    ("ChannelRecommendedImage", recommended_image),
];

/// `include NAME CONTEXT`: the snippet named (a `--snippets` file's name) rendered with
/// `CONTEXT`, as text to pipe on (`include "x" . | indent 4`).
fn include(args: &[Value]) -> Result<Value, FuncError> {
    let [name, context] = exactly::<2>("include", args)?;
    let name = text(&name);
    let setup = current()?;
    let body = setup.snippets.get(&name).ok_or_else(|| {
        FuncError::Generic(format!(
            "include: no snippet {name:?}; the --snippets directories hold {}",
            match setup.snippets.is_empty() {
                true => "none".to_string(),
                false => setup
                    .snippets
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        ))
    })?;
    let depth = CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        let (_, depth) = c.as_mut().expect("checked by current()");
        *depth += 1;
        *depth
    });
    let result = if depth > MAX_INCLUDE_DEPTH {
        Err(FuncError::Generic(format!(
            "include: snippets nest more than {MAX_INCLUDE_DEPTH} deep (does {name:?} include itself?)"
        )))
    } else {
        crate::go_template(&with_snippets(body, &setup.snippets))
            .and_then(|template| {
                template
                    .render(&gtmpl::Context::from(context))
                    .map_err(|e| e.to_string())
            })
            .map(Value::String)
            .map_err(|e| FuncError::Generic(format!("include {name:?}: {e}")))
    };
    CURRENT.with(|c| {
        if let Some((_, depth)) = c.borrow_mut().as_mut() {
            *depth -= 1;
        }
    });
    result
}

/// kops's `indent N TEXT`: every line but the first and the empty ones gets N spaces, so the
/// call sits where the first line goes (`key: {{ include "x" . | indent 2 }}`). This is
/// not sprig's `indent`, which pads every line; kops replaces it in `toolbox template`.
fn indent(args: &[Value]) -> Result<Value, FuncError> {
    let [n, content] = exactly::<2>("indent", args)?;
    let n = crate::sprig::number("indent", &n)?;
    let content = text(&content);
    crate::sprig::sized("indent", n, content.lines().count().max(1))?;
    let pad = " ".repeat(n.max(0) as usize);
    Ok(Value::String(
        content
            .split('\n')
            .enumerate()
            .map(|(i, line)| match i == 0 || line.is_empty() {
                true => line.to_string(),
                false => format!("{pad}{line}"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    ))
}

fn recommended_kubernetes(args: &[Value]) -> Result<Value, FuncError> {
    exactly::<0>("ChannelRecommendedKopsKubernetesVersion", args)?;
    Ok(Value::String(current()?.channel.recommended_kubernetes()))
}

fn recommended_upgrade(args: &[Value]) -> Result<Value, FuncError> {
    let [version] = exactly::<1>("ChannelRecommendedKubernetesUpgradeVersion", args)?;
    let version = text(&version);
    current()?
        .channel
        .upgrade(&version)
        .map(Value::String)
        .ok_or_else(|| {
            FuncError::Generic(format!(
                "ChannelRecommendedKubernetesUpgradeVersion: the channel has no advice for {version:?}"
            ))
        })
}

fn recommended_image(args: &[Value]) -> Result<Value, FuncError> {
    let [cloud, version, architecture] = exactly::<3>("ChannelRecommendedImage", args)?;
    let (cloud, version, architecture) = (text(&cloud), text(&version), text(&architecture));
    current()?
        .channel
        .image(&cloud, &version, &architecture)
        .map(Value::String)
        .ok_or_else(|| {
            FuncError::Generic(format!(
                "ChannelRecommendedImage: no image for cloud {cloud:?}, Kubernetes {version:?}, architecture {architecture:?} (kopsrs knows aws with amd64 or arm64)"
            ))
        })
}
