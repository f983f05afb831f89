//! The integration tests: one binary, the real daemon started per test on a random port.
//!
//! Tests that touch the database run twice, on a fresh SQLite file and on a fresh PostgreSQL
//! database (when `DATABASE_URL` is set; otherwise the PostgreSQL variant says it was skipped).
//! Set `TEST_LOG=1` to see the daemon's logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod helpers;

mod account_safety;
mod auth;
mod authz;
mod bounds;
mod browser;
mod browser_api_docs;
mod browser_campaigns;
mod browser_changes;
mod browser_chat;
mod browser_home;
mod browser_media;
mod browser_sequences;
mod browser_team_settings;
mod browser_webhooks;
mod campaign_ops;
mod campaigns;
mod chats;
mod cli;
mod cluster;
mod devices;
mod devices_store;
mod dockerfile;
mod fault;
mod fault_webhooks;
mod fuzz_replay;
mod health;
mod identity;
mod layers;
mod lead_index;
mod leads;
mod login_abuse;
mod mcp;
mod media_download;
mod media_kinds;
mod member_scope;
mod message_changes;
mod migrations;
mod openapi;
mod ops;
mod outbound_webhooks;
mod quarantine;
mod resilience;
mod retention;
mod sequence_branch;
mod sequences;
mod shutdown;
mod stats;
mod team_settings;
mod tls;
mod wa_handshake;
mod wa_store;
mod web_hardening;
mod webhooks;
mod ws;
mod ws_access;
