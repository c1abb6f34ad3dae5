//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and every input that once crashed a target
//! (`fuzz/regressions/<target>/`) through the same functions the `cargo fuzz` targets call, so
//! `cargo test` keeps every finding fixed without libFuzzer.
#![allow(clippy::unwrap_used)]

#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} panics on {}", path.display());
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn the_render_and_load_corpus_and_regressions_pass() {
    assert!(replay("render_and_load", harness::render_and_load) >= 9, "the corpus is seeded with every file kind");
}

#[test]
fn the_depdef_corpus_and_regressions_pass() {
    assert!(replay("depdef", harness::depdef) >= 3);
}

#[test]
fn the_webhook_corpus_and_regressions_pass() {
    assert!(replay("webhook", harness::webhook) >= 2);
}

#[test]
fn the_fuzzed_repository_is_valid_before_the_fuzzer_changes_it() {
    let mut tree = gitmoxi_deploy::spec::MemTree::new();
    for (path, text) in harness::FILES {
        tree.insert(path, text);
    }
    let snapshot = gitmoxi_deploy::spec::load_snapshot(&tree, &gitmoxi_deploy::spec::RenderContext::new("us-east-1".into()));
    let invalid: Vec<_> = snapshot.apps.values().filter_map(|a| a.as_ref().err()).collect();
    assert!(invalid.is_empty(), "{invalid:?}");
    assert_eq!(snapshot.valid().count(), 2, "an ECS app and a Lambda function");
}
