//! `kopsrs jsonnet` and the manifests pipeline on arbitrary Jsonnet: evaluation answers (a
//! value or an error), the value is written as the C++ `jsonnet` writes it, and what it
//! holds is read as manifests (objects found as kubecfg finds them), never panicking.
#![no_main]

use kopsrs_manifests::jsonnet::{document, evaluate, Input, Options};
use kopsrs_manifests::objects::find;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(code) = std::str::from_utf8(data) else {
        return;
    };
    let input = Input::Snippet {
        repr: "<fuzz>".into(),
        code: code.to_string(),
    };
    let options = Options {
        max_stack: Some(200),
        ..Options::default()
    };
    let Ok(value) = evaluate(&input, &options) else {
        return;
    };
    let _ = document(&value, false, "fuzz");
    let _ = document(&value, true, "fuzz");
    let _ = find(&value, "fuzz.jsonnet");
});
