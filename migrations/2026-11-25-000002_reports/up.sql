-- Grid reports into one net: the unified taxonomy, cases, reports and attachments.

-- The unified taxonomy: 大类 (major classes, no parent) and 小类 (minor classes under a major).
-- Each class carries its merge rule: reports within merge_radius_m metres and
-- merge_window_hours of an open case of the same class join it.
CREATE TABLE categories (
    code text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_.-]{1,32}$'),
    name text NOT NULL CHECK (name <> ''),
    parent_code text REFERENCES categories (code),
    merge_radius_m double precision NOT NULL DEFAULT 50 CHECK (merge_radius_m BETWEEN 0 AND 5000),
    merge_window_hours integer NOT NULL DEFAULT 72 CHECK (merge_window_hours BETWEEN 0 AND 8760),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Each source system's own codes (条线 codes, 12345 codes …) mapped onto the unified taxonomy.
CREATE TABLE category_mappings (
    source_system text NOT NULL,
    source_code text NOT NULL CHECK (source_code <> ''),
    unified_code text NOT NULL REFERENCES categories (code),
    PRIMARY KEY (source_system, source_code)
);

-- Serials of human-readable case numbers (town-year-serial). One lock-free sequence: a
-- per-town counter row would serialize every report transaction of a town until commit.
CREATE SEQUENCE case_serial;

-- One event, one case. `region_code` is where the case lies (its grid, or the smallest known
-- region containing it) and scopes every read.
CREATE TABLE cases (
    case_id uuid PRIMARY KEY,
    case_no text NOT NULL UNIQUE,
    status text NOT NULL,
    unified_category text NOT NULL DEFAULT '',
    grid_code text NOT NULL DEFAULT '',
    region_code text NOT NULL,
    owner text NOT NULL DEFAULT '',
    lat double precision NOT NULL,
    lng double precision NOT NULL,
    location geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lng, lat), 4326)) STORED,
    first_reported_at timestamptz NOT NULL,
    last_reported_at timestamptz NOT NULL,
    report_count integer NOT NULL DEFAULT 0,
    flags text[] NOT NULL DEFAULT '{}',
    merged_into uuid REFERENCES cases (case_id),
    version bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_open_location_gist ON cases USING gist (location) WHERE status NOT IN ('CLOSED', 'VOID', 'MERGED');
CREATE INDEX cases_region_idx ON cases (region_code text_pattern_ops, case_id);

-- Photos and audio from the field, content-addressed by SHA-256 (the bytes live in the
-- attachment store, by default the filesystem under the data directory).
CREATE TABLE attachments (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type text NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes > 0),
    uploaded_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Reports from every channel. `client_report_id` makes resends safe; `payload_hash` tells a
-- resend from a different report under the same id; `first_outcome` is what the first
-- answer said.
CREATE TABLE reports (
    report_id uuid PRIMARY KEY,
    client_report_id uuid NOT NULL UNIQUE,
    payload_hash bytea NOT NULL,
    source smallint NOT NULL,
    source_system text NOT NULL DEFAULT '',
    category_code text NOT NULL,
    unified_category text NOT NULL DEFAULT '',
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    lat double precision NOT NULL,
    lng double precision NOT NULL,
    claimed_grid_code text NOT NULL DEFAULT '',
    resolved_grid_code text NOT NULL DEFAULT '',
    region_code text NOT NULL,
    owner text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    reporter_id text NOT NULL DEFAULT '',
    submitted_by text NOT NULL,
    attachments text[] NOT NULL DEFAULT '{}',
    case_id uuid NOT NULL REFERENCES cases (case_id),
    flags text[] NOT NULL DEFAULT '{}',
    first_outcome smallint NOT NULL,
    first_case_id uuid NOT NULL,
    merge_reason jsonb NOT NULL
);
CREATE INDEX reports_region_idx ON reports (region_code text_pattern_ops, report_id);
CREATE INDEX reports_case_idx ON reports (case_id);
