//! Service requests (便民服务 and 12345 work orders) as a pure state machine:
//!
//! ```text
//! ACCEPTED ─ASSIGN→ ASSIGNED ─SIGN→ SIGNED ─REPLY→ REPLIED ─RECORD_SATISFACTION→ VISITED ─ARCHIVE→ ARCHIVED
//!    ↑───────RETURN────┴─────────────┘            │  ↑           (满意/基本满意)    │
//!                      ↑──RECORD_SATISFACTION 不满意┘ └──────────REOPEN───────────────┘
//! ```
//!
//! Around the loop while the request is with its unit (ASSIGNED, SIGNED): REQUEST_EXTENSION
//! (asked for before the deadline) and its APPROVE/REJECT, URGE (催办), SUPERVISE (督办).
//!
//! Who may act: the window (`window_clerk`, `town_operator`, `admin`) assigns, decides
//! extensions, urges, supervises, records the callback, reopens and archives; for a request
//! that came from 12345 the hotline may also decide extensions, urge, supervise and record
//! the callback (the platform does its own 回访); only a principal acting for the assigned
//! unit signs, replies, returns and asks for more time.
//!
//! The deadline is set at acceptance ([`deadline`]: by urgency and kind, or the catalog
//! item's limit, or the work order's own) and starts again at a reopening; 不满意 at the
//! callback reopens the request to the same unit and counts against it.

use chrono::{DateTime, Utc};

use super::calendar::Calendar;
use super::workflow::Refusal;

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Accepted,
    Assigned,
    Signed,
    Replied,
    Visited,
    Archived,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 6] = [
        Status::Accepted,
        Status::Assigned,
        Status::Signed,
        Status::Replied,
        Status::Visited,
        Status::Archived,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "ACCEPTED",
            Status::Assigned => "ASSIGNED",
            Status::Signed => "SIGNED",
            Status::Replied => "REPLIED",
            Status::Visited => "VISITED",
            Status::Archived => "ARCHIVED",
        }
    }

    /// From the stored spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Still waiting for the unit's reply (the deadline runs).
    pub fn is_open(self) -> bool {
        matches!(self, Status::Accepted | Status::Assigned | Status::Signed)
    }
}

/// A workflow action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Assign,
    Sign,
    Reply,
    Return,
    RequestExtension,
    ApproveExtension,
    RejectExtension,
    Urge,
    Supervise,
    RecordSatisfaction,
    Reopen,
    Archive,
}

/// Who takes an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The service window (window_clerk, town_operator, admin).
    Window,
    /// The window, or the 12345 platform for its own orders.
    WindowOrHotline,
    /// The unit the request is assigned to.
    Assignee,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 12] = [
        Action::Assign,
        Action::Sign,
        Action::Reply,
        Action::Return,
        Action::RequestExtension,
        Action::ApproveExtension,
        Action::RejectExtension,
        Action::Urge,
        Action::Supervise,
        Action::RecordSatisfaction,
        Action::Reopen,
        Action::Archive,
    ];

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Assign => "ASSIGN",
            Action::Sign => "SIGN",
            Action::Reply => "REPLY",
            Action::Return => "RETURN",
            Action::RequestExtension => "REQUEST_EXTENSION",
            Action::ApproveExtension => "APPROVE_EXTENSION",
            Action::RejectExtension => "REJECT_EXTENSION",
            Action::Urge => "URGE",
            Action::Supervise => "SUPERVISE",
            Action::RecordSatisfaction => "RECORD_SATISFACTION",
            Action::Reopen => "REOPEN",
            Action::Archive => "ARCHIVE",
        }
    }

    /// Who may take it.
    pub fn party(self) -> Party {
        match self {
            Action::Assign | Action::Reopen | Action::Archive => Party::Window,
            Action::ApproveExtension
            | Action::RejectExtension
            | Action::Urge
            | Action::Supervise
            | Action::RecordSatisfaction => Party::WindowOrHotline,
            Action::Sign | Action::Reply | Action::Return | Action::RequestExtension => {
                Party::Assignee
            }
        }
    }

    /// The statuses it applies to and the status it leads to (`None`: unchanged; the
    /// callback's result decides for RECORD_SATISFACTION).
    pub fn rule(self) -> (&'static [Status], Option<Status>) {
        use Status::*;
        match self {
            Action::Assign => (&[Accepted], Some(Assigned)),
            Action::Sign => (&[Assigned], Some(Signed)),
            Action::Reply => (&[Signed], Some(Replied)),
            Action::Return => (&[Assigned, Signed], Some(Accepted)),
            Action::RequestExtension
            | Action::ApproveExtension
            | Action::RejectExtension
            | Action::Urge
            | Action::Supervise => (&[Assigned, Signed], None),
            Action::RecordSatisfaction => (&[Replied], None),
            Action::Reopen => (&[Replied, Visited], Some(Assigned)),
            Action::Archive => (&[Visited], Some(Archived)),
        }
    }

    /// What the 12345 platform hears of this action on one of its orders, if anything.
    pub fn hotline_update(self) -> Option<UpdateKind> {
        match self {
            Action::Sign => Some(UpdateKind::Signed),
            Action::Reply => Some(UpdateKind::Replied),
            Action::Return => Some(UpdateKind::Returned),
            Action::RequestExtension => Some(UpdateKind::ExtensionRequested),
            _ => None,
        }
    }
}

/// An update the 12345 platform must hear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// 签收.
    Signed,
    /// 回复.
    Replied,
    /// 退回.
    Returned,
    /// 延期申请.
    ExtensionRequested,
}

impl UpdateKind {
    /// The spelling in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateKind::Signed => "SIGNED",
            UpdateKind::Replied => "REPLIED",
            UpdateKind::Returned => "RETURNED",
            UpdateKind::ExtensionRequested => "EXTENSION_REQUESTED",
        }
    }

    /// From the payload spelling.
    pub fn parse(s: &str) -> Option<UpdateKind> {
        [
            UpdateKind::Signed,
            UpdateKind::Replied,
            UpdateKind::Returned,
            UpdateKind::ExtensionRequested,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Satisfaction at the callback (回访).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Satisfaction {
    Satisfied,
    Basic,
    Dissatisfied,
}

impl Satisfaction {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Satisfaction::Satisfied => "SATISFIED",
            Satisfaction::Basic => "BASICALLY_SATISFIED",
            Satisfaction::Dissatisfied => "DISSATISFIED",
        }
    }

    /// From the stored spelling.
    pub fn parse(s: &str) -> Option<Satisfaction> {
        [
            Satisfaction::Satisfied,
            Satisfaction::Basic,
            Satisfaction::Dissatisfied,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Enquiry,
    Help,
    Complaint,
    Suggestion,
    TipOff,
    Service,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Enquiry,
        Kind::Help,
        Kind::Complaint,
        Kind::Suggestion,
        Kind::TipOff,
        Kind::Service,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Enquiry => "ENQUIRY",
            Kind::Help => "HELP",
            Kind::Complaint => "COMPLAINT",
            Kind::Suggestion => "SUGGESTION",
            Kind::TipOff => "TIP_OFF",
            Kind::Service => "SERVICE",
        }
    }

    /// From the stored spelling.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Normal,
    Urgent,
    Critical,
}

impl Urgency {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Normal => "NORMAL",
            Urgency::Urgent => "URGENT",
            Urgency::Critical => "CRITICAL",
        }
    }

    /// From the stored spelling.
    pub fn parse(s: &str) -> Option<Urgency> {
        [Urgency::Normal, Urgency::Urgent, Urgency::Critical]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// Time limits in working days (configurable per deployment; defaults from one city's rule:
/// 应急 the same day, 咨询/求助 3 working days, 投诉/建议 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeLimits {
    /// 咨询 and 求助.
    pub enquiry_help_days: u32,
    /// 投诉, 建议 and 举报.
    pub complaint_days: u32,
    /// 办事 without a limit on its catalog item.
    pub service_days: u32,
    /// 紧急 (at most this, whatever the kind).
    pub urgent_days: u32,
}

impl Default for TimeLimits {
    fn default() -> Self {
        TimeLimits {
            enquiry_help_days: 3,
            complaint_days: 13,
            service_days: 13,
            urgent_days: 1,
        }
    }
}

/// Working days to reply: 特急 0 (the same day); otherwise the limit of its kind (办事: the
/// catalog item's `item_days` when set), capped at `urgent_days` for 紧急.
pub fn limit_days(kind: Kind, urgency: Urgency, item_days: Option<u32>, limits: TimeLimits) -> u32 {
    if urgency == Urgency::Critical {
        return 0;
    }
    let by_kind = match kind {
        Kind::Enquiry | Kind::Help => limits.enquiry_help_days,
        Kind::Complaint | Kind::Suggestion | Kind::TipOff => limits.complaint_days,
        Kind::Service => item_days.unwrap_or(limits.service_days),
    };
    if urgency == Urgency::Urgent {
        by_kind.min(limits.urgent_days)
    } else {
        by_kind
    }
}

/// The deadline of a request accepted at `at`: the close of office on the [`limit_days`]-th
/// working day after it (特急: the close of that working day, or of the next one).
pub fn deadline(
    kind: Kind,
    urgency: Urgency,
    item_days: Option<u32>,
    limits: TimeLimits,
    at: DateTime<Utc>,
    cal: &Calendar,
) -> Option<DateTime<Utc>> {
    cal.add_working_days(at, limit_days(kind, urgency, item_days, limits))
}

/// Flags the workflow sets and clears.
pub mod flag {
    pub const URGED: &str = "URGED";
    pub const SUPERVISED: &str = "SUPERVISED";
    pub const REOPENED: &str = "REOPENED";
    pub const EXTENSION_REQUESTED: &str = "EXTENSION_REQUESTED";
}

/// Longest extension one request may ask for.
pub const MAX_EXTENSION_DAYS: u32 = 60;

/// What the caller is, relative to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actor {
    /// Holds window_clerk, town_operator or admin.
    pub window: bool,
    /// Is the 12345 platform and the request is one of its orders.
    pub hotline: bool,
    /// Acts for the assigned unit.
    pub assignee: bool,
}

impl Actor {
    /// The hub itself following a case of the one net (every party).
    pub const SYSTEM: Actor = Actor {
        window: true,
        hotline: true,
        assignee: true,
    };
}

/// The workflow part of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub status: Status,
    pub assignee: String,
    pub flags: Vec<String>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub signed_at: Option<DateTime<Utc>>,
    pub replied_at: Option<DateTime<Utc>>,
    pub visited_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    /// Working days asked for by a pending extension request.
    pub extension_days: Option<i32>,
    pub urge_count: i32,
    pub reopen_count: i32,
    pub dissatisfied_count: i32,
    pub reply: String,
    pub satisfaction: Option<Satisfaction>,
}

/// Arguments some actions need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// ASSIGN: the unit.
    pub assignee: Option<String>,
    /// REPLY: the reply; RETURN: the reason.
    pub comment: String,
    /// REQUEST_EXTENSION: working days.
    pub extension_days: Option<u32>,
    /// RECORD_SATISFACTION.
    pub satisfaction: Option<Satisfaction>,
    /// REOPEN (and 不满意): working days to handle again.
    pub reopen_days: u32,
}

fn set(flags: &mut Vec<String>, f: &str) {
    if !flags.iter().any(|x| x == f) {
        flags.push(f.to_owned());
    }
}

fn clear(flags: &mut Vec<String>, fs: &[&str]) {
    flags.retain(|x| !fs.contains(&x.as_str()));
}

/// The new workflow state after `action`, or why it is refused. Checks the role first, then
/// the state, then the arguments.
/// The actions `actor` may take on `req` at `now`: its party's, applying to the status, and
/// meeting the conditions [`plan`] checks besides arguments (extensions pending or not and
/// asked for before the deadline; a unit to reopen to). For screens: `plan` stays the judge.
pub fn available(req: &Flow, actor: Actor, now: DateTime<Utc>) -> Vec<Action> {
    Action::ALL
        .into_iter()
        .filter(|a| match a.party() {
            Party::Window => actor.window,
            Party::WindowOrHotline => actor.window || actor.hotline,
            Party::Assignee => actor.assignee,
        })
        .filter(|a| a.rule().0.contains(&req.status))
        .filter(|a| match a {
            Action::RequestExtension => {
                req.extension_days.is_none() && req.deadline.is_none_or(|d| now <= d)
            }
            Action::ApproveExtension | Action::RejectExtension => req.extension_days.is_some(),
            Action::Reopen => !req.assignee.is_empty(),
            _ => true,
        })
        .collect()
}

pub fn plan(
    req: &Flow,
    action: Action,
    actor: Actor,
    args: &Args,
    now: DateTime<Utc>,
    cal: &Calendar,
) -> Result<Flow, Refusal> {
    let permitted = match action.party() {
        Party::Window => actor.window,
        Party::WindowOrHotline => actor.window || actor.hotline,
        Party::Assignee => actor.assignee,
    };
    if !permitted {
        return Err(Refusal::Role {
            action: action.as_str(),
            who: match action.party() {
                Party::Window => "the service window (window_clerk, town_operator, admin)",
                Party::WindowOrHotline => {
                    "the service window, or 12345 for requests from its work orders"
                }
                Party::Assignee => "the request's assigned unit",
            },
        });
    }
    let (from, to) = action.rule();
    if !from.contains(&req.status) {
        return Err(Refusal::state(
            req.status.as_str(),
            action.as_str(),
            from.iter().map(|s| s.as_str()),
        ));
    }
    let condition = |reason: &str| Refusal::Condition {
        status: req.status.as_str(),
        reason: reason.to_owned(),
    };
    let needs_text = |field: &'static str, what: &str| {
        if args.comment.trim().is_empty() {
            Err(Refusal::Argument {
                field,
                description: what.to_owned(),
            })
        } else {
            Ok(())
        }
    };
    let mut next = req.clone();
    if let Some(to) = to {
        next.status = to;
    }
    let f = &mut next.flags;
    match action {
        Action::Assign => {
            let unit = args
                .assignee
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .ok_or(Refusal::Argument {
                    field: "assignee",
                    description: "ASSIGN names the handling unit".into(),
                })?;
            next.assignee = unit.to_owned();
            next.assigned_at = Some(now);
        }
        Action::Sign => next.signed_at = Some(now),
        Action::Reply => {
            needs_text("comment", "REPLY carries the reply to the applicant")?;
            next.reply = args.comment.trim().to_owned();
            next.replied_at = Some(now);
            next.extension_days = None;
            clear(f, &[flag::EXTENSION_REQUESTED]);
        }
        Action::Return => {
            needs_text("comment", "RETURN says why the request is not the unit's")?;
            next.assignee.clear();
            next.assigned_at = None;
            next.signed_at = None;
            next.extension_days = None;
            clear(f, &[flag::EXTENSION_REQUESTED]);
        }
        Action::RequestExtension => {
            if req.extension_days.is_some() {
                return Err(condition("an extension request is already pending"));
            }
            if req.deadline.is_some_and(|d| now > d) {
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
            let days = req
                .extension_days
                .ok_or_else(|| condition("no extension request is pending"))?;
            let base = req.deadline.unwrap_or(now);
            next.deadline = Some(
                cal.add_working_days(base, days.max(0) as u32)
                    .ok_or(Refusal::Calendar)?,
            );
            next.extension_days = None;
            clear(&mut next.flags, &[flag::EXTENSION_REQUESTED]);
        }
        Action::RejectExtension => {
            if req.extension_days.is_none() {
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
        Action::RecordSatisfaction => {
            let s = args.satisfaction.ok_or(Refusal::Argument {
                field: "satisfaction",
                description: "RECORD_SATISFACTION carries the result of the callback".into(),
            })?;
            next.satisfaction = Some(s);
            next.visited_at = Some(now);
            if s == Satisfaction::Dissatisfied {
                next.dissatisfied_count += 1;
                reopen(&mut next, args, now, cal)?;
            } else {
                next.status = Status::Visited;
            }
        }
        Action::Reopen => {
            if req.assignee.is_empty() {
                return Err(condition("the request has no unit to handle it again"));
            }
            reopen(&mut next, args, now, cal)?;
        }
        Action::Archive => next.archived_at = Some(now),
    }
    Ok(next)
}

/// 重办: back to the same unit, which signs for it again, with a fresh deadline.
fn reopen(next: &mut Flow, args: &Args, now: DateTime<Utc>, cal: &Calendar) -> Result<(), Refusal> {
    next.status = Status::Assigned;
    next.reopen_count += 1;
    next.assigned_at = Some(now);
    next.signed_at = None;
    next.replied_at = None;
    next.extension_days = None;
    next.deadline = Some(
        cal.add_working_days(now, args.reopen_days)
            .ok_or(Refusal::Calendar)?,
    );
    clear(
        &mut next.flags,
        &[flag::URGED, flag::SUPERVISED, flag::EXTENSION_REQUESTED],
    );
    set(&mut next.flags, flag::REOPENED);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{NaiveDate, TimeZone};

    use super::*;
    use crate::domain::calendar::OfficeHours;

    fn cal() -> Calendar {
        // 2026-10-01..07 National Day holiday, 2026-10-10 (Saturday) an adjusted working day.
        let mut days = BTreeMap::new();
        for d in 1..=7 {
            days.insert(NaiveDate::from_ymd_opt(2026, 10, d).unwrap(), false);
        }
        days.insert(NaiveDate::from_ymd_opt(2026, 10, 10).unwrap(), true);
        Calendar::new(days, OfficeHours::default())
    }

    /// Local (UTC+8) time.
    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono::FixedOffset::east_opt(8 * 3600)
            .unwrap()
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn flow(status: Status) -> Flow {
        Flow {
            status,
            assignee: if matches!(status, Status::Accepted) {
                String::new()
            } else {
                "500110111-BMFW".into()
            },
            flags: Vec::new(),
            assigned_at: None,
            signed_at: None,
            replied_at: None,
            visited_at: None,
            archived_at: None,
            deadline: Some(local(2026, 9, 30, 17, 30)),
            extension_days: None,
            urge_count: 0,
            reopen_count: 0,
            dissatisfied_count: 0,
            reply: String::new(),
            satisfaction: None,
        }
    }

    fn args() -> Args {
        Args {
            assignee: Some("500110111-BMFW".into()),
            comment: "已办结".into(),
            extension_days: Some(2),
            satisfaction: Some(Satisfaction::Satisfied),
            reopen_days: 3,
        }
    }

    fn now() -> DateTime<Utc> {
        local(2026, 9, 29, 10, 0)
    }

    /// `available` lists exactly the actions `plan` accepts with the arguments a screen asks
    /// for, for every status, actor, extension state and side of the deadline.
    #[test]
    fn available_actions_are_those_the_plan_accepts() {
        let actors = [
            Actor {
                window: true,
                hotline: false,
                assignee: false,
            },
            Actor {
                window: false,
                hotline: true,
                assignee: false,
            },
            Actor {
                window: false,
                hotline: false,
                assignee: true,
            },
            Actor::SYSTEM,
        ];
        for status in Status::ALL {
            for pending in [None, Some(2)] {
                for at in [now(), local(2026, 10, 9, 10, 0)] {
                    let mut r = flow(status);
                    r.extension_days = pending;
                    for actor in actors {
                        let open = available(&r, actor, at);
                        for a in Action::ALL {
                            let ok = plan(&r, a, actor, &args(), at, &cal()).is_ok();
                            assert_eq!(
                                open.contains(&a),
                                ok,
                                "{status:?} {pending:?} {at} {actor:?} {a:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_status_action_pair_follows_the_table() {
        let allowed: &[(Status, Action, Status)] = &[
            (Status::Accepted, Action::Assign, Status::Assigned),
            (Status::Assigned, Action::Sign, Status::Signed),
            (Status::Signed, Action::Reply, Status::Replied),
            (Status::Assigned, Action::Return, Status::Accepted),
            (Status::Signed, Action::Return, Status::Accepted),
            (Status::Assigned, Action::RequestExtension, Status::Assigned),
            (Status::Signed, Action::RequestExtension, Status::Signed),
            (Status::Assigned, Action::Urge, Status::Assigned),
            (Status::Signed, Action::Urge, Status::Signed),
            (Status::Assigned, Action::Supervise, Status::Assigned),
            (Status::Signed, Action::Supervise, Status::Signed),
            (Status::Replied, Action::RecordSatisfaction, Status::Visited),
            (Status::Replied, Action::Reopen, Status::Assigned),
            (Status::Visited, Action::Reopen, Status::Assigned),
            (Status::Visited, Action::Archive, Status::Archived),
        ];
        // Extensions are decided only while one is pending (checked separately below).
        let pending_only = [Action::ApproveExtension, Action::RejectExtension];
        for status in Status::ALL {
            for action in Action::ALL {
                let got = plan(&flow(status), action, Actor::SYSTEM, &args(), now(), &cal());
                let want = allowed
                    .iter()
                    .find(|(s, a, _)| *s == status && *a == action);
                match (want, got) {
                    (Some((_, _, to)), Ok(next)) => {
                        assert_eq!(next.status, *to, "{status:?} {action:?}")
                    }
                    (None, Err(Refusal::State { status: s, .. })) => {
                        assert_eq!(s, status.as_str(), "{action:?}")
                    }
                    (None, Err(Refusal::Condition { .. }))
                        if pending_only.contains(&action)
                            && matches!(status, Status::Assigned | Status::Signed) => {}
                    (w, g) => panic!("{status:?} {action:?}: wanted {w:?}, got {g:?}"),
                }
            }
        }
    }

    #[test]
    fn roles_decide_who_acts() {
        let clerk = Actor {
            window: true,
            ..Actor::default()
        };
        let handler = Actor {
            assignee: true,
            ..Actor::default()
        };
        let hotline = Actor {
            hotline: true,
            ..Actor::default()
        };
        let nobody = Actor::default();
        let cases = [
            (Status::Accepted, Action::Assign, clerk, true),
            (Status::Accepted, Action::Assign, handler, false),
            (Status::Accepted, Action::Assign, hotline, false),
            (Status::Assigned, Action::Sign, handler, true),
            (Status::Assigned, Action::Sign, clerk, false),
            (Status::Signed, Action::Reply, handler, true),
            (Status::Signed, Action::Reply, clerk, false),
            (Status::Signed, Action::Reply, hotline, false),
            (Status::Signed, Action::Urge, hotline, true),
            (Status::Signed, Action::Urge, handler, false),
            (Status::Replied, Action::RecordSatisfaction, hotline, true),
            (Status::Replied, Action::RecordSatisfaction, handler, false),
            (Status::Visited, Action::Archive, hotline, false),
            (Status::Visited, Action::Archive, clerk, true),
            (Status::Replied, Action::Reopen, hotline, false),
            (Status::Signed, Action::Return, nobody, false),
        ];
        for (status, action, actor, ok) in cases {
            let r = plan(&flow(status), action, actor, &args(), now(), &cal());
            assert_eq!(
                !matches!(r, Err(Refusal::Role { .. })),
                ok,
                "{status:?} {action:?} {actor:?}: {r:?}"
            );
        }
    }

    #[test]
    fn dissatisfaction_reopens_to_the_same_unit_with_a_fresh_deadline() {
        let mut a = args();
        a.satisfaction = Some(Satisfaction::Dissatisfied);
        let next = plan(
            &flow(Status::Replied),
            Action::RecordSatisfaction,
            Actor::SYSTEM,
            &a,
            now(),
            &cal(),
        )
        .unwrap();
        assert_eq!(next.status, Status::Assigned);
        assert_eq!(next.assignee, "500110111-BMFW");
        assert_eq!(next.reopen_count, 1);
        assert_eq!(next.dissatisfied_count, 1);
        assert!(next.flags.contains(&flag::REOPENED.to_string()));
        // Tuesday 29 September + 3 working days skips the National Day week: 2026-10-09.
        assert_eq!(next.deadline, Some(local(2026, 10, 9, 17, 30)));
        assert_eq!(next.satisfaction, Some(Satisfaction::Dissatisfied));
    }

    #[test]
    fn extension_asked_before_the_deadline_and_granted_in_working_days() {
        let asked = plan(
            &flow(Status::Signed),
            Action::RequestExtension,
            Actor::SYSTEM,
            &args(),
            now(),
            &cal(),
        )
        .unwrap();
        assert_eq!(asked.extension_days, Some(2));
        let granted = plan(
            &asked,
            Action::ApproveExtension,
            Actor::SYSTEM,
            &args(),
            now(),
            &cal(),
        )
        .unwrap();
        // 30 September + 2 working days: the holiday week is skipped, 9 October is the 2nd.
        assert_eq!(granted.deadline, Some(local(2026, 10, 9, 17, 30)));
        assert_eq!(granted.extension_days, None);
        let late = plan(
            &flow(Status::Signed),
            Action::RequestExtension,
            Actor::SYSTEM,
            &args(),
            local(2026, 10, 8, 9, 0),
            &cal(),
        );
        assert!(matches!(late, Err(Refusal::Condition { .. })), "{late:?}");
        let again = plan(
            &asked,
            Action::RequestExtension,
            Actor::SYSTEM,
            &args(),
            now(),
            &cal(),
        );
        assert!(matches!(again, Err(Refusal::Condition { .. })));
    }

    #[test]
    fn reply_and_return_need_their_text() {
        let mut a = args();
        a.comment = "  ".into();
        for (s, act) in [
            (Status::Signed, Action::Reply),
            (Status::Assigned, Action::Return),
        ] {
            let r = plan(&flow(s), act, Actor::SYSTEM, &a, now(), &cal());
            assert!(
                matches!(
                    r,
                    Err(Refusal::Argument {
                        field: "comment",
                        ..
                    })
                ),
                "{r:?}"
            );
        }
        let returned = plan(
            &flow(Status::Signed),
            Action::Return,
            Actor::SYSTEM,
            &args(),
            now(),
            &cal(),
        )
        .unwrap();
        assert_eq!(returned.assignee, "");
        assert_eq!(returned.signed_at, None);
        // The applicant's deadline keeps running after a return.
        assert_eq!(returned.deadline, flow(Status::Signed).deadline);
    }

    #[test]
    fn deadlines_by_kind_urgency_and_item() {
        let c = cal();
        let l = TimeLimits::default();
        // Friday 2026-09-25 10:00.
        let at = local(2026, 9, 25, 10, 0);
        let d = |k, u, item| deadline(k, u, item, l, at, &c).unwrap();
        assert_eq!(
            d(Kind::Enquiry, Urgency::Normal, None),
            local(2026, 9, 30, 17, 30)
        );
        assert_eq!(
            d(Kind::Help, Urgency::Normal, None),
            local(2026, 9, 30, 17, 30)
        );
        // 13 working days: 28, 29, 30 Sep, then 8, 9, 10 (adjusted Saturday), 12 … 16, 19, 20 Oct.
        assert_eq!(
            d(Kind::Complaint, Urgency::Normal, None),
            local(2026, 10, 20, 17, 30)
        );
        assert_eq!(
            d(Kind::Service, Urgency::Normal, Some(1)),
            local(2026, 9, 28, 17, 30)
        );
        assert_eq!(
            d(Kind::Complaint, Urgency::Urgent, None),
            local(2026, 9, 28, 17, 30)
        );
        assert_eq!(
            d(Kind::Complaint, Urgency::Critical, None),
            local(2026, 9, 25, 17, 30)
        );
        // 特急 on a holiday: the close of the next working day.
        let holiday = local(2026, 10, 3, 10, 0);
        assert_eq!(
            deadline(Kind::Help, Urgency::Critical, None, l, holiday, &c),
            Some(local(2026, 10, 8, 17, 30))
        );
    }
}
