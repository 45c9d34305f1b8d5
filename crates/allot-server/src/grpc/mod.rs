//! The gRPC transport: every service, reflection and the standard health service, served as
//! routes of the same axum router as REST.

mod campaign;
mod discount;

use axum::Router;
use tonic::service::Routes;

use crate::ServiceError;
use crate::error::ErrorKind;
use crate::pb;
use crate::service::Services;

pub(crate) fn routes(services: &Services) -> Router {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("embedded descriptors are valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("embedded descriptors are valid");
    // grpc.health.v1: SERVING for the whole server once it is up. Its Check is also the
    // gRPC hello-world the benchmarks compare against.
    let (_, health) = tonic_health::server::health_reporter();

    Routes::new(discount::server(services))
        // gRPC-Web too, for browsers: the layer turns grpc-web calls into gRPC ones.
        .add_service(tower::Layer::layer(
            &tonic_web::GrpcWebLayer::new(),
            campaign::server(services),
        ))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router()
}

/// Whether a request is a gRPC call (by its content type: `application/grpc`, `+proto`, ...).
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The one mapping from service errors to gRPC status codes.
impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        let code = match e.kind() {
            ErrorKind::InvalidArgument | ErrorKind::BadRequest => tonic::Code::InvalidArgument,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::Conflict => tonic::Code::AlreadyExists,
            ErrorKind::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorKind::ResourceExhausted | ErrorKind::RateLimited => tonic::Code::ResourceExhausted,
            ErrorKind::Gone => tonic::Code::FailedPrecondition,
            ErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::PayloadTooLarge => tonic::Code::ResourceExhausted,
            ErrorKind::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ErrorKind::Internal => tonic::Code::Internal,
        };
        match &e {
            ServiceError::Internal(cause) => tracing::error!(error = %cause, "internal error"),
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "storage unavailable")
            }
            _ => {}
        }
        tonic::Status::new(code, e.to_string())
    }
}
