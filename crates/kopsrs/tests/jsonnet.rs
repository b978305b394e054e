//! `kopsrs jsonnet` against this project's corpus (tests/jsonnet/cases: the standard library,
//! inheritance with `+:` and `super`, hidden fields, imports through -J, external variables and
//! top-level arguments, asserts, numbers and strings, -y and -S) and its error cases. The
//! golden outputs were written by the C++ `jsonnet` (PyPI wheel `jsonnet`, driven by
//! scripts/cpp_jsonnet.py); where the wheel is installed (CI installs it) the C++ output is
//! produced again and compared too, so a golden cannot drift from what C++ writes.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn kopsrs(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kopsrs"))
        .arg("jsonnet")
        .args(args)
        .output()
        .unwrap()
}

/// The C++ `jsonnet`, if its wheel is installed; CI must have it.
fn cpp(args: &[String]) -> Option<Output> {
    let available = Command::new("python3")
        .args(["-c", "import _jsonnet"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs the C++ jsonnet: python3 -m pip install jsonnet"
        );
        eprintln!("the C++ jsonnet (pip install jsonnet) is not installed: goldens only");
        return None;
    }
    Some(
        Command::new("python3")
            .arg(support::repo_root().join("scripts/cpp_jsonnet.py"))
            .args(args)
            .output()
            .unwrap(),
    )
}

fn cases(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(Path::new("tests/jsonnet").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonnet"))
        .collect();
    out.sort();
    out
}

fn args_of(case: &Path) -> Vec<String> {
    let mut args: Vec<String> = std::fs::read_to_string(case.with_extension("args"))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    args.push(case.display().to_string());
    args
}

#[test]
fn every_case_is_written_byte_for_byte_as_cpp_jsonnet_writes_it() {
    let cases = cases("cases");
    assert!(cases.len() >= 7);
    for case in cases {
        let args = args_of(&case);
        let golden = std::fs::read(case.with_extension("golden")).unwrap();
        let out = kopsrs(&args);
        assert!(
            out.status.success(),
            "{case:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&golden),
            "{case:?}"
        );
        if let Some(reference) = cpp(&args) {
            assert!(reference.status.success(), "{case:?}");
            assert_eq!(reference.stdout, golden, "{case:?}: the golden is C++'s");
        }
    }
}

#[test]
fn errors_exit_1_naming_file_line_column_and_the_stack() {
    // (file, the line of C++'s first location, text kopsrs's message holds)
    let expected = [
        ("assert.jsonnet", 3, "assertion failed: name too long"),
        ("extvar.jsonnet", 2, "unknown external variable \"env\""),
        ("import.jsonnet", 2, "\"missing.libsonnet\" not found"),
        ("runtime.jsonnet", 3, "replicas must be at least 1, got 0"),
        ("syntax.jsonnet", 3, "instead of `,`"),
    ];
    let cases = cases("errors");
    assert_eq!(cases.len(), expected.len());
    for (case, (file, line, text)) in cases.iter().zip(expected) {
        assert!(case.ends_with(file));
        let out = kopsrs(&args_of(case));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(out.stdout.is_empty(), "{file}");
        assert!(stderr.contains(text), "{file}: {stderr}");
        let location = format!(" --> {}:{line}:", case.display());
        assert!(stderr.contains(&location), "{file}: {location} in {stderr}");
        if let Some(reference) = cpp(&args_of(case)) {
            assert_eq!(reference.status.code(), Some(1));
            let cpp_err = String::from_utf8_lossy(&reference.stderr);
            assert!(
                cpp_err.contains(&format!("{}:{line}:", case.display())),
                "{file}: C++ says {cpp_err}"
            );
        }
    }
    // The stack: each frame of the call chain.
    let out = kopsrs(&args_of(Path::new("tests/jsonnet/errors/runtime.jsonnet")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for frame in [
        "while evaluating call to `check`",
        "while evaluating object field \"replicas\"",
        "while evaluating object field \"web\"",
    ] {
        assert!(stderr.contains(frame), "{frame}: {stderr}");
    }
}

#[test]
fn multi_output_files_stdin_and_the_library_path_behave_as_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let code = "{ 'a.json': { x: [1, 0.1] }, 'b.txt': 'B', 'c.json': {} }".to_string();
    let mut listings = Vec::new();
    for (who, sub) in [("kopsrs", "rs"), ("cpp", "cpp")] {
        let out_dir = dir.path().join(sub);
        std::fs::create_dir(&out_dir).unwrap();
        let args = vec![
            "-m".to_string(),
            out_dir.display().to_string(),
            "-e".into(),
            code.clone(),
        ];
        let out = match who {
            "kopsrs" => kopsrs(&args),
            _ => match cpp(&args) {
                Some(o) => o,
                None => continue,
            },
        };
        assert!(out.status.success(), "{who}");
        let listing = String::from_utf8(out.stdout)
            .unwrap()
            .replace(&out_dir.display().to_string(), "DIR");
        listings.push(listing);
    }
    assert_eq!(listings[0], "DIR/a.json\nDIR/b.txt\nDIR/c.json\n");
    if listings.len() == 2 {
        assert_eq!(listings[0], listings[1]);
        for f in ["a.json", "b.txt", "c.json"] {
            assert_eq!(
                std::fs::read(dir.path().join("rs").join(f)).unwrap(),
                std::fs::read(dir.path().join("cpp").join(f)).unwrap(),
                "{f}"
            );
        }
    }

    // -o writes the file; - reads standard input.
    let out_file = dir.path().join("out.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kopsrs"))
        .args(["jsonnet", "-o"])
        .arg(&out_file)
        .arg("-")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"{ a: 1 + 1 }").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        "{\n   \"a\": 2\n}\n"
    );

    // -J right-most wins over the left, and over JSONNET_PATH (left-most wins there).
    for (name, value) in [("one", "1"), ("two", "2"), ("three", "3"), ("four", "4")] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("v.libsonnet"), value).unwrap();
    }
    let run = |args: &[&str], env: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_kopsrs"))
            .current_dir(dir.path())
            .env("JSONNET_PATH", env)
            .arg("jsonnet")
            .args(args)
            .args(["-e", "import 'v.libsonnet'"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(&["-J", "one", "-J", "two"], "three:four"), "2\n");
    assert_eq!(run(&[], "three:four"), "3\n");
    assert_eq!(run(&["-J", "one"], "three"), "1\n");
    // Code on the command line imports from the working directory, after -J and the path.
    std::fs::write(dir.path().join("v.libsonnet"), "0").unwrap();
    assert_eq!(run(&[], ""), "0\n");
    assert_eq!(run(&["-J", "one"], ""), "1\n");
    // --ext-code-file imports the file, as C++ does (its own imports from its folder).
    std::fs::write(
        dir.path().join("one").join("cfg.jsonnet"),
        "{ v: import 'v.libsonnet' }",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kopsrs"))
        .current_dir(dir.path())
        .args([
            "jsonnet",
            "--ext-code-file",
            "cfg=one/cfg.jsonnet",
            "-e",
            "std.extVar('cfg').v",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bad flags are named, nothing runs.
    let out = kopsrs(&[
        "-V".into(),
        "NO_SUCH_VARIABLE_X".into(),
        "-e".into(),
        "1".into(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NO_SUCH_VARIABLE_X"));
}
