//! Compiles the gRPC contract (proto/gridhub/v1) and writes a descriptor set for reflection.
//! protoc is vendored, so a fresh machine needs no system package to build.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Messages know their full names: the edge check finds their descriptors by them.
    config.enable_type_names();
    let include_wkt = protoc_bin_vendored::include_path()?;
    let protos = [
        "proto/gridhub/v1/common.proto",
        "proto/gridhub/v1/region.proto",
        "proto/gridhub/v1/audit.proto",
        "proto/gridhub/v1/report.proto",
        "proto/gridhub/v1/case.proto",
        "proto/gridhub/v1/service.proto",
        "proto/gridhub/v1/mediation.proto",
        "proto/gridhub/v1/session.proto",
    ];
    let includes = [PathBuf::from("proto"), include_wkt];
    let protos: Vec<PathBuf> = protos.iter().map(PathBuf::from).collect();
    tonic_prost_build::configure()
        // google.rpc.Status (per-report errors in SyncReports) is tonic-types' own.
        .extern_path(".google.rpc", "::tonic_types::pb")
        // Requests pass the edge check (NUL, UTF-8, length bounds) before they are decoded.
        .codec_path("crate::grpc::edge::EdgeCodec")
        .file_descriptor_set_path(out.join("gridhub_descriptor.bin"))
        .compile_with_config(config, &protos, &includes)?;
    println!("cargo:rerun-if-changed=proto");
    // The migrations are embedded (`embed_migrations!`): a new one must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
