//! `kopsrs jsonnet`: a drop-in for the C++ `jsonnet` command in Makefiles and scripts, with
//! its flags and its output byte for byte. Evaluation is `kopsrs_manifests::jsonnet`'s.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use kopsrs_manifests::jsonnet::{self, Input, Output};

use crate::jsonnet_flags::JsonnetFlags;

use crate::render::ExitWith;
use kopsrs_ops::Problems;

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

pub fn run(settings: &kopsrs_ops::Settings, args: JsonnetArgs) -> Result<()> {
    let mut errors = Vec::new();
    let mut options = args.flags.options(settings, &mut errors);
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
