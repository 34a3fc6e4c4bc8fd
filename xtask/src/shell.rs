//! Running commands, with each step announced and timed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// `cargo` as invoked by the user (respects `$CARGO`).
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

/// A `cargo +toolchain` command through rustup.
pub fn cargo_toolchain(toolchain: &str) -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", toolchain, "cargo"])
        .current_dir(root());
    // The outer cargo's variables would pin the stable toolchain.
    for variable in [
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "CARGO_MANIFEST_DIR",
    ] {
        command.env_remove(variable);
    }
    command
}

/// How long one step may run before it is taken for hung: ten times the
/// longest step of a CI run (about two minutes on the 2-core machines), so
/// that a test that never returns fails the suite with the step's name and
/// where each of its threads waits, instead of running until CI gives up on the
/// whole job. `AIOPOLL_STEP_MINUTES` overrides it (0: no bound).
const STEP_MINUTES: u64 = 20;

/// Runs `command` as the step `name`, failing with a clear message.
pub fn step(name: &str, command: &mut Command) -> Result<(), String> {
    println!("\n==> {name}");
    println!("    $ {}", describe(command));
    let minutes = std::env::var("AIOPOLL_STEP_MINUTES")
        .ok()
        .and_then(|minutes| minutes.parse().ok())
        .unwrap_or(STEP_MINUTES);
    let bound = (minutes > 0).then(|| Duration::from_secs(minutes * 60));
    step_within(name, command, bound)
}

/// [`step`] with its bound given (`None`: none).
fn step_within(name: &str, command: &mut Command, bound: Option<Duration>) -> Result<(), String> {
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|error| format!("{name}: could not start `{}`: {error}", describe(command)))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(error) => return Err(format!("{name}: could not wait for it: {error}")),
        }
        if bound.is_some_and(|bound| started.elapsed() >= bound) {
            let stacks = hung::report_and_kill(child.id());
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{name} still ran after {:.0} s: something in it hangs \
                 (AIOPOLL_STEP_MINUTES sets the bound). Its processes and threads:\n{stacks}",
                started.elapsed().as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let seconds = started.elapsed().as_secs_f64();
    if status.success() {
        println!("<== {name}: ok ({seconds:.1} s)");
        Ok(())
    } else {
        Err(format!("{name} failed ({status}) after {seconds:.1} s"))
    }
}

/// What a hung step leaves to look at, from `/proc` (Linux; elsewhere the
/// child alone is killed).
mod hung {
    use std::fmt::Write;
    use std::process::Command;

    /// Every process below `root`, found through `/proc/<pid>/stat`.
    fn descendants(root: u32) -> Vec<u32> {
        let mut parents: Vec<(u32, u32)> = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                // `pid (comm) state ppid ...`: comm may hold spaces.
                let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
                if let Some(parent) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                    parents.push((pid, parent));
                }
            }
        }
        let mut found = vec![root];
        let mut index = 0;
        while index < found.len() {
            let parent = found[index];
            found.extend(
                parents
                    .iter()
                    .filter(|(_, p)| *p == parent)
                    .map(|(pid, _)| *pid),
            );
            index += 1;
        }
        found
    }

    fn read(path: String) -> String {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Describes every process below `root` and each of its threads (name
    /// and where the kernel has it waiting), then kills them all.
    pub fn report_and_kill(root: u32) -> String {
        let processes = descendants(root);
        let mut report = String::new();
        for pid in &processes {
            let command = read(format!("/proc/{pid}/cmdline")).replace('\0', " ");
            let _ = writeln!(report, "  process {pid}: {command}");
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let tid = task.file_name().to_string_lossy().into_owned();
                let name = read(format!("/proc/{pid}/task/{tid}/comm"));
                let wchan = read(format!("/proc/{pid}/task/{tid}/wchan"));
                let _ = writeln!(report, "    thread {tid} {name}: waiting in {wchan}");
            }
        }
        for pid in processes.iter().rev() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        report
    }
}

/// Runs `command` and returns its standard output, or `None` if it fails.
pub fn output(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn describe(command: &Command) -> String {
    let mut text = String::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            text.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    text.push_str(&command.get_program().to_string_lossy());
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_step_that_outlives_its_bound_fails_and_leaves_no_process_behind() {
        // A sleep whose command line no other process has.
        let marker = format!("sleep 600.{}", std::process::id());
        let mut command = Command::new("sh");
        // A child that waits for its own child, as cargo waits for a test.
        command.args(["-c", &format!("{marker} & wait")]);
        let error = step_within(
            "a step that hangs",
            &mut command,
            Some(Duration::from_secs(1)),
        )
        .unwrap_err();
        assert!(
            error.contains("a step that hangs still ran after"),
            "{error}"
        );
        assert!(
            error.contains("sleep 600"),
            "names the hung process: {error}"
        );
        // Killed: no process is left with the marker in its command line.
        let left = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
            .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(&marker))
            .count();
        assert_eq!(left, 0);
    }

    #[test]
    fn a_step_within_its_bound_reports_its_status() {
        let ok = step_within(
            "true",
            &mut Command::new("true"),
            Some(Duration::from_secs(600)),
        );
        assert_eq!(ok, Ok(()));
        let failed = step_within("false", &mut Command::new("false"), None).unwrap_err();
        assert!(failed.starts_with("false failed"), "{failed}");
    }
}
