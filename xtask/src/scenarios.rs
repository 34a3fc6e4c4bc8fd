//! The QEMU scenarios: `cargo xtask scenarios [--bless] [BOARD..]`, and the
//! QEMU part of `cargo xtask test`.
//!
//! What runs, and what each run must print, lives in `tests/qemu/` (it
//! spans crates: the boards' firmware, the adapter and the core):
//! [`LIST`] names every scenario, one line each, and
//! `tests/qemu/<board>/<example>.run` holds its expected output. Each
//! scenario runs under `-icount` (deterministic: the same interrupts land at
//! the same instructions every run, as RTIC's QEMU tests rely on), must
//! print exactly that file's lines and exit with success; the ones marked
//! `free` run once more without `-icount`, for randomness, and must
//! succeed.

use std::path::{Path, PathBuf};

use crate::qemu::{self, Board, BOARDS};
use crate::shell::root;

/// The scenario list, relative to the repository.
pub const LIST: &str = "tests/qemu/scenarios.txt";

/// One line of [`LIST`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The board, one of [`BOARDS`].
    pub board: String,
    /// The firmware example.
    pub example: String,
    /// Also run without `-icount`.
    pub free: bool,
    /// What the host feeds to the emulated UART.
    pub uart: Option<String>,
}

impl Scenario {
    /// Its expected output: `tests/qemu/<board>/<example>.run`.
    pub fn expected(&self) -> PathBuf {
        expected_dir(&self.board).join(format!("{}.run", self.example))
    }
}

/// Where `board`'s expected outputs are.
fn expected_dir(board: &str) -> PathBuf {
    root().join("tests/qemu").join(board)
}

/// Parses the scenario list: `BOARD EXAMPLE [free] [uart=TEXT]` per line;
/// `#` starts a comment.
pub fn parse(text: &str) -> Result<Vec<Scenario>, String> {
    let mut scenarios: Vec<Scenario> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = |message: String| format!("{LIST}:{}: {message}", index + 1);
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(board) = words.next() else {
            continue;
        };
        let example = words.next().ok_or_else(|| {
            at(format!(
                "`{board}` needs an example: BOARD EXAMPLE [free] [uart=TEXT]"
            ))
        })?;
        if !BOARDS.iter().any(|known| known.name == board) {
            let names: Vec<&str> = BOARDS.iter().map(|board| board.name).collect();
            return Err(at(format!(
                "no QEMU board `{board}` (boards: {}; a new one also needs its entry in xtask/src/qemu.rs)",
                names.join(", ")
            )));
        }
        let mut scenario = Scenario {
            board: board.to_owned(),
            example: example.to_owned(),
            free: false,
            uart: None,
        };
        for option in words {
            match option.split_once('=') {
                None if option == "free" => scenario.free = true,
                Some(("uart", text)) if !text.is_empty() => scenario.uart = Some(text.to_owned()),
                _ => {
                    return Err(at(format!(
                        "unknown option `{option}` (options: free, uart=TEXT)"
                    )))
                }
            }
        }
        if scenarios
            .iter()
            .any(|other| other.board == scenario.board && other.example == scenario.example)
        {
            return Err(at(format!("{board} {example} is listed twice")));
        }
        scenarios.push(scenario);
    }
    Ok(scenarios)
}

/// Reads and parses [`LIST`].
pub fn list() -> Result<Vec<Scenario>, String> {
    let path = root().join(LIST);
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    parse(&text)
}

/// What the host feeds to the emulated UART when `example` runs on `board`
/// (from [`LIST`]; nothing for an example it does not name).
pub fn uart_input(board: &str, example: &str) -> Result<Option<String>, String> {
    Ok(list()?
        .into_iter()
        .find(|scenario| scenario.board == board && scenario.example == example)
        .and_then(|scenario| scenario.uart))
}

/// The `.run` files in `board`'s directory that no scenario names.
fn stale(board: &str, scenarios: &[Scenario]) -> Vec<PathBuf> {
    let mut stale: Vec<PathBuf> = std::fs::read_dir(expected_dir(board))
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "run"))
        .filter(|path| {
            !scenarios
                .iter()
                .any(|scenario| scenario.board == board && scenario.expected() == *path)
        })
        .collect();
    stale.sort();
    stale
}

/// `path` relative to the repository, for messages.
fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `cargo xtask scenarios [--bless] [BOARD..]`: every scenario of [`LIST`]
/// (or of the boards named). `--bless` writes each successful run's output
/// to its expected file instead of comparing (a new scenario: add its line
/// to the list, bless, and review the diff before committing), and removes
/// expected files that no scenario names.
pub fn run(args: &[String]) -> Result<(), String> {
    let bless = args.iter().any(|arg| arg == "--bless");
    if let Some(unknown) = args
        .iter()
        .find(|arg| arg.starts_with("--") && *arg != "--bless")
    {
        return Err(format!(
            "scenarios: unknown option `{unknown}` (try --bless, or board names)"
        ));
    }
    let only: Vec<&str> = args
        .iter()
        .filter(|arg| !arg.starts_with("--"))
        .map(String::as_str)
        .collect();
    if let Some(unknown) = only
        .iter()
        .find(|name| !BOARDS.iter().any(|board| board.name == **name))
    {
        return Err(format!(
            "scenarios: no QEMU board `{unknown}` (boards: {})",
            BOARDS.map(|board| board.name).join(", ")
        ));
    }
    let scenarios = list()?;
    qemu::ensure_qemu()?;
    for board in BOARDS
        .iter()
        .filter(|board| only.is_empty() || only.contains(&board.name))
    {
        for path in stale(board.name, &scenarios) {
            if bless {
                std::fs::remove_file(&path)
                    .map_err(|error| format!("cannot remove {}: {error}", path.display()))?;
                println!("<== {}: removed (no scenario in {LIST})", relative(&path));
            } else {
                return Err(format!(
                    "{}: no scenario in {LIST} names it (list it, or remove it; \
                     `cargo xtask scenarios --bless {}` removes it)",
                    relative(&path),
                    board.name
                ));
            }
        }
        for scenario in scenarios
            .iter()
            .filter(|scenario| scenario.board == board.name)
        {
            run_one(board, scenario, bless)?;
        }
    }
    Ok(())
}

/// What a second run of a scenario whose output differed from the expected
/// run says about the difference: the same output again is a change in
/// the firmware's behaviour; any other means the output depends on the
/// host's timing, which `-icount` is there to rule out.
fn verdict(wanted: &str, got: &str, again: &str, board: &Board) -> String {
    if again == got {
        format!(
            "--- a second run printed the same: the firmware behaves differently now; if that is \
             intended, run `cargo xtask scenarios --bless {}` and review the change",
            board.name
        )
    } else {
        let second = if again == wanted {
            "the expected output"
        } else {
            "a third output"
        };
        format!(
            "--- a second run printed {second}: the output depends on the host's timing, which \
             -icount should rule out (docs/porting.md, section 10: a core that sleeps and then \
             reads the clock)"
        )
    }
}

/// Runs one scenario under `-icount`, compares (or blesses) its output, and
/// runs it once more without `-icount` if it is `free`.
fn run_one(board: &Board, scenario: &Scenario, bless: bool) -> Result<(), String> {
    let example = &scenario.example;
    let expected = scenario.expected();
    let elf = qemu::build(board, example)?;
    let input = scenario.uart.as_deref().map(str::as_bytes);
    let run = qemu::run(board, &elf, &["-icount", board.icount], input)?;
    for line in &run.lines {
        println!("    {line}");
    }
    let got = run.text();
    let wanted = match std::fs::read_to_string(&expected) {
        Ok(wanted) => Some(wanted),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(format!("cannot read {}: {error}", expected.display())),
    };
    if bless && run.success && wanted.as_deref() != Some(got.as_str()) {
        std::fs::create_dir_all(expected_dir(&scenario.board))
            .map_err(|error| format!("cannot create {}: {error}", expected.display()))?;
        std::fs::write(&expected, &got)
            .map_err(|error| format!("cannot write {}: {error}", expected.display()))?;
        println!(
            "<== {}/{example}: output written to {}",
            board.name,
            relative(&expected)
        );
    } else {
        let Some(wanted) = wanted else {
            return Err(format!(
                "{}/{example}: {} is missing: run `cargo xtask scenarios --bless {}` and review \
                 what it writes",
                board.name,
                relative(&expected),
                board.name
            ));
        };
        if got != wanted {
            // Run it once more, only to say which kind of failure this is.
            let again = qemu::run(board, &elf, &["-icount", board.icount], input)?;
            let verdict = verdict(&wanted, &got, &again.text(), board);
            return Err(format!(
                "{}/{example}: output differs from {}\n--- expected\n{wanted}--- got\n{got}{verdict}",
                board.name,
                relative(&expected)
            ));
        }
        if !run.success {
            return Err(format!(
                "{}/{example}: QEMU exit status non-zero",
                board.name
            ));
        }
        println!(
            "<== {}/{example}: output matches {}",
            board.name,
            relative(&expected)
        );
    }
    if scenario.free {
        let free = qemu::run(board, &elf, &[], input)?;
        for line in &free.lines {
            println!("    {line}");
        }
        if !free.success {
            return Err(format!(
                "{}/{example}: failed without -icount:\n{}",
                board.name,
                free.lines.join("\n")
            ));
        }
        println!("<== {}/{example} without -icount: ok", board.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_boards_examples_options_and_comments() {
        let scenarios = parse(
            "# a comment\n\
             \n\
             lm3s6965evb demo\n\
             lm3s6965evb  storm  free   # swept timer\n\
             lm3s6965evb uart uart=aiopoll\n",
        )
        .unwrap();
        assert_eq!(
            scenarios,
            [
                Scenario {
                    board: "lm3s6965evb".into(),
                    example: "demo".into(),
                    free: false,
                    uart: None
                },
                Scenario {
                    board: "lm3s6965evb".into(),
                    example: "storm".into(),
                    free: true,
                    uart: None
                },
                Scenario {
                    board: "lm3s6965evb".into(),
                    example: "uart".into(),
                    free: false,
                    uart: Some("aiopoll".into())
                },
            ]
        );
        assert_eq!(
            scenarios[1].expected(),
            root().join("tests/qemu/lm3s6965evb/storm.run")
        );
    }

    #[test]
    fn rejects_unknown_boards_options_missing_examples_and_duplicates() {
        for (text, says) in [
            ("nosuchboard demo\n", "no QEMU board `nosuchboard`"),
            ("lm3s6965evb\n", "needs an example"),
            ("lm3s6965evb storm fast\n", "unknown option `fast`"),
            ("lm3s6965evb uart uart=\n", "unknown option `uart=`"),
            ("lm3s6965evb demo\nlm3s6965evb demo free\n", "listed twice"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(says), "{text:?}: {error}");
        }
        // The line number points at the offending line.
        assert!(parse("lm3s6965evb demo\n\nbad\n")
            .unwrap_err()
            .starts_with(&format!("{LIST}:3: ")));
    }

    #[test]
    fn a_second_run_tells_a_changed_firmware_from_a_timing_dependent_one() {
        let board = &BOARDS[0];
        let changed = verdict("a\n", "b\n", "b\n", board);
        assert!(changed.contains("behaves differently now"), "{changed}");
        assert!(
            changed.contains(&format!("--bless {}", board.name)),
            "{changed}"
        );
        for again in ["a\n", "c\n"] {
            let timing = verdict("a\n", "b\n", again, board);
            assert!(timing.contains("depends on the host's timing"), "{timing}");
            assert!(!timing.contains("--bless"), "{timing}");
        }
        assert!(verdict("a\n", "b\n", "a\n", board).contains("the expected output"));
        assert!(verdict("a\n", "b\n", "c\n", board).contains("a third output"));
    }

    #[test]
    fn the_repository_list_names_known_boards_and_has_every_expected_file() {
        let scenarios = list().unwrap();
        assert!(!scenarios.is_empty());
        for scenario in &scenarios {
            assert!(
                scenario.expected().is_file(),
                "{} is missing",
                relative(&scenario.expected())
            );
        }
        for board in &BOARDS {
            assert_eq!(stale(board.name, &scenarios), Vec::<PathBuf>::new());
        }
    }
}
