//! The layers keep their direction (docs/architecture.md): read from the source, so a change
//! that reaches the wrong way fails here, not in a review.
//!
//! - `domain` uses nothing with I/O: no `store`, `app`, `grpc`;
//! - `store` uses `domain` only: no `app`, `grpc`;
//! - `app` and the background jobs never use `grpc`;
//! - no server module uses a CLI tool (`cli`, `demo`, `import`, `export`, `keys`, `bench`);
//! - a case's state is written only by `store::cases` (with a state the workflow planned).

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under `src/<dir>` (or the file `src/<dir>.rs`), its code before any
/// `#[cfg(test)]` module, with its path relative to `src/`.
fn code(dir: &str) -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let as_dir = src.join(dir);
    if as_dir.is_dir() {
        sources(&as_dir, &mut files);
    } else {
        files.push(src.join(format!("{dir}.rs")));
    }
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
            let name = p.strip_prefix(&src).unwrap().display().to_string();
            (name, code)
        })
        .collect()
}

/// The lines of `dirs` that mention any of `forbidden` (`crate::x::` paths, or `use
/// crate::x` imports, ignoring comments).
fn reaches(dirs: &[&str], forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        for (file, code) in code(dir) {
            for (n, line) in code.lines().enumerate() {
                let line = line.trim();
                if line.starts_with("//") {
                    continue;
                }
                for f in forbidden {
                    if line.contains(&format!("crate::{f}::"))
                        || line.contains(&format!("crate::{f};"))
                        || line.contains(&format!("crate::{f}}}"))
                        || line.contains(&format!("crate::{f},"))
                    {
                        found.push(format!("{file}:{}: {line}", n + 1));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn the_domain_is_pure() {
    let found = reaches(
        &["domain"],
        &["store", "app", "grpc", "startup", "database"],
    );
    assert!(
        found.is_empty(),
        "domain reaches out:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_store_knows_only_the_domain() {
    let found = reaches(&["store"], &["app", "grpc", "startup"]);
    assert!(found.is_empty(), "store reaches up:\n{}", found.join("\n"));
}

#[test]
fn use_cases_and_background_jobs_never_use_the_transport() {
    let jobs = ["app", "sla", "intake", "outbox", "sealer", "anchor"];
    let found = reaches(&jobs, &["grpc"]);
    assert!(found.is_empty(), "reaches into grpc:\n{}", found.join("\n"));
}

#[test]
fn the_server_does_not_depend_on_cli_tools() {
    let server = [
        "app",
        "auth",
        "domain",
        "store",
        "grpc",
        "startup",
        "database",
        "sla",
        "intake",
        "outbox",
        "sealer",
        "anchor",
        "config",
        "telemetry",
        "embedded_pg",
        "crypto",
    ];
    let tools = ["cli", "demo", "import", "export", "keys", "bench"];
    let found = reaches(&server, &tools);
    assert!(
        found.is_empty(),
        "server uses a CLI tool:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_cases_state_is_written_only_by_store_cases() {
    let mut found = Vec::new();
    for dir in ["app", "grpc", "store", "sla", "intake", "outbox"] {
        for (file, code) in code(dir) {
            if file == "store/cases.rs" {
                continue;
            }
            for (n, line) in code.lines().enumerate() {
                if ["cases::status.eq(", "cases::flags.eq("]
                    .iter()
                    .any(|p| mentions_cases_column(line, p))
                    || line.contains("UPDATE cases SET status")
                    || line.contains("UPDATE cases SET flags")
                {
                    found.push(format!("{file}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a case's state written outside store::cases:\n{}",
        found.join("\n")
    );
}

/// Whether `line` has `pattern` (`cases::…`) for the `cases` table itself, not a table whose
/// name ends in `cases` (`mediation_cases::status`).
fn mentions_cases_column(line: &str, pattern: &str) -> bool {
    line.match_indices(pattern).any(|(i, _)| {
        line[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// The check itself finds what it looks for (a rule that can never fail protects nothing).
#[test]
fn the_layer_check_sees_imports() {
    assert!(!reaches(&["grpc"], &["app"]).is_empty());
    assert!(!reaches(&["cli"], &["demo", "startup"]).is_empty());
    assert!(mentions_cases_column(
        "  cases::status.eq(x)",
        "cases::status.eq("
    ));
    assert!(!mentions_cases_column(
        "mediation_cases::status.eq(x)",
        "cases::status.eq("
    ));
    let store_cases = code("store/cases");
    assert!(
        store_cases
            .iter()
            .any(|(_, c)| c.contains("cases::status.eq("))
    );
}
