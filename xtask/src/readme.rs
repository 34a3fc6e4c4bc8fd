//! The README's programs that the core's doctests cannot compile (they
//! need a board, an executor or an adapter) live as examples that CI builds
//! and lints; the README shows each one word for word. A block is tied to
//! its file by a comment on the line before it:
//!
//! ````text
//! <!-- program: boards/lm3s6965evb/examples/async_readme.rs -->
//! ```rs
//! ..
//! ```
//! ````
//!
//! The block is the file without its leading `//!` lines (and the blank
//! line after them). Such blocks are fenced as `rs`, which GitHub
//! highlights as Rust and rustdoc leaves alone.

use crate::shell::root;

const MARKER: &str = "<!-- program: ";

/// Every program block of the README against its file.
pub fn check() -> Result<(), String> {
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let programs = blocks(&readme)?;
    if programs.is_empty() {
        return Err("README.md has no `<!-- program: PATH -->` block".into());
    }
    for (file, block) in programs {
        let source = std::fs::read_to_string(root().join(&file))
            .map_err(|error| format!("README.md names {file}, which cannot be read: {error}"))?;
        if without_module_docs(&source) != block {
            return Err(format!(
                "README.md's program differs from {file}: copy the file (without its `//!` \
                 lines) into the block after `{MARKER}{file} -->`"
            ));
        }
        println!("<== README.md's program is {file}");
    }
    Ok(())
}

/// `(file, block)` for each marked block.
fn blocks(readme: &str) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(file) = line
            .strip_prefix(MARKER)
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        if lines.next() != Some("```rs") {
            return Err(format!(
                "README.md: the line after `{line}` must open the block with ```rs"
            ));
        }
        let mut block = String::new();
        loop {
            match lines.next() {
                Some("```") => break,
                Some(code) => {
                    block.push_str(code);
                    block.push('\n');
                }
                None => return Err(format!("README.md: the block of {file} is not closed")),
            }
        }
        found.push((file.to_owned(), block));
    }
    Ok(found)
}

/// `source` without its leading `//!` lines and the blank line after them.
fn without_module_docs(source: &str) -> String {
    let rest: Vec<&str> = source
        .lines()
        .skip_while(|line| line.starts_with("//!"))
        .collect();
    let rest = match rest.first() {
        Some(&"") => &rest[1..],
        _ => &rest[..],
    };
    rest.iter().map(|line| format!("{line}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_block_is_read_up_to_its_fence() {
        let readme = "text\n<!-- program: a/b.rs -->\n```rs\nfn main() {}\n\nlet x;\n```\nmore\n";
        assert_eq!(
            blocks(readme).unwrap(),
            [("a/b.rs".to_owned(), "fn main() {}\n\nlet x;\n".to_owned())]
        );
        assert!(blocks("<!-- program: a.rs -->\n```rust\n```\n").is_err());
        assert!(blocks("<!-- program: a.rs -->\n```rs\nfn f() {}\n").is_err());
    }

    #[test]
    fn the_file_is_compared_without_its_module_docs() {
        assert_eq!(
            without_module_docs("//! Doc.\n//! More.\n\n#![no_std]\n\nfn f() {}\n"),
            "#![no_std]\n\nfn f() {}\n"
        );
        assert_eq!(without_module_docs("fn f() {}\n"), "fn f() {}\n");
    }
}
