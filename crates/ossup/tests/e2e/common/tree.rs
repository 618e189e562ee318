//! Trees of files on disk for the batch tests, and the batch items that name them under `t/`.

use std::path::PathBuf;

use ossup::BatchItem;

/// A file of a test tree: where it is, its path below the tree's root, its bytes.
pub(crate) type TreeFile = (PathBuf, String, Vec<u8>);

/// Writes every file of the tree, creating its directories.
pub(crate) fn write_tree(files: &[TreeFile]) {
    for (path, _, bytes) in files {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// One batch item per file, keyed `t/` + its path below the root.
pub(crate) fn items(files: &[TreeFile]) -> Vec<BatchItem> {
    files
        .iter()
        .map(|(path, relative, _)| BatchItem::file(path, format!("t/{relative}")))
        .collect()
}
