//! wafleet keeps a fleet of WhatsApp accounts ("devices") online, broadcasts campaigns through
//! them at a human pace, mirrors their chats into a database and streams every change to
//! browsers and API clients.
//!
//! # Layout
//! Modules import only from layers below their own (lowest first: foundations `clock`,
//! `metrics`, `cli`, `phone`, `tls` → `config` → `db`, `telemetry` → `whatsapp`, `auth` → `hub`,
//! `audit` → `chat` → `device` → `cluster` → `broadcast` → `webhooks` → `retention` → `web` → `startup` →
//! `bench`); the test
//! `tests/api/layers.rs` enforces it and docs/architecture.md explains it.
//! - [`bench`]: `wafleet bench <scenario>`, the daemon measured in-process (docs/benchmarks.md).
//! - [`broadcast`]: leads, opt-outs, campaigns, the outbox and the Throttle.
//! - [`auth`]: tenants, users, roles, sessions, API tokens (no HTTP).
//! - [`audit`]: the audit log.
//! - [`clock`]: the clock sequences are scheduled on (tests move it).
//! - [`cli`], [`config`], [`telemetry`]: command line, layered settings, logging.
//! - [`startup`]: the `Application` that wires database, actors and HTTP server.
//! - [`db`]: the `Db` handle over SQLite or PostgreSQL, `db_run!`, migrations, schema.
//! - [`chat`]: ChatSync, the chats and messages mirror, time labels.
//! - [`device`]: device rows and store (the supervised device actors build on them).
//! - [`cluster`]: several daemons sharing one fleet on PostgreSQL (node leases, fencing).
//! - [`hub`]: real-time topics for WebSocket subscribers, bridged over Redis.
//! - [`web`]: the actix-web app, the `Auth` extractor, `ErrorCode`/`ApiError`, routes, WebSockets.
//! - [`metrics`]: the Prometheus registry.
//! - [`phone`]: phones and JIDs (E.164 normalisation, the phone of a JID).
//! - [`retention`]: the sweep that deletes old messages, outbox rows and audit entries.
//! - [`tls`]: TLS to PostgreSQL (libpq's sslmode) and Redis (rediss://), over rustls.
//! - [`webhooks`]: outbound webhooks: endpoints, the signed, retried delivery queue.
//! - [`whatsapp`]: the `Connector` trait, its events, the simulator, and `remote` (the simulator
//!   in its own process, `wafleet sim`, for fault drills).

pub mod audit;
pub mod auth;
pub mod bench;
pub mod broadcast;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod device;
pub mod hub;
pub mod metrics;
pub mod phone;
pub mod retention;
pub mod startup;
pub mod stats;
pub mod telemetry;
pub mod tls;
pub mod web;
pub mod webhooks;
pub mod whatsapp;
