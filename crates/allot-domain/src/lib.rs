//! Allot's domain: pure types, rules and errors.
//!
//! Nothing here performs I/O. Every value type has private fields and a fallible constructor,
//! so a value that exists is a valid value ("parse, don't validate"). Randomness comes in as a
//! `rand::Rng` argument so that the rules stay deterministic under test.

pub mod auth;
pub mod campaign;
pub mod catalog;
pub mod clock;
pub mod coupon;
pub mod discount;
pub mod error;
pub mod event;
pub mod inventory;
pub mod notification;
pub mod order;
pub mod payment;
pub mod promotion;
pub mod sale;
pub mod shipment;

pub use clock::{Clock, UnixMillis};
pub use error::DomainError;
pub mod user;
