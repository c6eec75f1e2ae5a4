//! Mediation (矛盾纠纷调解) as a pure state machine:
//!
//! ```text
//! REGISTERED ─SESSION→ IN_MEDIATION ─SESSION→ IN_MEDIATION
//!                          ├─SUCCEED (agreement)→ SUCCEEDED ─CORRECT (new agreement version)→ SUCCEEDED
//!                          └─FAIL (referral)────→ FAILED
//! SUCCEEDED / FAILED ─FOLLOW_UP→ (same) ─CLOSE→ CLOSED
//! ```
//!
//! Who acts: the mediators of the case's team (a `mediator` whose `unit` claim is the team,
//! or who is named among the case's mediators) record sessions, outcomes and follow-ups; the
//! command centre (`town_operator`, `admin`) may also close a case. A successful case closes
//! only after a follow-up has checked the agreement's performance (履行).

use chrono::{Duration, NaiveDate};

use super::workflow::Refusal;

/// Where a case is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Registered,
    InMediation,
    Succeeded,
    Failed,
    Closed,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 5] = [
        Status::Registered,
        Status::InMediation,
        Status::Succeeded,
        Status::Failed,
        Status::Closed,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Registered => "REGISTERED",
            Status::InMediation => "IN_MEDIATION",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::Closed => "CLOSED",
        }
    }

    /// From the stored spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Session,
    Succeed,
    Fail,
    Correct,
    FollowUp,
    Close,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 6] = [
        Action::Session,
        Action::Succeed,
        Action::Fail,
        Action::Correct,
        Action::FollowUp,
        Action::Close,
    ];

    /// The spelling in messages and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Session => "SESSION",
            Action::Succeed => "SUCCEED",
            Action::Fail => "FAIL",
            Action::Correct => "CORRECT_AGREEMENT",
            Action::FollowUp => "FOLLOW_UP",
            Action::Close => "CLOSE",
        }
    }

    /// The statuses it applies to and the status it leads to.
    pub fn rule(self) -> (&'static [Status], Status) {
        use Status::*;
        match self {
            Action::Session => (&[Registered, InMediation], InMediation),
            Action::Succeed => (&[InMediation], Succeeded),
            Action::Fail => (&[InMediation], Failed),
            Action::Correct => (&[Succeeded], Succeeded),
            Action::FollowUp => (&[Succeeded, Failed], Succeeded),
            Action::Close => (&[Succeeded, Failed], Closed),
        }
    }
}

/// What the caller is, relative to the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actor {
    /// A mediator of the case's team.
    pub team: bool,
    /// The command centre.
    pub command_centre: bool,
}

/// What the step needs to know besides the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    /// A follow-up has been recorded.
    pub followed_up: bool,
}

/// The status after `action`, or why not. Checks the role, then the state, then the facts.
pub fn plan(status: Status, action: Action, actor: Actor, facts: Facts) -> Result<Status, Refusal> {
    let permitted = match action {
        Action::Close => actor.team || actor.command_centre,
        _ => actor.team,
    };
    if !permitted {
        return Err(Refusal::Role {
            action: action.as_str(),
            who: if action == Action::Close {
                "the case's mediation team or the command centre"
            } else {
                "the mediators of the case's team"
            },
        });
    }
    let (from, to) = action.rule();
    if !from.contains(&status) {
        return Err(Refusal::state(
            status.as_str(),
            action.as_str(),
            from.iter().map(|s| s.as_str()),
        ));
    }
    if action == Action::Close && status == Status::Succeeded && !facts.followed_up {
        return Err(Refusal::Condition {
            status: status.as_str(),
            reason: "a follow-up visit must check the agreement's performance first".into(),
        });
    }
    // A follow-up keeps the outcome.
    Ok(if action == Action::FollowUp {
        status
    } else {
        to
    })
}

/// The steps `actor` may take now, for screens: exactly those [`plan`] admits (it stays the
/// judge; a step may still be refused for its arguments).
pub fn available(status: Status, actor: Actor, facts: Facts) -> Vec<Action> {
    Action::ALL
        .into_iter()
        .filter(|a| plan(status, *a, actor, facts).is_ok())
        .collect()
}

/// The day the follow-up of an agreement is due: the day after its performance deadline, or
/// 7 days after the outcome when it has none.
pub fn follow_up_due(outcome_day: NaiveDate, performance_deadline: Option<NaiveDate>) -> NaiveDate {
    match performance_deadline {
        Some(d) => d + Duration::days(1),
        None => outcome_day + Duration::days(7),
    }
}

/// Common dispute types (others are accepted as written).
pub const DISPUTE_TYPES: [&str; 13] = [
    "婚姻家庭",
    "邻里",
    "房屋宅基地",
    "土地承包",
    "山林土地",
    "劳动争议",
    "损害赔偿",
    "合同",
    "物业",
    "征地拆迁",
    "医疗",
    "交通事故",
    "其他",
];

#[cfg(test)]
mod tests {
    use super::*;

    const TEAM: Actor = Actor {
        team: true,
        command_centre: false,
    };
    const CENTRE: Actor = Actor {
        team: false,
        command_centre: true,
    };

    #[test]
    fn screens_are_offered_the_steps_the_machine_admits() {
        use Action::*;
        use Status::*;
        let none = Facts::default();
        let done = Facts { followed_up: true };
        assert_eq!(available(Registered, TEAM, none), [Session]);
        assert_eq!(available(InMediation, TEAM, none), [Session, Succeed, Fail]);
        assert_eq!(available(Succeeded, TEAM, none), [Correct, FollowUp]);
        assert_eq!(available(Succeeded, TEAM, done), [Correct, FollowUp, Close]);
        assert_eq!(available(Failed, TEAM, none), [FollowUp, Close]);
        assert_eq!(available(Succeeded, CENTRE, none), []);
        assert_eq!(available(Succeeded, CENTRE, done), [Close]);
        assert_eq!(available(InMediation, Actor::default(), done), []);
        assert_eq!(available(Closed, TEAM, done), []);
    }

    #[test]
    fn every_status_action_pair_follows_the_table() {
        use Action::*;
        use Status::*;
        let allowed = [
            (Registered, Session, InMediation),
            (InMediation, Session, InMediation),
            (InMediation, Succeed, Succeeded),
            (InMediation, Fail, Failed),
            (Succeeded, Correct, Succeeded),
            (Succeeded, FollowUp, Succeeded),
            (Failed, FollowUp, Failed),
            (Succeeded, Close, Closed),
            (Failed, Close, Closed),
        ];
        let facts = Facts { followed_up: true };
        for s in Status::ALL {
            for a in Action::ALL {
                let got = plan(s, a, TEAM, facts);
                match allowed.iter().find(|(x, y, _)| *x == s && *y == a) {
                    Some((_, _, to)) => assert_eq!(got, Ok(*to), "{s:?} {a:?}"),
                    None => match got {
                        Err(Refusal::State { status, .. }) => assert_eq!(status, s.as_str()),
                        other => panic!("{s:?} {a:?}: {other:?}"),
                    },
                }
            }
        }
    }

    #[test]
    fn only_the_team_mediates_and_the_centre_may_close() {
        let f = Facts { followed_up: true };
        assert!(matches!(
            plan(Status::Registered, Action::Session, CENTRE, f),
            Err(Refusal::Role { .. })
        ));
        assert!(matches!(
            plan(Status::InMediation, Action::Succeed, Actor::default(), f),
            Err(Refusal::Role { .. })
        ));
        assert_eq!(
            plan(Status::Failed, Action::Close, CENTRE, f),
            Ok(Status::Closed)
        );
    }

    #[test]
    fn a_success_closes_only_after_its_follow_up() {
        let r = plan(Status::Succeeded, Action::Close, TEAM, Facts::default());
        assert!(matches!(r, Err(Refusal::Condition { .. })), "{r:?}");
        // A failure has nothing to check.
        assert_eq!(
            plan(Status::Failed, Action::Close, TEAM, Facts::default()),
            Ok(Status::Closed)
        );
    }

    #[test]
    fn follow_up_is_due_after_the_performance_deadline() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            follow_up_due(d("2026-11-25"), Some(d("2026-12-05"))),
            d("2026-12-06")
        );
        assert_eq!(follow_up_due(d("2026-11-25"), None), d("2026-12-02"));
    }
}
