//! `discount.Discount`, wire-compatible with the original service.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::pb::discount::discount_server::{Discount, DiscountServer};
use crate::pb::discount::{GenerateRequest, GenerateResponse, UseCodeRequest, UseCodeResponse};
use crate::rpc::discount::GenerateCodes;
use crate::service::{DiscountCodes, Services};

pub(crate) fn server(services: &Services) -> DiscountServer<DiscountGrpc> {
    DiscountServer::new(DiscountGrpc {
        codes: services.discount.clone(),
    })
}

pub(crate) struct DiscountGrpc {
    codes: Arc<DiscountCodes>,
}

#[tonic::async_trait]
impl Discount for DiscountGrpc {
    /// Bad input answers `result = false` with no codes, as the original contract says. A
    /// failure of ours is a gRPC error status, so a client never mistakes it for bad input.
    async fn generate(
        &self,
        request: Request<GenerateRequest>,
    ) -> Result<Response<GenerateResponse>, Status> {
        let req = request.into_inner();
        // `bytes length` is one byte on the wire; any other is as bad as an out-of-range one.
        let length = match req.length[..] {
            [len] => Some(u32::from(len)),
            _ => None,
        };
        let Ok(GenerateCodes { count, length }) =
            GenerateCodes::parse(Some(u64::from(req.count)), length)
        else {
            return Ok(Response::new(GenerateResponse {
                result: false,
                codes: Vec::new(),
            }));
        };
        // The original contract has no idempotency key.
        let batch = self.codes.generate(count, length, None).await?;
        Ok(Response::new(GenerateResponse {
            result: true,
            codes: batch.codes.into_iter().map(|c| c.into_string()).collect(),
        }))
    }

    async fn use_code(
        &self,
        request: Request<UseCodeRequest>,
    ) -> Result<Response<UseCodeResponse>, Status> {
        let outcome = self.codes.use_code(&request.into_inner().code).await?;
        Ok(Response::new(UseCodeResponse {
            result: vec![outcome.wire_byte()],
        }))
    }
}
