//! The Jsonnet evaluation flags `kopsrs jsonnet` and the `manifests` verbs share, as the
//! C++ `jsonnet` command has them, and the evaluation options they make.

use std::path::PathBuf;

use clap::Args;
use kopsrs_manifests::jsonnet::{Options, Var};
use kopsrs_ops::Settings;

/// The evaluation flags `kopsrs jsonnet` and the `manifests` verbs share, as `jsonnet` has
/// them.
#[derive(Args, Debug, Clone, Default)]
pub struct JsonnetFlags {
    /// Add a library search directory (right-most wins), after the importing file's own.
    /// `JSONNET_PATH` directories are searched after these.
    #[arg(short = 'J', long = "jpath", value_name = "DIR")]
    pub jpath: Vec<PathBuf>,
    /// An external variable as a string: VAR=VALUE, or VAR to read the environment variable.
    #[arg(short = 'V', long = "ext-str", value_name = "VAR[=VALUE]")]
    pub ext_str: Vec<String>,
    /// An external variable as a string read from a file: VAR=FILE.
    #[arg(long = "ext-str-file", value_name = "VAR=FILE")]
    pub ext_str_file: Vec<String>,
    /// An external variable as code: VAR=CODE, or VAR to read the environment variable.
    #[arg(long = "ext-code", value_name = "VAR[=CODE]")]
    pub ext_code: Vec<String>,
    /// An external variable as code read from a file: VAR=FILE.
    #[arg(long = "ext-code-file", value_name = "VAR=FILE")]
    pub ext_code_file: Vec<String>,
    /// A top-level argument as a string: VAR=VALUE, or VAR to read the environment variable.
    #[arg(short = 'A', long = "tla-str", value_name = "VAR[=VALUE]")]
    pub tla_str: Vec<String>,
    /// A top-level argument as a string read from a file: VAR=FILE.
    #[arg(long = "tla-str-file", value_name = "VAR=FILE")]
    pub tla_str_file: Vec<String>,
    /// A top-level argument as code: VAR=CODE, or VAR to read the environment variable.
    #[arg(long = "tla-code", value_name = "VAR[=CODE]")]
    pub tla_code: Vec<String>,
    /// A top-level argument as code read from a file: VAR=FILE.
    #[arg(long = "tla-code-file", value_name = "VAR=FILE")]
    pub tla_code_file: Vec<String>,
}

impl JsonnetFlags {
    /// The evaluation options; every bad flag reported at once in `errors`.
    pub fn options(&self, settings: &Settings, errors: &mut Vec<String>) -> Options {
        let ext = vars(
            &self.ext_str,
            &self.ext_str_file,
            &self.ext_code,
            &self.ext_code_file,
            "ext",
            settings,
            errors,
        );
        let tla = vars(
            &self.tla_str,
            &self.tla_str_file,
            &self.tla_code,
            &self.tla_code_file,
            "tla",
            settings,
            errors,
        );
        Options {
            jpath: Options::search_order(&self.jpath, settings.jsonnet_path.as_deref()),
            ext,
            tla,
            ..Options::default()
        }
    }
}

/// Reads `VAR=VALUE`, `VAR` (from the environment) and `VAR=FILE` flags.
fn vars(
    strs: &[String],
    str_files: &[String],
    codes: &[String],
    code_files: &[String],
    flag: &str,
    settings: &Settings,
    errors: &mut Vec<String>,
) -> Vec<(String, Var)> {
    let mut out = Vec::new();
    let inline = |text: &str, errors: &mut Vec<String>, which: &str| -> Option<(String, String)> {
        match text.split_once('=') {
            Some((var, value)) => Some((var.to_string(), value.to_string())),
            None => match settings.var(text) {
                Some(value) => Some((text.to_string(), value.to_string())),
                None => {
                    errors.push(format!(
                        "--{which} {text}: no '=' and no environment variable {text} (write VAR=VALUE)"
                    ));
                    None
                }
            },
        }
    };
    let file = |text: &str, errors: &mut Vec<String>, which: &str| -> Option<(String, String)> {
        let Some((var, path)) = text.split_once('=') else {
            errors.push(format!("--{which}-file {text}: write VAR=FILE"));
            return None;
        };
        match std::fs::read_to_string(path) {
            Ok(content) => Some((var.to_string(), content)),
            Err(e) => {
                errors.push(format!("--{which}-file {text}: {path}: {e}"));
                None
            }
        }
    };
    for s in strs {
        if let Some((var, value)) = inline(s, errors, &format!("{flag}-str")) {
            out.push((var, Var::Str(value)));
        }
    }
    for s in str_files {
        if let Some((var, content)) = file(s, errors, &format!("{flag}-str")) {
            out.push((var, Var::Str(content)));
        }
    }
    for s in codes {
        if let Some((var, code)) = inline(s, errors, &format!("{flag}-code")) {
            out.push((
                var,
                Var::Code {
                    repr: String::new(),
                    code,
                },
            ));
        }
    }
    for s in code_files {
        // As C++: the file is imported (its own imports resolve from its folder).
        match s.split_once('=') {
            Some((var, path)) if std::path::Path::new(path).is_file() => out.push((
                var.to_string(),
                Var::Code {
                    repr: String::new(),
                    code: format!("import @'{}'", path.replace('\'', "''")),
                },
            )),
            Some((_, path)) => errors.push(format!("--{flag}-code-file {s}: {path}: no such file")),
            None => errors.push(format!("--{flag}-code-file {s}: write VAR=FILE")),
        }
    }
    out
}
