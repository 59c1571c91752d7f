// The public API, compiled with the pure-Rust protox (no `protoc` needed). The encoded
// descriptor set is kept for gRPC server reflection.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/handmatch/v1/handmatch.proto");
    let descriptors = protox::compile(["handmatch/v1/handmatch.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("handmatch_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
