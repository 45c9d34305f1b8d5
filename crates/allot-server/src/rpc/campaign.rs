//! The campaign operations' input, parsed once for every transport. REST (a JSON body and a
//! path), gRPC and Connect (a protobuf message) each read their own wire form into the
//! arguments of one parse here, so a rule about a field (who may name a `user_id`, which
//! campaigns are valid) is written once, and each transport only says how its wire spells a
//! field and which status a refusal gets.

use allot_domain::auth::Role;
use allot_domain::campaign::{
    CampaignId, CampaignName, CampaignWindow, PerUserLimit, TotalCoupons,
};
use allot_domain::user::{IdempotencyKey, UserId};
use allot_domain::{DomainError, UnixMillis};
use allot_storage::NewCampaign;

use crate::ServiceError;
use crate::caller::Caller;
use crate::service::campaign::CodesShown;

/// A campaign to create, from the fields every transport has (instants already read from
/// their wire form), naming the first bad field.
pub(crate) fn new_campaign(
    name: &str,
    start: Option<UnixMillis>,
    end: Option<UnixMillis>,
    total: Option<i64>,
    per_user_limit: Option<i64>,
) -> Result<NewCampaign, DomainError> {
    let name = CampaignName::parse(name)?;
    let start = start.ok_or_else(|| DomainError::invalid("start_time", "is required"))?;
    let total = TotalCoupons::parse(
        total.ok_or_else(|| DomainError::invalid("total_coupons", "is required"))?,
    )?;
    Ok(NewCampaign {
        name,
        window: CampaignWindow::new(start, end)?,
        total,
        per_user_limit: per_user_limit.map(PerUserLimit::parse).transpose()?,
    })
}

/// Which codes a campaign read shows this caller: staff every one, a signed-in customer those
/// issued to it, a customer API key and an anonymous caller of the open contract none (issued
/// codes are other people's credentials).
pub(crate) fn codes_shown(caller: &Caller) -> Result<CodesShown, ServiceError> {
    Ok(match caller.0 {
        Some(user) if user.role == Role::Customer => match user.customer_user_id() {
            Some(own) => CodesShown::IssuedTo(UserId::parse(&own)?),
            None => CodesShown::None,
        },
        Some(_) => CodesShown::All,
        None => CodesShown::None,
    })
}

/// An issue of a campaign's next code.
#[derive(Debug)]
pub(crate) struct IssueCoupon {
    pub campaign: CampaignId,
    /// Who receives the code: a customer's own id when it named no one.
    pub user: Option<UserId>,
    pub key: Option<IdempotencyKey>,
}

impl IssueCoupon {
    /// `user_id` as the caller may give it (a customer issues only for itself: 403 naming
    /// `user_id` otherwise), then the idempotency key. `None` is a field left out.
    pub(crate) fn parse(
        caller: &Caller,
        campaign: CampaignId,
        user_id: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<IssueCoupon, ServiceError> {
        let user = caller
            .user_field(user_id, "user_id")?
            .map(|u| UserId::parse(&u))
            .transpose()?;
        let key = idempotency_key.map(IdempotencyKey::parse).transpose()?;
        Ok(IssueCoupon {
            campaign,
            user,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use allot_domain::auth::AccountId;

    use super::*;
    use crate::caller::{AuthUser, PrincipalId};

    #[test]
    fn an_issue_is_for_the_customer_itself_and_its_key_is_checked() {
        let customer = Caller(Some(AuthUser {
            id: PrincipalId::User(AccountId::new(7)),
            role: Role::Customer,
        }));
        let id = CampaignId::parse(1).unwrap();
        let own = IssueCoupon::parse(&customer, id, None, Some("k-1")).unwrap();
        assert_eq!(own.user.map(|u| u.as_str().to_owned()), Some("7".into()));
        assert!(own.key.is_some());
        let other = IssueCoupon::parse(&customer, id, Some("8"), None).unwrap_err();
        assert!(matches!(
            other,
            ServiceError::Forbidden {
                field: Some("user_id"),
                ..
            }
        ));
        let anonymous = IssueCoupon::parse(&Caller(None), id, None, None).unwrap();
        assert!(anonymous.user.is_none() && anonymous.key.is_none());
        assert!(IssueCoupon::parse(&Caller(None), id, None, Some("a key")).is_err());
    }
}
