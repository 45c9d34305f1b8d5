//! Code generated from `proto/*.proto` at build time.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod discount {
    tonic::include_proto!("discount");
}

/// Encoded descriptors of every Allot proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/allot_descriptor.bin"));

pub mod couponpb {
    tonic::include_proto!("couponpb");
}
