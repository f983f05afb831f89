//! The MCP server at `/mcp`: the Model Context Protocol over streamable HTTP, so an AI client
//! (Claude Desktop, VS Code, an agent using the `mcp` package) can list devices, read and send
//! chats, run campaigns and look up or add leads. docs/mcp.md is the user's guide.
//!
//! - [`tools`]: [`McpServer`], the tools, written with the rmcp SDK's macros over the same
//!   actions ([`crate::web::actions`]) and access checks as the REST routes.
//! - [`transport`]: the actix handler of `/mcp`, which authenticates the bearer token, reads the
//!   body within its bounds and hands the request to rmcp's `StreamableHttpService`.
//!
//! A request's flow: `authenticate` (bearer token only; 401 with the API's error body without
//! one) → the body (at most [`transport::MAX_BODY_BYTES`]) → an `http::Request` for rmcp →
//! rmcp parses the JSON-RPC message and calls the [`McpServer`] bound to this caller → its
//! answer (JSON) goes back as the actix response. The service runs stateless: no MCP session
//! outlives its request, so nothing an outsider sends can grow the server's memory.

pub mod tools;
pub mod transport;

pub use tools::McpServer;

/// The path of the MCP endpoint.
pub const PATH: &str = "/mcp";

/// The `/mcp` resource: every method goes to the bridge, which answers POST and lets rmcp
/// refuse the rest (405, stateless servers keep no stream to GET or session to DELETE).
pub fn resource() -> actix_web::Resource {
    actix_web::web::resource(PATH).to(transport::endpoint)
}
