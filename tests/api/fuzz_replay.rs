//! The fuzz corpus replayed on stable: every file of `fuzz/corpus/<target>/` goes through the
//! same check the `cargo fuzz` target runs (fuzz/checks.rs), so inputs that once crashed a
//! parser, and the seeds, stay covered by `cargo test`. See docs/fuzzing.md.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/checks.rs"]
mod checks;

/// The corpus files of `target`, in name order; fails if there are none (a vanished corpus
/// would otherwise pass silently).
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// Runs `check` over the corpus of `target`, naming the file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    for file in corpus(target) {
        let data = std::fs::read(&file).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("fuzz check {target} fails on {}", file.display());
        }
    }
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), checks::$target);
            }
        )*
    };
}

replay_tests!(
    csv_import,
    template,
    phone,
    ws_client_op,
    sim_protocol,
    prepare_image
);
