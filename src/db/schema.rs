//! The portable schema: one `table!` per table, valid for SQLite and PostgreSQL alike.
//!
//! Written by hand (not `diesel print-schema`) because the two backends print different types
//! for the same column; only types both map identically are used: BigInt ids, Text, Bool,
//! Timestamp (UTC, no zone), Binary. A test compares this file with both migrated databases.

// The `table!` macro generates items without doc comments.
#![allow(missing_docs)]

diesel::table! {
    tenants (id) {
        id -> BigInt,
        name -> Text,
        time_zone -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        settings -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        tenant_id -> Nullable<BigInt>,
        email -> Text,
        display_name -> Text,
        password_hash -> Text,
        role -> Text,
        is_active -> Bool,
        last_login_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        must_change_password -> Bool,
    }
}

diesel::table! {
    devices (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        name -> Text,
        jid -> Nullable<Text>,
        phone -> Nullable<Text>,
        push_name -> Nullable<Text>,
        status -> Text,
        status_reason -> Nullable<Text>,
        last_seen -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        paired_at -> Nullable<Timestamp>,
        quarantined_until -> Nullable<Timestamp>,
        quarantine_reason -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        tenant_id -> Nullable<BigInt>,
        actor_user_id -> Nullable<BigInt>,
        action -> Text,
        target -> Nullable<Text>,
        detail -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// diesel's own bookkeeping table, read by the readiness check.
    __diesel_schema_migrations (version) {
        version -> Text,
        run_on -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        user_id -> BigInt,
        token_hash -> Text,
        csrf_token -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        token_hash -> Text,
        prefix -> Text,
        scopes -> Text,
        last_used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    device_assignments (user_id, device_id) {
        user_id -> BigInt,
        device_id -> BigInt,
    }
}

diesel::table! {
    chats (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        device_id -> BigInt,
        jid -> Text,
        name -> Nullable<Text>,
        last_message_text -> Nullable<Text>,
        last_message_at -> Nullable<Timestamp>,
        unread_count -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        device_id -> BigInt,
        chat_id -> BigInt,
        wa_id -> Text,
        sender_jid -> Text,
        sender_name -> Nullable<Text>,
        from_me -> Bool,
        body -> Nullable<Text>,
        media_mime -> Nullable<Text>,
        media_size -> Nullable<BigInt>,
        media_sha256 -> Nullable<Text>,
        status -> Text,
        sent_at -> Timestamp,
        created_at -> Timestamp,
        kind -> Text,
        file_name -> Nullable<Text>,
        detail -> Nullable<Text>,
        quoted_id -> Nullable<Text>,
        quoted_sender -> Nullable<Text>,
        quoted_text -> Nullable<Text>,
        edited_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        media_ref -> Nullable<Text>,
    }
}

diesel::table! {
    reactions (device_id, message_wa_id, sender_jid) {
        device_id -> BigInt,
        message_wa_id -> Text,
        sender_jid -> Text,
        emoji -> Text,
        from_me -> Bool,
        reacted_at -> Timestamp,
    }
}

diesel::table! {
    lid_phones (device_id, lid) {
        device_id -> BigInt,
        lid -> Text,
        phone -> Text,
        learned_at -> Timestamp,
    }
}

diesel::joinable!(users -> tenants (tenant_id));
diesel::joinable!(messages -> chats (chat_id));
diesel::joinable!(devices -> tenants (tenant_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(device_assignments -> users (user_id));
diesel::joinable!(device_assignments -> devices (device_id));
diesel::joinable!(leads -> lead_lists (list_id));
diesel::joinable!(outbox -> campaigns (campaign_id));
diesel::joinable!(sequence_steps -> sequences (sequence_id));
diesel::joinable!(sequence_enrollments -> sequences (sequence_id));
diesel::joinable!(sequence_enrollments -> leads (lead_id));

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    users,
    devices,
    audit_log,
    sessions,
    api_tokens,
    device_assignments,
    chats,
    messages,
    lid_phones,
    reactions,
    lead_lists,
    leads,
    opt_outs,
    campaigns,
    outbox,
    sequences,
    sequence_steps,
    sequence_enrollments,
    webhook_secrets,
    webhook_deliveries,
    outbox_tallies,
    stats_hourly,
    stats_daily,
    device_events
);

diesel::table! {
    lead_lists (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        name -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        lead_count -> BigInt,
    }
}

diesel::table! {
    leads (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        list_id -> BigInt,
        name -> Text,
        phone -> Text,
        niche -> Nullable<Text>,
        tags -> Text,
        status -> Text,
        fields -> Text,
        device_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    opt_outs (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        phone -> Text,
        source -> Text,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    campaigns (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        name -> Text,
        status -> Text,
        message -> Text,
        image_sha256 -> Nullable<Text>,
        target -> Text,
        devices -> Text,
        pacing -> Text,
        on_device_loss -> Text,
        scheduled_at -> Nullable<Timestamp>,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        kind -> Text,
        per_device_limit -> Nullable<BigInt>,
        attachment -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        campaign_id -> BigInt,
        lead_id -> Nullable<BigInt>,
        device_id -> Nullable<BigInt>,
        phone -> Text,
        body -> Text,
        message_id -> Text,
        status -> Text,
        attempts -> BigInt,
        lease_until -> Nullable<Timestamp>,
        error -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        delivered_at -> Nullable<Timestamp>,
        read_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        step -> BigInt,
        image_sha256 -> Nullable<Text>,
        attachment -> Nullable<Text>,
    }
}

diesel::table! {
    /// Counts of outbox rows the retention sweep deleted (device 0: rows without a device).
    outbox_tallies (campaign_id, device_id, step, status) {
        campaign_id -> BigInt,
        device_id -> BigInt,
        step -> BigInt,
        status -> Text,
        n -> BigInt,
    }
}

diesel::table! {
    sequences (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        campaign_id -> BigInt,
        name -> Text,
        description -> Text,
        trigger_tag -> Nullable<Text>,
        stop_on_reply -> Bool,
        status -> Text,
        next_sequence_id -> Nullable<BigInt>,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sequence_steps (id) {
        id -> BigInt,
        sequence_id -> BigInt,
        position -> BigInt,
        message -> Text,
        image_sha256 -> Nullable<Text>,
        delay_minutes -> BigInt,
        window_start -> Nullable<Text>,
        window_end -> Nullable<Text>,
        updated_at -> Timestamp,
        attachment -> Nullable<Text>,
        reply_action -> Nullable<Text>,
        reply_keyword -> Nullable<Text>,
        reply_sequence_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    sequence_enrollments (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        sequence_id -> BigInt,
        lead_id -> BigInt,
        device_id -> Nullable<BigInt>,
        phone -> Text,
        status -> Text,
        step -> BigInt,
        next_due_at -> Nullable<Timestamp>,
        reason -> Nullable<Text>,
        replied_at -> Nullable<Timestamp>,
        replied_after_step -> Nullable<BigInt>,
        source -> Text,
        enrolled_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_secrets (tenant_id) {
        tenant_id -> BigInt,
        secret -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        signature -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    /// Outbound webhook endpoints of a tenant (see `crate::webhooks`).
    webhook_endpoints (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        url -> Text,
        description -> Text,
        secret -> Text,
        events -> Text,
        device_ids -> Text,
        active -> Bool,
        max_concurrency -> BigInt,
        rate_per_second -> BigInt,
        failing_since -> Nullable<Timestamp>,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// One delivery of an event to an outbound webhook endpoint: queue row and delivery log.
    webhook_queue (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        endpoint_id -> BigInt,
        event_id -> Text,
        event_type -> Text,
        payload -> Text,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        response_status -> Nullable<BigInt>,
        response_body -> Nullable<Text>,
        latency_ms -> Nullable<BigInt>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    /// What each device did per UTC hour (device 0: the tenant's total), kept as it happens.
    stats_hourly (tenant_id, device_id, hour) {
        tenant_id -> BigInt,
        device_id -> BigInt,
        hour -> Timestamp,
        sent -> BigInt,
        delivered -> BigInt,
        read -> BigInt,
        replies -> BigInt,
        failed -> BigInt,
    }
}

diesel::table! {
    /// A device's history: status changes, quarantines, rate-limit answers.
    device_events (id) {
        id -> BigInt,
        tenant_id -> BigInt,
        device_id -> BigInt,
        kind -> Text,
        detail -> Nullable<Text>,
        at -> Timestamp,
    }
}

diesel::table! {
    /// `stats_hourly`'s device rows summed per UTC day (the per-device shares of long ranges).
    stats_daily (tenant_id, device_id, day) {
        tenant_id -> BigInt,
        device_id -> BigInt,
        day -> Timestamp,
        sent -> BigInt,
        delivered -> BigInt,
        read -> BigInt,
        replies -> BigInt,
        failed -> BigInt,
    }
}
