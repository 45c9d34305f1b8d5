//! Integration tests: the real server on a random port, spoken to over the network as a client
//! would, with invariants checked in the database afterwards.

mod audit;
mod auth;
mod campaign;
mod campaign_crash;
mod catalog;
mod console_session;
mod contract;
mod coupon;
mod discount_grpc;
mod discount_rest;
mod durability;
mod edge;
mod events;
mod faults;
mod helpers;
mod house;
mod idem;
mod idempotency;
mod inventory;
mod megadeal_global;
mod notifications;
mod orders;
mod personal_data;
mod postgres;
mod rate_limit;
mod roles;
mod sale;
mod users;
mod webhooks;
