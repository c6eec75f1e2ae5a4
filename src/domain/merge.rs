//! One event, one case: the rule that decides whether a report joins an open case or opens a
//! new one. Pure: the store fetches candidate cases near the report and applies this.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Mean Earth radius in metres (IUGG).
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two WGS84 points.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lng1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lng2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lng2 - lng1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Degrees of latitude and longitude that certainly cover `radius_m` around `lat`, for a
/// bounding-box pre-filter in the database.
pub fn bbox_degrees(lat: f64, radius_m: f64) -> (f64, f64) {
    let dlat = radius_m / 111_000.0;
    let coslat = lat.to_radians().cos().abs().max(0.01);
    (dlat * 1.01, dlat / coslat * 1.01)
}

/// Size of a lock cell in degrees (about 1 km).
pub const LOCK_CELL_DEG: f64 = 0.01;

/// The lock cell (row or column) of a latitude or longitude.
pub fn lock_cell(degrees: f64) -> i64 {
    (degrees / LOCK_CELL_DEG).floor() as i64
}

/// The lock keys (category, cell) a report at `point` takes before looking for cases within
/// `radius_m`: every cell its radius box touches. Any two reports close enough to merge share
/// at least the cell of one of them.
pub fn lock_cells(category: &str, point: (f64, f64), radius_m: f64) -> Vec<String> {
    let (dlat, dlng) = bbox_degrees(point.0, radius_m);
    let (y0, y1) = (lock_cell(point.0 - dlat), lock_cell(point.0 + dlat));
    let (x0, x1) = (lock_cell(point.1 - dlng), lock_cell(point.1 + dlng));
    let mut out = Vec::new();
    for y in y0..=y1 {
        for x in x0..=x1 {
            out.push(format!("case-merge/{category}/{y}/{x}"));
        }
    }
    out
}

/// A category's merge rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MergeRule {
    pub radius_m: f64,
    pub window: Duration,
}

impl Default for MergeRule {
    fn default() -> Self {
        MergeRule {
            radius_m: 50.0,
            window: Duration::hours(72),
        }
    }
}

/// An open case that a report might join.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<Id> {
    pub case_id: Id,
    pub lat: f64,
    pub lng: f64,
    pub first_reported_at: DateTime<Utc>,
    pub last_reported_at: DateTime<Utc>,
}

/// Why a report joined a case or opened one; stored with the report and shown on the case.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision<Id> {
    /// Joined `case_id`, `distance_m` away, `gap_hours` from its nearest report in time.
    Joined {
        case_id: Id,
        distance_m: f64,
        gap_hours: f64,
        radius_m: f64,
        window_hours: f64,
    },
    /// Opened a new case: no open case of its category within the radius and window
    /// (`nearest_m` is the nearest considered, if any).
    Opened {
        nearest_m: Option<f64>,
        radius_m: f64,
        window_hours: f64,
    },
    /// Category not mapped: the report opens a case in triage and is never merged automatically.
    Triage,
}

/// Time between `at` and the span of a case's reports (zero inside the span).
pub fn gap(at: DateTime<Utc>, first: DateTime<Utc>, last: DateTime<Utc>) -> Duration {
    if at < first {
        first - at
    } else if at > last {
        at - last
    } else {
        Duration::zero()
    }
}

/// The decision for a report at `point` (lat, lng) occurring `at`, given open cases of its
/// category. Joins the nearest case within the radius whose reports lie within the window;
/// ties go to the smaller time gap, then the earlier case.
pub fn decide<Id: Clone>(
    point: (f64, f64),
    at: DateTime<Utc>,
    rule: MergeRule,
    candidates: &[Candidate<Id>],
) -> Decision<Id> {
    let window_hours = rule.window.num_seconds() as f64 / 3600.0;
    let mut best: Option<(f64, Duration, DateTime<Utc>, &Candidate<Id>)> = None;
    let mut nearest: Option<f64> = None;
    for c in candidates {
        let d = distance_m(point, (c.lat, c.lng));
        nearest = Some(nearest.map_or(d, |n: f64| n.min(d)));
        let g = gap(at, c.first_reported_at, c.last_reported_at);
        if d > rule.radius_m || g > rule.window {
            continue;
        }
        let better = match &best {
            None => true,
            Some((bd, bg, bf, _)) => (d, g, c.first_reported_at) < (*bd, *bg, *bf),
        };
        if better {
            best = Some((d, g, c.first_reported_at, c));
        }
    }
    match best {
        Some((d, g, _, c)) => Decision::Joined {
            case_id: c.case_id.clone(),
            distance_m: (d * 10.0).round() / 10.0,
            gap_hours: (g.num_seconds() as f64 / 360.0).round() / 10.0,
            radius_m: rule.radius_m,
            window_hours,
        },
        None => Decision::Opened {
            nearest_m: nearest.map(|n| (n * 10.0).round() / 10.0),
            radius_m: rule.radius_m,
            window_hours,
        },
    }
}

/// Moves `point` by `north_m` metres north and `east_m` metres east (for tests and fixtures).
pub fn offset(point: (f64, f64), north_m: f64, east_m: f64) -> (f64, f64) {
    let dlat = north_m / (EARTH_RADIUS_M.to_radians());
    let dlng = east_m / (EARTH_RADIUS_M.to_radians() * point.0.to_radians().cos());
    (point.0 + dlat, point.1 + dlng)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALL: (f64, f64) = (28.83, 106.745);

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + h * 3600, 0).unwrap()
    }

    fn case(id: u32, p: (f64, f64), first: i64, last: i64) -> Candidate<u32> {
        Candidate {
            case_id: id,
            lat: p.0,
            lng: p.1,
            first_reported_at: t(first),
            last_reported_at: t(last),
        }
    }

    #[test]
    fn distance_is_metres_on_the_sphere() {
        let p = offset(WALL, 20.0, 0.0);
        assert!(
            (distance_m(WALL, p) - 20.0).abs() < 0.05,
            "{}",
            distance_m(WALL, p)
        );
        let q = offset(WALL, 0.0, 200.0);
        assert!((distance_m(WALL, q) - 200.0).abs() < 0.2);
        // One degree of latitude is about 111 km.
        assert!((distance_m((28.0, 106.0), (29.0, 106.0)) - 111_195.0).abs() < 100.0);
    }

    #[test]
    fn joins_at_20_m_and_opens_at_200_m() {
        let cases = [case(1, WALL, 0, 0)];
        let near = decide(offset(WALL, 20.0, 0.0), t(1), MergeRule::default(), &cases);
        assert!(
            matches!(near, Decision::Joined { case_id: 1, distance_m, .. } if (distance_m - 20.0).abs() < 0.1),
            "{near:?}"
        );
        let far = decide(offset(WALL, 200.0, 0.0), t(1), MergeRule::default(), &cases);
        assert!(
            matches!(far, Decision::Opened { nearest_m: Some(n), .. } if (n - 200.0).abs() < 0.5),
            "{far:?}"
        );
    }

    #[test]
    fn the_time_window_counts_from_the_nearest_report_of_the_case() {
        let cases = [case(1, WALL, 0, 10)];
        assert!(
            matches!(decide(WALL, t(10 + 72), MergeRule::default(), &cases), Decision::Joined { gap_hours, .. } if gap_hours == 72.0)
        );
        assert!(matches!(
            decide(WALL, t(10 + 73), MergeRule::default(), &cases),
            Decision::Opened { .. }
        ));
        // A report that happened before the case's first report (sent late from offline) joins too.
        assert!(
            matches!(decide(WALL, t(-5), MergeRule::default(), &cases), Decision::Joined { gap_hours, .. } if gap_hours == 5.0)
        );
        assert!(
            matches!(decide(WALL, t(5), MergeRule::default(), &cases), Decision::Joined { gap_hours, .. } if gap_hours == 0.0)
        );
    }

    #[test]
    fn the_nearest_case_wins_then_the_smaller_gap() {
        let cases = [
            case(1, offset(WALL, 30.0, 0.0), 0, 0),
            case(2, offset(WALL, 10.0, 0.0), 0, 0),
            case(3, offset(WALL, 10.0, 0.0), 0, 5),
        ];
        assert!(matches!(
            decide(WALL, t(6), MergeRule::default(), &cases),
            Decision::Joined { case_id: 3, .. }
        ));
    }

    #[test]
    fn category_rules_change_radius_and_window() {
        let cases = [case(1, offset(WALL, 150.0, 0.0), 0, 0)];
        let wide = MergeRule {
            radius_m: 200.0,
            window: Duration::hours(1),
        };
        assert!(matches!(
            decide(WALL, t(1), wide, &cases),
            Decision::Joined { .. }
        ));
        assert!(matches!(
            decide(WALL, t(2), wide, &cases),
            Decision::Opened { .. }
        ));
    }

    #[test]
    fn reports_that_can_merge_share_a_lock_cell() {
        // Points on both sides of cell borders, at the merge distance.
        for (lat, lng) in [
            (28.8299999, 106.7499999),
            (28.83, 106.745),
            (28.8300001, 106.7400001),
        ] {
            for (n, e) in [(49.0, 0.0), (0.0, 49.0), (-35.0, 35.0), (35.0, -35.0)] {
                let a = (lat, lng);
                let b = offset(a, n, e);
                let ca = lock_cells("0202", a, 50.0);
                let cb = lock_cells("0202", b, 50.0);
                assert!(ca.iter().any(|c| cb.contains(c)), "{a:?} {b:?}");
            }
        }
        assert!(lock_cells("0202", WALL, 50.0).len() <= 4);
        assert!(
            lock_cells("0101", WALL, 50.0)
                .iter()
                .all(|c| c.contains("/0101/"))
        );
    }

    #[test]
    fn bbox_covers_the_radius() {
        for lat in [0.0, 28.8, 45.0, 53.5] {
            let (dlat, dlng) = bbox_degrees(lat, 500.0);
            let north = offset((lat, 100.0), 500.0, 0.0);
            let east = offset((lat, 100.0), 0.0, 500.0);
            assert!(north.0 - lat <= dlat && east.1 - 100.0 <= dlng, "{lat}");
        }
    }
}
