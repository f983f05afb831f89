//! What a caller can do, written once for both faces of the API: the REST routes
//! ([`crate::web::routes`]) and the MCP tools ([`crate::web::mcp`]).
//!
//! Each action takes the caller as an [`Auth<R>`](crate::web::auth::Auth), so it cannot run
//! without the role and token scope its REST route requires (a route gets one from its extractor,
//! a tool from [`Auth::check`](crate::web::auth::Auth::check)); then it applies the per-object
//! rules (the caller's tenant, the devices a member may see, who may change a campaign), calls
//! the stores and actors, and answers the API's view or an [`ApiError`](crate::web::ApiError).
//! A route or a tool adds only how its arguments arrive and how the answer leaves, so the two
//! cannot disagree about what a caller may see or do.

pub mod campaigns;
pub mod chats;
pub mod devices;
pub mod leads;
