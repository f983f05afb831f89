//! What the caller may reach beyond their tenant's rows: members see only the devices assigned
//! to them (a device they may not see answers 404, as one of another tenant does); members
//! change only the campaigns and sequences they created (others answer 403: they can read them);
//! viewers never see pairing secrets.

use super::{ApiError, AppState, ErrorCode};
use crate::auth::{Caller, Role};
use crate::device::{store, Device};

/// A device of the caller's tenant that the caller may see, or 404.
pub async fn visible_device(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<Device, ApiError> {
    let device = store::get_device(&state.db, caller.tenant_id, id).await?;
    if !caller.can_see_device(device.id) {
        return Err(ApiError::not_found("device"));
    }
    Ok(device)
}

/// Whether a caller of `role` may read pairing secrets (QR payloads, pairing codes): members and
/// up; viewers are read-only and may not link a phone.
pub fn sees_pairing(role: Role) -> bool {
    role >= Role::Member
}

/// 403 unless the caller may change a campaign or sequence that `created_by` created: owners and
/// admins any of their tenant's, members only their own (viewers never reach a write route).
/// A member's own campaigns and sequences send only through the devices assigned to them
/// (`broadcast::campaign::devices::creator_devices`), so acting on them never reaches another's.
pub fn may_change(caller: &Caller, created_by: Option<i64>, what: &str) -> Result<(), ApiError> {
    if caller.role >= Role::Owner || created_by == Some(caller.user.id) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::Forbidden,
        format!("this {what} was created by someone else; members change only their own"),
    ))
}
