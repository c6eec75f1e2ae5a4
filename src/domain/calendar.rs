//! Working time: deadlines count working days and working hours on a calendar that is data.
//!
//! Monday to Friday are working days unless listed as public holidays; a listed Saturday or
//! Sunday is an adjusted working day (调休). Office hours are a list of periods of the local
//! day (China Standard Time, UTC+8, which has no daylight saving).
//!
//! Conventions (one city's rule, used by the seeds):
//! - "within N working days" of a moment ends at the close of office on the N-th working day
//!   after the moment's local date (a Friday dispatch with 3 days ends on Wednesday);
//! - "within N working hours" counts office time only, from the moment (or the next opening);
//! - the automatic 催办 falls at the opening of the first working day after the deadline's date.

use std::collections::BTreeMap;

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, Offset, TimeZone, Utc,
};

/// The local (China Standard Time) date of `t`.
pub fn local_day(t: DateTime<Utc>) -> NaiveDate {
    (t + Duration::hours(8)).date_naive()
}

/// How far the calendar looks ahead before giving up (a calendar without working days).
const HORIZON_DAYS: u32 = 3660;

/// Office hours: sorted, non-overlapping periods of the local day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeHours(Vec<(NaiveTime, NaiveTime)>);

impl OfficeHours {
    /// Parses `08:30-12:00,14:00-17:30`.
    pub fn parse(s: &str) -> Result<OfficeHours, String> {
        let mut periods = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = part
                .split_once('-')
                .ok_or_else(|| format!("office hours: {part:?} is not HH:MM-HH:MM"))?;
            let t = |x: &str| {
                NaiveTime::parse_from_str(x.trim(), "%H:%M")
                    .map_err(|_| format!("office hours: {x:?} is not HH:MM"))
            };
            let (a, b) = (t(a)?, t(b)?);
            if a >= b {
                return Err(format!("office hours: {part:?} ends before it starts"));
            }
            periods.push((a, b));
        }
        if periods.is_empty() {
            return Err("office hours: give at least one period".into());
        }
        periods.sort();
        if periods.windows(2).any(|w| w[0].1 > w[1].0) {
            return Err("office hours: periods overlap".into());
        }
        Ok(OfficeHours(periods))
    }

    fn open(&self) -> NaiveTime {
        self.0[0].0
    }

    fn close(&self) -> NaiveTime {
        self.0[self.0.len() - 1].1
    }
}

impl Default for OfficeHours {
    fn default() -> Self {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
        OfficeHours(vec![(t(8, 30), t(12, 0)), (t(14, 0), t(17, 30))])
    }
}

/// The working-day calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Exceptions to the weekday rule: `false` = holiday, `true` = adjusted working day.
    days: BTreeMap<NaiveDate, bool>,
    hours: OfficeHours,
    tz: FixedOffset,
}

impl Calendar {
    /// A calendar with these exceptions and office hours, in China Standard Time.
    pub fn new(days: BTreeMap<NaiveDate, bool>, hours: OfficeHours) -> Calendar {
        Calendar {
            days,
            hours,
            tz: FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix()),
        }
    }

    /// Whether `d` is a working day.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        match self.days.get(&d) {
            Some(w) => *w,
            None => d.weekday().num_days_from_monday() < 5,
        }
    }

    /// The local date of `t`.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    fn at(&self, d: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        self.tz
            .from_local_datetime(&d.and_time(time))
            .single()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first working day strictly after `d`.
    pub fn next_working_day(&self, d: NaiveDate) -> Option<NaiveDate> {
        let mut x = d;
        for _ in 0..HORIZON_DAYS {
            x = x.succ_opt()?;
            if self.is_working_day(x) {
                return Some(x);
            }
        }
        None
    }

    /// The close of office on the `n`-th working day after `t`'s local date (`n` = 0: the close
    /// of `t`'s day if it is a working day, else of the next one).
    pub fn add_working_days(&self, t: DateTime<Utc>, n: u32) -> Option<DateTime<Utc>> {
        let mut d = self.local_date(t);
        if n == 0 && !self.is_working_day(d) {
            d = self.next_working_day(d)?;
        }
        for _ in 0..n {
            d = self.next_working_day(d)?;
        }
        self.at(d, self.hours.close())
    }

    /// Working days from `now`'s local day to `deadline`'s, not counting `now`'s: how many are
    /// left (its own day counts), or, once the deadline has passed, minus how many working
    /// days it is behind (today counts). 0 on the deadline's day. Counts at most ten years.
    pub fn working_days_left(&self, now: DateTime<Utc>, deadline: DateTime<Utc>) -> i32 {
        let (today, due) = (self.local_date(now), self.local_date(deadline));
        let (from, to, sign) = if deadline >= now {
            (today, due, 1)
        } else {
            (due, today, -1)
        };
        let mut n = 0;
        let mut d = from;
        for _ in 0..HORIZON_DAYS {
            if d >= to {
                break;
            }
            let Some(next) = d.succ_opt() else { break };
            d = next;
            if self.is_working_day(d) {
                n += 1;
            }
        }
        sign * n
    }

    /// `t` plus `minutes` of office time.
    pub fn add_working_minutes(&self, t: DateTime<Utc>, minutes: u32) -> Option<DateTime<Utc>> {
        let mut left = Duration::minutes(i64::from(minutes));
        let mut d = self.local_date(t);
        for _ in 0..HORIZON_DAYS {
            if self.is_working_day(d) {
                for (a, b) in &self.hours.0 {
                    let (start, end) = (self.at(d, *a)?, self.at(d, *b)?);
                    let from = start.max(t);
                    if from >= end {
                        continue;
                    }
                    if end - from >= left {
                        return Some(from + left);
                    }
                    left -= end - from;
                }
            }
            d = d.succ_opt()?;
        }
        None
    }

    /// When the automatic 催办 of a case due at `deadline` falls: the opening of the first
    /// working day after the deadline's date.
    pub fn urge_time(&self, deadline: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let d = self.next_working_day(self.local_date(deadline))?;
        self.at(d, self.hours.open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn local(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_str(&format!("{s} +0800"), "%Y-%m-%d %H:%M %z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// 2026: National Day holiday 10-01..10-07 (Thu–Wed), adjusted working Saturday 10-10.
    fn cal() -> Calendar {
        let mut days = BTreeMap::new();
        for d in 1..=7 {
            days.insert(NaiveDate::from_ymd_opt(2026, 10, d).unwrap(), false);
        }
        days.insert(day("2026-10-10"), true);
        Calendar::new(days, OfficeHours::default())
    }

    #[test]
    fn working_days_left_skip_weekends_and_holidays_and_go_negative_when_overdue() {
        let c = cal();
        // Wednesday → the next Wednesday: Thu, Fri, Mon, Tue, Wed.
        assert_eq!(
            c.working_days_left(local("2026-11-25 09:00"), local("2026-12-02 17:30")),
            5
        );
        // Same day: none left, not overdue yet.
        assert_eq!(
            c.working_days_left(local("2026-11-25 09:00"), local("2026-11-25 17:30")),
            0
        );
        // Across the National Day holiday: 09-30 (Wed) → 10-09 (Fri): only 10-08 and 10-09.
        assert_eq!(
            c.working_days_left(local("2026-09-30 09:00"), local("2026-10-09 17:30")),
            2
        );
        // Passed on Friday, now Tuesday: Mon and Tue behind.
        assert_eq!(
            c.working_days_left(local("2026-12-01 10:00"), local("2026-11-27 17:30")),
            -2
        );
        // Passed an hour ago, same day: 0 working days behind (the flag says overdue).
        assert_eq!(
            c.working_days_left(local("2026-11-27 18:30"), local("2026-11-27 17:30")),
            0
        );
    }

    #[test]
    fn weekdays_work_weekends_rest_unless_listed() {
        let c = cal();
        assert!(c.is_working_day(day("2026-11-25"))); // Wednesday
        assert!(!c.is_working_day(day("2026-11-28"))); // Saturday
        assert!(!c.is_working_day(day("2026-10-01"))); // holiday Thursday
        assert!(c.is_working_day(day("2026-10-10"))); // adjusted Saturday
    }

    #[test]
    fn working_days_skip_the_weekend() {
        // Friday 2026-11-27, 3 working days → Wednesday 12-02 at 17:30.
        assert_eq!(
            cal().add_working_days(local("2026-11-27 10:00"), 3),
            Some(local("2026-12-02 17:30"))
        );
    }

    #[test]
    fn working_days_skip_a_holiday_and_count_an_adjusted_saturday() {
        // Wednesday 09-30, 3 working days: 10-01..07 holiday, 10-08 Thu, 10-09 Fri, 10-10 Sat (working).
        assert_eq!(
            cal().add_working_days(local("2026-09-30 16:00"), 3),
            Some(local("2026-10-10 17:30"))
        );
        // Without the adjusted Saturday it would be Monday 10-12.
        let plain = Calendar::new(
            (1..=7)
                .map(|d| (NaiveDate::from_ymd_opt(2026, 10, d).unwrap(), false))
                .collect(),
            OfficeHours::default(),
        );
        assert_eq!(
            plain.add_working_days(local("2026-09-30 16:00"), 3),
            Some(local("2026-10-12 17:30"))
        );
    }

    #[test]
    fn zero_days_is_the_close_of_the_next_working_day() {
        assert_eq!(
            cal().add_working_days(local("2026-11-25 09:00"), 0),
            Some(local("2026-11-25 17:30"))
        );
        assert_eq!(
            cal().add_working_days(local("2026-11-28 09:00"), 0),
            Some(local("2026-11-30 17:30"))
        );
    }

    #[test]
    fn working_hours_count_office_time_only() {
        let c = cal();
        // 11:30 + 60 min: 30 min before lunch, 30 after 14:00.
        assert_eq!(
            c.add_working_minutes(local("2026-11-25 11:30"), 60),
            Some(local("2026-11-25 14:30"))
        );
        // Friday 17:00 + 60 min: 30 min Friday, 30 min Monday morning.
        assert_eq!(
            c.add_working_minutes(local("2026-11-27 17:00"), 60),
            Some(local("2026-11-30 09:00"))
        );
        // At night: from the next opening.
        assert_eq!(
            c.add_working_minutes(local("2026-11-25 22:00"), 60),
            Some(local("2026-11-26 09:30"))
        );
        // Exactly at a period's end.
        assert_eq!(
            c.add_working_minutes(local("2026-11-25 08:30"), 210),
            Some(local("2026-11-25 12:00"))
        );
    }

    #[test]
    fn urge_falls_on_the_next_working_morning() {
        assert_eq!(
            cal().urge_time(local("2026-11-27 17:30")),
            Some(local("2026-11-30 08:30"))
        );
        assert_eq!(
            cal().urge_time(local("2026-09-30 17:30")),
            Some(local("2026-10-08 08:30"))
        );
    }

    #[test]
    fn a_calendar_without_working_days_gives_up() {
        let mut days = BTreeMap::new();
        let mut d = day("2026-01-01");
        for _ in 0..4000 {
            days.insert(d, false);
            d = d.succ_opt().unwrap();
        }
        let c = Calendar::new(days, OfficeHours::default());
        assert_eq!(c.add_working_days(local("2026-01-02 09:00"), 1), None);
        assert_eq!(c.add_working_minutes(local("2026-01-02 09:00"), 1), None);
    }

    #[test]
    fn office_hours_parse_and_refuse_nonsense() {
        assert_eq!(
            OfficeHours::parse("08:30-12:00, 14:00-17:30"),
            Ok(OfficeHours::default())
        );
        assert!(OfficeHours::parse("").is_err());
        assert!(OfficeHours::parse("12:00-08:00").is_err());
        assert!(OfficeHours::parse("08:00-12:00,11:00-13:00").is_err());
        assert!(OfficeHours::parse("8h-9h").is_err());
    }
}
