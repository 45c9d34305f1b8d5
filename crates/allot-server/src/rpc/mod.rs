//! Protobuf contracts as plain async functions: a request message in, a response message or a
//! [`crate::ServiceError`] out. gRPC (tonic) and Connect both call these, so the two protocols
//! cannot drift apart. [`campaign`] and [`discount`] hold the one parse of each operation's
//! input that more than one transport serves, which REST calls too.

pub(crate) mod campaign;
pub(crate) mod couponpb;
pub(crate) mod discount;
