//! The wire format checked by someone else's code: a Python grpcio client (reflection-built
//! messages, no generated stubs) drives the server end to end.

use crate::helpers::TestApp;

#[tokio::test]
async fn python_grpcio_client_end_to_end() {
    let app = TestApp::spawn().await;
    app.seed_demo().await;
    let op = app.token("op", &["town_operator", "auditor"], "500110111");
    let worker = app.token("W-MJ-001", &["grid_worker"], "500110111201");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/e2e.py");
    let python = std::env::var("GRIDHUB_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = tokio::process::Command::new(&python)
        .args([script, &app.addr.to_string(), &op, &worker])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python e2e failed (install its packages with scripts/test)\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("python e2e: all checks passed"), "{stdout}");
}
