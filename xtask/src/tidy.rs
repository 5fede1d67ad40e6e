//! Repository-wide checks that run inside `cargo test`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Every source file of every crate opens with module docs (`//!`), so each file says what
/// it is for.
#[test]
fn every_source_file_has_module_docs() {
    let root = crate::project_root();
    let mut files = Vec::new();
    for dir in ["crates", "xtask/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.retain(|path| {
        let text = path.to_string_lossy();
        text.contains("/src/") || text.contains("/tests/") || text.contains("/benches/")
    });
    assert!(files.len() > 10, "found too few source files: {files:?}");
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| {
            path.strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without `//!` module docs: {missing:#?}"
    );
}
