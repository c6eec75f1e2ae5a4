//! The time the workflow runs on. The server uses the system clock; tests use a manual one to
//! walk a case past its deadline without waiting days.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A clock: the system's, or one set by hand.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Mutex<DateTime<Utc>>>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stays at `t` until set.
    pub fn manual(t: DateTime<Utc>) -> Clock {
        Clock(Some(Arc::new(Mutex::new(t))))
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            None => Utc::now(),
            Some(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Sets a manual clock (no effect on the system clock).
    pub fn set(&self, t: DateTime<Utc>) {
        if let Some(m) = &self.0 {
            *m.lock().unwrap_or_else(|e| e.into_inner()) = t;
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Clock(system)"),
            Some(_) => write!(f, "Clock(manual {})", self.now()),
        }
    }
}
