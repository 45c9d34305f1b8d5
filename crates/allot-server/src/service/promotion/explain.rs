//! The evaluation as the API shows it, and as a hold keeps it: every figure of the engine's
//! answer, line by line, with each refusal's reason in words. One shape for the preview, the
//! hold and an order's promotions, so a client parses it once.

use std::collections::BTreeMap;

use allot_domain::promotion::{Cart, Evaluation, PromotionId, Reason};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a cart gets: its totals, each line's discounts, the promotions applied and every code
/// (or automatic promotion) refused with its reason.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationView {
    pub currency: String,
    pub subtotal_minor: i64,
    /// Off the lines, every promotion together.
    pub discount_minor: i64,
    pub shipping_minor: i64,
    pub shipping_discount_minor: i64,
    /// `subtotal - discount + shipping - shipping_discount`.
    pub total_minor: i64,
    /// In cart order.
    pub lines: Vec<LineView>,
    /// In the order they were applied.
    pub applied: Vec<AppliedView>,
    /// Every code entered that gives nothing, in the cart's code order; then automatic
    /// promotions refused by stacking or a limit, by id.
    pub refused: Vec<RefusedView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LineView {
    /// The line's position in the cart, from 0.
    pub index: usize,
    pub product_id: i64,
    pub quantity: i64,
    /// Unit price times quantity.
    pub line_total_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
    /// What each promotion takes off this line, in the order applied.
    pub discounts: Vec<LineDiscountView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LineDiscountView {
    pub promotion_id: i64,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppliedView {
    pub promotion_id: i64,
    pub name: String,
    /// The code that reached it; null for an automatic promotion.
    pub code: Option<String>,
    /// Off the lines and the shipping together.
    pub amount_minor: i64,
    /// Off the shipping.
    pub shipping_minor: i64,
    /// True when what was left of a budget (in all or the customer's) cut the amount.
    pub capped_by_budget: bool,
    /// Per line it discounts, in line order.
    pub lines: Vec<AppliedLineView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppliedLineView {
    pub index: usize,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefusedView {
    /// The code entered; null for an automatic promotion.
    pub code: Option<String>,
    /// The promotion refused; null for a code bound to none.
    pub promotion_id: Option<i64>,
    /// Machine-readable: `unknown_code`, `code_unusable`, `inactive`, `not_started`, `ended`,
    /// `outside_schedule`, `wrong_currency`, `min_subtotal_not_met`, `min_quantity_not_met`,
    /// `not_in_scope`, `customer_not_eligible`, `not_first_order`, `customer_required`,
    /// `customer_limit_reached`, `customer_budget_exhausted`, `redemption_limit_reached`,
    /// `budget_exhausted`, `not_combinable`, `no_discount`.
    pub reason: String,
    /// For people; may change between releases.
    pub message: String,
}

/// The view of `evaluation` for `cart`, naming each promotion by `names`.
pub fn view(
    cart: &Cart,
    evaluation: &Evaluation,
    names: &BTreeMap<PromotionId, String>,
) -> EvaluationView {
    let mut per_line: Vec<Vec<LineDiscountView>> = vec![Vec::new(); cart.lines.len()];
    for applied in &evaluation.applied {
        for d in &applied.lines {
            if let Some(discounts) = per_line.get_mut(d.line) {
                discounts.push(LineDiscountView {
                    promotion_id: applied.id.get(),
                    amount_minor: d.amount_minor,
                });
            }
        }
    }
    let lines = cart
        .lines
        .iter()
        .zip(evaluation.lines.iter())
        .zip(per_line)
        .enumerate()
        .map(|(index, ((line, total), discounts))| LineView {
            index,
            product_id: line.product,
            quantity: line.quantity,
            line_total_minor: total.line_total_minor,
            discount_minor: total.discount_minor,
            total_minor: total.total_minor,
            discounts,
        })
        .collect();
    EvaluationView {
        currency: cart.currency.clone(),
        subtotal_minor: evaluation.subtotal_minor,
        discount_minor: evaluation.discount_minor,
        shipping_minor: evaluation.shipping_minor,
        shipping_discount_minor: evaluation.shipping_discount_minor,
        total_minor: evaluation.total_minor,
        lines,
        applied: evaluation
            .applied
            .iter()
            .map(|a| AppliedView {
                promotion_id: a.id.get(),
                name: names.get(&a.id).cloned().unwrap_or_default(),
                code: a.code.clone(),
                amount_minor: a.amount_minor,
                shipping_minor: a.shipping_minor,
                capped_by_budget: a.capped_by_budget,
                lines: a
                    .lines
                    .iter()
                    .map(|l| AppliedLineView {
                        index: l.line,
                        amount_minor: l.amount_minor,
                    })
                    .collect(),
            })
            .collect(),
        refused: evaluation
            .refused
            .iter()
            .map(|r| RefusedView {
                code: r.code.clone(),
                promotion_id: r.id.map(PromotionId::get),
                reason: r.reason.as_str().to_owned(),
                message: message(r.reason).to_owned(),
            })
            .collect(),
    }
}

/// A refusal's reason in words.
pub fn message(reason: Reason) -> &'static str {
    match reason {
        Reason::UnknownCode => "no promotion has this code",
        Reason::CodeUnusable => "the code cannot be used: used up, expired or another customer's",
        Reason::Inactive => "the promotion is switched off",
        Reason::NotStarted => "the promotion has not started yet",
        Reason::Ended => "the promotion has ended",
        Reason::OutsideSchedule => "the promotion does not run at this hour or day",
        Reason::WrongCurrency => "the promotion is for carts in another currency",
        Reason::MinSubtotalNotMet => "the cart does not reach the promotion's minimum amount",
        Reason::MinQuantityNotMet => "the cart does not reach the promotion's minimum quantity",
        Reason::NotInScope => "no item of the cart is one the promotion covers",
        Reason::CustomerNotEligible => "the promotion is not for this customer",
        Reason::NotFirstOrder => "the promotion is only for a customer's first order",
        Reason::CustomerRequired => "the promotion needs a signed-in customer",
        Reason::CustomerLimitReached => "the customer has used this promotion as often as it may",
        Reason::CustomerBudgetExhausted => {
            "the customer has received as much from this promotion as it may"
        }
        Reason::RedemptionLimitReached => "the promotion has been used as often as it may",
        Reason::BudgetExhausted => "the promotion's budget is spent",
        Reason::NotCombinable => "the promotion does not combine with the ones applied",
        Reason::NoDiscount => "nothing is left for the promotion to take off",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_words() {
        for reason in Reason::ALL {
            assert!(!message(reason).is_empty(), "{reason}");
        }
    }
}
