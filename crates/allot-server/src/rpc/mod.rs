//! Protobuf contracts as plain async functions: a request message in, a response message or a
//! [`crate::ServiceError`] out. gRPC (tonic) and Connect both call these, so the two protocols
//! cannot drift apart. [`campaign`] holds the one parse of each campaign operation's input,
//! which REST calls too.

pub(crate) mod campaign;
pub(crate) mod couponpb;
