//! The case workflow (CJJ/T 106's closed loop) as a pure state machine:
//!
//! ```text
//! REPORTED ─REGISTER→ REGISTERED ─DISPATCH→ DISPATCHED ─SIGN→ SIGNED ─FEEDBACK→ HANDLED ─VERIFY_OK→ CLOSED
//!    └─VOID→ VOID ←VOID─┘   ↑──────RETURN──────┴──────────────┘   ↑─VERIFY_FAIL─┘            │
//!                                            ↑──────────────────REOPEN─────────────────────────┘
//! ```
//!
//! Around the loop: REQUEST/APPROVE/REJECT_EXTENSION (延期, asked for before the deadline),
//! URGE (催办) and SUPERVISE (督办) while the case is with its handling unit.
//!
//! Who may act is part of the rule: the command centre (`town_operator`, `admin`) registers,
//! voids, dispatches, verifies, decides extensions, urges, supervises and reopens; only the
//! case's assignee (a principal acting for that unit) signs for it, handles it, returns it and
//! asks for more time. [`plan`] turns (case, action, actor, arguments, now) into the complete
//! new workflow state of the case, or says why not.

use chrono::{DateTime, Utc};

use super::calendar::Calendar;

/// Where a case is in the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Reported,
    Registered,
    Dispatched,
    Signed,
    Handled,
    Closed,
    Void,
    Merged,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 8] = [
        Status::Reported,
        Status::Registered,
        Status::Dispatched,
        Status::Signed,
        Status::Handled,
        Status::Closed,
        Status::Void,
        Status::Merged,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Reported => "REPORTED",
            Status::Registered => "REGISTERED",
            Status::Dispatched => "DISPATCHED",
            Status::Signed => "SIGNED",
            Status::Handled => "HANDLED",
            Status::Closed => "CLOSED",
            Status::Void => "VOID",
            Status::Merged => "MERGED",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The statuses a case ends in: it takes no more reports, merges and splits.
    pub const FINISHED: [Status; 3] = [Status::Closed, Status::Void, Status::Merged];

    /// Whether the case has ended ([`Status::FINISHED`]).
    pub fn is_finished(self) -> bool {
        Self::FINISHED.contains(&self)
    }
}

/// What someone does to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Register,
    Void,
    Dispatch,
    Sign,
    Feedback,
    VerifyOk,
    VerifyFail,
    Return,
    RequestExtension,
    ApproveExtension,
    RejectExtension,
    Urge,
    Supervise,
    Reopen,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 14] = [
        Action::Register,
        Action::Void,
        Action::Dispatch,
        Action::Sign,
        Action::Feedback,
        Action::VerifyOk,
        Action::VerifyFail,
        Action::Return,
        Action::RequestExtension,
        Action::ApproveExtension,
        Action::RejectExtension,
        Action::Urge,
        Action::Supervise,
        Action::Reopen,
    ];

    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Register => "REGISTER",
            Action::Void => "VOID",
            Action::Dispatch => "DISPATCH",
            Action::Sign => "SIGN",
            Action::Feedback => "FEEDBACK",
            Action::VerifyOk => "VERIFY_OK",
            Action::VerifyFail => "VERIFY_FAIL",
            Action::Return => "RETURN",
            Action::RequestExtension => "REQUEST_EXTENSION",
            Action::ApproveExtension => "APPROVE_EXTENSION",
            Action::RejectExtension => "REJECT_EXTENSION",
            Action::Urge => "URGE",
            Action::Supervise => "SUPERVISE",
            Action::Reopen => "REOPEN",
        }
    }

    /// Who may take the action.
    pub fn party(self) -> Party {
        match self {
            Action::Sign | Action::Feedback | Action::Return | Action::RequestExtension => {
                Party::Assignee
            }
            _ => Party::CommandCentre,
        }
    }

    /// The statuses the action applies to, and the status it leads to (`None`: unchanged).
    fn rule(self) -> (&'static [Status], Option<Status>) {
        use Status::*;
        const WITH_UNIT: &[Status] = &[Dispatched, Signed];
        match self {
            Action::Register => (&[Reported], Some(Registered)),
            Action::Void => (&[Reported, Registered], Some(Void)),
            Action::Dispatch => (&[Registered], Some(Dispatched)),
            Action::Sign => (&[Dispatched], Some(Signed)),
            Action::Feedback => (&[Signed], Some(Handled)),
            Action::VerifyOk => (&[Handled], Some(Closed)),
            Action::VerifyFail => (&[Handled], Some(Signed)),
            Action::Return => (WITH_UNIT, Some(Registered)),
            Action::RequestExtension
            | Action::ApproveExtension
            | Action::RejectExtension
            | Action::Urge
            | Action::Supervise => (WITH_UNIT, None),
            Action::Reopen => (&[Closed], Some(Dispatched)),
        }
    }
}

/// Who takes an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The town's command centre (综治中心 / 指挥中心).
    CommandCentre,
    /// The unit the case is dispatched to.
    Assignee,
}

/// What the caller is, relative to the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// Holds `town_operator` or `admin`.
    pub command_centre: bool,
    /// Acts for the case's assignee.
    pub assignee: bool,
}

/// The workflow part of a case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFlow {
    pub status: Status,
    pub assignee: String,
    pub flags: Vec<String>,
    pub registered_at: Option<DateTime<Utc>>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub signed_at: Option<DateTime<Utc>>,
    pub handled_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub sign_deadline: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub urge_at: Option<DateTime<Utc>>,
    pub escalate_at: Option<DateTime<Utc>>,
    /// Working days asked for by a pending extension request.
    pub extension_days: Option<i32>,
    pub urge_count: i32,
}

/// Arguments some actions need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// DISPATCH: the handling unit (department code or worker id).
    pub assignee: Option<String>,
    /// DISPATCH, REOPEN: working days to handle (default: the category's or the server's).
    pub time_limit_days: Option<u32>,
    /// REQUEST_EXTENSION: working days asked for.
    pub extension_days: Option<u32>,
}

/// Time limits that apply to the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sign for within this many working hours of dispatch.
    pub sign_hours: u32,
    /// Handle within this many working days of dispatch.
    pub handle_days: u32,
    /// 通报 after this many working days still overdue.
    pub escalate_days: u32,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Illegal in the current state (FAILED_PRECONDITION, naming the state).
    #[error("case is {status}; {action} applies to {allowed}")]
    State {
        status: &'static str,
        action: &'static str,
        allowed: String,
    },
    /// A precondition besides the status (FAILED_PRECONDITION).
    #[error("case is {status}: {reason}")]
    Condition {
        status: &'static str,
        reason: String,
    },
    /// The caller may not take this action on this case (PERMISSION_DENIED).
    #[error("{action} is for {who}")]
    Role {
        action: &'static str,
        who: &'static str,
    },
    /// A missing or bad argument (INVALID_ARGUMENT).
    #[error("{field}: {description}")]
    Argument {
        field: &'static str,
        description: String,
    },
    /// The calendar has no working day within ten years.
    #[error("the working-day calendar has no working day ahead")]
    Calendar,
}

impl Refusal {
    /// `action` is not allowed in `status`; it applies to the statuses named in `allowed`.
    pub fn state<'a>(
        status: &'static str,
        action: &'static str,
        allowed: impl IntoIterator<Item = &'a str>,
    ) -> Refusal {
        Refusal::State {
            status,
            action,
            allowed: allowed.into_iter().collect::<Vec<_>>().join(" or "),
        }
    }
}

/// Flags the workflow sets and clears.
pub mod flag {
    pub const OVERDUE: &str = "OVERDUE";
    pub const URGED: &str = "URGED";
    pub const ESCALATED: &str = "ESCALATED";
    pub const SUPERVISED: &str = "SUPERVISED";
    pub const REOPENED: &str = "REOPENED";
    pub const EXTENSION_REQUESTED: &str = "EXTENSION_REQUESTED";
    pub const SIGN_OVERDUE: &str = "SIGN_OVERDUE";
    /// Referred to mediation.
    pub const MEDIATION: &str = "MEDIATION";
}

/// Longest extension one request may ask for.
pub const MAX_EXTENSION_DAYS: u32 = 60;

fn set(flags: &mut Vec<String>, f: &str) {
    if !flags.iter().any(|x| x == f) {
        flags.push(f.to_owned());
    }
}

fn clear(flags: &mut Vec<String>, fs: &[&str]) {
    flags.retain(|x| !fs.contains(&x.as_str()));
}

/// What a mediation's outcome does to the case of the one net it is linked to (the case
/// workflow's rule, whoever asks):
/// - success closes an open case: the mediation handled it, so a case not yet handled counts
///   as handled (and, for the figures, on time or not against its deadline) at that moment;
///   overdue warnings end and the case is flagged `MEDIATED`. A closed, void or merged case
///   is left alone.
/// - failure records the referral (`REFERRED_<to>`) and sends a closed case back to the
///   command centre (REGISTERED, `REOPENED`).
///
/// `None`: nothing changes.
pub fn mediation_outcome(
    case: &CaseFlow,
    succeeded: bool,
    referral: &str,
    now: DateTime<Utc>,
) -> Option<CaseFlow> {
    let mut next = case.clone();
    if succeeded {
        if matches!(case.status, Status::Closed | Status::Void | Status::Merged) {
            return None;
        }
        next.status = Status::Closed;
        next.handled_at = Some(case.handled_at.unwrap_or(now));
        next.closed_at = Some(now);
        clear(&mut next.flags, &[flag::OVERDUE, flag::SIGN_OVERDUE]);
        set(&mut next.flags, "MEDIATED");
    } else {
        if case.status == Status::Closed {
            next.status = Status::Registered;
            next.closed_at = None;
            set(&mut next.flags, flag::REOPENED);
        }
        set(&mut next.flags, &format!("REFERRED_{referral}"));
    }
    (next != *case).then_some(next)
}

/// A case merged into another (MergeCases): any open case may be, and ends MERGED.
pub fn merge_into(case: &CaseFlow) -> Result<CaseFlow, Refusal> {
    if case.status.is_finished() {
        return Err(Refusal::Condition {
            status: case.status.as_str(),
            reason: "only open cases merge".into(),
        });
    }
    let mut next = case.clone();
    next.status = Status::Merged;
    Ok(next)
}

/// A report taken out of a case into a case of its own (SplitReport): the case it leaves must
/// be open and keep at least one report.
pub fn split_from(case: &CaseFlow, report_count: i32) -> Result<(), Refusal> {
    let condition = |reason: &str| Refusal::Condition {
        status: case.status.as_str(),
        reason: reason.into(),
    };
    if case.status.is_finished() {
        return Err(condition("reports of finished cases stay"));
    }
    if report_count < 2 {
        return Err(condition("the report is the case's only report"));
    }
    Ok(())
}

/// A case referred to mediation (CreateMediationCase linking it): flagged `MEDIATION`, its
/// status and clocks unchanged (the outcome moves it, [`mediation_outcome`]). `None`: it
/// already is.
pub fn referred_to_mediation(case: &CaseFlow) -> Option<CaseFlow> {
    let mut next = case.clone();
    set(&mut next.flags, flag::MEDIATION);
    (next != *case).then_some(next)
}

/// What time does to a case, marked by the SLA ticker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Dispatched and not signed for by the sign-for deadline.
    SignOverdue,
    /// Held by its unit past the handling deadline.
    Overdue,
    /// The automatic 催办 at `urge_at`, the next working morning after the deadline.
    AutoUrge,
    /// The 通报 at `escalate_at`, N working days after the deadline.
    Escalate,
}

impl Mark {
    /// Every mark, in the order a tick applies them.
    pub const ALL: [Mark; 4] = [
        Mark::SignOverdue,
        Mark::Overdue,
        Mark::AutoUrge,
        Mark::Escalate,
    ];

    /// The change's name in the audit trail and the feed.
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::SignOverdue => flag::SIGN_OVERDUE,
            Mark::Overdue => flag::OVERDUE,
            Mark::AutoUrge => "AUTO_URGE",
            Mark::Escalate => "ESCALATE",
        }
    }

    /// The statuses the mark applies to: signing for is due while DISPATCHED; the handling
    /// clocks run while the unit holds the case.
    pub fn statuses(self) -> &'static [Status] {
        match self {
            Mark::SignOverdue => &[Status::Dispatched],
            Mark::Overdue | Mark::AutoUrge | Mark::Escalate => {
                &[Status::Dispatched, Status::Signed]
            }
        }
    }

    /// The flag the mark sets.
    pub fn flag(self) -> &'static str {
        match self {
            Mark::SignOverdue => flag::SIGN_OVERDUE,
            Mark::Overdue => flag::OVERDUE,
            Mark::AutoUrge => flag::URGED,
            Mark::Escalate => flag::ESCALATED,
        }
    }
}

/// What `mark` does to `case` at `now`; `None` when it does not apply (another status, not
/// due yet, or already marked). Each mark happens once per deadline: SIGN_OVERDUE and OVERDUE
/// while their flag is set, the 催办 and the 通报 because they clear their time.
pub fn sla_mark(case: &CaseFlow, mark: Mark, now: DateTime<Utc>) -> Option<CaseFlow> {
    if !mark.statuses().contains(&case.status) {
        return None;
    }
    let due = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t <= now);
    let marked = case.flags.iter().any(|f| f == mark.flag());
    let mut next = case.clone();
    match mark {
        Mark::SignOverdue if due(case.sign_deadline) && !marked => {}
        Mark::Overdue if due(case.deadline) && !marked => {}
        Mark::AutoUrge if due(case.urge_at) => {
            next.urge_count += 1;
            next.urge_at = None;
        }
        Mark::Escalate if due(case.escalate_at) => next.escalate_at = None,
        _ => return None,
    }
    set(&mut next.flags, mark.flag());
    Some(next)
}

/// The new workflow state after `action`, or why it is refused. Checks the role first, then
/// the state, then the arguments.
/// The actions `actor` may take on `case` now: its party's, applying to the case's status,
/// and (for extensions) with a request pending or not, as [`plan`] would check. For screens:
/// `plan` stays the judge of every step.
pub fn available(case: &CaseFlow, actor: Actor) -> Vec<Action> {
    Action::ALL
        .into_iter()
        .filter(|a| match a.party() {
            Party::CommandCentre => actor.command_centre,
            Party::Assignee => actor.assignee,
        })
        .filter(|a| a.rule().0.contains(&case.status))
        .filter(|a| match a {
            Action::RequestExtension => case.extension_days.is_none(),
            Action::ApproveExtension | Action::RejectExtension => case.extension_days.is_some(),
            _ => true,
        })
        .collect()
}

pub fn plan(
    case: &CaseFlow,
    action: Action,
    actor: Actor,
    args: &Args,
    now: DateTime<Utc>,
    limits: Limits,
    cal: &Calendar,
) -> Result<CaseFlow, Refusal> {
    let permitted = match action.party() {
        Party::CommandCentre => actor.command_centre,
        Party::Assignee => actor.assignee,
    };
    if !permitted {
        return Err(Refusal::Role {
            action: action.as_str(),
            who: match action.party() {
                Party::CommandCentre => "the command centre (town_operator, admin)",
                Party::Assignee => "the case's assignee",
            },
        });
    }
    let (from, to) = action.rule();
    if !from.contains(&case.status) {
        return Err(Refusal::state(
            case.status.as_str(),
            action.as_str(),
            from.iter().map(|s| s.as_str()),
        ));
    }
    let condition = |reason: &str| Refusal::Condition {
        status: case.status.as_str(),
        reason: reason.to_owned(),
    };
    let mut next = case.clone();
    if let Some(to) = to {
        next.status = to;
    }
    let f = &mut next.flags;
    match action {
        Action::Register => next.registered_at = Some(now),
        Action::Void => {}
        Action::Dispatch => {
            let unit = args
                .assignee
                .as_deref()
                .filter(|a| !a.trim().is_empty())
                .ok_or(Refusal::Argument {
                    field: "assignee",
                    description: "DISPATCH names the handling unit".into(),
                })?;
            next.assignee = unit.to_owned();
            start_handling(&mut next, args, now, limits, cal)?;
        }
        Action::Sign => {
            next.signed_at = Some(now);
            clear(f, &[flag::SIGN_OVERDUE]);
        }
        Action::Feedback => next.handled_at = Some(now),
        Action::VerifyOk => next.closed_at = Some(now),
        Action::VerifyFail => next.handled_at = None,
        Action::Return => {
            next.assignee.clear();
            next.dispatched_at = None;
            next.signed_at = None;
            next.sign_deadline = None;
            next.deadline = None;
            next.urge_at = None;
            next.escalate_at = None;
            next.extension_days = None;
            clear(
                f,
                &[
                    flag::OVERDUE,
                    flag::URGED,
                    flag::ESCALATED,
                    flag::SIGN_OVERDUE,
                    flag::EXTENSION_REQUESTED,
                ],
            );
        }
        Action::RequestExtension => {
            if case.extension_days.is_some() {
                return Err(condition("an extension request is already pending"));
            }
            if case.deadline.is_some_and(|d| now > d) {
                return Err(condition(
                    "the deadline has passed; extensions are asked for before it",
                ));
            }
            let days = args
                .extension_days
                .filter(|d| (1..=MAX_EXTENSION_DAYS).contains(d))
                .ok_or(Refusal::Argument {
                    field: "extension_working_days",
                    description: format!("ask for 1 to {MAX_EXTENSION_DAYS} working days"),
                })?;
            next.extension_days = Some(days as i32);
            set(f, flag::EXTENSION_REQUESTED);
        }
        Action::ApproveExtension => {
            let days = case
                .extension_days
                .ok_or_else(|| condition("no extension request is pending"))?;
            let base = case.deadline.unwrap_or(now);
            let deadline = cal
                .add_working_days(base, days.max(0) as u32)
                .ok_or(Refusal::Calendar)?;
            set_deadline(&mut next, deadline, limits, cal)?;
            next.extension_days = None;
            let f = &mut next.flags;
            clear(f, &[flag::EXTENSION_REQUESTED]);
            if deadline > now {
                clear(f, &[flag::OVERDUE, flag::URGED, flag::ESCALATED]);
            }
        }
        Action::RejectExtension => {
            if case.extension_days.is_none() {
                return Err(condition("no extension request is pending"));
            }
            next.extension_days = None;
            clear(f, &[flag::EXTENSION_REQUESTED]);
        }
        Action::Urge => {
            next.urge_count += 1;
            set(f, flag::URGED);
        }
        Action::Supervise => set(f, flag::SUPERVISED),
        Action::Reopen => {
            set(f, flag::REOPENED);
            next.signed_at = None;
            next.handled_at = None;
            next.closed_at = None;
            next.extension_days = None;
            start_handling(&mut next, args, now, limits, cal)?;
        }
    }
    Ok(next)
}

/// Dispatch or reopen: the clocks start now.
fn start_handling(
    next: &mut CaseFlow,
    args: &Args,
    now: DateTime<Utc>,
    limits: Limits,
    cal: &Calendar,
) -> Result<(), Refusal> {
    let days = match args.time_limit_days {
        Some(d) if (1..=365).contains(&d) => d,
        Some(_) => {
            return Err(Refusal::Argument {
                field: "time_limit_working_days",
                description: "between 1 and 365 working days".into(),
            });
        }
        None => limits.handle_days,
    };
    next.dispatched_at = Some(now);
    next.sign_deadline = Some(
        cal.add_working_minutes(now, limits.sign_hours * 60)
            .ok_or(Refusal::Calendar)?,
    );
    let deadline = cal.add_working_days(now, days).ok_or(Refusal::Calendar)?;
    set_deadline(next, deadline, limits, cal)?;
    clear(
        &mut next.flags,
        &[
            flag::OVERDUE,
            flag::URGED,
            flag::ESCALATED,
            flag::SIGN_OVERDUE,
            flag::EXTENSION_REQUESTED,
        ],
    );
    Ok(())
}

/// A new handling deadline, and the SLA times that follow from it.
fn set_deadline(
    next: &mut CaseFlow,
    deadline: DateTime<Utc>,
    limits: Limits,
    cal: &Calendar,
) -> Result<(), Refusal> {
    next.deadline = Some(deadline);
    next.urge_at = Some(cal.urge_time(deadline).ok_or(Refusal::Calendar)?);
    next.escalate_at = Some(
        cal.add_working_days(deadline, limits.escalate_days)
            .ok_or(Refusal::Calendar)?,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::calendar::OfficeHours;
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_str(&format!("{s} +0800"), "%Y-%m-%d %H:%M %z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn cal() -> Calendar {
        Calendar::new(BTreeMap::new(), OfficeHours::default())
    }

    const LIMITS: Limits = Limits {
        sign_hours: 1,
        handle_days: 3,
        escalate_days: 5,
    };

    fn case(status: Status) -> CaseFlow {
        let with_unit = matches!(
            status,
            Status::Dispatched | Status::Signed | Status::Handled | Status::Closed
        );
        CaseFlow {
            status,
            assignee: if with_unit {
                "ZHJ".into()
            } else {
                String::new()
            },
            flags: vec![],
            registered_at: None,
            dispatched_at: None,
            signed_at: None,
            handled_at: None,
            closed_at: None,
            sign_deadline: None,
            deadline: with_unit.then(|| t("2026-11-30 17:30")),
            urge_at: None,
            escalate_at: None,
            extension_days: None,
            urge_count: 0,
        }
    }

    /// `available` lists exactly the actions `plan` does not refuse for role or state (with
    /// the arguments a screen would ask for), for every status, actor and extension state.
    #[test]
    fn available_actions_are_those_the_plan_accepts() {
        let args = Args {
            assignee: Some("ZHJ".into()),
            time_limit_days: Some(3),
            extension_days: Some(2),
        };
        let now = t("2026-11-26 10:00");
        for status in Status::ALL {
            for pending in [None, Some(2)] {
                let mut c = case(status);
                c.extension_days = pending;
                for (command_centre, assignee) in [(true, false), (false, true), (true, true)] {
                    let actor = Actor {
                        command_centre,
                        assignee,
                    };
                    let open = available(&c, actor);
                    for a in Action::ALL {
                        let r = plan(&c, a, actor, &args, now, LIMITS, &cal());
                        assert_eq!(
                            open.contains(&a),
                            r.is_ok(),
                            "{status:?} pending={pending:?} {actor:?} {a:?}: {r:?}"
                        );
                    }
                }
            }
        }
    }

    const ANYONE: Actor = Actor {
        command_centre: true,
        assignee: true,
    };

    fn args() -> Args {
        Args {
            assignee: Some("ZHJ".into()),
            time_limit_days: None,
            extension_days: Some(2),
        }
    }

    fn run(c: &CaseFlow, a: Action, who: Actor) -> Result<CaseFlow, Refusal> {
        plan(c, a, who, &args(), t("2026-11-25 10:00"), LIMITS, &cal())
    }

    /// The expected next status of every (status, action) pair; `None` = refused.
    fn expected(s: Status, a: Action) -> Option<Status> {
        use Action as A;
        use Status::*;
        match (a, s) {
            (A::Register, Reported) => Some(Registered),
            (A::Void, Reported | Registered) => Some(Void),
            (A::Dispatch, Registered) => Some(Dispatched),
            (A::Sign, Dispatched) => Some(Signed),
            (A::Feedback, Signed) => Some(Handled),
            (A::VerifyOk, Handled) => Some(Closed),
            (A::VerifyFail, Handled) => Some(Signed),
            (A::Return, Dispatched | Signed) => Some(Registered),
            (A::RequestExtension | A::Urge | A::Supervise, Dispatched | Signed) => Some(s),
            (A::Reopen, Closed) => Some(Dispatched),
            _ => None,
        }
    }

    #[test]
    fn every_status_and_action_pair() {
        let mut allowed = 0;
        for s in Status::ALL {
            for a in Action::ALL {
                let mut c = case(s);
                if matches!(a, Action::ApproveExtension | Action::RejectExtension) {
                    c.extension_days = Some(2);
                }
                let want = match a {
                    Action::ApproveExtension | Action::RejectExtension => {
                        matches!(s, Status::Dispatched | Status::Signed).then_some(s)
                    }
                    _ => expected(s, a),
                };
                match (run(&c, a, ANYONE), want) {
                    (Ok(next), Some(w)) => {
                        assert_eq!(next.status, w, "{s:?} {a:?}");
                        allowed += 1;
                    }
                    (Err(Refusal::State { status, .. }), None) => {
                        assert_eq!(status, s.as_str(), "{s:?} {a:?}")
                    }
                    (got, want) => panic!("{s:?} {a:?}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(allowed, 21);
    }

    #[test]
    fn refusals_name_the_current_state() {
        let e = run(&case(Status::Closed), Action::Sign, ANYONE).unwrap_err();
        assert_eq!(e.to_string(), "case is CLOSED; SIGN applies to DISPATCHED");
    }

    #[test]
    fn only_the_command_centre_registers_dispatches_and_closes() {
        let handler = Actor {
            command_centre: false,
            assignee: true,
        };
        for a in Action::ALL {
            let r = run(&case(Status::Dispatched), a, handler);
            if a.party() == Party::CommandCentre {
                assert!(matches!(r, Err(Refusal::Role { .. })), "{a:?}: {r:?}");
            } else {
                assert!(!matches!(r, Err(Refusal::Role { .. })), "{a:?}: {r:?}");
            }
        }
        for a in [Action::Register, Action::Dispatch, Action::VerifyOk] {
            assert_eq!(a.party(), Party::CommandCentre);
        }
    }

    #[test]
    fn only_the_assignee_signs_and_handles() {
        let centre = Actor {
            command_centre: true,
            assignee: false,
        };
        for a in [
            Action::Sign,
            Action::Feedback,
            Action::Return,
            Action::RequestExtension,
        ] {
            assert!(matches!(
                run(&case(Status::Dispatched), a, centre),
                Err(Refusal::Role { .. })
            ));
        }
        let nobody = Actor {
            command_centre: false,
            assignee: false,
        };
        for a in Action::ALL {
            assert!(matches!(
                run(&case(Status::Reported), a, nobody),
                Err(Refusal::Role { .. })
            ));
        }
    }

    #[test]
    fn dispatch_sets_the_unit_and_the_deadlines() {
        let next = run(&case(Status::Registered), Action::Dispatch, ANYONE).unwrap();
        assert_eq!(next.assignee, "ZHJ");
        assert_eq!(next.dispatched_at, Some(t("2026-11-25 10:00")));
        assert_eq!(next.sign_deadline, Some(t("2026-11-25 11:00")));
        // Wednesday + 3 working days → Monday.
        assert_eq!(next.deadline, Some(t("2026-11-30 17:30")));
        assert_eq!(next.urge_at, Some(t("2026-12-01 08:30")));
        assert_eq!(next.escalate_at, Some(t("2026-12-07 17:30")));
        let no_unit = plan(
            &case(Status::Registered),
            Action::Dispatch,
            ANYONE,
            &Args::default(),
            t("2026-11-25 10:00"),
            LIMITS,
            &cal(),
        );
        assert!(matches!(
            no_unit,
            Err(Refusal::Argument {
                field: "assignee",
                ..
            })
        ));
    }

    #[test]
    fn extensions_are_asked_for_before_the_deadline_and_move_it() {
        let asked = run(&case(Status::Signed), Action::RequestExtension, ANYONE).unwrap();
        assert_eq!(asked.extension_days, Some(2));
        assert!(asked.flags.contains(&flag::EXTENSION_REQUESTED.to_owned()));
        assert!(matches!(
            run(&asked, Action::RequestExtension, ANYONE),
            Err(Refusal::Condition { .. })
        ));
        let approved = run(&asked, Action::ApproveExtension, ANYONE).unwrap();
        // Monday 11-30 + 2 working days → Wednesday 12-02.
        assert_eq!(approved.deadline, Some(t("2026-12-02 17:30")));
        assert_eq!(approved.extension_days, None);
        assert!(approved.flags.is_empty());
        let rejected = run(&asked, Action::RejectExtension, ANYONE).unwrap();
        assert_eq!(rejected.deadline, case(Status::Signed).deadline);
        assert!(matches!(
            run(&case(Status::Signed), Action::ApproveExtension, ANYONE),
            Err(Refusal::Condition { .. })
        ));
        let mut late = case(Status::Signed);
        late.deadline = Some(t("2026-11-24 17:30"));
        assert!(matches!(
            run(&late, Action::RequestExtension, ANYONE),
            Err(Refusal::Condition { .. })
        ));
        let too_long = plan(
            &case(Status::Signed),
            Action::RequestExtension,
            ANYONE,
            &Args {
                extension_days: Some(0),
                ..Args::default()
            },
            t("2026-11-25 10:00"),
            LIMITS,
            &cal(),
        );
        assert!(matches!(too_long, Err(Refusal::Argument { .. })));
    }

    #[test]
    fn return_clears_the_unit_and_reopen_restarts_the_clock() {
        let mut c = case(Status::Signed);
        c.flags = vec![flag::OVERDUE.into(), "OUTSIDE_GRID".into()];
        let back = run(&c, Action::Return, ANYONE).unwrap();
        assert_eq!(back.assignee, "");
        assert_eq!(back.deadline, None);
        assert_eq!(back.flags, vec!["OUTSIDE_GRID".to_owned()]);
        let reopened = run(&case(Status::Closed), Action::Reopen, ANYONE).unwrap();
        assert_eq!(reopened.assignee, "ZHJ");
        assert_eq!(reopened.closed_at, None);
        assert_eq!(reopened.deadline, Some(t("2026-11-30 17:30")));
        assert!(reopened.flags.contains(&flag::REOPENED.to_owned()));
    }

    #[test]
    fn urging_counts() {
        let u = run(&case(Status::Signed), Action::Urge, ANYONE).unwrap();
        let u = run(&u, Action::Urge, ANYONE).unwrap();
        assert_eq!(u.urge_count, 2);
        assert_eq!(u.flags, vec![flag::URGED.to_owned()]);
    }

    #[test]
    fn statuses_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("OPEN"), None);
    }

    #[test]
    fn sla_marks_apply_once_when_due_and_only_while_the_unit_holds_the_case() {
        let before = t("2026-11-30 17:29");
        let after = t("2026-11-30 17:31");
        for status in Status::ALL {
            let mut c = case(status);
            c.sign_deadline = Some(t("2026-11-30 17:30"));
            c.deadline = Some(t("2026-11-30 17:30"));
            c.urge_at = Some(t("2026-11-30 17:30"));
            c.escalate_at = Some(t("2026-11-30 17:30"));
            for mark in Mark::ALL {
                assert_eq!(
                    sla_mark(&c, mark, before),
                    None,
                    "{status:?} {mark:?} not due"
                );
                let marked = sla_mark(&c, mark, after);
                let applies = match mark {
                    Mark::SignOverdue => status == Status::Dispatched,
                    _ => matches!(status, Status::Dispatched | Status::Signed),
                };
                assert_eq!(marked.is_some(), applies, "{status:?} {mark:?}");
                let Some(m) = marked else { continue };
                assert_eq!(m.status, status, "a mark never changes the status");
                assert!(m.flags.contains(&mark.flag().to_owned()));
                assert_eq!(
                    sla_mark(&m, mark, t("2026-12-30 10:00")),
                    None,
                    "{mark:?} twice"
                );
                if mark == Mark::AutoUrge {
                    assert_eq!((m.urge_count, m.urge_at), (1, None));
                }
            }
        }
    }

    #[test]
    fn merges_splits_and_referrals_keep_to_open_cases() {
        for status in Status::ALL {
            let c = case(status);
            let open = !matches!(status, Status::Closed | Status::Void | Status::Merged);
            assert_eq!(
                merge_into(&c).map(|m| m.status).ok(),
                open.then_some(Status::Merged)
            );
            assert_eq!(split_from(&c, 2).is_ok(), open);
            assert!(split_from(&c, 1).is_err());
            let referred = referred_to_mediation(&c).unwrap();
            assert_eq!(referred.status, status);
            assert_eq!(referred_to_mediation(&referred), None);
        }
    }
}
