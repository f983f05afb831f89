//! Lead and sequence events on the hub: `LEAD_CREATED` and `IMPORT_DONE` on `lead-lists/<id>`,
//! `LEAD_OPTED_OUT` on `opt-outs`, `SEQUENCE_STEP_SENT` and `ENROLLMENT_ENDED` on
//! `sequence/<id>`. WebSocket clients hear them there; outbound webhooks deliver them as
//! `lead.created`, `lead.imported`, `lead.opted_out`, `sequence.step_sent` and
//! `sequence.enrollment_ended`.

use actix::Addr;
use chrono::Utc;
use serde_json::{json, Value};

use super::leads::model::Lead;
use super::sequence::model::Enrollment;
use crate::hub::{Hub, HubEvent, Topic};

/// Publishes one event now.
fn publish(
    hub: &Addr<Hub>,
    tenant_id: i64,
    topic: Topic,
    device_id: Option<i64>,
    event: &str,
    data: Value,
) {
    hub.do_send(HubEvent {
        tenant_id,
        topic,
        device_id,
        event: event.to_string(),
        data,
        ts: Utc::now(),
    });
}

/// A lead was created (`via`: `api`, `webhook`, `mcp`).
pub fn lead_created(hub: &Addr<Hub>, lead: &Lead, via: &str) {
    let tags: Vec<&str> = lead.tags.split(',').filter(|t| !t.is_empty()).collect();
    let fields: Value = serde_json::from_str(&lead.fields).unwrap_or(Value::Null);
    let data = json!({
        "lead_id": lead.id,
        "list_id": lead.list_id,
        "name": lead.name,
        "phone": lead.phone,
        "niche": lead.niche,
        "tags": tags,
        "status": lead.status,
        "fields": fields,
        "device_id": lead.device_id,
        "via": via,
    });
    publish(
        hub,
        lead.tenant_id,
        Topic::LeadList(lead.list_id),
        lead.device_id,
        "LEAD_CREATED",
        data,
    );
}

/// A CSV import into a list finished; `report` has its counts.
pub fn import_done(hub: &Addr<Hub>, tenant_id: i64, list_id: i64, report: Value) {
    publish(
        hub,
        tenant_id,
        Topic::LeadList(list_id),
        None,
        "IMPORT_DONE",
        report,
    );
}

/// A phone went on the opt-out list (`source`: `keyword`, `manual`, `import`).
pub fn opted_out(hub: &Addr<Hub>, tenant_id: i64, phone: &str, source: &str, reason: Option<&str>) {
    let data = json!({ "phone": phone, "source": source, "reason": reason });
    publish(hub, tenant_id, Topic::OptOuts, None, "LEAD_OPTED_OUT", data);
}

/// What every enrolment event says of its enrolment, at `step`.
fn enrollment_data(enrollment: &Enrollment, step: i64) -> Value {
    json!({
        "sequence_id": enrollment.sequence_id,
        "enrollment_id": enrollment.id,
        "lead_id": enrollment.lead_id,
        "phone": enrollment.phone,
        "device_id": enrollment.device_id,
        "step": step,
    })
}

/// Publishes an enrolment event on its sequence's topic.
fn publish_enrollment(hub: &Addr<Hub>, enrollment: &Enrollment, event: &str, data: Value) {
    let topic = Topic::Sequence(enrollment.sequence_id);
    publish(
        hub,
        enrollment.tenant_id,
        topic,
        enrollment.device_id,
        event,
        data,
    );
}

/// Step `step` of an enrolment's sequence was sent to its lead.
pub fn step_sent(hub: &Addr<Hub>, enrollment: &Enrollment, step: i64) {
    let data = enrollment_data(enrollment, step);
    publish_enrollment(hub, enrollment, "SEQUENCE_STEP_SENT", data);
}

/// An enrolment ended (`status`: `completed`, `stopped`, `failed`).
pub fn enrollment_ended(
    hub: &Addr<Hub>,
    enrollment: &Enrollment,
    status: &str,
    reason: Option<&str>,
) {
    let mut data = enrollment_data(enrollment, enrollment.step);
    data["status"] = status.into();
    data["reason"] = reason.into();
    publish_enrollment(hub, enrollment, "ENROLLMENT_ENDED", data);
}

/// A device was quarantined (`DEVICE_QUARANTINED`) or its quarantine lifted
/// (`DEVICE_QUARANTINE_LIFTED`), on `device-status`.
pub fn device_quarantine(
    hub: &Addr<Hub>,
    tenant_id: i64,
    device_id: i64,
    event: &str,
    data: Value,
) {
    publish(
        hub,
        tenant_id,
        Topic::DeviceStatus,
        Some(device_id),
        event,
        data,
    );
}
