//! The service layer's one error type. Transports map it to their status codes in one place
//! each: `http::error` (HTTP + JSON body) and `grpc` (gRPC status).

use allot_domain::DomainError;
use allot_domain::payment::PaymentRefusal;
use allot_domain::shipment::ShipmentRefusal;
use allot_storage::StorageError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServiceError {
    /// A well-formed request whose content breaks a rule: the field is named.
    #[error("{message}")]
    InvalidArgument {
        field: &'static str,
        message: String,
    },
    /// A plain `http://` URL where only https is accepted (a webhook endpoint while
    /// `webhook_allow_http` is off): what would be sent carries personal data.
    #[error(
        "{field}: plain http is not allowed (payloads carry personal data); use an https URL, \
         or set webhook_allow_http for a receiver on a trusted network"
    )]
    InsecureUrl { field: &'static str },
    /// A request that could not be read at all (malformed JSON, missing parameter).
    #[error("{message}")]
    BadRequest {
        field: Option<&'static str>,
        message: String,
    },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("the code was already used")]
    AlreadyUsed,
    #[error("issuance starts at {starts_at}")]
    NotStarted { starts_at: String },
    #[error("issuance ended at {ended_at}")]
    Ended { ended_at: String },
    #[error("all coupons of this campaign are issued")]
    SoldOut,
    #[error("this user holds the most coupons of this campaign a user may hold")]
    UserLimitReached,
    /// A batch with bad entries: every one is listed, by index and field.
    #[error("{} entries are invalid; nothing was stored", entries.len())]
    InvalidEntries { entries: Vec<EntryError> },
    #[error("the coupon expired")]
    Expired,
    #[error("the coupon has no uses left")]
    Exhausted,
    #[error("the coupon belongs to another user")]
    NotOwner,
    #[error(
        "the coupon is bound to promotion {promotion}: it is used through the promotion's holds \
         and redemptions (POST /api/v1/promotions/holds or /redemptions), not redeemed alone"
    )]
    CouponBound { promotion: i64 },
    #[error("no coupon of this type is available")]
    NoCouponAvailable,
    #[error("MEGADEAL coupons are in high demand; retry after {retry_after_secs} s")]
    MegadealBusy { retry_after_secs: u64 },
    /// The shared MEGADEAL admission state (Redis) cannot be reached: MEGADEAL requests are
    /// refused (fail closed) until it can; other requests are not affected.
    #[error("MEGADEAL admission is unavailable; retry later")]
    MegadealUnavailable(#[source] AdmissionUnavailable),
    #[error("no flash sale is running")]
    NoActiveSale,
    #[error("the item is not in the current sale")]
    NotInCurrentSale,
    #[error("the item is sold")]
    ItemSold,
    #[error("the sale of this checkout is over")]
    SaleOver,
    /// The design checkout: the item is on the user's open checkout code already.
    #[error("user already checked out this item")]
    ItemAlreadyCheckedOut,
    /// A call under `/api/v1/sales/{id}/...` that only the current sale serves.
    #[error("the sale is over: only the current sale (GET /api/v1/sales/current) checks out")]
    SaleNotCurrent,
    #[error("a product with this SKU exists")]
    SkuTaken,
    #[error("the category has products or child categories; move or delete them first")]
    CategoryInUse,
    #[error("a warehouse with this code exists")]
    WarehouseCodeTaken,
    #[error("the warehouse holds stock; it cannot be deleted (set it inactive instead)")]
    WarehouseInUse,
    /// No single warehouse has the quantity available; a reservation is never split.
    #[error(
        "out of stock: no warehouse can serve the whole quantity ({available_total} available in all)"
    )]
    OutOfStock { available_total: i64 },
    /// An order line no warehouse can serve whole.
    #[error(
        "out of stock: product {product_id} has no warehouse that can serve the whole quantity \
         ({available_total} available in all)"
    )]
    OrderOutOfStock {
        product_id: i64,
        available_total: i64,
    },
    #[error("only a pending order can be edited; this one is {status}")]
    OrderNotEditable { status: &'static str },
    #[error("an order cannot go from {from} to {to}")]
    IllegalTransition {
        from: &'static str,
        to: &'static str,
    },
    /// The order's coupon cannot be used: `expired`, `exhausted` or `not_owner`.
    #[error("the coupon cannot be used: {reason}")]
    CouponUnusable { reason: &'static str },
    /// No coupon or discount code by this value; `field` names which.
    #[error("{field}: no such code")]
    UnknownCode { field: &'static str },
    #[error("the discount code was already used")]
    CodeAlreadyUsed,
    #[error("the reservation is {status}, no longer pending")]
    ReservationNotPending { status: &'static str },
    /// The order's promotion hold cannot be consumed by it: `not_found`, `not_held`,
    /// `expired`, `another_customer`, `another_currency`, `another_cart` or `changed`.
    #[error("promotion_hold_id: the promotion hold cannot be used by this order: {reason}")]
    PromotionHoldUnusable { reason: &'static str },
    /// A promotion code of an order gives it nothing: the engine's reason
    /// (`min_subtotal_not_met`, `budget_exhausted`, `not_combinable`...).
    #[error("codes: the promotion code {code} gives this order nothing: {reason}")]
    PromotionCodeRefused { code: String, reason: &'static str },
    #[error("on hand may not go below what is reserved ({reserved}; on hand is {on_hand})")]
    BelowReserved { on_hand: i64, reserved: i64 },
    /// The first request with this `Idempotency-Key` is still being served.
    #[error("a request with this Idempotency-Key is in progress; retry shortly")]
    IdempotencyKeyInUse,
    /// The `Idempotency-Key` was used before for a different request (method, path, query or
    /// body).
    #[error("Idempotency-Key was used for a different request; use a new key")]
    IdempotencyKeyReused,
    /// Unknown email or wrong password: one answer for both, so the API does not tell which
    /// accounts exist.
    #[error("the email or the password is wrong")]
    InvalidCredentials,
    /// A refresh token that is unknown, expired or revoked.
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidToken,
    /// No valid access token or API key came with a request that needs one.
    #[error("a valid access token or API key is required")]
    Unauthenticated,
    /// The client made too many calls of this kind (sign-in, code use) in too short a time.
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Signed in, but the caller's role may not make this call, or a customer tried to act
    /// for someone else. The message names the roles that may.
    #[error("{message}")]
    Forbidden {
        field: Option<&'static str>,
        message: String,
    },
    #[error("a user with this email exists")]
    EmailTaken,
    /// Hashing or signing failed: a fault of ours, logged; the client sees a generic message.
    #[error("internal error")]
    Crypto(String),
    /// Storage cannot take the request now (a full disk, an I/O error, the database
    /// unreachable, closed for shutdown, overloaded); worth retrying after
    /// [`STORAGE_RETRY_AFTER_SECS`]. The message says which in a few words; the cause is logged.
    #[error("storage is unavailable: {}; retry later", .0.fault().map_or("storage failed", allot_storage::Fault::reason))]
    Unavailable(#[source] StorageError),
    /// A fault of ours. The cause is logged; the client sees a generic message.
    #[error("internal error")]
    Internal(#[source] StorageError),
    /// Too much work of one kind is in flight (password hashing) and the wait for a turn ran
    /// out; worth retrying shortly.
    #[error("the server is busy {what}; retry shortly")]
    Busy { what: &'static str },
    /// The request's body is larger than its route accepts.
    #[error("the request body is larger than {limit_bytes} bytes, the most this call accepts")]
    PayloadTooLarge { limit_bytes: usize },
    /// The request was not served within the server's request timeout.
    #[error("the request took longer than {timeout_ms} ms, the server's limit")]
    RequestTimeout { timeout_ms: u64 },
    /// The change would leave no active admin (deactivating or demoting the last one).
    #[error("this is the last active admin: make another user admin first")]
    LastAdmin,
    /// First-run setup was asked for, but an admin exists already.
    #[error("setup is done: an admin exists; sign in instead")]
    SetupDone,
    /// Self sign-up is off on this server (`allow_signup`).
    #[error("sign-up is off on this server; ask an admin for an account")]
    SignupClosed,
    /// The password is right, but the user signed up and has not verified its email yet.
    #[error("the email address is not verified yet: follow the link sent to it")]
    EmailNotVerified,
    /// A notification template with this name exists.
    #[error("a notification template with this name exists")]
    TemplateNameTaken,
    /// A notification rule uses the template, so it cannot be deleted.
    #[error("the template is used by rule {rule}; point the rule at another template first")]
    TemplateInUse { rule: String },
    /// A promotion hold is not held any more (released, redeemed, expired, rolled back).
    #[error("the hold is {status}, not held")]
    HoldNotHeld { status: &'static str },
    /// A held promotion hold past its time: it can no longer be redeemed.
    #[error("the hold expired")]
    HoldExpired,
    /// A promotion's new limit is below what it has already held and redeemed.
    #[error("{field}: below what the promotion has already held and redeemed")]
    LimitBelowUsage { field: &'static str },
    /// Codes to bind that exist nowhere (as coupons or discount codes).
    #[error("{field}: no such codes: {}", codes.join(", "))]
    UnknownCodes {
        field: &'static str,
        codes: Vec<String>,
    },
    /// Codes to bind that are bound to another promotion already.
    #[error("{field}: bound to another promotion already: {}", codes.join(", "))]
    AlreadyBound {
        field: &'static str,
        codes: Vec<String>,
    },
    /// Coupons to bind that have no use left.
    #[error("{field}: no use left to bind: {}", codes.join(", "))]
    UsedUpCodes {
        field: &'static str,
        codes: Vec<String>,
    },
    #[error("campaign_id: no such campaign")]
    UnknownCampaign,
    /// A payment or a refund the rules refuse (`allot_domain::payment`); nothing was written.
    #[error("{}", payment_message(.0))]
    Payment(PaymentRefusal),
    /// A shipment, a return or a return's move the rules refuse (`allot_domain::shipment`);
    /// nothing was written.
    #[error("{}", shipment_message(.0))]
    Shipment(ShipmentRefusal),
}

fn shipment_message(r: &ShipmentRefusal) -> String {
    match r {
        ShipmentRefusal::OrderNotFound => "order not found".to_owned(),
        ShipmentRefusal::ReturnNotFound => "return not found".to_owned(),
        ShipmentRefusal::OrderNotShippable { status } => {
            format!("the order is {status}: only a confirmed (paid) order ships")
        }
        ShipmentRefusal::OrderNotReturnable { status } => {
            format!("the order is {status}: nothing of it is returned by line")
        }
        ShipmentRefusal::UnknownLine { index } => {
            format!("lines: entry {index} names no line of the order")
        }
        ShipmentRefusal::ExceedsRemaining {
            line_id,
            product_id,
            remaining,
        } => format!("lines: line {line_id} (product {product_id}) has {remaining} left to ship"),
        ShipmentRefusal::ExceedsReturnable {
            line_id,
            product_id,
            returnable,
        } => format!(
            "lines: line {line_id} (product {product_id}) has {returnable} shipped and not \
             already returned or under an open return"
        ),
        ShipmentRefusal::ReturnStatusConflict { from, to } => {
            format!("a return cannot go from {from} to {to}")
        }
        ShipmentRefusal::UnknownWarehouse => "warehouse_id: no such warehouse".to_owned(),
        ShipmentRefusal::PartlyShipped => {
            "part of the order has shipped: it is not cancelled; return its lines instead"
                .to_owned()
        }
        ShipmentRefusal::HasLineReturns => {
            "the order has returns of lines: it is returned by line, not whole".to_owned()
        }
        ShipmentRefusal::Refund(r) => payment_message(r),
    }
}

fn payment_message(r: &PaymentRefusal) -> String {
    match r {
        PaymentRefusal::OrderNotFound => "order not found".to_owned(),
        PaymentRefusal::CurrencyMismatch { order_currency } => {
            format!("currency: the order is in {order_currency}")
        }
        PaymentRefusal::OrderNotPayable { status } => {
            format!("the order is {status}: it takes no payment")
        }
        PaymentRefusal::ExceedsTotal { payable_minor } => format!(
            "amount_minor: captures would pass the order's total; at most {payable_minor} more"
        ),
        PaymentRefusal::ExceedsCapture { refundable_minor } => format!(
            "amount_minor: refunds would pass what was captured; at most {refundable_minor} more"
        ),
        PaymentRefusal::ReferenceConflict => {
            "reference: this provider's reference is another payment (another order or amount)"
                .to_owned()
        }
        PaymentRefusal::StatusConflict { status } => {
            format!("status: the payment is {status} and cannot go back")
        }
        PaymentRefusal::UnknownPayment => {
            "no captured payment of the order has this provider and reference".to_owned()
        }
    }
}

/// The shared MEGADEAL admission state (Redis) could not be reached.
#[derive(Debug, Clone, Error)]
#[error("admission store unreachable: {0}")]
pub struct AdmissionUnavailable(pub String);

/// Seconds a client is asked to wait (`Retry-After`) when storage is unavailable: storage
/// faults (a disk filling up, a database restarting) take seconds to clear, not milliseconds,
/// and thousands of clients retrying at once must not keep the node down.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 2;

/// One bad entry of a batch request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct EntryError {
    /// Position of the entry in the request, from 0.
    pub index: usize,
    pub field: &'static str,
    pub message: String,
}

/// The class of an error, which decides the status code in every transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    BadRequest,
    NotFound,
    Conflict,
    /// The request is valid but the system is not in a state to serve it (not started yet).
    FailedPrecondition,
    /// Nothing is left to give (sold out, a limit reached).
    ResourceExhausted,
    /// It existed but is over for good (an expired coupon).
    Gone,
    /// It exists but is not the caller's.
    PermissionDenied,
    /// Who is calling is unknown or not proven (HTTP 401).
    Unauthenticated,
    /// Too much demand now; retry later.
    RateLimited,
    /// The request is larger than the call accepts (HTTP 413).
    PayloadTooLarge,
    /// Not served in time (gRPC `DEADLINE_EXCEEDED`).
    DeadlineExceeded,
    Unavailable,
    Internal,
}

impl ServiceError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::InvalidArgument { .. } | ServiceError::InsecureUrl { .. } => {
                ErrorKind::InvalidArgument
            }
            ServiceError::BadRequest { .. } => ErrorKind::BadRequest,
            ServiceError::NotFound { .. } => ErrorKind::NotFound,
            ServiceError::Payment(r) => match r {
                PaymentRefusal::OrderNotFound | PaymentRefusal::UnknownPayment => {
                    ErrorKind::NotFound
                }
                PaymentRefusal::CurrencyMismatch { .. } => ErrorKind::InvalidArgument,
                _ => ErrorKind::Conflict,
            },
            ServiceError::Shipment(r) => match r {
                ShipmentRefusal::OrderNotFound | ShipmentRefusal::ReturnNotFound => {
                    ErrorKind::NotFound
                }
                ShipmentRefusal::UnknownLine { .. } | ShipmentRefusal::UnknownWarehouse => {
                    ErrorKind::InvalidArgument
                }
                _ => ErrorKind::Conflict,
            },
            ServiceError::AlreadyUsed => ErrorKind::Conflict,
            ServiceError::NotStarted { .. } | ServiceError::Ended { .. } => {
                ErrorKind::FailedPrecondition
            }
            ServiceError::SoldOut | ServiceError::UserLimitReached => ErrorKind::ResourceExhausted,
            ServiceError::InvalidEntries { .. } => ErrorKind::InvalidArgument,
            ServiceError::Expired => ErrorKind::Gone,
            ServiceError::Exhausted
            | ServiceError::NoCouponAvailable
            | ServiceError::CouponBound { .. } => ErrorKind::Conflict,
            ServiceError::NotOwner => ErrorKind::PermissionDenied,
            ServiceError::MegadealBusy { .. } => ErrorKind::RateLimited,
            ServiceError::MegadealUnavailable(_) => ErrorKind::Unavailable,
            ServiceError::NoActiveSale | ServiceError::ItemSold => ErrorKind::Conflict,
            ServiceError::NotInCurrentSale => ErrorKind::NotFound,
            ServiceError::SaleOver => ErrorKind::Gone,
            ServiceError::ItemAlreadyCheckedOut | ServiceError::SaleNotCurrent => {
                ErrorKind::Conflict
            }
            ServiceError::SkuTaken
            | ServiceError::CategoryInUse
            | ServiceError::WarehouseCodeTaken
            | ServiceError::WarehouseInUse => ErrorKind::Conflict,
            ServiceError::OutOfStock { .. }
            | ServiceError::ReservationNotPending { .. }
            | ServiceError::BelowReserved { .. } => ErrorKind::Conflict,
            ServiceError::OrderOutOfStock { .. }
            | ServiceError::OrderNotEditable { .. }
            | ServiceError::IllegalTransition { .. }
            | ServiceError::CouponUnusable { .. }
            | ServiceError::CodeAlreadyUsed
            | ServiceError::PromotionHoldUnusable { .. }
            | ServiceError::PromotionCodeRefused { .. } => ErrorKind::Conflict,
            ServiceError::UnknownCode { .. } => ErrorKind::InvalidArgument,
            ServiceError::IdempotencyKeyInUse => ErrorKind::Conflict,
            ServiceError::IdempotencyKeyReused => ErrorKind::InvalidArgument,
            ServiceError::InvalidCredentials
            | ServiceError::InvalidToken
            | ServiceError::Unauthenticated => ErrorKind::Unauthenticated,
            ServiceError::Forbidden { .. } => ErrorKind::PermissionDenied,
            ServiceError::RateLimited { .. } => ErrorKind::RateLimited,
            ServiceError::EmailTaken => ErrorKind::Conflict,
            ServiceError::Crypto(_) => ErrorKind::Internal,
            ServiceError::Unavailable(_) => ErrorKind::Unavailable,
            ServiceError::Internal(_) => ErrorKind::Internal,
            ServiceError::Busy { .. } => ErrorKind::Unavailable,
            ServiceError::PayloadTooLarge { .. } => ErrorKind::PayloadTooLarge,
            ServiceError::RequestTimeout { .. } => ErrorKind::DeadlineExceeded,
            ServiceError::TemplateNameTaken | ServiceError::TemplateInUse { .. } => {
                ErrorKind::Conflict
            }
            ServiceError::LastAdmin => ErrorKind::Conflict,
            ServiceError::HoldNotHeld { .. }
            | ServiceError::HoldExpired
            | ServiceError::LimitBelowUsage { .. }
            | ServiceError::AlreadyBound { .. }
            | ServiceError::UsedUpCodes { .. } => ErrorKind::Conflict,
            ServiceError::UnknownCodes { .. } | ServiceError::UnknownCampaign => {
                ErrorKind::InvalidArgument
            }
            ServiceError::SetupDone => ErrorKind::Gone,
            ServiceError::SignupClosed | ServiceError::EmailNotVerified => {
                ErrorKind::PermissionDenied
            }
        }
    }

    /// The machine-readable code clients switch on; stable across releases.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::InvalidArgument { .. } => "invalid_argument",
            ServiceError::InsecureUrl { .. } => "insecure_url",
            ServiceError::BadRequest { .. } => "bad_request",
            // Promotions and their holds name what was not found (their API's contract).
            ServiceError::NotFound { what: "promotion" } => "promotion_not_found",
            ServiceError::NotFound { what: "hold" } => "hold_not_found",
            ServiceError::NotFound { .. } => "not_found",
            ServiceError::Payment(r) => match r {
                PaymentRefusal::OrderNotFound | PaymentRefusal::UnknownPayment => "not_found",
                PaymentRefusal::CurrencyMismatch { .. } => "currency_mismatch",
                PaymentRefusal::OrderNotPayable { .. } => "order_not_payable",
                PaymentRefusal::ExceedsTotal { .. } => "payment_exceeds_total",
                PaymentRefusal::ExceedsCapture { .. } => "refund_exceeds_capture",
                PaymentRefusal::ReferenceConflict => "reference_conflict",
                PaymentRefusal::StatusConflict { .. } => "payment_status_conflict",
            },
            ServiceError::Shipment(r) => match r {
                ShipmentRefusal::OrderNotFound | ShipmentRefusal::ReturnNotFound => "not_found",
                ShipmentRefusal::OrderNotShippable { .. } => "order_not_shippable",
                ShipmentRefusal::OrderNotReturnable { .. } => "order_not_returnable",
                ShipmentRefusal::UnknownLine { .. } | ShipmentRefusal::UnknownWarehouse => {
                    "invalid_argument"
                }
                ShipmentRefusal::ExceedsRemaining { .. } => "shipment_exceeds_remaining",
                ShipmentRefusal::ExceedsReturnable { .. } => "return_exceeds_shipped",
                ShipmentRefusal::ReturnStatusConflict { .. } => "return_status_conflict",
                ShipmentRefusal::PartlyShipped => "order_partly_shipped",
                ShipmentRefusal::HasLineReturns => "order_has_returns",
                // Answered as the refund's own refusal (`ServiceError::Payment`).
                ShipmentRefusal::Refund(_) => "refund_refused",
            },
            ServiceError::AlreadyUsed => "already_used",
            ServiceError::NotStarted { .. } => "not_started",
            ServiceError::Ended { .. } => "ended",
            ServiceError::SoldOut => "sold_out",
            ServiceError::UserLimitReached => "user_limit_reached",
            ServiceError::InvalidEntries { .. } => "invalid_argument",
            ServiceError::Expired => "expired",
            ServiceError::Exhausted => "exhausted",
            ServiceError::NotOwner => "not_owner",
            ServiceError::CouponBound { .. } => "coupon_bound",
            ServiceError::NoCouponAvailable => "no_coupon_available",
            ServiceError::MegadealBusy { .. } => "megadeal_busy",
            ServiceError::MegadealUnavailable(_) => "megadeal_unavailable",
            ServiceError::NoActiveSale => "no_active_sale",
            ServiceError::NotInCurrentSale => "not_in_current_sale",
            ServiceError::ItemSold => "item_sold",
            ServiceError::SaleOver => "sale_over",
            ServiceError::ItemAlreadyCheckedOut => "item_already_checked_out",
            ServiceError::SaleNotCurrent => "sale_not_current",
            ServiceError::SkuTaken => "sku_taken",
            ServiceError::CategoryInUse => "category_in_use",
            ServiceError::WarehouseCodeTaken => "warehouse_code_taken",
            ServiceError::WarehouseInUse => "warehouse_in_use",
            ServiceError::OutOfStock { .. } | ServiceError::OrderOutOfStock { .. } => {
                "out_of_stock"
            }
            ServiceError::IllegalTransition { .. } => "illegal_transition",
            ServiceError::OrderNotEditable { .. } => "order_not_editable",
            ServiceError::CouponUnusable { .. } => "coupon_unusable",
            ServiceError::UnknownCode { .. } => "unknown_code",
            ServiceError::CodeAlreadyUsed => "code_already_used",
            ServiceError::PromotionHoldUnusable { .. } => "promotion_hold_unusable",
            ServiceError::PromotionCodeRefused { .. } => "promotion_code_refused",
            ServiceError::ReservationNotPending { .. } => "reservation_not_pending",
            ServiceError::BelowReserved { .. } => "below_reserved",
            ServiceError::IdempotencyKeyInUse => "idempotency_key_in_use",
            ServiceError::IdempotencyKeyReused => "idempotency_key_reused",
            ServiceError::InvalidCredentials => "invalid_credentials",
            ServiceError::InvalidToken => "invalid_token",
            ServiceError::Unauthenticated => "unauthenticated",
            ServiceError::Forbidden { .. } => "forbidden",
            ServiceError::RateLimited { .. } => "rate_limited",
            ServiceError::EmailTaken => "email_taken",
            ServiceError::Crypto(_) => "internal",
            ServiceError::Unavailable(e) if e.fault() == Some(allot_storage::Fault::CommitLost) => {
                "storage_outcome_unknown"
            }
            ServiceError::Unavailable(_) => "storage_unavailable",
            ServiceError::Internal(_) => "internal",
            ServiceError::Busy { .. } => "busy",
            ServiceError::PayloadTooLarge { .. } => "payload_too_large",
            ServiceError::RequestTimeout { .. } => "request_timeout",
            ServiceError::TemplateNameTaken => "template_name_taken",
            ServiceError::TemplateInUse { .. } => "template_in_use",
            ServiceError::LastAdmin => "last_admin",
            ServiceError::SetupDone => "setup_done",
            ServiceError::SignupClosed => "signup_closed",
            ServiceError::EmailNotVerified => "email_not_verified",
            ServiceError::HoldNotHeld { .. } => "hold_not_held",
            ServiceError::HoldExpired => "hold_expired",
            ServiceError::LimitBelowUsage { .. } => "limit_below_usage",
            ServiceError::UnknownCodes { .. } => "unknown_codes",
            ServiceError::AlreadyBound { .. } => "already_bound",
            ServiceError::UsedUpCodes { .. } => "codes_used_up",
            ServiceError::UnknownCampaign => "unknown_campaign",
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        match self {
            ServiceError::InvalidArgument { field, .. } => Some(field),
            ServiceError::InsecureUrl { field } => Some(field),
            ServiceError::BadRequest { field, .. } => *field,
            ServiceError::UnknownCode { field } => Some(field),
            ServiceError::PromotionHoldUnusable { .. } => Some("promotion_hold_id"),
            ServiceError::PromotionCodeRefused { .. } => Some("codes"),
            ServiceError::IdempotencyKeyReused => Some("Idempotency-Key"),
            ServiceError::Forbidden { field, .. } => *field,
            ServiceError::LimitBelowUsage { field }
            | ServiceError::UnknownCodes { field, .. }
            | ServiceError::AlreadyBound { field, .. }
            | ServiceError::UsedUpCodes { field, .. } => Some(field),
            ServiceError::UnknownCampaign => Some("campaign_id"),
            ServiceError::Shipment(r) => match r {
                ShipmentRefusal::UnknownLine { .. }
                | ShipmentRefusal::ExceedsRemaining { .. }
                | ShipmentRefusal::ExceedsReturnable { .. } => Some("lines"),
                ShipmentRefusal::UnknownWarehouse => Some("warehouse_id"),
                _ => None,
            },
            ServiceError::Payment(r) => match r {
                PaymentRefusal::CurrencyMismatch { .. } => Some("currency"),
                PaymentRefusal::ExceedsTotal { .. } | PaymentRefusal::ExceedsCapture { .. } => {
                    Some("amount_minor")
                }
                PaymentRefusal::ReferenceConflict => Some("reference"),
                PaymentRefusal::StatusConflict { .. } => Some("status"),
                PaymentRefusal::OrderNotFound
                | PaymentRefusal::OrderNotPayable { .. }
                | PaymentRefusal::UnknownPayment => None,
            },
            _ => None,
        }
    }

    pub fn bad_request(field: Option<&'static str>, message: impl Into<String>) -> Self {
        ServiceError::BadRequest {
            field,
            message: message.into(),
        }
    }
}

impl From<DomainError> for ServiceError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid { field, message } => ServiceError::InvalidArgument {
                field,
                message: format!("{field}: {message}"),
            },
        }
    }
}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        // Storage faults (a full disk, the database unreachable) are the environment's, not
        // ours nor the client's: 503 with Retry-After, and the client tries again.
        match e.fault() {
            Some(_) => ServiceError::Unavailable(e),
            None => ServiceError::Internal(e),
        }
    }
}

/// The HTTP status of each kind of error: REST answers and console pages alike.
pub(crate) fn status_of(kind: ErrorKind) -> http::StatusCode {
    match kind {
        ErrorKind::InvalidArgument => http::StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::BadRequest => http::StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => http::StatusCode::NOT_FOUND,
        ErrorKind::Conflict | ErrorKind::FailedPrecondition | ErrorKind::ResourceExhausted => {
            http::StatusCode::CONFLICT
        }
        ErrorKind::Gone => http::StatusCode::GONE,
        ErrorKind::PermissionDenied => http::StatusCode::FORBIDDEN,
        ErrorKind::Unauthenticated => http::StatusCode::UNAUTHORIZED,
        ErrorKind::RateLimited => http::StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::PayloadTooLarge => http::StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::DeadlineExceeded => http::StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => http::StatusCode::INTERNAL_SERVER_ERROR,
    }
}
