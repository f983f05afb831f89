//! The MCP tools: one [`McpServer`] per request, bound to the caller its bearer token resolved
//! to, whose tools call the same actions ([`crate::web::actions`]) as the REST routes.
//!
//! Every tool first turns the caller into the `Auth<R>` its REST twin requires (403 `forbidden`
//! for a role or token scope below it), then runs the action, which applies the tenant, device
//! and creator rules. Answers are the REST views as `structuredContent` (and as JSON text);
//! refusals are tool errors whose content is REST's `{"error":{"code","message"}}`. Arguments
//! that do not fit a tool's schema are refused the same way, as `invalid_json`.

use std::sync::OnceLock;

use actix_web::web;
use base64::Engine as _;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::auth::Caller;
use crate::broadcast::campaign::messages::Action;
use crate::chat::store::Only;
use crate::web::actions::chats::{
    file_kind, max_file_bytes, ChatQuery, MessageQuery, Outgoing, Sender,
};
use crate::web::actions::devices::DeviceQuery;
use crate::web::actions::leads::{CreateLeadRequest, LeadQuery};
use crate::web::actions::{campaigns, chats, devices, leads};
use crate::web::audit::Audit;
use crate::web::auth::{require, Auth, Requirement};
use crate::web::error::ErrorDetail;
use crate::web::{ApiError, AppState, ErrorBody, ErrorCode};
use crate::whatsapp::MessageKind;

/// The tools of one request, acting as one caller.
#[derive(Clone)]
pub struct McpServer {
    /// The application.
    state: web::Data<AppState>,
    /// Who the bearer token resolved to: every tool acts as them, in their tenant.
    caller: Caller,
    /// The client's address, for the audit log.
    ip: Option<String>,
}

/// Arguments of `list_chats`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ChatsArgs {
    /// The device (an `id` from `list_devices`).
    device_id: i64,
    /// Which chats.
    #[serde(flatten)]
    query: ChatQuery,
}

/// Arguments of `read_messages`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct MessagesArgs {
    /// The device (an `id` from `list_devices`).
    device_id: i64,
    /// The chat's JID (a `jid` from `list_chats`, e.g. `60123456789@s.whatsapp.net`).
    chat: String,
    /// Which page.
    #[serde(flatten)]
    page: MessageQuery,
}

/// Arguments of `send_message`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SendArgs {
    /// The device to send from (an `id` from `list_devices`; it must be online).
    device_id: i64,
    /// Recipient: a phone number in international form (`+60 12-345 6789`) or a JID (a
    /// group's too).
    to: String,
    /// The text (1–4096 characters), or the caption of a picture, video or document.
    #[serde(default)]
    text: Option<String>,
    /// A file to send instead of, or with, the text.
    #[serde(default)]
    media: Option<MediaArgs>,
}

/// A file to send, base64-encoded.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MediaArgs {
    /// The file's bytes in standard base64: a picture up to 32 MiB (JPEG, PNG, GIF or WebP; it is
    /// re-encoded to a JPEG of at most 350 KB), any other file up to 16 MiB.
    data: String,
    /// Its MIME type, e.g. `image/png`, `application/pdf`; picks the kind when `kind` is absent
    /// (`image/*` a picture, `video/*` a video, `audio/*` an audio file, anything else a
    /// document). The bytes decide whether the file is accepted.
    mime: String,
    /// A document's file name as the recipient sees it.
    #[serde(default)]
    file_name: Option<String>,
    /// What to send it as; a voice note (OGG/Opus) or a sticker (WebP) must say so.
    #[serde(default)]
    #[schemars(extend("enum" = ["image", "document", "voice", "audio", "video", "sticker"]))]
    kind: Option<String>,
}

/// Arguments naming a campaign.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct CampaignArgs {
    /// The campaign (an `id` from `list_campaigns`).
    campaign_id: i64,
}

/// The tool result of an action: its answer as structured content, or its refusal.
fn answer<T: Serialize>(outcome: Result<T, ApiError>) -> CallToolResult {
    match outcome.and_then(|value| serde_json::to_value(value).map_err(ApiError::internal)) {
        Ok(value) => CallToolResult::structured(value),
        Err(err) => refusal(&err),
    }
}

/// A tool error carrying REST's error body (logged as a REST error is).
fn refusal(err: &ApiError) -> CallToolResult {
    err.log();
    let body = ErrorBody {
        error: ErrorDetail {
            code: err.code(),
            message: err.message().to_string(),
        },
    };
    CallToolResult::structured_error(serde_json::to_value(body).unwrap_or_default())
}

/// The kind a file is sent as: `kind` when given, else what its MIME type says.
fn media_kind(media: &MediaArgs) -> Result<MessageKind, ApiError> {
    if let Some(kind) = &media.kind {
        return file_kind(kind).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidField,
                "media.kind must be image, document, voice, audio, video or sticker",
            )
        });
    }
    let mime = media.mime.trim().to_ascii_lowercase();
    Ok(match mime.split('/').next().unwrap_or_default() {
        "image" => MessageKind::Image,
        "video" => MessageKind::Video,
        "audio" => MessageKind::Audio,
        _ => MessageKind::Document,
    })
}

/// A tool's file as a send carries it: decoded, within the size limit of its kind (checked on
/// the encoded length first, so an oversize file is never decoded).
fn decoded_file(media: MediaArgs) -> Result<(MessageKind, Vec<u8>, Option<String>), ApiError> {
    let kind = media_kind(&media)?;
    let limit = max_file_bytes(kind);
    if media.data.len() > limit.div_ceil(3) * 4 {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("the {} is larger than {} MiB", kind.as_str(), limit >> 20),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(media.data.trim())
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("media.data: {e}")))?;
    Ok((kind, bytes, media.file_name))
}

impl McpServer {
    /// The tools of a request made by `caller` (from `ip`).
    pub fn new(state: web::Data<AppState>, caller: Caller, ip: Option<String>) -> Self {
        Self { state, caller, ip }
    }

    /// The caller as meeting `R`: the role and token scope the tool's REST twin requires.
    fn auth<R: Requirement>(&self) -> Result<Auth<R>, ApiError> {
        Auth::check(self.caller.clone())
    }

    /// The audit writer of this caller.
    fn audit(&self) -> Audit {
        Audit::for_caller(&self.state, &self.caller, self.ip.clone())
    }

    /// The tool router, built once (tool schemas are generated when it is built).
    fn router() -> &'static ToolRouter<McpServer> {
        static ROUTER: OnceLock<ToolRouter<McpServer>> = OnceLock::new();
        ROUTER.get_or_init(Self::tool_router)
    }

    /// Pauses or resumes a campaign, as `POST /campaigns/{id}/pause|resume` does.
    async fn control(&self, campaign_id: i64, action: Action) -> Result<impl Serialize, ApiError> {
        let caller = self.auth::<require::Member>()?;
        campaigns::control(&self.state, &caller, &self.audit(), campaign_id, action).await
    }
}

#[tool_router]
impl McpServer {
    #[tool(
        description = "The WhatsApp devices (accounts) of your tenant with their status (online, \
            pairing, disconnected, logged_out, …), paginated; a member sees only the devices \
            assigned to them. Like GET /api/v1/devices; needs the read scope.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_devices(&self, Parameters(query): Parameters<DeviceQuery>) -> CallToolResult {
        let outcome = async {
            let caller = self.auth::<require::Viewer>()?;
            devices::list(&self.state, &caller, &query).await
        };
        answer(outcome.await)
    }

    #[tool(
        description = "A device's chats active in the window, most recent first, with the last \
            message and unread count; `jid` names a chat for read_messages and send_message. \
            Like GET /api/v1/devices/{id}/chats; needs the read scope.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_chats(&self, Parameters(args): Parameters<ChatsArgs>) -> CallToolResult {
        let outcome = async {
            let caller = self.auth::<require::Viewer>()?;
            let chats = chats::list(&self.state, &caller, args.device_id, &args.query).await?;
            // An object, as structured content must be.
            Ok::<_, ApiError>(serde_json::json!({ "chats": chats }))
        };
        answer(outcome.await)
    }

    #[tool(
        description = "A page of a chat's messages, newest first; pass `next_before` as `before` \
            for older ones. Like GET /api/v1/devices/{id}/chats/{chat}/messages; needs the read \
            scope.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_messages(&self, Parameters(args): Parameters<MessagesArgs>) -> CallToolResult {
        let outcome = async {
            let caller = self.auth::<require::Viewer>()?;
            let chat = (args.device_id, args.chat.as_str());
            chats::messages(&self.state, &caller, chat, &args.page, Only::All).await
        };
        answer(outcome.await)
    }

    #[tool(
        description = "Sends a WhatsApp message from one of your devices: a text, or a file \
            (base64) with an optional caption. Answers the message id; the message then appears \
            in the chat. Like POST /api/v1/devices/{id}/messages; needs a member or owner and \
            the write scope.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn send_message(&self, Parameters(args): Parameters<SendArgs>) -> CallToolResult {
        let outcome = async {
            let caller = self.auth::<require::Member>()?;
            let sender = Sender::for_device(&self.state, &caller, args.device_id).await?;
            let outgoing = Outgoing {
                to: args.to,
                text: args.text,
                place: None,
                file: args.media.map(decoded_file).transpose()?,
            };
            sender.send(&self.state, outgoing).await
        };
        answer(outcome.await)
    }

    #[tool(
        description = "Your tenant's campaigns, newest first (the latest 200), with status and, \
            once started, progress. Like GET /api/v1/campaigns; needs the read scope.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_campaigns(&self) -> CallToolResult {
        let outcome = async {
            let caller = self.auth::<require::Viewer>()?;
            campaigns::list(&self.state, &caller).await
        };
        answer(outcome.await)
    }

    #[tool(
        description = "Starts a draft or scheduled campaign now: one message per lead, sent at \
            the campaign's human pace. Like POST /api/v1/campaigns/{id}/start; needs the write \
            scope, and a member may start only the campaigns they created.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn start_campaign(&self, Parameters(args): Parameters<CampaignArgs>) -> CallToolResult {
        let outcome = async {
            let caller = self.auth::<require::Member>()?;
            campaigns::start(&self.state, &caller, &self.audit(), args.campaign_id).await
        };
        answer(outcome.await)
    }

    #[tool(
        description = "Pauses a running campaign (within a second; nothing in flight is lost). \
            Like POST /api/v1/campaigns/{id}/pause; needs the write scope, and a member may \
            pause only the campaigns they created.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn pause_campaign(&self, Parameters(args): Parameters<CampaignArgs>) -> CallToolResult {
        answer(self.control(args.campaign_id, Action::Pause).await)
    }

    #[tool(
        description = "Resumes a paused campaign where it stopped. Like POST \
            /api/v1/campaigns/{id}/resume; needs the write scope, and a member may resume only \
            the campaigns they created.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn resume_campaign(&self, Parameters(args): Parameters<CampaignArgs>) -> CallToolResult {
        answer(self.control(args.campaign_id, Action::Resume).await)
    }

    #[tool(
        description = "A campaign's progress: messages per state and per device, rate and ETA. \
            Like GET /api/v1/campaigns/{id}/progress; needs the read scope.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn campaign_progress(
        &self,
        Parameters(args): Parameters<CampaignArgs>,
    ) -> CallToolResult {
        let outcome = async {
            let caller = self.auth::<require::Viewer>()?;
            campaigns::progress_of(&self.state, &caller, args.campaign_id).await
        };
        answer(outcome.await)
    }

    #[tool(
        description = "Looks up your tenant's leads: `q` matches a name or phone; filter by list, \
            tag, status or niche; pass `next_cursor` as `cursor` for the next page. Like GET \
            /api/v1/leads; needs the read scope.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn find_leads(&self, Parameters(query): Parameters<LeadQuery>) -> CallToolResult {
        let outcome = async {
            let caller = self.auth::<require::Viewer>()?;
            leads::search(&self.state, &caller, &query).await
        };
        answer(outcome.await)
    }

    #[tool(
        description = "Adds a lead to one of your lead lists; a phone without a country code is \
            read with your tenant's default country, and a phone already in the list is refused \
            (duplicate_phone). Like POST /api/v1/leads; needs the write scope.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_lead(&self, Parameters(body): Parameters<CreateLeadRequest>) -> CallToolResult {
        let outcome = async {
            let caller = self.auth::<require::Member>()?;
            leads::create(&self.state, &caller, &body, "mcp").await
        };
        answer(outcome.await)
    }
}

#[tool_handler(
    router = Self::router(),
    name = "wafleet",
    instructions = "Tools of a wafleet daemon, a fleet of WhatsApp accounts: list the devices, \
        read and send their chats, run campaigns and look up or add leads. Every tool acts as \
        the API token's user, in its tenant, with its role and scopes; ids come from the list \
        tools. Errors carry {\"error\":{\"code\",\"message\"}} as the REST API's do."
)]
impl ServerHandler for McpServer {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let span = tracing::info_span!(
            "mcp_tool",
            tool = %request.name,
            tenant_id = self.caller.tenant_id,
            user_id = self.caller.user.id,
        );
        let call = ToolCallContext::new(self, request, context);
        let response = Self::router().call(call).instrument(span).await?;
        Ok(match response {
            CallToolResponse::Complete(result) => CallToolResponse::Complete(as_api_error(result)),
            other => other,
        })
    }
}

/// A tool error without structured content came from rmcp, not from an action: arguments that
/// do not deserialize into the tool's parameters. It is answered as REST answers a body of the
/// wrong shape, `invalid_json` with the parser's message.
fn as_api_error(result: CallToolResult) -> CallToolResult {
    if result.is_error != Some(true) || result.structured_content.is_some() {
        return result;
    }
    let message = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.as_str()))
        .collect::<Vec<_>>()
        .join(" ");
    refusal(&ApiError::new(ErrorCode::InvalidJson, message))
}
