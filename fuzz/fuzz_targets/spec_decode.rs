//! The spec decoder on arbitrary text: it must answer (documents or errors naming what is
//! wrong), never panic, and never take more than linear-ish time (libFuzzer's -timeout
//! catches a slow input). What decodes must encode and decode again to the same documents.
#![no_main]

use kopsrs_api::{decode_documents_with, encode_documents, too_deep, OutputFormat, Validation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    too_deep(text);
    for validation in [Validation::Strict, Validation::Warn] {
        let Ok(decoded) = decode_documents_with(text, "fuzz.yaml", validation) else {
            continue;
        };
        // (No documents encode as `[]` in JSON, which is not a spec file.)
        if decoded.documents.is_empty() {
            continue;
        }
        for format in [OutputFormat::Yaml, OutputFormat::Json] {
            let encoded = encode_documents(&decoded.documents, format);
            let again = decode_documents_with(&encoded, "encoded", Validation::Strict)
                .unwrap_or_else(|e| panic!("re-decoding what was encoded failed: {e:?}\n{encoded}"));
            assert_eq!(again.documents, decoded.documents, "{encoded}");
        }
    }
});
