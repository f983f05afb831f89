//! What the caller may reach beyond their tenant's rows: members see only the devices assigned
//! to them. A device they may not see answers 404, as one of another tenant does.

use super::{ApiError, AppState};
use crate::auth::Caller;
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
