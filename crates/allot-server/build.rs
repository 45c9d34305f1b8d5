//! Compiles the protobuf contracts with protox (pure Rust): no protoc needed on the machine.
//! tonic-prost-build makes the messages and services; pbjson-build makes the messages' proto3
//! JSON form (serde) for the Connect protocol, from the same descriptors.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &["discount.proto", "coupon.proto"];
/// Packages served over Connect, whose messages need their JSON form.
const CONNECT_PACKAGES: &[&str] = &[".couponpb"];
/// `google.protobuf.Timestamp` is ours (`time::Timestamp`): pbjson-types' writes `+00:00` where
/// the contract (and proto3 JSON) has `Z`, and prost-types' has no JSON form.
const TIMESTAMP: (&str, &str) = (".google.protobuf.Timestamp", "crate::time::Timestamp");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, never with `env!`: a build script compiled in one checkout is reused
    // by another sharing the target directory (CI's clone and the working tree do).
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto");
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| proto_dir.join(p)).collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&proto_dir])?;
    let encoded = fds.encode_to_vec();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // The encoded descriptors feed gRPC server reflection.
    std::fs::write(out_dir.join("allot_descriptor.bin"), &encoded)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(TIMESTAMP.0, TIMESTAMP.1)
        .compile_fds(fds)?;
    // Unknown fields are skipped, as proto3 JSON parsers do by default and the Connect
    // endpoints always have: a newer client's field must not break an older server.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .extern_path(TIMESTAMP.0, TIMESTAMP.1)
        .ignore_unknown_fields()
        .build(CONNECT_PACKAGES)?;
    console_assets(&manifest_dir, &out_dir)?;
    Ok(())
}

/// The console's assets (`console/assets/*`: styles, scripts, images), compiled into the
/// binary: a table of (file name, bytes) that `console::assets` serves. A file added to the
/// folder is served without touching any code.
fn console_assets(
    manifest_dir: &std::path::Path,
    out_dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = manifest_dir.join("console/assets");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
            names.push(path);
        }
    }
    names.sort();
    let mut table = String::from("&[\n");
    for path in &names {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("console asset names must be UTF-8")?;
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?}).as_slice()),\n",
            path.display().to_string()
        ));
    }
    table.push_str("]\n");
    std::fs::write(out_dir.join("console_assets.rs"), table)?;
    Ok(())
}
