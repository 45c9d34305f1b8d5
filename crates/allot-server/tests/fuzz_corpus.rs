//! The fuzz targets' kept inputs on stable, in the normal suite: every file of
//! `fuzz/corpus/<target>/` (a small minimized corpus) and `fuzz/regressions/<target>/` (each
//! input a fuzz run found failing, kept after its fix) goes through the same property function
//! the target runs (`allot_server::fuzzing`).

use std::path::Path;

use allot_server::fuzzing::TARGETS;

#[test]
fn every_kept_fuzz_input_keeps_its_properties() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut checked = 0;
    for (target, property) in TARGETS {
        let mut files = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                let data = std::fs::read(&path).expect("a kept input reads");
                let outcome = std::panic::catch_unwind(|| property(&data));
                assert!(
                    outcome.is_ok(),
                    "{target}: {} fails its properties",
                    path.display()
                );
                files += 1;
            }
        }
        assert!(files > 0, "{target} keeps no corpus");
        checked += files;
    }
    eprintln!("{checked} kept fuzz inputs checked");
}
