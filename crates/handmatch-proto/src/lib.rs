//! The public API: the generated types of `proto/handmatch/v1/handmatch.proto` and the
//! limits both sides share.

pub mod limits;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("handmatch.v1");

    /// The encoded descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/handmatch_descriptor.bin"));
}
