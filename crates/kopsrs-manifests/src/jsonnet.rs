//! Jsonnet evaluation on rsjsonnet (see docs/architecture.md for why rsjsonnet and not
//! jrsonnet), and output written byte for byte as the C++ `jsonnet` writes it.
//!
//! rsjsonnet evaluates; this module only wires its session (search paths, external variables,
//! top-level arguments) and turns the result into a `serde_json::Value`. The JSON text is
//! written here rather than by rsjsonnet's `manifest_json` because the C++ `jsonnet` prints
//! non-integral numbers with 17 significant digits (`0.1` is `0.10000000000000001`) and
//! escapes U+007F..U+009F, and committed trees must not churn when a team switches.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rsjsonnet_front::Session;
use rsjsonnet_lang::arena::Arena;
use rsjsonnet_lang::program::{Thunk, Value as JValue, ValueKind};
use serde_json::{Map, Number, Value};

/// An external variable's or top-level argument's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// A string (`-V`, `-A`, and their file forms).
    Str(String),
    /// Jsonnet code (`--ext-code`, `--tla-code`, and their file forms); `repr` names it in
    /// errors.
    Code {
        /// How errors name the code (its file, or `<ext:NAME>`).
        repr: String,
        /// The code.
        code: String,
    },
}

/// What to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file.
    File(PathBuf),
    /// Code given on the command line (`-e`) or read from stdin; `repr` names it in errors.
    Snippet {
        /// How errors name it.
        repr: String,
        /// The code.
        code: String,
    },
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::File(p) => write!(f, "{}", p.display()),
            Input::Snippet { repr, .. } => f.write_str(repr),
        }
    }
}

/// How to evaluate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Library directories in search order (the first that holds an import wins, after the
    /// importing file's own directory). The `jsonnet` command line gives `-J` right-most first,
    /// then `JSONNET_PATH` left-most first: [`Options::search_order`].
    pub jpath: Vec<PathBuf>,
    /// External variables (`std.extVar`).
    pub ext: Vec<(String, Var)>,
    /// Top-level arguments, when the program is a function.
    pub tla: Vec<(String, Var)>,
    /// Maximum stack depth (`-s`), default rsjsonnet's (500, as C++).
    pub max_stack: Option<usize>,
    /// Maximum stack-trace lines (`-t`; default 20, 0 for all).
    pub max_trace: Option<usize>,
}

impl Options {
    /// The search order the `jsonnet` command gives: `-J` directories right-most first, then
    /// the `JSONNET_PATH` entries left-most first.
    pub fn search_order(jpath: &[PathBuf], jsonnet_path: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = jpath.iter().rev().cloned().collect();
        if let Some(env) = jsonnet_path {
            out.extend(std::env::split_paths(env).filter(|p| !p.as_os_str().is_empty()));
        }
        out
    }
}

/// Why a program gave no value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Lexing, parsing or evaluation failed. rsjsonnet has printed the diagnostic (the
    /// file:line:column, the source line and the stack) to stderr.
    #[error("evaluating {0} failed (the error is above)")]
    Reported(String),
    /// The value cannot be written as JSON.
    #[error("{input}: {path}: {reason}")]
    Manifest {
        /// The program.
        input: String,
        /// Where in the value (`$.a.b[2]`).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Evaluates `input` (calling it with the top-level arguments when it is a function) and
/// returns its value as JSON.
pub fn evaluate(input: &Input, options: &Options) -> Result<Value, Error> {
    let arena = Arena::new();
    let mut session = Session::new(&arena);
    if let Some(n) = options.max_stack {
        session.program_mut().set_max_stack(n);
    }
    // C++'s default is 20 frames; 0 means all of them.
    session.set_max_trace(match options.max_trace {
        Some(0) => usize::MAX,
        Some(n) => n,
        None => 20,
    });
    for dir in &options.jpath {
        session.add_search_path(dir.clone());
    }
    // Code given on the command line or standard input has no folder of its own: as C++, its
    // imports resolve from the working directory (searched last).
    let snippets = matches!(input, Input::Snippet { .. })
        || options
            .ext
            .iter()
            .chain(&options.tla)
            .any(|(_, v)| matches!(v, Var::Code { .. }));
    if snippets {
        session.add_search_path(PathBuf::from("."));
    }
    let reported = || Error::Reported(input.to_string());
    let root = match input {
        Input::File(path) => session.load_real_file(path),
        Input::Snippet { repr, code } => session.load_virt_file(repr, code.as_bytes().to_vec()),
    }
    .ok_or_else(reported)?;
    for (name, var) in &options.ext {
        let thunk = thunk_of(&mut session, name, "ext", var).ok_or_else(reported)?;
        let name = session.program().intern_str(name);
        session.program_mut().add_ext_var(name, &thunk);
    }
    let mut tla = Vec::new();
    for (name, var) in &options.tla {
        let thunk = thunk_of(&mut session, name, "tla", var).ok_or_else(reported)?;
        tla.push((session.program().intern_str(name), thunk));
    }
    let mut value = session.eval_value(&root).ok_or_else(reported)?;
    // As C++: a function is called with the top-level arguments; otherwise they are ignored.
    if value.is_function() {
        let function = session.program_mut().value_to_thunk(&value);
        value = session
            .eval_call(&function, &[], &tla)
            .ok_or_else(reported)?;
    }
    let mut path = String::from("$");
    to_json(&value, &mut path).map_err(|reason| Error::Manifest {
        input: input.to_string(),
        path,
        reason,
    })
}

fn thunk_of<'p>(session: &mut Session<'p>, name: &str, what: &str, var: &Var) -> Option<Thunk<'p>> {
    match var {
        Var::Str(s) => Some(session.program_mut().value_to_thunk(&JValue::string(s))),
        Var::Code { repr, code } => {
            let repr = match repr.is_empty() {
                true => format!("<{what}:{name}>"),
                false => repr.clone(),
            };
            session.load_virt_file(&repr, code.as_bytes().to_vec())
        }
    }
}

/// Turns an evaluated value into JSON; on error, `path` is where.
fn to_json(value: &JValue<'_>, path: &mut String) -> Result<Value, String> {
    Ok(match value.kind() {
        ValueKind::Null => Value::Null,
        ValueKind::Bool(b) => Value::Bool(b),
        ValueKind::Number(n) => number(n),
        ValueKind::String(s) => Value::String(s),
        ValueKind::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                out.push(to_json(item, path)?);
                path.truncate(len);
            }
            Value::Array(out)
        }
        ValueKind::Object(fields) => {
            let mut out = Map::with_capacity(fields.len());
            for (name, field) in &fields {
                let len = path.len();
                let _ = write!(path, ".{}", name.value());
                let v = to_json(field, path)?;
                path.truncate(len);
                out.insert(name.value().to_string(), v);
            }
            Value::Object(out)
        }
        ValueKind::Function => return Err("a function cannot be written as JSON".into()),
    })
}

/// A Jsonnet number as JSON: integral values within ±2^63 as integers (so the rest of kopsrs
/// sees `3`, not `3.0`), the others as floats. `-0` stays a float so it prints as C++ does.
fn number(n: f64) -> Value {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if n.fract() == 0.0 && n.abs() < LIMIT && !(n == 0.0 && n.is_sign_negative()) {
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// `value` as the C++ `jsonnet` prints it, without the final newline: keys sorted by code
/// point, three-space indent, `{ }` and `[ ]` for empty containers, its number format and
/// string escapes.
pub fn to_cpp_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, 0, &mut out);
    out
}

fn write_value(value: &Value, depth: usize, out: &mut String) {
    const INDENT: &str = "   ";
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) if items.is_empty() => out.push_str("[ ]"),
        Value::Object(map) if map.is_empty() => out.push_str("{ }"),
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                out.push_str(&INDENT.repeat(depth + 1));
                write_value(item, depth + 1, out);
            }
            out.push('\n');
            out.push_str(&INDENT.repeat(depth));
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push_str("{\n");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                out.push_str(&INDENT.repeat(depth + 1));
                write_string(key, out);
                out.push_str(": ");
                write_value(&map[key], depth + 1, out);
            }
            out.push('\n');
            out.push_str(&INDENT.repeat(depth));
            out.push('}');
        }
    }
}

/// C++ `jsonnet` numbers: integral values with all their digits (`%.0f`), others as `%.17g`.
fn write_number(n: &Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
        return;
    }
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
        return;
    }
    let v = n.as_f64().unwrap_or(0.0);
    if v == v.floor() {
        let _ = write!(out, "{v:.0}");
        return;
    }
    // %.17g: 17 significant digits, scientific when the exponent is < -4 or >= 17, trailing
    // zeros dropped.
    let sci = format!("{v:.16e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        match s.contains('.') {
            true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
            false => s.to_string(),
        }
    };
    if !(-4..17).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "{}e{sign}{:02}", trim(mantissa), exponent.abs());
    } else {
        let digits = usize::try_from(16 - exponent).unwrap_or(0);
        out.push_str(&trim(&format!("{v:.digits$}")));
    }
}

/// C++ `jsonnet` strings: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00XX` for the other
/// control characters and U+007F..U+009F; everything else as is (UTF-8).
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Output modes of the `jsonnet` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Output {
    /// `-S`: the value (or each item or file) must be a string, written raw.
    pub string: bool,
    /// `-y`: the value must be an array, written as a YAML stream of JSON documents.
    pub yaml_stream: bool,
}

/// One document as the command writes it: JSON (or the raw string with `-S`) and a newline.
pub fn document(value: &Value, string: bool, what: &str) -> Result<String, String> {
    match (string, value) {
        (true, Value::String(s)) => Ok(format!("{s}\n")),
        (true, _) => Err(format!(
            "{what}: in string mode (-S) the value must be a string"
        )),
        (false, v) => Ok(format!("{}\n", to_cpp_json(v))),
    }
}

/// The command's standard output for a value: one document, or with `-y` a `---` before each
/// item and a final `...` (nothing for an empty array), as C++.
pub fn render(value: &Value, output: Output) -> Result<String, String> {
    if !output.yaml_stream {
        return document(value, output.string, "the value");
    }
    let Value::Array(items) = value else {
        return Err("in YAML stream mode (-y) the value must be an array".into());
    };
    if items.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        out.push_str("---\n");
        out.push_str(&document(item, output.string, &format!("item {i}"))?);
    }
    out.push_str("...\n");
    Ok(out)
}

/// `-m DIR`: the value must be an object; one file per field, named after it, in `dir`.
/// Returns the files in key order with their content.
pub fn multi(value: &Value, dir: &Path, string: bool) -> Result<Vec<(PathBuf, String)>, String> {
    let Value::Object(map) = value else {
        return Err("in multi mode (-m) the value must be an object".into());
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable();
    // As C++: the folder, a '/', the key (`/etc/x` is `DIR//etc/x`). C++ writes a key with a
    // `..` component outside the folder; kopsrs refuses it, as it refuses a NUL, so what a
    // configuration renders never writes elsewhere than the folder given.
    let mut prefix = dir.display().to_string();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    if let Some(k) = keys
        .iter()
        .find(|k| k.split('/').any(|part| part == "..") || k.contains('\0'))
    {
        return Err(format!(
            "in multi mode (-m) the field {k:?} would be written outside {}; rename it",
            dir.display()
        ));
    }
    keys.into_iter()
        .map(|k| {
            let content = document(&map[k], string, &format!("field {k:?}"))?;
            Ok((PathBuf::from(format!("{prefix}{k}")), content))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(code: &str) -> Value {
        let input = Input::Snippet {
            repr: "<test>".into(),
            code: code.into(),
        };
        evaluate(&input, &Options::default()).unwrap()
    }

    #[test]
    fn numbers_and_strings_print_as_cpp_jsonnet_does() {
        let cases = [
            ("0.1", "0.10000000000000001"),
            ("1/3", "0.33333333333333331"),
            ("1e-7", "9.9999999999999995e-08"),
            ("0.5", "0.5"),
            ("3", "3"),
            ("-0", "-0"),
            ("1e100", "10000000000000000159028911097599180468360808563945281389781327557747838772170381060813469985856815104"),
            ("123456.789", "123456.789"),
            ("\"a\\u007fb\\u0085\\u00e9\\n\"", "\"a\\u007fb\\u0085é\\n\""),
        ];
        for (code, want) in cases {
            assert_eq!(to_cpp_json(&eval(code)), want, "{code}");
        }
    }

    #[test]
    fn layout_is_three_spaces_with_sorted_keys_and_spaced_empties() {
        let v = eval("{ b: [1, {}], a: { y: [], x: null }, h:: 'hidden' }");
        assert_eq!(
            to_cpp_json(&v),
            "{\n   \"a\": {\n      \"x\": null,\n      \"y\": [ ]\n   },\n   \"b\": [\n      1,\n      { }\n   ]\n}"
        );
    }

    #[test]
    fn functions_take_top_level_arguments_and_cannot_be_written() {
        let input = Input::Snippet {
            repr: "<t>".into(),
            code: "function(n, m=1) { n: n, m: m, e: std.extVar('e') }".into(),
        };
        let options = Options {
            ext: vec![("e".into(), Var::Str("x".into()))],
            tla: vec![(
                "n".into(),
                Var::Code {
                    repr: String::new(),
                    code: "1 + 1".into(),
                },
            )],
            ..Options::default()
        };
        assert_eq!(
            evaluate(&input, &options).unwrap(),
            serde_json::json!({"e": "x", "m": 1, "n": 2})
        );
        let err = evaluate(
            &Input::Snippet {
                repr: "<t>".into(),
                code: "{ a: [1, function(x) x] }".into(),
            },
            &Options::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "<t>: $.a[1]: a function cannot be written as JSON"
        );
    }

    #[test]
    fn the_search_order_is_the_commands() {
        let order =
            Options::search_order(&["a".into(), "b".into()], Some(std::ffi::OsStr::new("c:d")));
        assert_eq!(order, ["b", "a", "c", "d"].map(PathBuf::from));
    }

    #[test]
    fn streams_and_multi_follow_cpp() {
        let v = eval("[1, 'x']");
        assert_eq!(
            render(
                &v,
                Output {
                    string: false,
                    yaml_stream: true
                }
            )
            .unwrap(),
            "---\n1\n---\n\"x\"\n...\n"
        );
        assert_eq!(
            render(
                &eval("[]"),
                Output {
                    string: false,
                    yaml_stream: true
                }
            )
            .unwrap(),
            ""
        );
        assert!(render(
            &v,
            Output {
                string: true,
                yaml_stream: true
            }
        )
        .is_err());
        let files = multi(
            &eval("{ 'b.txt': 'B', 'a.txt': 'A', '/etc/x': 'X' }"),
            Path::new("d"),
            true,
        )
        .unwrap();
        assert_eq!(
            files,
            [
                (PathBuf::from("d//etc/x"), "X\n".to_string()),
                (PathBuf::from("d/a.txt"), "A\n".to_string()),
                (PathBuf::from("d/b.txt"), "B\n".to_string())
            ]
        );
        for key in ["../x", "a/../../x", ".."] {
            let e = multi(&eval(&format!("{{ '{key}': 'X' }}")), Path::new("d"), true).unwrap_err();
            assert!(e.contains("outside d"), "{key}: {e}");
        }
        // A name that only looks like it is kept.
        assert!(multi(&eval("{ '..x': 'X' }"), Path::new("d"), true).is_ok());
    }
}
