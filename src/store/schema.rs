// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "geometry"))]
    pub struct Geometry;
}

diesel::table! {
    alerts (alert_id) {
        alert_id -> Uuid,
        kind -> Text,
        region_code -> Text,
        category -> Text,
        case_id -> Nullable<Uuid>,
        subject -> Text,
        detail -> Jsonb,
        dedup_key -> Text,
        raised_at -> Timestamptz,
    }
}

diesel::table! {
    attachments (sha256) {
        sha256 -> Text,
        content_type -> Text,
        size_bytes -> Int8,
        uploaded_by -> Text,
        created_at -> Timestamptz,
        upload_regions -> Array<Nullable<Text>>,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> Int8,
        occurred_at -> Timestamptz,
        actor -> Text,
        actor_roles -> Array<Nullable<Text>>,
        action -> Text,
        entity_type -> Text,
        entity_id -> Text,
        region_code -> Text,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
        outcome -> Text,
        request_id -> Text,
        prev_hash -> Bytea,
        hash -> Bytea,
    }
}

diesel::table! {
    audit_pending (id) {
        id -> Int8,
        recorded_at -> Timestamptz,
        actors -> Nullable<Array<Nullable<Text>>>,
        roles -> Nullable<Array<Nullable<Text>>>,
        actions -> Nullable<Array<Nullable<Text>>>,
        entity_types -> Nullable<Array<Nullable<Text>>>,
        entity_ids -> Nullable<Array<Nullable<Text>>>,
        regions -> Nullable<Array<Nullable<Text>>>,
        befores -> Nullable<Array<Nullable<Jsonb>>>,
        afters -> Nullable<Array<Nullable<Jsonb>>>,
        outcomes -> Nullable<Array<Nullable<Text>>>,
        request_ids -> Nullable<Array<Nullable<Text>>>,
        tails -> Array<Nullable<Text>>,
    }
}

diesel::table! {
    calendar_days (day) {
        day -> Date,
        working -> Bool,
        name -> Text,
    }
}

diesel::table! {
    case_grid_month (region_code, day) {
        region_code -> Text,
        day -> Date,
        cases -> Int8,
    }
}

diesel::table! {
    case_stats (region_code, day, category, status, assignee, overdue) {
        region_code -> Text,
        day -> Date,
        category -> Text,
        status -> Text,
        assignee -> Text,
        overdue -> Bool,
        cases -> Int8,
        closed_on_time -> Int8,
        register_n -> Int8,
        register_secs -> Float8,
        dispatch_n -> Int8,
        dispatch_secs -> Float8,
        sign_n -> Int8,
        sign_secs -> Float8,
        handle_n -> Int8,
        handle_secs -> Float8,
        verify_n -> Int8,
        verify_secs -> Float8,
    }
}

diesel::table! {
    case_stats_delta (id) {
        region_code -> Text,
        day -> Date,
        category -> Text,
        status -> Text,
        assignee -> Text,
        overdue -> Bool,
        cases -> Int8,
        closed_on_time -> Int8,
        register_n -> Int8,
        register_secs -> Float8,
        dispatch_n -> Int8,
        dispatch_secs -> Float8,
        sign_n -> Int8,
        sign_secs -> Float8,
        handle_n -> Int8,
        handle_secs -> Float8,
        verify_n -> Int8,
        verify_secs -> Float8,
        id -> Int8,
    }
}

diesel::table! {
    case_stats_town_month (region_code, day, category, status, assignee, overdue) {
        region_code -> Text,
        day -> Date,
        category -> Text,
        status -> Text,
        assignee -> Text,
        overdue -> Bool,
        cases -> Int8,
        closed_on_time -> Int8,
        register_n -> Int8,
        register_secs -> Float8,
        dispatch_n -> Int8,
        dispatch_secs -> Float8,
        sign_n -> Int8,
        sign_secs -> Float8,
        handle_n -> Int8,
        handle_secs -> Float8,
        verify_n -> Int8,
        verify_secs -> Float8,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Geometry;

    cases (case_id) {
        case_id -> Uuid,
        case_no -> Text,
        status -> Text,
        unified_category -> Text,
        grid_code -> Text,
        region_code -> Text,
        owner -> Text,
        lat -> Float8,
        lng -> Float8,
        location -> Nullable<Geometry>,
        first_reported_at -> Timestamptz,
        last_reported_at -> Timestamptz,
        report_count -> Int4,
        flags -> Array<Nullable<Text>>,
        merged_into -> Nullable<Uuid>,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        assignee -> Text,
        registered_at -> Nullable<Timestamptz>,
        dispatched_at -> Nullable<Timestamptz>,
        signed_at -> Nullable<Timestamptz>,
        handled_at -> Nullable<Timestamptz>,
        closed_at -> Nullable<Timestamptz>,
        sign_deadline -> Nullable<Timestamptz>,
        deadline -> Nullable<Timestamptz>,
        urge_at -> Nullable<Timestamptz>,
        escalate_at -> Nullable<Timestamptz>,
        extension_days -> Nullable<Int4>,
        urge_count -> Int4,
    }
}

diesel::table! {
    catalog_items (town_code, code, version) {
        town_code -> Text,
        code -> Text,
        version -> Int4,
        name -> Text,
        kind -> Text,
        source_department -> Text,
        delegation -> Text,
        legal_basis -> Text,
        time_limit_days -> Nullable<Int4>,
        effective_from -> Date,
        effective_to -> Nullable<Date>,
        withdrawn -> Bool,
        recorded_at -> Timestamptz,
        recorded_by -> Text,
    }
}

diesel::table! {
    categories (code) {
        code -> Text,
        name -> Text,
        parent_code -> Nullable<Text>,
        merge_radius_m -> Float8,
        merge_window_hours -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        sign_limit_hours -> Nullable<Int4>,
        handle_limit_days -> Nullable<Int4>,
    }
}

diesel::table! {
    category_mappings (source_system, source_code) {
        source_system -> Text,
        source_code -> Text,
        unified_code -> Text,
    }
}

diesel::table! {
    departments (code) {
        code -> Text,
        name -> Text,
        region_code -> Text,
        kind -> Text,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    detector_marks (name) {
        name -> Text,
        mark -> Timestamptz,
    }
}

diesel::table! {
    geometry_version (id) {
        id -> Bool,
        version -> Int8,
    }
}

diesel::table! {
    hotline_orders (order_no) {
        order_no -> Text,
        sr_id -> Uuid,
        version -> Int4,
        payload_hash -> Bytea,
        report_id -> Nullable<Uuid>,
        lat -> Nullable<Float8>,
        lng -> Nullable<Float8>,
        received_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    hotline_outbox (seq) {
        seq -> Int8,
        update_id -> Uuid,
        order_no -> Text,
        region_code -> Text,
        payload -> Jsonb,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Text,
        delivered_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (principal, request_id) {
        principal -> Text,
        request_id -> Uuid,
        method -> Text,
        payload_hash -> Bytea,
        response -> Bytea,
        created_at -> Timestamptz,
        principal_hash -> Bytea,
    }
}

diesel::table! {
    mediation_agreements (case_id, version) {
        case_id -> Uuid,
        version -> Int4,
        written -> Bool,
        text -> Text,
        amount_fen -> Int8,
        performance_deadline -> Nullable<Date>,
        recorded_by -> Text,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    mediation_cases (case_id) {
        case_id -> Uuid,
        case_no -> Text,
        source -> Text,
        linked_case_id -> Nullable<Uuid>,
        hotline_order_no -> Nullable<Text>,
        region_code -> Text,
        dispute_type -> Text,
        kind -> Text,
        team -> Text,
        mediators -> Array<Nullable<Text>>,
        status -> Text,
        outcome -> Text,
        summary -> Text,
        referral -> Text,
        referral_note -> Text,
        registered_at -> Timestamptz,
        outcome_at -> Nullable<Timestamptz>,
        closed_at -> Nullable<Timestamptz>,
        agreement_deadline -> Nullable<Date>,
        performed -> Nullable<Bool>,
        created_by -> Text,
        version -> Int8,
    }
}

diesel::table! {
    mediation_figures (grain, period, region_code, dim, key) {
        grain -> Text,
        period -> Date,
        region_code -> Text,
        dim -> Int2,
        key -> Text,
        cases -> Int8,
        succeeded -> Int8,
        failed -> Int8,
        decided -> Int8,
        secs -> Float8,
        with_deadline -> Int8,
        performed_on_time -> Int8,
    }
}

diesel::table! {
    mediation_follow_ups (case_id, number) {
        case_id -> Uuid,
        number -> Int4,
        due_on -> Date,
        done_at -> Nullable<Timestamptz>,
        performed -> Nullable<Bool>,
        note -> Text,
        recorded_by -> Text,
    }
}

diesel::table! {
    mediation_parties (case_id, position) {
        case_id -> Uuid,
        position -> Int2,
        role -> Text,
        name_enc -> Bytea,
        id_number_enc -> Nullable<Bytea>,
        phone_enc -> Nullable<Bytea>,
        address_enc -> Nullable<Bytea>,
        id_index -> Nullable<Bytea>,
        phone_index -> Nullable<Bytea>,
        registered_at -> Timestamptz,
    }
}

diesel::table! {
    mediation_sessions (case_id, number) {
        case_id -> Uuid,
        number -> Int4,
        held_at -> Timestamptz,
        place -> Text,
        participants -> Array<Nullable<Text>>,
        summary -> Text,
        recorded_by -> Text,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Geometry;

    regions (code) {
        code -> Text,
        name -> Text,
        level -> Int2,
        parent_code -> Nullable<Text>,
        boundary -> Nullable<Geometry>,
        fallback_owner -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    reports (report_id) {
        report_id -> Uuid,
        client_report_id -> Uuid,
        payload_hash -> Bytea,
        source -> Int2,
        source_system -> Text,
        category_code -> Text,
        unified_category -> Text,
        title -> Text,
        description -> Text,
        lat -> Float8,
        lng -> Float8,
        claimed_grid_code -> Text,
        resolved_grid_code -> Text,
        region_code -> Text,
        owner -> Text,
        occurred_at -> Timestamptz,
        received_at -> Timestamptz,
        reporter_id -> Text,
        submitted_by -> Text,
        attachments -> Array<Nullable<Text>>,
        case_id -> Uuid,
        flags -> Array<Nullable<Text>>,
        first_outcome -> Int2,
        first_case_id -> Uuid,
        merge_reason -> Jsonb,
        reporter_phone_enc -> Nullable<Bytea>,
        reporter_phone_index -> Nullable<Bytea>,
    }
}

diesel::table! {
    service_request_replies (id) {
        id -> Int8,
        sr_id -> Uuid,
        replied_at -> Timestamptz,
        unit -> Text,
        on_time -> Bool,
    }
}

diesel::table! {
    service_requests (sr_id) {
        sr_id -> Uuid,
        request_no -> Text,
        kind -> Text,
        urgency -> Text,
        catalog_item_code -> Text,
        catalog_item_version -> Nullable<Int4>,
        region_code -> Text,
        content -> Text,
        address -> Text,
        applicant_enc -> Bytea,
        applicant_phone_index -> Nullable<Bytea>,
        on_behalf -> Bool,
        filed_by -> Text,
        status -> Text,
        assignee -> Text,
        flags -> Array<Nullable<Text>>,
        accepted_at -> Timestamptz,
        assigned_at -> Nullable<Timestamptz>,
        signed_at -> Nullable<Timestamptz>,
        replied_at -> Nullable<Timestamptz>,
        visited_at -> Nullable<Timestamptz>,
        archived_at -> Nullable<Timestamptz>,
        deadline -> Nullable<Timestamptz>,
        extension_days -> Nullable<Int4>,
        urge_count -> Int4,
        reopen_count -> Int4,
        reply -> Text,
        satisfaction -> Text,
        dissatisfied_count -> Int4,
        hotline_order_no -> Nullable<Text>,
        version -> Int8,
    }
}

diesel::table! {
    workers (worker_id) {
        worker_id -> Text,
        name -> Text,
        phone_enc -> Nullable<Bytea>,
        phone_index -> Nullable<Bytea>,
        region_code -> Text,
        grid_codes -> Array<Nullable<Text>>,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(catalog_items -> regions (town_code));
diesel::joinable!(category_mappings -> categories (unified_code));
diesel::joinable!(departments -> regions (region_code));
diesel::joinable!(hotline_orders -> reports (report_id));
diesel::joinable!(hotline_orders -> service_requests (sr_id));
diesel::joinable!(mediation_agreements -> mediation_cases (case_id));
diesel::joinable!(mediation_cases -> cases (linked_case_id));
diesel::joinable!(mediation_cases -> regions (region_code));
diesel::joinable!(mediation_follow_ups -> mediation_cases (case_id));
diesel::joinable!(mediation_parties -> mediation_cases (case_id));
diesel::joinable!(mediation_sessions -> mediation_cases (case_id));
diesel::joinable!(reports -> cases (case_id));
diesel::joinable!(service_request_replies -> service_requests (sr_id));
diesel::joinable!(service_requests -> regions (region_code));
diesel::joinable!(workers -> regions (region_code));

diesel::allow_tables_to_appear_in_same_query!(
    alerts,
    attachments,
    audit_events,
    audit_pending,
    calendar_days,
    case_grid_month,
    case_stats,
    case_stats_delta,
    case_stats_town_month,
    cases,
    catalog_items,
    categories,
    category_mappings,
    departments,
    detector_marks,
    geometry_version,
    hotline_orders,
    hotline_outbox,
    idempotency_keys,
    mediation_agreements,
    mediation_cases,
    mediation_figures,
    mediation_follow_ups,
    mediation_parties,
    mediation_sessions,
    regions,
    reports,
    service_request_replies,
    service_requests,
    workers,
);
