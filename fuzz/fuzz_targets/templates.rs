//! `toolbox template` on arbitrary template text, Go and Jinja2 alike, with a snippet and
//! a few values: it must answer (output or an error), never panic or overflow the stack;
//! libFuzzer's -timeout and -rss_limit_mb catch runaway loops and allocations.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use kopsrs_template::{render, ChannelLookups, Engine, Setup};
use libfuzzer_sys::fuzz_target;

struct Channel;

impl ChannelLookups for Channel {
    fn recommended_kubernetes(&self) -> String {
        "1.34.1".into()
    }
    fn upgrade(&self, _: &str) -> Option<String> {
        None
    }
    fn image(&self, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let values = serde_json::json!({
        "name": "a.example.com",
        "zones": ["eu-west-1a", "eu-west-1b"],
        "nodes": {"count": 3, "type": "t3.large"},
    });
    for fail_on_missing in [false, true] {
        let setup = Setup {
            fail_on_missing,
            // A snippet that is the input itself: `include` recursion must be bounded.
            snippets: BTreeMap::from([("self".to_string(), text.to_string())]),
            channel: Arc::new(Channel),
        };
        for engine in [Engine::Go, Engine::Jinja] {
            let _ = render("fuzz.tmpl", text, &values, engine, &setup);
        }
    }
});
