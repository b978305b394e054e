//! The sprig functions cluster templates use, for gtmpl.
//!
//! gtmpl brings Go's built-ins (`eq`, `index`, `printf`, …) but not sprig, the function library
//! kops adds to `toolbox template`; no Rust crate provides it, so the commonly used part is here.
//! Argument order follows sprig (`join SEP LIST`, `default DEFAULT VALUE`, `indent N TEXT`), so
//! a piped value arrives last.

use base64::Engine as _;
use gtmpl::{FuncError, Value};
use sha2::{Digest, Sha256};

/// A gtmpl function.
pub(crate) type Func = fn(&[Value]) -> Result<Value, FuncError>;

/// The functions registered on every Go template, by their sprig names.
pub const FUNCTIONS: &[(&str, Func)] = &[
    ("default", default),
    ("empty", empty),
    ("coalesce", coalesce),
    ("ternary", ternary),
    ("required", required),
    ("quote", quote),
    ("squote", squote),
    ("upper", upper),
    ("lower", lower),
    ("title", title),
    ("trim", trim),
    ("trimPrefix", trim_prefix),
    ("trimSuffix", trim_suffix),
    ("replace", replace),
    ("contains", contains),
    ("hasPrefix", has_prefix),
    ("hasSuffix", has_suffix),
    ("repeat", repeat),
    ("nindent", nindent),
    ("join", join),
    ("splitList", split_list),
    ("list", list),
    ("dict", dict),
    ("keys", keys),
    ("hasKey", has_key),
    ("first", first),
    ("last", last),
    ("toString", to_string),
    ("int", int),
    ("add", add),
    ("sub", sub),
    ("mul", mul),
    ("until", until),
    ("toYaml", to_yaml),
    ("toJson", to_json),
    ("b64enc", b64enc),
    ("b64dec", b64dec),
    ("sha256sum", sha256sum),
];

/// Exactly `N` arguments, or the error gtmpl gives for a wrong count.
pub(crate) fn args<const N: usize>(name: &str, args: &[Value]) -> Result<[Value; N], FuncError> {
    <[Value; N]>::try_from(args.to_vec()).map_err(|_| FuncError::ExactlyXArgs(name.into(), N))
}

/// Go's `fmt` rendering of a value as text.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Nil | Value::NoValue => String::new(),
        other => other.to_string(),
    }
}

/// Go's zero values, which sprig's `empty`, `default`, `coalesce` and `ternary` treat as unset.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Nil | Value::NoValue => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        // gtmpl keeps whole numbers as integers (`as_f64` is then None): zero either way.
        Value::Number(n) => n.as_i64() == Some(0) || n.as_f64() == Some(0.0),
        Value::Function(_) => false,
    }
}

/// An integer argument. Strings are parsed and floats truncated, as sprig's casts do: values
/// from `--set-string` or quoted YAML arrive as text.
pub(crate) fn number(name: &str, value: &Value) -> Result<i64, FuncError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| FuncError::Generic(format!("{name}: {n} is not a number"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| FuncError::Generic(format!("{name}: {s:?} is not a number"))),
        other => Err(FuncError::Generic(format!(
            "{name}: {other} is not a number"
        ))),
    }
}

fn to_json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Nil | Value::NoValue | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => n
            .as_i64()
            .map(serde_json::Value::from)
            .or_else(|| n.as_u64().map(serde_json::Value::from))
            .or_else(|| n.as_f64().map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::Null),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json_value).collect()),
        // gtmpl maps are `HashMap`s; sorting the keys makes `toYaml` and `toJson` output
        // deterministic (Go's encoders sort map keys too).
        Value::Map(m) | Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            serde_json::Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), to_json_value(&m[k])))
                    .collect(),
            )
        }
    }
}

fn default(a: &[Value]) -> Result<Value, FuncError> {
    match a {
        // `default X` with nothing piped in: no value is an unset value.
        [fallback] => Ok(fallback.clone()),
        [fallback, given] => Ok(if is_empty(given) {
            fallback.clone()
        } else {
            given.clone()
        }),
        _ => Err(FuncError::ExactlyXArgs("default".into(), 2)),
    }
}

fn empty(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("empty", a)?;
    Ok(Value::Bool(is_empty(&v)))
}

fn coalesce(a: &[Value]) -> Result<Value, FuncError> {
    Ok(a.iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}

/// `ternary YES NO CONDITION`: sprig puts the condition last so that it can be piped in.
fn ternary(a: &[Value]) -> Result<Value, FuncError> {
    let [yes, no, condition] = args::<3>("ternary", a)?;
    Ok(if is_empty(&condition) { no } else { yes })
}

fn required(a: &[Value]) -> Result<Value, FuncError> {
    let [message, value] = args::<2>("required", a)?;
    if is_empty(&value) {
        return Err(FuncError::Generic(text(&message)));
    }
    Ok(value)
}

/// A one-argument sprig function from text to text.
macro_rules! string_fn {
    ($name:ident, $go:literal, |$s:ident| $body:expr) => {
        fn $name(a: &[Value]) -> Result<Value, FuncError> {
            let [v] = args::<1>($go, a)?;
            let $s = text(&v);
            Ok(Value::String($body))
        }
    };
}

// Rust's `{:?}` quoting agrees with Go's `%q` on printable text (`\"`, `\\`, `\n`).
string_fn!(quote, "quote", |s| format!("{s:?}"));
string_fn!(squote, "squote", |s| format!("'{s}'"));
string_fn!(upper, "upper", |s| s.to_uppercase());
string_fn!(lower, "lower", |s| s.to_lowercase());
string_fn!(trim, "trim", |s| s.trim().to_string());
string_fn!(to_string, "toString", |s| s);
string_fn!(b64enc, "b64enc", |s| {
    base64::engine::general_purpose::STANDARD.encode(s)
});
string_fn!(sha256sum, "sha256sum", |s| Sha256::digest(s.as_bytes())
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect());
string_fn!(title, "title", |s| s
    .split(' ')
    .map(|w| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    })
    .collect::<Vec<_>>()
    .join(" "));

/// Go strings may hold any bytes; Rust's must be UTF-8, so invalid bytes become U+FFFD.
fn b64dec(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("b64dec", a)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text(&v))
        .map_err(|e| FuncError::Generic(format!("b64dec: {e}")))?;
    Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
}

fn trim_prefix(a: &[Value]) -> Result<Value, FuncError> {
    let [prefix, s] = args::<2>("trimPrefix", a)?;
    let (prefix, s) = (text(&prefix), text(&s));
    Ok(Value::String(
        s.strip_prefix(&prefix).unwrap_or(&s).to_string(),
    ))
}

fn trim_suffix(a: &[Value]) -> Result<Value, FuncError> {
    let [suffix, s] = args::<2>("trimSuffix", a)?;
    let (suffix, s) = (text(&suffix), text(&s));
    Ok(Value::String(
        s.strip_suffix(&suffix).unwrap_or(&s).to_string(),
    ))
}

fn replace(a: &[Value]) -> Result<Value, FuncError> {
    let [old, new, s] = args::<3>("replace", a)?;
    Ok(Value::String(text(&s).replace(&text(&old), &text(&new))))
}

fn contains(a: &[Value]) -> Result<Value, FuncError> {
    let [needle, s] = args::<2>("contains", a)?;
    Ok(Value::Bool(text(&s).contains(&text(&needle))))
}

fn has_prefix(a: &[Value]) -> Result<Value, FuncError> {
    let [prefix, s] = args::<2>("hasPrefix", a)?;
    Ok(Value::Bool(text(&s).starts_with(&text(&prefix))))
}

fn has_suffix(a: &[Value]) -> Result<Value, FuncError> {
    let [suffix, s] = args::<2>("hasSuffix", a)?;
    Ok(Value::Bool(text(&s).ends_with(&text(&suffix))))
}

/// The most text one function may produce, and the longest list `until` makes: a template
/// renders a spec of kilobytes, so these are far above any real use and far below what would
/// exhaust memory.
pub const MAX_TEXT: usize = 16 << 20;
/// The longest list `until` makes (see [`MAX_TEXT`]).
pub const MAX_LIST: i64 = 100_000;

/// `count` as a size, if `count` pieces of `each` bytes stay within [`MAX_TEXT`]. Checked
/// before allocating, so a huge count is an error rather than an aborted process.
pub(crate) fn sized(name: &str, count: i64, each: usize) -> Result<usize, FuncError> {
    let count = count.max(0) as usize;
    match count.checked_mul(each.max(1)) {
        Some(total) if total <= MAX_TEXT => Ok(count),
        _ => Err(FuncError::Generic(format!(
            "{name}: {count} times {each} bytes is more than the {} MiB a template may produce",
            MAX_TEXT >> 20
        ))),
    }
}

fn repeat(a: &[Value]) -> Result<Value, FuncError> {
    let [n, s] = args::<2>("repeat", a)?;
    let s = text(&s);
    let count = sized("repeat", number("repeat", &n)?, s.len())?;
    Ok(Value::String(s.repeat(count)))
}

fn indent_by(n: i64, s: &str) -> String {
    // Callers check `n` with `sized` first.
    let pad = " ".repeat(n.max(0) as usize);
    s.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// sprig's `nindent`: a newline, then every line padded (kops keeps it; its `indent` is
/// kops's own, in `kops.rs`).
fn nindent(a: &[Value]) -> Result<Value, FuncError> {
    let [n, s] = args::<2>("nindent", a)?;
    let s = text(&s);
    let n = number("nindent", &n)?;
    sized("nindent", n, s.lines().count().max(1))?;
    Ok(Value::String(format!("\n{}", indent_by(n, &s))))
}

fn join(a: &[Value]) -> Result<Value, FuncError> {
    let [separator, list] = args::<2>("join", a)?;
    match list {
        Value::Array(items) => Ok(Value::String(
            items
                .iter()
                .map(text)
                .collect::<Vec<_>>()
                .join(&text(&separator)),
        )),
        // As sprig: a single value joins to its own text (and nothing to the empty string).
        other => Ok(Value::String(text(&other))),
    }
}

fn split_list(a: &[Value]) -> Result<Value, FuncError> {
    let [separator, s] = args::<2>("splitList", a)?;
    Ok(Value::Array(
        text(&s)
            .split(&text(&separator))
            .map(|p| Value::String(p.into()))
            .collect(),
    ))
}

fn list(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(a.to_vec()))
}

fn dict(a: &[Value]) -> Result<Value, FuncError> {
    if !a.len().is_multiple_of(2) {
        return Err(FuncError::Generic("dict: needs key/value pairs".into()));
    }
    // Keys become text, as sprig's `dict` does with whatever it is given.
    Ok(Value::Map(
        a.chunks(2)
            .map(|pair| (text(&pair[0]), pair[1].clone()))
            .collect(),
    ))
}

fn keys(a: &[Value]) -> Result<Value, FuncError> {
    let [map] = args::<1>("keys", a)?;
    let mut names: Vec<String> = match map {
        Value::Map(m) | Value::Object(m) => m.keys().cloned().collect(),
        _ => return Err(FuncError::Generic("keys: needs a map".into())),
    };
    // sprig returns Go's random map order; sorted, the output is the same on every run.
    names.sort();
    Ok(Value::Array(names.into_iter().map(Value::String).collect()))
}

fn has_key(a: &[Value]) -> Result<Value, FuncError> {
    let [map, key] = args::<2>("hasKey", a)?;
    Ok(Value::Bool(
        matches!(&map, Value::Map(m) | Value::Object(m) if m.contains_key(&text(&key))),
    ))
}

fn first(a: &[Value]) -> Result<Value, FuncError> {
    let [list] = args::<1>("first", a)?;
    Ok(match list {
        Value::Array(items) => items.first().cloned().unwrap_or(Value::Nil),
        _ => Value::Nil,
    })
}

fn last(a: &[Value]) -> Result<Value, FuncError> {
    let [list] = args::<1>("last", a)?;
    Ok(match list {
        Value::Array(items) => items.last().cloned().unwrap_or(Value::Nil),
        _ => Value::Nil,
    })
}

fn int(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("int", a)?;
    Ok(Value::from(number("int", &v)?))
}

/// Integer arithmetic that refuses to overflow: a template's numbers come from values files,
/// and a wrapped (or, in a debug build, panicking) sum would be a silent wrong spec.
fn checked(name: &str, result: Option<i64>) -> Result<i64, FuncError> {
    result
        .ok_or_else(|| FuncError::Generic(format!("{name}: the result overflows a 64-bit integer")))
}

fn add(a: &[Value]) -> Result<Value, FuncError> {
    a.iter()
        .try_fold(0i64, |sum, v| {
            checked("add", sum.checked_add(number("add", v)?))
        })
        .map(Value::from)
}

fn sub(a: &[Value]) -> Result<Value, FuncError> {
    let [x, y] = args::<2>("sub", a)?;
    let difference = number("sub", &x)?.checked_sub(number("sub", &y)?);
    Ok(Value::from(checked("sub", difference)?))
}

fn mul(a: &[Value]) -> Result<Value, FuncError> {
    a.iter()
        .try_fold(1i64, |product, v| {
            checked("mul", product.checked_mul(number("mul", v)?))
        })
        .map(Value::from)
}

fn until(a: &[Value]) -> Result<Value, FuncError> {
    let [n] = args::<1>("until", a)?;
    let n = number("until", &n)?;
    if n > MAX_LIST {
        return Err(FuncError::Generic(format!(
            "until: {n} is more than the {MAX_LIST} items a template may count to"
        )));
    }
    Ok(Value::Array((0..n.max(0)).map(Value::from).collect()))
}

fn to_yaml(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("toYaml", a)?;
    let yaml = serde_yaml_ng::to_string(&to_json_value(&v))
        .map_err(|e| FuncError::Generic(format!("toYaml: {e}")))?;
    // As sprig: no trailing newline, so `toYaml | indent N` leaves no blank line after it.
    Ok(Value::String(yaml.trim_end().to_string()))
}

fn to_json(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("toJson", a)?;
    Ok(Value::String(to_json_value(&v).to_string()))
}
