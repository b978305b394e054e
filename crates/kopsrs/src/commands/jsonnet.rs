//! `kopsrs jsonnet`: a drop-in for the C++ `jsonnet` command in Makefiles and scripts, with
//! its flags and its output byte for byte. Evaluation is `kopsrs_manifests::jsonnet`'s.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use kopsrs_manifests::jsonnet::{self, Input, Options, Output, Var};

use crate::problems::{ExitWith, Problems};

/// The `jsonnet` command's flags, with its short forms.
#[derive(Args, Debug, Clone, Default)]
pub struct JsonnetArgs {
    /// The file to evaluate (`-` for standard input), or the code with -e.
    #[arg(value_name = "FILE|CODE")]
    pub input: String,
    /// Treat the argument as code.
    #[arg(short = 'e', long = "exec")]
    pub exec: bool,
    #[command(flatten)]
    pub flags: JsonnetFlags,
    /// Write the output to FILE instead of standard output.
    #[arg(short = 'o', long = "output-file", value_name = "FILE")]
    pub output_file: Option<PathBuf>,
    /// Write one file per field of the output object into DIR, and list them.
    #[arg(short = 'm', long = "multi", value_name = "DIR")]
    pub multi: Option<PathBuf>,
    /// Create the directories of -o and -m files.
    #[arg(short = 'c', long = "create-output-dirs")]
    pub create_output_dirs: bool,
    /// Write the output array as a YAML stream of JSON documents.
    #[arg(short = 'y', long = "yaml-stream")]
    pub yaml_stream: bool,
    /// Expect a string and write it raw.
    #[arg(short = 'S', long = "string")]
    pub string: bool,
    /// Maximum stack depth (default 500).
    #[arg(short = 's', long = "max-stack", value_name = "N")]
    pub max_stack: Option<usize>,
    /// Maximum stack-trace lines in errors (default 20; 0: all).
    #[arg(short = 't', long = "max-trace", value_name = "N")]
    pub max_trace: Option<usize>,
}

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
    pub fn options(&self, errors: &mut Vec<String>) -> Options {
        let ext = vars(
            &self.ext_str,
            &self.ext_str_file,
            &self.ext_code,
            &self.ext_code_file,
            "ext",
            errors,
        );
        let tla = vars(
            &self.tla_str,
            &self.tla_str_file,
            &self.tla_code,
            &self.tla_code_file,
            "tla",
            errors,
        );
        Options {
            jpath: Options::search_order(&self.jpath, std::env::var_os("JSONNET_PATH").as_deref()),
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
    errors: &mut Vec<String>,
) -> Vec<(String, Var)> {
    let mut out = Vec::new();
    let inline = |text: &str, errors: &mut Vec<String>, which: &str| -> Option<(String, String)> {
        match text.split_once('=') {
            Some((var, value)) => Some((var.to_string(), value.to_string())),
            None => match std::env::var(text) {
                Ok(value) => Some((text.to_string(), value)),
                Err(_) => {
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

pub fn run(args: JsonnetArgs) -> Result<()> {
    let mut errors = Vec::new();
    let mut options = args.flags.options(&mut errors);
    options.max_stack = args.max_stack;
    options.max_trace = args.max_trace;
    if args.multi.is_some() && args.yaml_stream {
        errors.push("-m and -y cannot be used together".into());
    }
    let input = match (args.exec, args.input.as_str()) {
        (true, code) => Input::Snippet {
            repr: "<cmdline>".into(),
            code: code.to_string(),
        },
        (false, "-") => match std::io::read_to_string(std::io::stdin()) {
            Ok(code) => Input::Snippet {
                repr: "<stdin>".into(),
                code,
            },
            Err(e) => {
                errors.push(format!("reading standard input: {e}"));
                Input::Snippet {
                    repr: "<stdin>".into(),
                    code: String::new(),
                }
            }
        },
        (false, file) => Input::File(PathBuf::from(file)),
    };
    if !errors.is_empty() {
        return Err(Problems::from_messages(errors).into());
    }
    let value = match jsonnet::evaluate(&input, &options) {
        Ok(v) => v,
        // rsjsonnet printed the diagnostic (file:line:column, source, stack).
        Err(jsonnet::Error::Reported(_)) => return Err(ExitWith(1).into()),
        Err(e) => return Err(Problems::from_messages([e.to_string()]).into()),
    };
    let text = match &args.multi {
        Some(dir) => {
            let files = jsonnet::multi(&value, dir, args.string)
                .map_err(|e| Problems::from_messages([e]))?;
            let mut listing = String::new();
            for (path, content) in files {
                write_file(&path, content.as_bytes(), args.create_output_dirs, true)?;
                listing.push_str(&format!("{}\n", path.display()));
            }
            listing
        }
        None => jsonnet::render(
            &value,
            Output {
                string: args.string,
                yaml_stream: args.yaml_stream,
            },
        )
        .map_err(|e| Problems::from_messages([e]))?,
    };
    match &args.output_file {
        Some(path) => write_file(path, text.as_bytes(), args.create_output_dirs, false)?,
        None => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(())
}

/// Writes a file; with `skip_same`, leaves a file that already has `content` alone (as C++
/// does for -m, so build tools see no change).
fn write_file(path: &Path, content: &[u8], create_dirs: bool, skip_same: bool) -> Result<()> {
    if skip_same && std::fs::read(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    if create_dirs {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(path, content).map_err(|e| {
        Problems::one(
            format!("writing {}: {e}", path.display()),
            "-c creates missing directories",
        )
        .into()
    })
}
