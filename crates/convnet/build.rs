//! Compiles the vendored `proto/onnx.proto` into Rust types with prost-build, for the ONNX
//! export (`io::onnx`). protoc comes from the `protoc-bin-vendored` crate, so a plain
//! `cargo build` needs no system package.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_protos(&["proto/onnx.proto"], &["proto/"])?;
    Ok(())
}
