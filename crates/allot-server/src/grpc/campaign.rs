//! `couponpb.CouponService` over gRPC.

use tonic::{Request, Response, Status};

use crate::caller::Caller;
use crate::pb::couponpb::coupon_service_server::{CouponService, CouponServiceServer};
use crate::pb::couponpb::{
    CreateCampaignRequest, CreateCampaignResponse, GetCampaignRequest, GetCampaignResponse,
    IssueCouponRequest, IssueCouponResponse,
};
use crate::rpc::couponpb as rpc;
use crate::service::Services;

pub(crate) fn server(services: &Services) -> CouponServiceServer<CouponGrpc> {
    // GetCampaign answers at most GET_CAMPAIGN_CODES_MAX codes (under 400 KB): the default
    // message limits hold.
    CouponServiceServer::new(CouponGrpc {
        services: services.clone(),
    })
}

pub(crate) struct CouponGrpc {
    services: Services,
}

#[tonic::async_trait]
impl CouponService for CouponGrpc {
    async fn create_campaign(
        &self,
        request: Request<CreateCampaignRequest>,
    ) -> Result<Response<CreateCampaignResponse>, Status> {
        Ok(Response::new(
            rpc::create_campaign(&self.services, request.into_inner()).await?,
        ))
    }

    async fn get_campaign(
        &self,
        request: Request<GetCampaignRequest>,
    ) -> Result<Response<GetCampaignResponse>, Status> {
        let caller = Caller::from_extensions(request.extensions());
        Ok(Response::new(
            rpc::get_campaign(&self.services, caller, request.into_inner()).await?,
        ))
    }

    async fn issue_coupon(
        &self,
        request: Request<IssueCouponRequest>,
    ) -> Result<Response<IssueCouponResponse>, Status> {
        let caller = Caller::from_extensions(request.extensions());
        Ok(Response::new(
            rpc::issue_coupon(&self.services, caller, request.into_inner()).await?,
        ))
    }
}
