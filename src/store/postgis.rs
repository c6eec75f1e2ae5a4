//! The few PostGIS functions gridhub queries with, declared for diesel so that spatial queries
//! are type-checked and, like every DSL query, prepared once per connection and cached.

use diesel::sql_types::{Double, Integer};

use super::schema::sql_types::Geometry;

diesel::define_sql_function! {
    /// Whether `a` covers `b` (points on the boundary count as covered).
    #[sql_name = "ST_Covers"]
    fn st_covers(a: Geometry, b: Geometry) -> Bool;
}

diesel::define_sql_function! {
    /// A point from longitude and latitude (SRID unset).
    #[sql_name = "ST_MakePoint"]
    fn st_makepoint(x: Double, y: Double) -> Geometry;
}

diesel::define_sql_function! {
    /// The geometry with its SRID set.
    #[sql_name = "ST_SetSRID"]
    fn st_setsrid(g: Geometry, srid: Integer) -> Geometry;
}

diesel::define_sql_function! {
    /// Planar area in the units of the SRID.
    #[sql_name = "ST_Area"]
    fn st_area(g: Geometry) -> Double;
}

diesel::define_sql_function! {
    /// GeoJSON text with at most `digits` decimals.
    #[sql_name = "ST_AsGeoJSON"]
    fn st_asgeojson(g: Geometry, digits: Integer) -> Text;
}

/// WGS84.
pub const WGS84: i32 = 4326;
