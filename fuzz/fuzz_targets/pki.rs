//! Stored keysets and kubeconfigs on arbitrary text: a keyset decodes or is an error (and
//! what decodes has a public half); a kubeconfig merges the cluster's entry or is an error;
//! never a panic.
#![no_main]

use kopsrs_pki::{merge_kubeconfig, KubeconfigEntry, Keyset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(keyset) = Keyset::from_yaml(text) {
        let _ = keyset.public();
    }
    let entry = KubeconfigEntry {
        name: "a.example.com".into(),
        server: "https://api.a.example.com".into(),
        certificate_authority: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
        client: Some(("cert".into(), "key".into())),
    };
    if let Ok(merged) = merge_kubeconfig(Some(text), &entry) {
        // What was merged merges again (the entry replaced, not appended).
        let again = merge_kubeconfig(Some(&merged), &entry).expect("a merged kubeconfig merges");
        assert_eq!(again, merge_kubeconfig(Some(&again), &entry).unwrap());
    }
});
