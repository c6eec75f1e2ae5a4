//! The README's five-minute tour, run as written: every `sh` block after a `<!-- tour -->`
//! line, in order, in one bash with `set -euo pipefail`, against `gridhub serve --demo` on a
//! fresh database, with grpcurl (scripts/test installs it) and `scripts/gridhub` running this
//! build's binary. A line with `# expect <Code>` must fail with that gRPC code; every other
//! command must succeed. So the tour cannot go stale unnoticed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::FreshDb;

/// The tour's blocks from the README, each line with an `# expect <Code>` comment rewritten to
/// go through `expect <Code> …`.
fn tour_script() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut out = String::new();
    let mut lines = readme.lines();
    let mut blocks = 0;
    while let Some(l) = lines.next() {
        if l.trim() != "<!-- tour -->" {
            continue;
        }
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sh"),
            "a tour block is sh"
        );
        blocks += 1;
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            match l.split_once("# expect ") {
                Some((cmd, code)) => {
                    let code = code.split(|c: char| !c.is_alphanumeric()).next().unwrap();
                    out.push_str(&format!("expect {code} {}\n", cmd.trim_end()));
                }
                None => {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
    }
    assert!(blocks >= 4, "{blocks} tour blocks in the README");
    out
}

fn grpcurl_available() -> bool {
    Command::new("grpcurl")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn the_readme_tour_runs_as_written() {
    assert!(
        grpcurl_available(),
        "grpcurl is not on PATH: run the tests with scripts/test, which installs it"
    );
    let db = FreshDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gridhub-data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = env!("CARGO_BIN_EXE_gridhub");
    let mut server = Command::new(bin)
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .env("GRIDHUB_DATA_DIR", &data)
        .env("DATABASE_URL", db.url.expose())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !data.join("demo.env").exists() {
        assert!(Instant::now() < deadline, "the demo never wrote demo.env");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The tour is run from a directory holding the data directory and the scripts, as from a
    // clone.
    std::os::unix::fs::symlink(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts"),
        dir.path().join("scripts"),
    )
    .unwrap();
    let script = format!(
        r#"set -euo pipefail
expect() {{
  local code=$1; shift
  local err
  if err=$("$@" 2>&1 >/dev/null); then echo "expected $code, but it succeeded: $*" >&2; return 1; fi
  if ! grep -q "Code: $code" <<<"$err"; then echo "expected $code: $*: $err" >&2; return 1; fi
  echo "refused as the tour says ($code): $err"
}}
# The server is up once it answers the tour's first call.
for _ in $(seq 1 150); do grpcurl -plaintext 127.0.0.1:{port} list >/dev/null 2>&1 && break; sleep 0.2; done
{}
kill $(jobs -p) 2>/dev/null || true
"#,
        tour_script()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("GRIDHUB_BIN", bin)
        .env("GRIDHUB_DATA_DIR", &data)
        .env("DATABASE_URL", db.url.expose())
        .output()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the tour failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // What the tour says happens, happened.
    assert!(stdout.contains("139****5678"), "{stdout}");
    assert!(stdout.contains("\"MEDIATED\""), "{stdout}");
    assert!(stdout.contains("UPDATE_REPLIED"), "{stdout}");
    assert!(stdout.contains("\"ok\": true"), "{stdout}");
    assert!(stdout.contains("张**"), "{stdout}");
    assert!(stdout.contains("张大山"), "{stdout}");
    assert_eq!(
        stdout.matches("refused as the tour says").count(),
        3,
        "{stdout}"
    );
    // grpcurl, which knows the messages only by reflection, shows the field violations: in
    // the message, and the BadRequest detail decoded (its descriptor is served).
    assert!(
        stdout.contains("invalid argument: worker.phone"),
        "{stdout}"
    );
    assert!(stdout.contains("google.rpc.BadRequest"), "{stdout}");
    assert!(stdout.contains("\"field\":\"worker.phone\""), "{stdout}");
}
