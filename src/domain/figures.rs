//! How the figures' rates are computed, once for every report that shows one.

/// The share `part / whole`, 0 when there is nothing to share (no division by zero on an
/// empty period).
pub fn rate(part: i64, whole: i64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_shares_and_zero_when_empty() {
        assert_eq!(rate(3, 4), 0.75);
        assert_eq!(rate(0, 0), 0.0);
        assert_eq!(rate(5, 5), 1.0);
    }
}
