// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "geometry"))]
    pub struct Geometry;
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
    idempotency_keys (principal, request_id) {
        principal -> Text,
        request_id -> Uuid,
        method -> Text,
        payload_hash -> Bytea,
        response -> Bytea,
        created_at -> Timestamptz,
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

diesel::joinable!(departments -> regions (region_code));
diesel::joinable!(workers -> regions (region_code));

diesel::allow_tables_to_appear_in_same_query!(
    audit_events,
    departments,
    idempotency_keys,
    regions,
    workers,
);
