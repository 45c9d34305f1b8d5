//! The operations of the differential test and their generators: what a client does, with
//! references to what the case created so far by position, so that one sequence means the same
//! thing on both servers (each resolves a position to its own ids and codes).

use proptest::collection::VecStrategy;
use proptest::prelude::*;
use proptest::strategy::{NewTree, ValueTree};
use proptest::test_runner::TestRunner;

/// A thing created earlier in the case, by position (modulo how many there are), or one that
/// does not exist. With nothing of its kind created yet, `Nth` is unknown too.
#[derive(Clone, Copy, Debug)]
pub enum Pick {
    Nth(u8),
    Unknown,
}

/// A coupon type as uploads and requests name it (`None`: an untyped coupon).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Standard,
    Free,
    Untyped,
}

impl Kind {
    pub fn name(self) -> Option<&'static str> {
        match self {
            Kind::Standard => Some("STANDARD"),
            Kind::Free => Some("FREE"),
            Kind::Untyped => None,
        }
    }
}

pub const STATUSES: [&str; 7] = [
    "pending",
    "confirmed",
    "fulfilled",
    "delivered",
    "cancelled",
    "return_requested",
    "returned",
];

/// One step of a case. Customers, holders and idempotency keys are small numbers (`cust1`,
/// `key2`), so that the same ones come back.
#[derive(Clone, Debug)]
pub enum Op {
    CreateCampaign {
        total: i64,
        per_user_limit: Option<i64>,
        open_for_min: Option<i64>,
    },
    Issue {
        campaign: Pick,
        customer: Option<u8>,
        key: Option<u8>,
    },
    ReadCampaign {
        campaign: Pick,
    },
    GenerateCodes {
        count: u64,
    },
    UseCode {
        code: Pick,
        lower_case: bool,
    },
    UploadCoupons {
        kind: Kind,
        percent: bool,
        max_uses: i64,
        expires_in_min: i64,
        count: u8,
        clash: bool,
    },
    RequestCoupon {
        customer: u8,
        kind: Kind,
    },
    ValidateCoupon {
        coupon: Pick,
        customer: u8,
    },
    RedeemCoupon {
        coupon: Pick,
        customer: u8,
    },
    CreateProduct {
        price_minor: i64,
        clash: bool,
    },
    DeleteProduct {
        product: Pick,
    },
    CreateWarehouse,
    /// Turns a warehouse off or on again (an inactive one serves no reservation).
    SetWarehouseActive {
        warehouse: Pick,
        active: bool,
    },
    Adjust {
        product: Pick,
        warehouse: Pick,
        set: bool,
        quantity: i64,
    },
    Reorder {
        product: Pick,
        warehouse: Pick,
        threshold: Option<i64>,
        quantity: i64,
    },
    Reserve {
        product: Pick,
        warehouse: Option<Pick>,
        quantity: i64,
        holder: u8,
    },
    Confirm {
        reservation: Pick,
    },
    Release {
        reservation: Pick,
    },
    ReadInventory {
        product: Pick,
    },
    PlaceOrder {
        customer: u8,
        lines: Vec<(Pick, i64)>,
        coupon: Option<Pick>,
        discount_code: Option<Pick>,
        key: Option<u8>,
    },
    SetStatus {
        order: Pick,
        to: &'static str,
        warehouse: Option<Pick>,
    },
    ReadOrder {
        order: Pick,
    },
    /// The order listing with its filters (each backend builds the query its own way).
    ListOrders {
        customer: Option<u8>,
        status: Option<&'static str>,
    },
    ListRedemptions {
        customer: Option<u8>,
        kind: Option<Kind>,
    },
    ListStock {
        warehouse: Option<Pick>,
        low_only: bool,
    },
    /// The current hour's sale and its items (the items checkouts pick from).
    ReadSale,
    Checkout {
        customer: u8,
        item: Pick,
    },
    Purchase {
        checkout: Pick,
    },
    /// The design checkout (seed 002) at the root path: the item on the customer's open code.
    DesignCheckout {
        customer: u8,
        item: Pick,
    },
    /// The design purchase of a code the design checkout handed out.
    DesignPurchase {
        code: Pick,
    },
    AdvanceClock {
        minutes: i64,
    },
    ReadEvents,
    ReadAudit,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![9 => (0u8..6).prop_map(Pick::Nth), 1 => Just(Pick::Unknown)]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Standard), Just(Kind::Free), Just(Kind::Untyped)]
}

fn customer() -> impl Strategy<Value = u8> {
    0u8..4
}

fn key() -> impl Strategy<Value = Option<u8>> {
    proptest::option::of(0u8..3)
}

fn status() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(&STATUSES[..])
}

fn upload() -> impl Strategy<Value = Op> {
    let expiry_min = prop_oneof![Just(10i64), Just(600)];
    let flags = (any::<bool>(), prop::bool::weighted(0.2));
    (kind(), 1i64..3, expiry_min, 1u8..3, flags).prop_map(
        |(kind, max_uses, expires_in_min, count, (percent, clash))| Op::UploadCoupons {
            kind,
            percent,
            max_uses,
            expires_in_min,
            count,
            clash,
        },
    )
}

fn adjust() -> impl Strategy<Value = Op> {
    (pick(), pick(), any::<bool>(), -4i64..8).prop_map(|(product, warehouse, set, quantity)| {
        Op::Adjust {
            product,
            warehouse,
            set,
            quantity,
        }
    })
}

fn reorder() -> impl Strategy<Value = Op> {
    (pick(), pick(), proptest::option::of(0i64..4), 1i64..10).prop_map(
        |(product, warehouse, threshold, quantity)| Op::Reorder {
            product,
            warehouse,
            threshold,
            quantity,
        },
    )
}

fn reserve() -> impl Strategy<Value = Op> {
    (pick(), proptest::option::of(pick()), 1i64..5, 0u8..3).prop_map(
        |(product, warehouse, quantity, holder)| Op::Reserve {
            product,
            warehouse,
            quantity,
            holder,
        },
    )
}

/// An order of one or two lines, now and then with a coupon or a discount code.
fn place_order() -> impl Strategy<Value = Op> {
    let lines = proptest::collection::vec((pick(), 1i64..4), 1..3);
    let code = || proptest::option::weighted(0.3, pick());
    (customer(), lines, code(), code(), key()).prop_map(
        |(customer, lines, coupon, discount_code, key)| Op::PlaceOrder {
            customer,
            lines,
            coupon,
            discount_code,
            key,
        },
    )
}

/// One operation; the weights favour the contested paths (issue, use, redeem, reserve, order).
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1i64..4, proptest::option::of(1i64..3), proptest::option::of(5i64..60))
            .prop_map(|(total, per_user_limit, open_for_min)| Op::CreateCampaign {
                total,
                per_user_limit,
                open_for_min,
            }),
        6 => (pick(), proptest::option::weighted(0.85, customer()), key())
            .prop_map(|(campaign, customer, key)| Op::Issue { campaign, customer, key }),
        1 => pick().prop_map(|campaign| Op::ReadCampaign { campaign }),
        1 => (1u64..4).prop_map(|count| Op::GenerateCodes { count }),
        3 => (pick(), any::<bool>())
            .prop_map(|(code, lower_case)| Op::UseCode { code, lower_case }),
        1 => upload(),
        2 => (customer(), kind()).prop_map(|(customer, kind)| Op::RequestCoupon {
            customer,
            kind
        }),
        1 => (pick(), customer()).prop_map(|(coupon, customer)| Op::ValidateCoupon {
            coupon,
            customer
        }),
        3 => (pick(), customer()).prop_map(|(coupon, customer)| Op::RedeemCoupon {
            coupon,
            customer
        }),
        1 => (100i64..5_000, prop::bool::weighted(0.2))
            .prop_map(|(price_minor, clash)| Op::CreateProduct { price_minor, clash }),
        1 => pick().prop_map(|product| Op::DeleteProduct { product }),
        1 => Just(Op::CreateWarehouse),
        1 => (pick(), any::<bool>())
            .prop_map(|(warehouse, active)| Op::SetWarehouseActive { warehouse, active }),
        2 => adjust(),
        1 => reorder(),
        3 => reserve(),
        2 => pick().prop_map(|reservation| Op::Confirm { reservation }),
        2 => pick().prop_map(|reservation| Op::Release { reservation }),
        1 => pick().prop_map(|product| Op::ReadInventory { product }),
        5 => place_order(),
        3 => (pick(), status(), proptest::option::of(pick()))
            .prop_map(|(order, to, warehouse)| Op::SetStatus { order, to, warehouse }),
        1 => pick().prop_map(|order| Op::ReadOrder { order }),
        1 => (proptest::option::of(customer()), proptest::option::of(status()))
            .prop_map(|(customer, status)| Op::ListOrders { customer, status }),
        1 => (proptest::option::of(customer()), proptest::option::of(kind()))
            .prop_map(|(customer, kind)| Op::ListRedemptions { customer, kind }),
        1 => (proptest::option::of(pick()), any::<bool>())
            .prop_map(|(warehouse, low_only)| Op::ListStock { warehouse, low_only }),
        1 => Just(Op::ReadSale),
        2 => (customer(), pick()).prop_map(|(customer, item)| Op::Checkout { customer, item }),
        2 => pick().prop_map(|checkout| Op::Purchase { checkout }),
        2 => (customer(), pick()).prop_map(|(customer, item)| Op::DesignCheckout { customer, item }),
        2 => pick().prop_map(|code| Op::DesignPurchase { code }),
        1 => (1i64..40).prop_map(|minutes| Op::AdvanceClock { minutes }),
        1 => Just(Op::ReadEvents),
        1 => Just(Op::ReadAudit),
    ]
}

/// Operations a case is generated with: at least [`OPS_MIN`], at most [`OPS_MAX`].
pub const OPS_MIN: usize = 20;
pub const OPS_MAX: usize = 60;

/// A case: 20 to 60 operations after the fixed opening, which shrinks to fewer (a plain
/// `vec(op(), 20..=60)` could not drop an operation from a sequence of 20, and shrinking
/// would have to simplify every one of them instead).
pub fn sequence() -> AtLeast<VecStrategy<BoxedStrategy<Op>>> {
    AtLeast {
        inner: proptest::collection::vec(op().boxed(), 0..=OPS_MAX),
        len_min: OPS_MIN,
    }
}

/// `inner`'s sequences of at least `len_min` items (drawn again until one is), shrinking
/// as `inner`'s do, down to none.
#[derive(Debug)]
pub struct AtLeast<S> {
    inner: S,
    len_min: usize,
}

impl<S: Strategy<Value = Vec<Op>>> Strategy for AtLeast<S> {
    type Tree = S::Tree;
    type Value = Vec<Op>;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        loop {
            let tree = self.inner.new_tree(runner)?;
            if tree.current().len() >= self.len_min {
                return Ok(tree);
            }
        }
    }
}
