//! The promotion engine: checks specs and carts, and evaluates a cart against candidates.
//! (Implementation in progress: see issue 16.)

use super::*;

pub(crate) fn check_spec(spec: PromotionSpec) -> Result<Promotion, DomainError> {
    let _ = spec;
    todo!("check_spec")
}

pub(crate) fn check_cart(cart: Cart) -> Result<Cart, DomainError> {
    let _ = cart;
    todo!("check_cart")
}

/// Whether a promotion's own conditions (time, schedule, currency, customer, minimums, scope)
/// hold for the cart, usage aside: the first that fails, in the order [`Reason`] lists them.
/// The cheap filter a server runs over every automatic promotion before reading usage.
pub fn conditions_hold(promotion: &Promotion, cart: &Cart, now: UnixMillis) -> Result<(), Reason> {
    let _ = (promotion, cart, now);
    todo!("conditions_hold")
}

/// Evaluates `cart` against `candidates` at `now`. `code_refusals` are the cart's codes the
/// caller could not resolve to a usable promotion (unknown, or the code itself unusable), each
/// with its reason; they are reported in the cart's code order with the others.
pub fn evaluate(
    cart: &Cart,
    candidates: &[Candidate<'_>],
    code_refusals: &[(String, Reason)],
    now: UnixMillis,
) -> Evaluation {
    let _ = (cart, candidates, code_refusals, now);
    todo!("evaluate")
}
