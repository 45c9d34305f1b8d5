//! Who is calling and from where, whatever the transport: [`AuthUser`] (the principal a
//! credential proved), [`Caller`] (that principal, or nobody on an open route, and what it
//! may act for), and the request's [`Origin`] (actor and client address), which every write
//! of the request records.
//!
//! The authorization middleware proves the caller once and puts [`AuthUser`] into the
//! request's extensions, where REST, gRPC and Connect alike find it
//! ([`Caller::from_extensions`]). The request context middleware then serves the request
//! [`within`] its origin; the use cases and handlers read it back with [`origin`] and
//! [`source`]. This module is the only one of the server that sets or reads that task-local.

use std::future::Future;
use std::net::IpAddr;

use allot_domain::auth::{AccountId, Role};
use allot_domain::event::{Actor, Origin};

use crate::ServiceError;

/// Who made a request, as proven by an access token or an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalId {
    User(AccountId),
    ApiKey(i64),
    /// No credential, from a network of `open_admin_contracts_from`, on an original's admin
    /// call: staff for that call only.
    TrustedNetwork,
}

/// The proven caller of a request: a user (by access token) or a service (by API key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthUser {
    pub id: PrincipalId,
    pub role: Role,
}

impl AuthUser {
    /// The user id a customer acts as in orders, coupons, sales and campaign issues: its
    /// account id in decimal. `None` for every other role, and for a customer API key (which
    /// stands for no one user).
    pub(crate) fn customer_user_id(&self) -> Option<String> {
        match (self.role, self.id) {
            (Role::Customer, PrincipalId::User(id)) => Some(id.get().to_string()),
            _ => None,
        }
    }
}

/// The caller as the authorization middleware found it: `None` only on a route open to
/// anonymous callers (a public route, or an open public contract with
/// `open_public_contracts` set).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller(pub Option<AuthUser>);

impl Caller {
    /// The caller of a request, from its extensions (axum's and tonic's are the same type).
    pub(crate) fn from_extensions(extensions: &http::Extensions) -> Caller {
        Caller(extensions.get::<AuthUser>().copied())
    }

    /// A customer's own user id, to fill in a user field the request left out.
    pub(crate) fn customer(&self) -> Result<Option<String>, ServiceError> {
        match self.0 {
            Some(user) if user.role == Role::Customer => user
                .customer_user_id()
                .map(Some)
                .ok_or_else(|| customer_key_acts_for_no_one("user_id")),
            _ => Ok(None),
        }
    }

    /// Staff, services and anonymous callers of an open contract act for anyone; a customer
    /// only for itself: `403 forbidden` naming `field` otherwise.
    pub(crate) fn may_act_for(&self, user: &str, field: &'static str) -> Result<(), ServiceError> {
        let Some(caller) = self.0 else {
            return Ok(());
        };
        if caller.role != Role::Customer {
            return Ok(());
        }
        match caller.customer_user_id() {
            Some(own) if own == user => Ok(()),
            Some(own) => Err(ServiceError::Forbidden {
                field: Some(field),
                message: format!("{field}: a customer acts only for itself ({own})"),
            }),
            None => Err(customer_key_acts_for_no_one(field)),
        }
    }

    /// A user field of a request as the caller may give it: a customer's own id when it left
    /// the field out, refused (403) when it named someone else; anyone else's as given.
    pub(crate) fn user_field(
        &self,
        given: Option<&str>,
        field: &'static str,
    ) -> Result<Option<String>, ServiceError> {
        match (self.customer()?, given) {
            (Some(own), None) => Ok(Some(own)),
            (_, Some(given)) => {
                self.may_act_for(given, field)?;
                Ok(Some(given.to_owned()))
            }
            (None, None) => Ok(None),
        }
    }

    pub(crate) fn role(&self) -> Option<Role> {
        self.0.map(|u| u.role)
    }

    /// The actor the request's events record.
    pub(crate) fn actor(&self) -> Actor {
        match self.0.map(|u| u.id) {
            Some(PrincipalId::User(id)) => Actor::User(id.get()),
            Some(PrincipalId::ApiKey(id)) => Actor::ApiKey(id),
            Some(PrincipalId::TrustedNetwork) => Actor::TrustedNetwork,
            None => Actor::Anonymous,
        }
    }
}

fn customer_key_acts_for_no_one(field: &'static str) -> ServiceError {
    ServiceError::Forbidden {
        field: Some(field),
        message: format!(
            "{field}: a customer API key acts for no user; sign in as the customer instead"
        ),
    }
}

/// Runs `work` as the request (or job) of `origin`: every write it makes records it.
pub(crate) async fn within<F: Future>(origin: Origin, work: F) -> F::Output {
    allot_storage::origin::scope(origin, work).await
}

/// Runs `work` in the scope of `origin` when there is one: a task spawned by a request keeps
/// its request's origin this way.
pub(crate) async fn within_opt<F: Future>(origin: Option<Origin>, work: F) -> F::Output {
    allot_storage::origin::scope_opt(origin, work).await
}

/// The origin of the request or job being served; `None` outside any (the CLI, tests).
pub(crate) fn origin() -> Option<Origin> {
    allot_storage::origin::current()
}

/// The client address of the request being served, when known.
pub(crate) fn source() -> Option<IpAddr> {
    origin().and_then(|o| o.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(id: i64) -> Caller {
        Caller(Some(AuthUser {
            id: PrincipalId::User(AccountId::new(id)),
            role: Role::Customer,
        }))
    }

    #[test]
    fn a_customer_acts_only_for_itself_and_staff_for_anyone() {
        assert_eq!(
            customer(7).user_field(None, "user_id").unwrap(),
            Some("7".into())
        );
        assert!(customer(7).user_field(Some("8"), "user_id").is_err());
        let staff = Caller(Some(AuthUser {
            id: PrincipalId::User(AccountId::new(1)),
            role: Role::Marketing,
        }));
        assert_eq!(
            staff.user_field(Some("8"), "user_id").unwrap(),
            Some("8".into())
        );
        assert_eq!(Caller(None).user_field(None, "user_id").unwrap(), None);
    }

    #[tokio::test]
    async fn the_origin_is_seen_within_its_request_only() {
        let o = Origin {
            actor: Actor::User(9),
            source: Some("10.0.0.1".parse().unwrap()),
        };
        assert_eq!(source(), None);
        assert_eq!(within(o, async { source() }).await, o.source);
        assert_eq!(within_opt(None, async { origin() }).await, None);
    }
}
