//! Ticket policy, pure: ticket tags, threading by subject tag, whether a new email gets an
//! acknowledgement, the ticket states and what moves them, and the commands staff can give by
//! email. The store gathers the facts inside its transaction and calls these.

use std::time::Duration;

use crate::guard::Refusal;

/// Who wrote an email, for the ticket it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Customer,
    /// A configured staff address, the support address itself, or anything in the Sent folder.
    Staff,
    /// A robot: an auto-reply, a bounce, list mail, or our own acknowledgement coming back (a
    /// provider may file what we send in Sent). It is recorded with its ticket but moves nothing.
    Robot,
}

/// Who wrote an email, from the guard's verdict and whether it sits in the Sent folder.
pub fn role_of(guard: Result<(), Refusal>, in_sent_folder: bool) -> Role {
    match guard {
        Err(Refusal::OwnLoop) => Role::Robot,
        _ if in_sent_folder => Role::Staff,
        Err(Refusal::StaffSender | Refusal::OwnAddress) => Role::Staff,
        Ok(()) | Err(Refusal::NotAddressed | Refusal::InvalidAddress) => Role::Customer,
        Err(_) => Role::Robot,
    }
}

/// Where a ticket stands.
///
/// `new` (no acknowledgement yet) -> `acknowledged` (waiting for staff) -> `answered` (waiting
/// for the customer) -> `closed`; a customer who writes to an answered, snoozed or closed ticket
/// makes it `reopened` (waiting for staff again). Staff can snooze a ticket until a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    New,
    Acknowledged,
    Answered,
    Reopened,
    Snoozed,
    Closed,
}

impl State {
    pub const ALL: [State; 6] = [
        State::New,
        State::Acknowledged,
        State::Answered,
        State::Reopened,
        State::Snoozed,
        State::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Acknowledged => "acknowledged",
            State::Answered => "answered",
            State::Reopened => "reopened",
            State::Snoozed => "snoozed",
            State::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Waiting for staff: the states an SLA clock runs in.
    pub fn waits_for_staff(self) -> bool {
        matches!(self, State::New | State::Acknowledged | State::Reopened)
    }
}

/// What happened to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The customer wrote (again) in the ticket's thread.
    CustomerWrote,
    /// Staff replied in the thread.
    StaffReplied,
    /// The acknowledgement went out.
    AckSent,
    Close,
    Snooze,
    Reopen,
}

/// The state after `event`.
pub fn next_state(state: State, event: Event) -> State {
    use State::*;
    match (event, state) {
        (Event::CustomerWrote, Answered | Snoozed | Closed) => Reopened,
        (Event::CustomerWrote, s) => s,
        // A staff note on a closed ticket does not reopen it.
        (Event::StaffReplied, Closed) => Closed,
        (Event::StaffReplied, _) => Answered,
        (Event::AckSent, New) => Acknowledged,
        (Event::AckSent, s) => s,
        (Event::Close, _) => Closed,
        (Event::Snooze, _) => Snoozed,
        (Event::Reopen, _) => Reopened,
    }
}

/// The follow-up emails a ticket can cause, besides the acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Followup {
    /// No staff reply by the promised time: say honestly that the ticket is still open and when
    /// they will hear back. At most one per waiting period.
    Holding,
    /// Some time after the last staff reply, with no word from the customer: did the answer
    /// solve it? ("How else can I help?")
    Verify,
    /// After closing: one optional question about satisfaction.
    Survey,
}

impl Followup {
    pub const ALL: [Followup; 3] = [Followup::Holding, Followup::Verify, Followup::Survey];

    /// The outbox kind and the template name.
    pub fn as_str(self) -> &'static str {
        match self {
            Followup::Holding => "holding",
            Followup::Verify => "verify",
            Followup::Survey => "survey",
        }
    }

    pub fn parse(s: &str) -> Option<Followup> {
        Followup::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// Which follow-ups are switched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FollowupSwitches {
    pub holding: bool,
    pub verify: bool,
    pub survey: bool,
}

/// What the follow-up policy needs to know about a change to a ticket. The due times are
/// computed by the caller on the business clock.
#[derive(Debug, Clone, Copy)]
pub struct FollowupFacts {
    /// The ticket was just opened (`None`), or this event moved it from one state to another.
    pub change: Option<(Event, State, State)>,
    /// An acknowledgement was queued for this email (a ticket opened by stale mail, say, gets
    /// no holding note either: the customer was never promised anything).
    pub acked: bool,
    /// Some email of the ticket wants to cancel or leave: no follow-ups at all.
    pub cancel_intent: bool,
    /// The email that caused this change answers an automatic loop ([`unanswered_auto`] reached
    /// its limit): no follow-up is queued (each is withheld with the reason `auto_loop`).
    pub auto_loop: bool,
    pub holding_due: i64,
    pub verify_due: i64,
    pub survey_due: i64,
}

/// What to do to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowupAction {
    /// Queue one (unless one of that kind is already pending).
    Queue(Followup, i64),
    /// Cancel the pending ones of that kind, keeping the reason.
    Cancel(Followup, &'static str),
    /// One would be queued, but is not, for this reason.
    Withhold(Followup, &'static str),
}

/// The follow-up policy: what a change to a ticket does to its queued follow-ups.
///
/// - A holding note is queued when a waiting period starts (the ticket opens with an
///   acknowledgement, or the customer reopens it); staff replying, snoozing or closing cancels it.
///   The customer writing again within the same waiting period does not: the note is still true.
///   A reopen while the ticket already waits for staff starts no second wait.
/// - A verify-resolution note is queued by each staff answer (replacing an earlier one), and
///   cancelled when the customer writes, or the ticket is snoozed, closed or reopened.
/// - A survey is queued on closing and cancelled when the ticket reopens, is snoozed, or the
///   customer writes.
/// - A customer who wants to cancel gets none of them ("know when to stop").
/// - An email that keeps an automatic loop going queues none (see [`unanswered_auto`]); the
///   cancels still apply.
pub fn followup_actions(on: FollowupSwitches, f: &FollowupFacts) -> Vec<FollowupAction> {
    let actions = followup_changes(on, f);
    if !f.auto_loop {
        return actions;
    }
    actions
        .into_iter()
        .map(|a| match a {
            FollowupAction::Queue(kind, _) => FollowupAction::Withhold(kind, "auto_loop"),
            other => other,
        })
        .collect()
}

fn followup_changes(on: FollowupSwitches, f: &FollowupFacts) -> Vec<FollowupAction> {
    use Followup::*;
    use FollowupAction::*;
    if f.cancel_intent {
        return Followup::ALL
            .into_iter()
            .map(|k| Cancel(k, "cancel_intent"))
            .collect();
    }
    let mut out = Vec::new();
    let Some((event, from, to)) = f.change else {
        if f.acked && on.holding {
            out.push(Queue(Holding, f.holding_due));
        }
        return out;
    };
    match event {
        Event::StaffReplied if to == State::Answered => {
            out.push(Cancel(Holding, "staff_replied"));
            out.push(Cancel(Verify, "superseded"));
            if on.verify {
                out.push(Queue(Verify, f.verify_due));
            }
        }
        Event::CustomerWrote => {
            out.push(Cancel(Verify, "customer_replied"));
            out.push(Cancel(Survey, "customer_replied"));
            if to == State::Reopened && !from.waits_for_staff() && on.holding {
                out.push(Queue(Holding, f.holding_due));
            }
        }
        Event::Close => {
            out.push(Cancel(Holding, "closed"));
            out.push(Cancel(Verify, "closed"));
            if on.survey && from != State::Closed {
                out.push(Queue(Survey, f.survey_due));
            }
        }
        Event::Snooze => {
            out.push(Cancel(Holding, "snoozed"));
            out.push(Cancel(Verify, "snoozed"));
            out.push(Cancel(Survey, "snoozed"));
        }
        Event::Reopen => {
            out.push(Cancel(Verify, "reopened"));
            out.push(Cancel(Survey, "reopened"));
            // A new wait begins only if the ticket was not already waiting for staff.
            if on.holding && !from.waits_for_staff() {
                out.push(Queue(Holding, f.holding_due));
            }
        }
        Event::StaffReplied | Event::AckSent => {}
    }
    out
}

/// A command staff give in an email: a line `#close`, `#snooze 3d`, `#reopen` or `#team NAME`
/// first in the body (blank lines before it are fine); or `#priority urgent`, `#tone angry`,
/// `#tone -polite` (a correction of the verdict, [`crate::corrections`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Close,
    Snooze(Duration),
    Reopen,
    /// Re-route the ticket to this team (lower-cased as written; whether a `[[team]]` has
    /// that name is checked where the configuration is known: [`reroute`]).
    Team(String),
    Relabel(crate::corrections::Relabel),
}

/// The command at the top of `body`, or `None`. An unknown `#word` or a snooze without a valid
/// duration is not a command (it is then just text), so a hashtag never changes a ticket by
/// accident; the caller logs what it did.
pub fn staff_command(body: &str) -> Option<Command> {
    let first = body.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut words = first.split_whitespace();
    let cmd = words.next()?.to_ascii_lowercase();
    let arg = words.next();
    if words.next().is_some() {
        return None;
    }
    match (cmd.as_str(), arg) {
        ("#close", None) => Some(Command::Close),
        ("#reopen", None) => Some(Command::Reopen),
        ("#snooze", Some(d)) => crate::units::parse_duration(d)
            .ok()
            .filter(|d| !d.is_zero())
            .map(Command::Snooze),
        // Any name: one no team has is refused where the teams are known, and said so.
        ("#team", Some(name)) => Some(Command::Team(name.to_lowercase())),
        ("#priority", Some(p)) => crate::corrections::Relabel::priority(p).map(Command::Relabel),
        ("#tone", Some(t)) => crate::corrections::Relabel::tone(t).map(Command::Relabel),
        _ => None,
    }
}

/// What re-routing a ticket to a team does ([`reroute`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reroute {
    /// The ticket moves to the team.
    Moves,
    /// It is with that team already: nothing changes.
    Already,
    /// No `[[team]]` has that name: nothing changes, and staff are told.
    Unknown,
}

/// Re-routing a ticket that is with team `current` (empty: none) to `wanted`, when the
/// configured teams are `known`.
pub fn reroute<'a>(
    current: &str,
    wanted: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Reroute {
    if !known.into_iter().any(|k| k == wanted) {
        Reroute::Unknown
    } else if current == wanted {
        Reroute::Already
    } else {
        Reroute::Moves
    }
}

/// The history line of a re-route: `billing (was technical): #team from alice@example.com`.
pub fn rerouted_detail(to: &str, was: &str, who: &str) -> String {
    let was = if was.is_empty() { "none" } else { was };
    format!("{to} (was {was}): {who}")
}

/// Why the ticket is with its team after staff re-routed it (the ticket's route reason).
pub fn rerouted_reason(was: &str, who: &str) -> String {
    if was.is_empty() {
        format!("routed by {who}")
    } else {
        format!("re-routed from {was} by {who}")
    }
}

/// Why a re-route to `wanted` was refused: no team has the name (`known`: the names there are).
/// The name as written, quoted with control characters escaped, and cut at 60 characters (it
/// comes from an email: a line of the log and of the history stays one short line).
pub fn unknown_team(wanted: &str, known: &[&str]) -> String {
    let teams = if known.is_empty() {
        "no [[team]] is configured".to_string()
    } else {
        format!("teams: {}", known.join(", "))
    };
    let mut shown: String = wanted.chars().take(60).collect();
    if shown.len() < wanted.len() {
        shown.push('\u{2026}');
    }
    format!("no [[team]] is named {shown:?} ({teams})")
}

/// A survey answer: the first non-empty line is a single number from 1 to 5 (`4`, `4.`,
/// `4/5`, `4 of 5`). Anything more is a message, and reopens the ticket like any other.
pub fn survey_rating(body: &str) -> Option<u8> {
    let first = body.lines().map(str::trim).find(|l| !l.is_empty())?;
    let rest = first
        .trim_end_matches(['.', '!'])
        .trim_end_matches("/5")
        .trim_end_matches(" of 5")
        .trim();
    match rest {
        "1" => Some(1),
        "2" => Some(2),
        "3" => Some(3),
        "4" => Some(4),
        "5" => Some(5),
        _ => None,
    }
}

/// Our own Message-IDs (`triaged.t-1042.ack.7@DOMAIN`) that a report of *failed* delivery
/// returns: a `multipart/report` with a delivery-status part saying `Action: failed`, or a
/// bounce with `X-Failed-Recipients`. Only the returned email's own `Message-ID` header
/// counts: our IDs quoted in its `References` (a staff reply to someone else that bounced)
/// do not. Delayed-delivery notices, read receipts and auto-replies return nothing.
pub fn bounced_ids(email: &crate::parse::Email, raw: &[u8], domain: &str) -> Vec<String> {
    let lower = raw.to_ascii_lowercase();
    let contains = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    let dsn_failed = email
        .part_types
        .iter()
        .any(|t| t == "message/delivery-status")
        && contains(b"action: failed");
    let failed = dsn_failed || email.header("x-failed-recipients").is_some();
    if !failed || domain.is_empty() {
        return Vec::new();
    }
    let pattern = format!(
        r"(?m)^message-id:\s*<?(triaged\.t-[0-9]+\.[a-z]+\.[0-9]+@{})",
        regex::escape(&domain.to_ascii_lowercase())
    );
    let Ok(re) = regex::bytes::Regex::new(&pattern) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for c in re.captures_iter(&lower) {
        let Some(m) = c.get(1) else { continue };
        let id = String::from_utf8_lossy(m.as_bytes()).into_owned();
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// The tag of ticket `id` (`T-1042` for id 42).
pub fn tag_for(id: i64) -> String {
    format!("T-{}", id + 1000)
}

/// `1042`, `t-1042`, `#T-1042` and `[#T-1042]` all mean `T-1042`.
pub fn normal_tag(tag: &str) -> String {
    let t = tag
        .trim()
        .trim_matches(['[', ']', '#'])
        .to_ascii_uppercase();
    if t.starts_with("T-") {
        t
    } else {
        format!("T-{t}")
    }
}

/// The ticket tag in a subject (`[#T-1042]`), if any; the last one wins (replies prepend).
pub fn tag_in_subject(subject: &str) -> Option<String> {
    let mut found = None;
    let mut rest = subject;
    while let Some(i) = rest.find("[#T-") {
        let after = &rest[i + 4..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with(']') {
            found = Some(format!("T-{digits}"));
        }
        rest = after;
    }
    found
}

/// The subject of a reply: one `Re: `, the original subject without our tags or reply prefixes,
/// and the ticket tag. Control characters are replaced so no header can be injected.
pub fn reply_subject(original: &str, tag: &str) -> String {
    let mut s = original.replace(|c: char| c.is_control(), " ");
    loop {
        let t = s.trim_start();
        let lower = t.to_ascii_lowercase();
        let stripped = ["re:", "aw:", "fw:", "fwd:", "sv:"]
            .iter()
            .find_map(|p| lower.starts_with(p).then(|| t[p.len()..].to_string()));
        match stripped {
            Some(rest) => s = rest,
            None => break,
        }
    }
    let tag_text = format!("[#{tag}]");
    let s = s.replace(&tag_text, "");
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        format!("Re: {tag_text}")
    } else {
        format!("Re: {s} {tag_text}")
    }
}

/// One of our automatic emails (an acknowledgement or a follow-up) to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoSent {
    /// When it went out.
    pub sent_at: i64,
    /// When the next email from that address was recorded after it (`None`: none yet, or none
    /// soon after it).
    pub answered_at: Option<i64>,
}

/// What the loop rule needs to know about one address, gathered by the store.
#[derive(Debug, Clone, Copy)]
pub struct LoopFacts<'a> {
    /// Our automatic emails to the address that had gone out when the email being decided
    /// was recorded, the latest first.
    pub sent: &'a [AutoSent],
    /// When staff last wrote in a ticket of those emails (or the one this email joins); 0:
    /// never. Times are in seconds: an email of ours sent in that second counts as before it.
    pub last_staff_at: i64,
    /// When the email being decided was recorded.
    pub now: i64,
    /// An answer this soon after our email is an automatic one.
    pub answer_within: i64,
}

/// How many of our automatic emails to an address in a row, the latest first, the address
/// answered within `answer_within` — the email being decided counting as the answer to the
/// latest — with no staff message since. 0 when this email does not itself answer our latest
/// automatic email that fast.
///
/// A naive auto-responder that carries no auto-reply header (so the guard lets it through)
/// and answers every acknowledgement with a new ticket within seconds makes this grow by one
/// per round; a person rarely does: they write again hours later, or write back in the same
/// ticket (which gets no acknowledgement anyway). Staff writing in between start it over.
pub fn unanswered_auto(f: &LoopFacts<'_>) -> u32 {
    let quick = |sent: i64, answered: i64| answered >= sent && answered - sent <= f.answer_within;
    let Some(latest) = f.sent.first() else {
        return 0;
    };
    if latest.sent_at <= f.last_staff_at || !quick(latest.sent_at, f.now) {
        return 0;
    }
    let older = f
        .sent
        .iter()
        .skip(1)
        .take_while(|s| {
            s.sent_at > f.last_staff_at && s.answered_at.is_some_and(|a| quick(s.sent_at, a))
        })
        .count();
    u32::try_from(older).map_or(u32::MAX, |n| n.saturating_add(1))
}

/// The loop rule: `rounds` automatic emails answered at once in a row reach the limit (0: no
/// limit).
pub fn auto_loop(rounds: u32, max: u32) -> bool {
    max > 0 && rounds >= max
}

/// Facts the ack decision needs, gathered by the store inside its transaction.
#[derive(Debug, Clone, Copy)]
pub struct AckFacts {
    pub acks_enabled: bool,
    /// The guard's verdict on the email.
    pub guard: Result<(), Refusal>,
    /// The email joined an existing ticket.
    pub joins_ticket: bool,
    /// Seconds between arrival and now.
    pub age_secs: i64,
    pub max_age_secs: i64,
    /// Acknowledgements already queued to this recipient within the per-sender window.
    pub recent_to_sender: u32,
    pub per_sender_limit: u32,
    /// Acknowledgements queued or held in the last minute, all recipients.
    pub last_minute: u32,
    /// Above this many a minute further acknowledgements are held for staff (0: no limit).
    pub circuit_breaker_per_minute: u32,
    /// The email carries the tag of a ticket we wrote to within the loop window (in its subject,
    /// or quoted from our email in its text), from an address that is not the ticket's customer
    /// (so it joined no ticket): a robot answering our mail from a new address, or someone else
    /// joining a conversation just begun.
    pub answers_our_mail_elsewhere: bool,
    /// Earlier acknowledgements (queued or held) within the loop window to emails of the same
    /// [`loop_pattern`] as this one.
    pub same_pattern: u32,
    /// At this many earlier ones, acknowledgements of the pattern are held (0: no limit).
    pub loop_burst: u32,
    /// Our automatic emails to this sender in a row that it answered at once, this email
    /// included, with no staff message since ([`unanswered_auto`]).
    pub unanswered_auto: u32,
    /// At this many, no acknowledgement (0: no limit).
    pub max_unanswered_auto: u32,
}

/// Why an email got no acknowledgement, that one is queued, or that one waits for staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckDecision {
    Queue,
    Skip(&'static str),
    /// Looks like a mail loop (or more than the configured ceiling): the acknowledgement is
    /// written but held until staff release or drop it (`triaged queue release|drop`).
    Hold(&'static str),
}

impl AckDecision {
    pub fn code(self) -> &'static str {
        match self {
            AckDecision::Queue => "queued",
            AckDecision::Skip(code) | AckDecision::Hold(code) => code,
        }
    }
}

/// One acknowledgement per new conversation, and only when every safety check passes: the
/// guard, a new ticket, acknowledgements on, fresh mail, the per-sender limit, no automatic
/// loop with this sender ([`unanswered_auto`]). What only looks like a loop is held for staff,
/// not refused: an answer to our recent mail from an address we did not write to, a burst of
/// one [`loop_pattern`], more than the configured ceiling a minute. A surge of different people
/// writing in their own words is none of these.
pub fn ack_decision(f: &AckFacts) -> AckDecision {
    if let Err(refusal) = f.guard {
        return AckDecision::Skip(refusal.code());
    }
    if f.joins_ticket {
        return AckDecision::Skip("reply_in_ticket");
    }
    if !f.acks_enabled {
        return AckDecision::Skip("acks_disabled");
    }
    if f.age_secs > f.max_age_secs {
        return AckDecision::Skip("stale");
    }
    if f.recent_to_sender >= f.per_sender_limit {
        return AckDecision::Skip("sender_limit");
    }
    if auto_loop(f.unanswered_auto, f.max_unanswered_auto) {
        return AckDecision::Skip("auto_loop");
    }
    if f.answers_our_mail_elsewhere {
        return AckDecision::Hold("answers_our_mail");
    }
    if f.loop_burst > 0 && f.same_pattern >= f.loop_burst {
        return AckDecision::Hold("loop_burst");
    }
    if f.circuit_breaker_per_minute > 0 && f.last_minute >= f.circuit_breaker_per_minute {
        return AckDecision::Hold("circuit_open");
    }
    AckDecision::Queue
}

/// What repeats when a robot writes from ever new addresses: the sender's domain, the subject
/// without reply prefixes and our ticket tags, and the start of the text without quoted lines,
/// compared as lower-case words (numbers kept: "order 17" and "order 18" are two people). Two
/// people rarely write the same words; a robot always does. `None` when there is too little to
/// compare (no domain, or hardly any words), so a surge of short or empty emails is never taken
/// for a loop.
pub fn loop_pattern(sender: &str, subject: &str, body: &str) -> Option<String> {
    let domain = sender.rsplit_once('@')?.1.to_ascii_lowercase();
    if domain.is_empty() {
        return None;
    }
    let subject = loop_words(&without_tags(strip_reply_prefixes(subject)), 200);
    let unquoted: String = body
        .lines()
        .filter(|l| !l.trim_start().starts_with('>'))
        .take(40)
        .collect::<Vec<_>>()
        .join("\n");
    let text = loop_words(&unquoted, 300);
    if subject.len() + text.len() < 8 {
        return None;
    }
    // A digest keeps the key short and the index small; equality is all that is asked of it.
    let mut h = Fnv64::default();
    for part in [subject.as_str(), "\u{1f}", text.as_str()] {
        h.write(part.as_bytes());
    }
    Some(format!("{domain} {:016x}", h.0))
}

/// `subject [#T-1042]` -> `subject ` (our ticket tags: a robot quoting our subject repeats
/// everything but the tag).
fn without_tags(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut rest = subject;
    while let Some(i) = rest.find("[#T-") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 4..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(']') {
            rest = &after[digits + 1..];
        } else {
            out.push_str("[#T-");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Lower-case words of `s` (letters and digits; punctuation left out), one space between
/// words, at most `max` bytes.
fn loop_words(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut gap = false;
    for c in s.chars() {
        if out.len() >= max {
            break;
        }
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

/// The subject is a reply's or a forward's (`Re:`, `AW:`, `Fwd:`, `Auto:` ...): what an
/// auto-responder answering our email writes, and a new customer rarely does.
pub fn is_reply_subject(subject: &str) -> bool {
    strip_reply_prefixes(subject).len() != subject.trim_start().len()
}

/// `Re: AW: Fwd: subject` -> `subject` (prefixes of any case, with or without a space).
fn strip_reply_prefixes(mut s: &str) -> &str {
    loop {
        let t = s.trim_start();
        let lower = t.get(..5).unwrap_or(t).to_ascii_lowercase();
        let cut = [
            "re:", "aw:", "sv:", "fw:", "fwd:", "wg:", "antw:", "tr:", "auto:",
        ]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map(|p| p.len());
        match cut {
            Some(n) => s = &t[n..],
            None => return t,
        }
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms (the digest is stored).
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

// What one email does to its ticket, and the priority order (pure). The store reads the
// ticket an email joins, calls these, and writes what they return.

/// A priority as a rank, 0 (urgent) to 3 (low): the order in which the outbox sends and the
/// ticket lists list. (The store's ticket-list index spells the same order in SQL.)
pub fn rank(p: crate::score::Priority) -> i64 {
    use crate::score::Priority;
    match p {
        Priority::Urgent => 0,
        Priority::High => 1,
        Priority::Normal => 2,
        Priority::Low => 3,
    }
}

/// The priority of rank `rank` ([`rank`]'s inverse); `None` for a number that is no rank.
pub fn priority_at(rank: i64) -> Option<crate::score::Priority> {
    crate::score::Priority::ALL
        .into_iter()
        .find(|p| self::rank(*p) == rank)
}

/// The ticket's priority after its customer writes again in an email of priority `written`:
/// a customer who writes again, angrier, raises it; a calmer email never lowers it (the
/// problem is as urgent as it was).
pub fn escalated(
    current: crate::score::Priority,
    written: crate::score::Priority,
) -> crate::score::Priority {
    if rank(written) < rank(current) {
        written
    } else {
        current
    }
}

/// The rating a customer's email gives when it answers the survey: a lone number
/// ([`survey_rating`]) in a ticket that is closed and whose survey went out. Such an email is
/// the survey's answer, not a reopening; anything else is a message like any other.
pub fn survey_answer(body: &str, state: State, survey_sent: bool) -> Option<u8> {
    if state != State::Closed || !survey_sent {
        return None;
    }
    survey_rating(body)
}

/// The ticket an email joins, as it stands before the email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    pub state: State,
    pub priority: crate::score::Priority,
    /// Its satisfaction survey went out.
    pub survey_sent: bool,
}

/// What the store knows of an email when it decides what the email does to a ticket.
#[derive(Debug, Clone, Copy)]
pub struct EmailFacts<'a> {
    pub role: Role,
    /// The ticket it joins (by thread, by tag, or the one a bounce returns), if any.
    pub joined: Option<Joined>,
    /// The guard let it through: it may open a ticket.
    pub may_open: bool,
    /// The verdict's priority.
    pub priority: crate::score::Priority,
    /// What it says (a survey answer is a lone number).
    pub body: &'a str,
    /// It is addressed (To or Cc) to the customer of the ticket it joins: a staff email that
    /// is not is a note among staff.
    pub to_customer: bool,
}

/// How the ticket row changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketWrite {
    /// No ticket: it joins none and may not open one.
    None,
    /// It opens a ticket, `new`, at this priority.
    Open(crate::score::Priority),
    /// It joins the ticket and leaves the row as it is (a robot's email, a survey answer).
    Join,
    /// The customer wrote again: the ticket's priority after it ([`escalated`]).
    CustomerWrote(crate::score::Priority),
    /// Staff wrote: their last word, and the first response if this is it.
    StaffWrote,
}

/// The event an email causes on its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailEvent {
    /// It opened the ticket: logged as `opened`; the follow-ups of a new ticket apply.
    Opened,
    /// The ticket moves by this event ([`next_state`]).
    Moves(Event),
}

/// What an email does to the ticket it joins or opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketEffect {
    pub write: TicketWrite,
    /// `None`: the ticket does not move (a robot's email, a survey answer, no ticket).
    pub event: Option<EmailEvent>,
    /// The survey answer it gives ([`survey_answer`]).
    pub rating: Option<u8>,
    /// The command staff give in it ([`staff_command`]), carried out after the event.
    pub command: Option<Command>,
}

/// What an email does to its ticket. A customer's email joins the ticket and raises its
/// priority, or opens a new one; a lone number answering the survey of a closed ticket is
/// noted and moves nothing; staff answer (an email of theirs in the Sent folder that joins
/// nothing opens a ticket it answers at once) and may give a command; a robot's email (an
/// auto-reply, a bounce) is kept with its ticket and moves nothing. A `#team` re-route that
/// staff send among themselves (not to the customer) answers no one: the ticket goes on
/// waiting, with its new team.
pub fn email_effect(f: &EmailFacts<'_>) -> TicketEffect {
    let rating = match (f.role, f.joined) {
        (Role::Customer, Some(j)) => survey_answer(f.body, j.state, j.survey_sent),
        _ => None,
    };
    let staff_note = f.role == Role::Staff
        && !f.to_customer
        && matches!(staff_command(f.body), Some(Command::Team(_)));
    let write = match (f.joined, f.role) {
        (Some(_), _) if rating.is_some() || staff_note => TicketWrite::Join,
        (Some(j), Role::Customer) => TicketWrite::CustomerWrote(escalated(j.priority, f.priority)),
        (Some(_), Role::Robot) => TicketWrite::Join,
        (Some(_), Role::Staff) => TicketWrite::StaffWrote,
        (None, _) if f.may_open => TicketWrite::Open(f.priority),
        (None, _) => TicketWrite::None,
    };
    let event = match (write, f.role) {
        (TicketWrite::None, _) | (_, Role::Robot) => None,
        (TicketWrite::Join, Role::Staff) => None,
        (_, Role::Customer) if rating.is_some() => None,
        (TicketWrite::Open(_), Role::Customer) => Some(EmailEvent::Opened),
        (_, Role::Customer) => Some(EmailEvent::Moves(Event::CustomerWrote)),
        (_, Role::Staff) => Some(EmailEvent::Moves(Event::StaffReplied)),
    };
    let command = match (write, f.role) {
        (TicketWrite::None, _) => None,
        (_, Role::Staff) => staff_command(f.body),
        _ => None,
    };
    TicketEffect {
        write,
        event,
        rating,
        command,
    }
}

/// When the waiting an email causes began, the start of the follow-ups' due times: a
/// customer's email from when it arrived (no later than now, should the server's arrival
/// stamp run ahead of our clock), anything else from now.
pub fn waiting_since(role: Role, received_at: i64, now: i64) -> i64 {
    match role {
        Role::Customer => received_at.min(now),
        Role::Staff | Role::Robot => now,
    }
}

/// The event and the end of the snooze (0: none) of a staff command given at `now`; `None`
/// for a command that moves no state (`#team`: [`reroute`]; a correction).
pub fn command_event(cmd: &Command, now: i64) -> Option<(Event, i64)> {
    match cmd {
        Command::Close => Some((Event::Close, 0)),
        Command::Reopen => Some((Event::Reopen, 0)),
        Command::Snooze(d) => Some((
            Event::Snooze,
            now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )),
        Command::Team(_) | Command::Relabel(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survey_answers_are_lone_numbers() {
        for (body, want) in [
            ("4", Some(4)),
            ("\n  5.\n\n-- \nAda", Some(5)),
            ("3/5", Some(3)),
            ("1 of 5\nsorry", Some(1)),
            ("0", None),
            ("6", None),
            ("4 things are still wrong", None),
            ("Thanks!", None),
            ("", None),
        ] {
            assert_eq!(survey_rating(body), want, "{body:?}");
        }
    }

    fn parsed(raw: &str) -> crate::parse::Email {
        crate::parse::parse(
            raw.as_bytes(),
            &crate::parse::ParseLimits { max_size: 1 << 20 },
        )
        .expect("parses")
    }

    const OURS: &str = "triaged.t-1042.ack.7@support.example.com";

    fn dsn(action: &str) -> String {
        format!(
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\nTo: support@example.com\r\n\
             Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example.com>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n\
             Final-Recipient: rfc822; typo@customer.example\r\nAction: {action}\r\nStatus: 5.1.1\r\n\
             --b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@example.com\r\n\
             To: typo@customer.example\r\nMessage-ID: <{OURS}>\r\nSubject: Re: Help [#T-1042]\r\n\
             --b--\r\n"
        )
    }

    #[test]
    fn failed_delivery_reports_return_our_ids_and_nothing_else_does() {
        let failed = dsn("failed");
        assert_eq!(
            bounced_ids(&parsed(&failed), failed.as_bytes(), "support.example.com"),
            [OURS]
        );
        // Another daemon's domain, a delay notice: nothing.
        assert!(bounced_ids(&parsed(&failed), failed.as_bytes(), "other.example").is_empty());
        let delayed = dsn("delayed");
        assert!(
            bounced_ids(&parsed(&delayed), delayed.as_bytes(), "support.example.com").is_empty()
        );
        // An out-of-office reply quotes our ID in In-Reply-To: not a bounce.
        let ooo = format!(
            "From: ada@customer.example\r\nTo: support@example.com\r\nSubject: Out of office\r\n\
             Auto-Submitted: auto-replied\r\nIn-Reply-To: <{OURS}>\r\nMessage-ID: <o1@c>\r\n\r\nAway.\r\n"
        );
        assert!(bounced_ids(&parsed(&ooo), ooo.as_bytes(), "support.example.com").is_empty());
        // A bounce of some other email that merely refers to ours: not our customer's address.
        let other = failed.replace(
            &format!("Message-ID: <{OURS}>"),
            &format!("Message-ID: <staff-1@example.com>\r\nReferences: <{OURS}>"),
        );
        assert!(bounced_ids(&parsed(&other), other.as_bytes(), "support.example.com").is_empty());
        // A plain-text bounce with X-Failed-Recipients (Exim) counts.
        let exim = format!(
            "From: Mail Delivery System <Mailer-Daemon@mx.example.com>\r\nTo: support@example.com\r\n\
             Subject: Mail delivery failed\r\nX-Failed-Recipients: typo@customer.example\r\n\
             Message-ID: <e1@mx>\r\n\r\nA message could not be delivered.\r\n\r\n\
             ------ This is a copy of the message's headers. ------\r\n\r\nMessage-ID: <{OURS}>\r\n"
        );
        assert_eq!(
            bounced_ids(&parsed(&exim), exim.as_bytes(), "support.example.com"),
            [OURS]
        );
    }

    #[test]
    fn state_transitions() {
        use Event::*;
        use State::*;
        let cases = [
            (New, AckSent, Acknowledged),
            (Acknowledged, AckSent, Acknowledged),
            (New, CustomerWrote, New),
            (Acknowledged, CustomerWrote, Acknowledged),
            (Acknowledged, StaffReplied, Answered),
            (New, StaffReplied, Answered),
            (Answered, CustomerWrote, Reopened),
            (Reopened, StaffReplied, Answered),
            (Snoozed, CustomerWrote, Reopened),
            (Closed, CustomerWrote, Reopened),
            (Closed, StaffReplied, Closed),
            (Answered, Close, Closed),
            (Answered, Snooze, Snoozed),
            (Closed, Reopen, Reopened),
            (Answered, AckSent, Answered),
        ];
        for (from, event, to) in cases {
            assert_eq!(next_state(from, event), to, "{from:?} + {event:?}");
        }
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert!(Reopened.waits_for_staff() && !Answered.waits_for_staff());
    }

    #[test]
    fn followup_policy() {
        use Followup::*;
        use FollowupAction::*;
        let all = FollowupSwitches {
            holding: true,
            verify: true,
            survey: true,
        };
        let facts = |change, acked, cancel_intent| FollowupFacts {
            change,
            acked,
            cancel_intent,
            auto_loop: false,
            holding_due: 10,
            verify_due: 20,
            survey_due: 30,
        };
        let on = |e, from, to| facts(Some((e, from, to)), false, false);
        let cases: Vec<(&str, FollowupFacts, Vec<FollowupAction>)> = vec![
            (
                "opened with ack",
                facts(None, true, false),
                vec![Queue(Holding, 10)],
            ),
            ("opened without ack", facts(None, false, false), vec![]),
            (
                "staff answer",
                on(Event::StaffReplied, State::Acknowledged, State::Answered),
                vec![
                    Cancel(Holding, "staff_replied"),
                    Cancel(Verify, "superseded"),
                    Queue(Verify, 20),
                ],
            ),
            (
                "staff note on a closed ticket",
                on(Event::StaffReplied, State::Closed, State::Closed),
                vec![],
            ),
            (
                "customer writes while waiting",
                on(
                    Event::CustomerWrote,
                    State::Acknowledged,
                    State::Acknowledged,
                ),
                vec![
                    Cancel(Verify, "customer_replied"),
                    Cancel(Survey, "customer_replied"),
                ],
            ),
            (
                "customer reopens",
                on(Event::CustomerWrote, State::Answered, State::Reopened),
                vec![
                    Cancel(Verify, "customer_replied"),
                    Cancel(Survey, "customer_replied"),
                    Queue(Holding, 10),
                ],
            ),
            (
                "customer writes again while reopened",
                on(Event::CustomerWrote, State::Reopened, State::Reopened),
                vec![
                    Cancel(Verify, "customer_replied"),
                    Cancel(Survey, "customer_replied"),
                ],
            ),
            (
                "close",
                on(Event::Close, State::Answered, State::Closed),
                vec![
                    Cancel(Holding, "closed"),
                    Cancel(Verify, "closed"),
                    Queue(Survey, 30),
                ],
            ),
            (
                "snooze",
                on(Event::Snooze, State::Acknowledged, State::Snoozed),
                vec![
                    Cancel(Holding, "snoozed"),
                    Cancel(Verify, "snoozed"),
                    Cancel(Survey, "snoozed"),
                ],
            ),
            (
                "staff reopen while still waiting: no second holding note",
                on(Event::Reopen, State::Acknowledged, State::Reopened),
                vec![Cancel(Verify, "reopened"), Cancel(Survey, "reopened")],
            ),
            (
                "reopen",
                on(Event::Reopen, State::Closed, State::Reopened),
                vec![
                    Cancel(Verify, "reopened"),
                    Cancel(Survey, "reopened"),
                    Queue(Holding, 10),
                ],
            ),
            (
                "cancel intent",
                facts(
                    Some((Event::CustomerWrote, State::Answered, State::Reopened)),
                    true,
                    true,
                ),
                vec![
                    Cancel(Holding, "cancel_intent"),
                    Cancel(Verify, "cancel_intent"),
                    Cancel(Survey, "cancel_intent"),
                ],
            ),
            (
                "ack sent",
                on(Event::AckSent, State::New, State::Acknowledged),
                vec![],
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(followup_actions(all, &f), want, "{name}");
        }
        // Switched off: cancels still happen, nothing is queued.
        let off = FollowupSwitches::default();
        let acts = followup_actions(
            off,
            &on(Event::StaffReplied, State::Acknowledged, State::Answered),
        );
        assert!(acts.iter().all(|a| matches!(a, Cancel(..))), "{acts:?}");
        assert!(followup_actions(off, &facts(None, true, false)).is_empty());
        // An email that keeps an automatic loop going: what would be queued is withheld.
        let looping = FollowupFacts {
            auto_loop: true,
            ..on(Event::CustomerWrote, State::Answered, State::Reopened)
        };
        assert_eq!(
            followup_actions(all, &looping),
            vec![
                Cancel(Verify, "customer_replied"),
                Cancel(Survey, "customer_replied"),
                Withhold(Holding, "auto_loop"),
            ]
        );
    }

    #[test]
    fn automatic_loops_are_counted_until_a_human_writes() {
        const MIN: i64 = 60;
        const H: i64 = 3600;
        let sent = |sent_at: i64, answered_at: Option<i64>| AutoSent {
            sent_at,
            answered_at,
        };
        // Our emails, the latest first; the email being decided is recorded at `now`.
        let cases: Vec<(&str, Vec<AutoSent>, i64, i64, u32)> = vec![
            ("nothing sent yet", vec![], 0, 100, 0),
            (
                "answers our ack within a minute",
                vec![sent(100, None)],
                0,
                160,
                1,
            ),
            (
                "a robot, third round",
                vec![sent(1000, None), sent(500, Some(530)), sent(100, Some(110))],
                0,
                1020,
                3,
            ),
            (
                "a robot answering holding notes days later, each at once",
                vec![
                    sent(90 * H, None),
                    sent(20 * H, Some(20 * H + 5)),
                    sent(10 * H, Some(10 * H + 5)),
                ],
                0,
                90 * H + 5,
                3,
            ),
            (
                "a customer with three questions in a day, hours apart",
                vec![sent(5 * H, None), sent(H, Some(5 * H - 10))],
                0,
                9 * H,
                0,
            ),
            (
                "the second question comes at once, the first took hours",
                vec![sent(5 * H, None), sent(H, Some(5 * H - 10))],
                0,
                5 * H + 2 * MIN,
                1,
            ),
            (
                "a slow answer in between ends the run",
                vec![
                    sent(1000, None),
                    sent(500, Some(500 + 16 * MIN)),
                    sent(100, Some(110)),
                ],
                0,
                1010,
                1,
            ),
            (
                "staff wrote after the first: counting starts after it",
                vec![sent(1000, None), sent(500, Some(510)), sent(100, Some(110))],
                300,
                1010,
                2,
            ),
            (
                "staff wrote after our latest",
                vec![sent(1000, None), sent(500, Some(510))],
                1005,
                1010,
                0,
            ),
            (
                "the same address writes again weeks later",
                vec![sent(1000, Some(1005)), sent(500, Some(510))],
                0,
                1000 + 21 * 86_400,
                0,
            ),
            (
                "exactly at the window's edge",
                vec![sent(1000, None), sent(100, Some(100 + 15 * MIN))],
                0,
                1000 + 15 * MIN,
                2,
            ),
        ];
        for (name, sent, last_staff_at, now, want) in cases {
            let f = LoopFacts {
                sent: &sent,
                last_staff_at,
                now,
                answer_within: 15 * MIN,
            };
            assert_eq!(unanswered_auto(&f), want, "{name}");
        }
        assert!(auto_loop(3, 3) && auto_loop(4, 3));
        assert!(!auto_loop(2, 3) && !auto_loop(100, 0));
    }

    #[test]
    fn roles() {
        let cases = [
            (Ok(()), false, Role::Customer),
            (Err(Refusal::NotAddressed), false, Role::Customer),
            (Err(Refusal::InvalidAddress), false, Role::Customer),
            (Err(Refusal::StaffSender), false, Role::Staff),
            (Err(Refusal::OwnAddress), false, Role::Staff),
            (Err(Refusal::AutoSubmitted), false, Role::Robot),
            (Err(Refusal::NullSender), false, Role::Robot),
            (Ok(()), true, Role::Staff),
            (Err(Refusal::AutoSubmitted), true, Role::Staff),
            (Err(Refusal::OwnLoop), true, Role::Robot),
            (Err(Refusal::OwnLoop), false, Role::Robot),
        ];
        for (guard, sent, want) in cases {
            assert_eq!(role_of(guard, sent), want, "{guard:?} sent={sent}");
        }
    }

    #[test]
    fn staff_commands_are_the_first_line_only() {
        let cases = [
            ("#close\nThanks, all sorted.", Some(Command::Close)),
            ("\n\n  #CLOSE  \n", Some(Command::Close)),
            (
                "#snooze 3d\nwaiting for the vendor",
                Some(Command::Snooze(Duration::from_secs(3 * 86_400))),
            ),
            (
                "#snooze 1h30m",
                Some(Command::Snooze(Duration::from_secs(5400))),
            ),
            ("#reopen", Some(Command::Reopen)),
            ("#team billing", Some(Command::Team("billing".into()))),
            (
                "  #Team Billing\nShe asks about the invoice.",
                Some(Command::Team("billing".into())),
            ),
            // A name no team has is still a command: refused and said so where the teams
            // are known, never silently text.
            ("#team billng", Some(Command::Team("billng".into()))),
            ("#team", None),
            ("#team billing please", None),
            ("#snooze", None),
            ("#snooze soon", None),
            ("#snooze 0s", None),
            ("#close now please", None),
            ("#urgent fix this", None),
            ("Hi,\n#close", None),
            ("", None),
        ];
        for (body, want) in cases {
            assert_eq!(staff_command(body), want, "{body:?}");
        }
    }

    #[test]
    fn staff_correct_a_verdict_by_email_command() {
        use crate::corrections::Relabel;
        use crate::score::Priority;
        let tone = |t: &str, present| {
            Some(Command::Relabel(Relabel::Tone {
                tone: t.into(),
                present,
            }))
        };
        for (body, want) in [
            (
                "#priority urgent\nThe customer's payroll is stuck.",
                Some(Command::Relabel(Relabel::Priority(Priority::Urgent))),
            ),
            (
                "#PRIORITY Low",
                Some(Command::Relabel(Relabel::Priority(Priority::Low))),
            ),
            ("#tone angry", tone("angry", true)),
            ("#tone -polite", tone("polite", false)),
            ("#priority", None),
            ("#priority asap", None),
            ("#priority urgent please", None),
            ("#tone very angry", None),
        ] {
            assert_eq!(staff_command(body), want, "{body:?}");
        }
        assert_eq!(
            command_event(&Command::Relabel(Relabel::Priority(Priority::High)), 0),
            None,
            "a correction moves no ticket"
        );
    }

    #[test]
    fn tags_in_subjects() {
        let cases = [
            ("Re: help [#T-1042]", Some("T-1042")),
            ("[#T-1] Undeliverable: [#T-1042] x", Some("T-1042")),
            ("no tag", None),
            ("[#T-] broken [#T-12x]", None),
            ("[#T-7]", Some("T-7")),
        ];
        for (s, want) in cases {
            assert_eq!(tag_in_subject(s).as_deref(), want, "{s}");
        }
        assert_eq!(tag_for(42), "T-1042");
        for t in ["1042", "t-1042", "#T-1042", "[#T-1042]", " T-1042 "] {
            assert_eq!(normal_tag(t), "T-1042", "{t}");
        }
    }

    #[test]
    fn reply_subjects() {
        let cases = [
            ("Help", "Re: Help [#T-1001]"),
            ("Re: RE: Fwd: Help", "Re: Help [#T-1001]"),
            ("Re: Help [#T-1001]", "Re: Help [#T-1001]"),
            ("Evil\r\nBcc: x@y", "Re: Evil Bcc: x@y [#T-1001]"),
            ("", "Re: [#T-1001]"),
        ];
        for (s, want) in cases {
            assert_eq!(reply_subject(s, "T-1001"), want, "{s:?}");
        }
    }

    fn facts() -> AckFacts {
        AckFacts {
            acks_enabled: true,
            guard: Ok(()),
            joins_ticket: false,
            age_secs: 5,
            max_age_secs: 172_800,
            recent_to_sender: 0,
            per_sender_limit: 3,
            last_minute: 0,
            circuit_breaker_per_minute: 0,
            answers_our_mail_elsewhere: false,
            same_pattern: 0,
            loop_burst: 4,
            unanswered_auto: 0,
            max_unanswered_auto: 3,
        }
    }

    #[test]
    fn loop_patterns_match_a_robot_not_people() {
        let robot = |n: u32| {
            loop_pattern(
                &format!("auto-{n}@responder.example"),
                &format!("Re: Re: Your message [#T-{}]", 1000 + n),
                &format!(
                    "Thank you for writing; we will be in touch.\n> We received your message [#T-{n}]"
                ),
            )
        };
        assert!(robot(1).is_some());
        assert_eq!(
            robot(1),
            robot(2),
            "addresses, tags and quotes differ; the words do not"
        );
        // The same words from another domain, or other words from the same one, are another
        // pattern; numbers tell people apart.
        assert_ne!(
            robot(1),
            loop_pattern(
                "a@other.example",
                "Your message",
                "Thank you for writing; we will be in touch."
            )
        );
        let order = |n: u32| {
            loop_pattern(
                &format!("c{n}@shop.example"),
                &format!("Order {n} has not arrived"),
                "Please help.",
            )
        };
        assert_ne!(order(17), order(18));
        let person = |who: &str, body: &str| loop_pattern(who, "Site down", body);
        assert_ne!(
            person(
                "ann@gmail.com",
                "Your site has been down since 9, I cannot log in."
            ),
            person("bob@gmail.com", "Is the site down? Nothing loads for me."),
            "people on one provider writing about one outage"
        );
        // Too little to compare: never a pattern.
        assert_eq!(loop_pattern("c@gmail.com", "", "help"), None);
        assert_eq!(loop_pattern("c@gmail.com", "Re:", ""), None);
        assert_eq!(
            loop_pattern("no-domain", "Site down", "nothing loads"),
            None
        );
        assert_eq!(without_tags("a [#T-12] b [#T-x]"), "a  b [#T-x]");
        assert_eq!(strip_reply_prefixes("RE:Fwd: AW:  x"), "x");
        assert!(is_reply_subject(" Re: x") && is_reply_subject("AW:x"));
        assert!(!is_reply_subject("Invoice address") && !is_reply_subject("Regarding my order"));
        assert_eq!(
            loop_words("Ticket #42: it's BROKEN!", 100),
            "ticket 42 it s broken"
        );
    }

    #[test]
    fn ack_decisions() {
        let cases: Vec<(&str, AckFacts, &str)> = vec![
            ("fresh new email", facts(), "queued"),
            (
                "reply inside ticket",
                AckFacts {
                    joins_ticket: true,
                    ..facts()
                },
                "reply_in_ticket",
            ),
            (
                "disabled",
                AckFacts {
                    acks_enabled: false,
                    ..facts()
                },
                "acks_disabled",
            ),
            (
                "stale",
                AckFacts {
                    age_secs: 172_801,
                    ..facts()
                },
                "stale",
            ),
            (
                "exactly max age",
                AckFacts {
                    age_secs: 172_800,
                    ..facts()
                },
                "queued",
            ),
            (
                "sender limit",
                AckFacts {
                    recent_to_sender: 3,
                    ..facts()
                },
                "sender_limit",
            ),
            (
                "under sender limit",
                AckFacts {
                    recent_to_sender: 2,
                    ..facts()
                },
                "queued",
            ),
            (
                "ceiling holds",
                AckFacts {
                    last_minute: 60,
                    circuit_breaker_per_minute: 60,
                    ..facts()
                },
                "circuit_open",
            ),
            (
                "no ceiling: a surge is acknowledged",
                AckFacts {
                    last_minute: 5000,
                    circuit_breaker_per_minute: 0,
                    ..facts()
                },
                "queued",
            ),
            (
                "a burst of one pattern holds",
                AckFacts {
                    same_pattern: 4,
                    ..facts()
                },
                "loop_burst",
            ),
            (
                "under the burst",
                AckFacts {
                    same_pattern: 3,
                    ..facts()
                },
                "queued",
            ),
            (
                "answers our mail to someone else",
                AckFacts {
                    answers_our_mail_elsewhere: true,
                    same_pattern: 9,
                    ..facts()
                },
                "answers_our_mail",
            ),
            (
                "answers held before the burst",
                AckFacts {
                    answers_our_mail_elsewhere: true,
                    ..facts()
                },
                "answers_our_mail",
            ),
            (
                "automatic loop",
                AckFacts {
                    unanswered_auto: 3,
                    ..facts()
                },
                "auto_loop",
            ),
            (
                "two rounds",
                AckFacts {
                    unanswered_auto: 2,
                    ..facts()
                },
                "queued",
            ),
            (
                "loop rule off",
                AckFacts {
                    unanswered_auto: 9,
                    max_unanswered_auto: 0,
                    ..facts()
                },
                "queued",
            ),
            (
                "the sender limit is named first",
                AckFacts {
                    recent_to_sender: 3,
                    unanswered_auto: 3,
                    ..facts()
                },
                "sender_limit",
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(ack_decision(&f).code(), want, "{name}");
        }
    }
}

#[cfg(test)]
mod email_effect_tests {
    use super::*;
    use crate::score::Priority::{self, High, Low, Normal, Urgent};

    #[test]
    fn ranks_order_urgent_first_and_read_back() {
        assert_eq!(Priority::ALL.map(rank), [0, 1, 2, 3]);
        for p in Priority::ALL {
            assert_eq!(priority_at(rank(p)), Some(p));
        }
        assert_eq!(priority_at(4), None);
        assert_eq!(priority_at(-1), None);
    }

    #[test]
    fn a_customer_writing_again_raises_the_priority_never_lowers_it() {
        for (current, written, after) in [
            (Normal, Urgent, Urgent),
            (Low, High, High),
            (High, Normal, High),
            (Urgent, Low, Urgent),
            (Normal, Normal, Normal),
        ] {
            assert_eq!(
                escalated(current, written),
                after,
                "{current:?} + {written:?}"
            );
        }
    }

    #[test]
    fn a_lone_number_answers_the_survey_of_a_closed_ticket_only() {
        for (body, state, sent, want) in [
            ("4", State::Closed, true, Some(4)),
            ("5/5", State::Closed, true, Some(5)),
            ("4", State::Closed, false, None),
            ("4", State::Answered, true, None),
            ("4", State::Reopened, true, None),
            ("4 things are still broken", State::Closed, true, None),
        ] {
            assert_eq!(
                survey_answer(body, state, sent),
                want,
                "{body:?} {state:?} {sent}"
            );
        }
    }

    fn joined(state: State, priority: Priority) -> Option<Joined> {
        Some(Joined {
            state,
            priority,
            survey_sent: true,
        })
    }

    #[test]
    fn what_an_email_does_to_its_ticket() {
        use EmailEvent::{Moves, Opened};
        let closed = joined(State::Closed, Normal);
        let open = joined(State::Acknowledged, High);
        let effect = |role, joined, may_open, body| {
            email_effect(&EmailFacts {
                role,
                joined,
                may_open,
                priority: Urgent,
                body,
                to_customer: true,
            })
        };
        let want = |write, event, rating| TicketEffect {
            write,
            event,
            rating,
            command: None,
        };
        #[rustfmt::skip]
        let cases = [
            ("a new customer opens a ticket",
             effect(Role::Customer, None, true, "help"),
             want(TicketWrite::Open(Urgent), Some(Opened), None)),
            ("a refused email opens none",
             effect(Role::Customer, None, false, "help"),
             want(TicketWrite::None, None, None)),
            ("a customer writes again, angrier",
             effect(Role::Customer, open, true, "still down"),
             want(TicketWrite::CustomerWrote(Urgent), Some(Moves(Event::CustomerWrote)), None)),
            ("a customer writes to a closed ticket: it reopens",
             effect(Role::Customer, closed, true, "it broke again"),
             want(TicketWrite::CustomerWrote(Urgent), Some(Moves(Event::CustomerWrote)), None)),
            ("a lone number answers the survey",
             effect(Role::Customer, closed, true, "4"),
             want(TicketWrite::Join, None, Some(4))),
            ("a lone number in an open ticket is a message",
             effect(Role::Customer, open, true, "4"),
             want(TicketWrite::CustomerWrote(Urgent), Some(Moves(Event::CustomerWrote)), None)),
            ("staff answer",
             effect(Role::Staff, open, false, "fixed"),
             want(TicketWrite::StaffWrote, Some(Moves(Event::StaffReplied)), None)),
            ("staff write a lone number: no survey answer",
             effect(Role::Staff, closed, false, "4"),
             want(TicketWrite::StaffWrote, Some(Moves(Event::StaffReplied)), None)),
            ("staff mail in Sent that joins nothing opens a ticket it answers",
             effect(Role::Staff, None, true, "hi"),
             want(TicketWrite::Open(Urgent), Some(Moves(Event::StaffReplied)), None)),
            ("a robot's email is kept with its ticket",
             effect(Role::Robot, open, false, "auto-reply"),
             want(TicketWrite::Join, None, None)),
            ("a robot's email that joins nothing",
             effect(Role::Robot, None, false, "bounce"),
             want(TicketWrite::None, None, None)),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_calmer_reply_keeps_the_ticket_urgent() {
        let got = email_effect(&EmailFacts {
            role: Role::Customer,
            joined: joined(State::Acknowledged, Urgent),
            may_open: true,
            priority: Low,
            body: "thanks, any news?",
            to_customer: false,
        });
        assert_eq!(got.write, TicketWrite::CustomerWrote(Urgent));
    }

    #[test]
    fn staff_give_commands_by_email_customers_do_not() {
        let effect = |role, joined, may_open| {
            email_effect(&EmailFacts {
                role,
                joined,
                may_open,
                priority: Normal,
                body: "#close\nThanks, all done.",
                to_customer: false,
            })
            .command
        };
        let open = joined(State::Answered, Normal);
        assert_eq!(effect(Role::Staff, open, false), Some(Command::Close));
        assert_eq!(effect(Role::Staff, None, true), Some(Command::Close));
        assert_eq!(effect(Role::Staff, None, false), None, "no ticket");
        assert_eq!(effect(Role::Customer, open, true), None);
        assert_eq!(effect(Role::Robot, open, false), None);
    }

    #[test]
    fn a_team_reroute_among_staff_answers_no_one() {
        let effect = |body, to_customer| {
            email_effect(&EmailFacts {
                role: Role::Staff,
                joined: joined(State::Acknowledged, Normal),
                may_open: false,
                priority: Normal,
                body,
                to_customer,
            })
        };
        let team = Some(Command::Team("billing".into()));
        // To support only: a note; the ticket waits on, with its new team.
        let note = effect("#team billing\nThe charge, not the outage.", false);
        assert_eq!(
            (note.write, note.event, note.command),
            (TicketWrite::Join, None, team.clone())
        );
        // Written to the customer too: an answer that also re-routes.
        let reply = effect("#team billing\nHi Ada, billing will write to you.", true);
        assert_eq!(
            (reply.write, reply.event, reply.command),
            (
                TicketWrite::StaffWrote,
                Some(EmailEvent::Moves(Event::StaffReplied)),
                team
            )
        );
        // Any other staff email answers, addressed to the customer or not (as before).
        let close = effect("#close", false);
        assert_eq!(close.write, TicketWrite::StaffWrote);
        assert_eq!(effect("Fixed.", false).event, reply.event);
    }

    #[test]
    fn a_customer_waits_from_arrival_anyone_else_from_now() {
        let now = 1_800_000_000;
        for (role, received, want) in [
            (Role::Customer, now - 600, now - 600),
            (Role::Customer, now + 600, now),
            (Role::Staff, now - 600, now),
            (Role::Robot, now - 600, now),
        ] {
            assert_eq!(
                waiting_since(role, received, now),
                want,
                "{role:?} {received}"
            );
        }
    }

    #[test]
    fn staff_commands_move_the_ticket() {
        let now = 1_800_000_000;
        for (cmd, want) in [
            (Command::Close, (Event::Close, 0)),
            (Command::Reopen, (Event::Reopen, 0)),
            (
                Command::Snooze(Duration::from_secs(3 * 86_400)),
                (Event::Snooze, now + 3 * 86_400),
            ),
        ] {
            assert_eq!(command_event(&cmd, now), Some(want), "{cmd:?}");
        }
        assert_eq!(command_event(&Command::Team("billing".into()), now), None);
    }

    #[test]
    fn rerouting_needs_a_configured_team_and_a_change() {
        let known = ["billing", "technical"];
        for (current, wanted, want) in [
            ("technical", "billing", Reroute::Moves),
            ("", "billing", Reroute::Moves),
            ("billing", "billing", Reroute::Already),
            ("billing", "billng", Reroute::Unknown),
            ("", "", Reroute::Unknown),
        ] {
            assert_eq!(
                reroute(current, wanted, known),
                want,
                "{current:?} -> {wanted:?}"
            );
        }
        assert_eq!(reroute("", "billing", []), Reroute::Unknown);
        assert_eq!(
            rerouted_detail("billing", "technical", "#team from alice@example.com"),
            "billing (was technical): #team from alice@example.com"
        );
        assert_eq!(
            rerouted_detail("billing", "", "cli"),
            "billing (was none): cli"
        );
        assert_eq!(
            rerouted_reason("technical", "cli (bob)"),
            "re-routed from technical by cli (bob)"
        );
        assert_eq!(rerouted_reason("", "cli (bob)"), "routed by cli (bob)");
        assert_eq!(
            unknown_team("billng", &known),
            "no [[team]] is named \"billng\" (teams: billing, technical)"
        );
        let long = format!("{}\u{1b}[31m", "x".repeat(70));
        assert_eq!(
            unknown_team(&long, &known),
            format!(
                "no [[team]] is named \"{}\u{2026}\" (teams: billing, technical)",
                "x".repeat(60)
            )
        );
        assert!(unknown_team("a\u{1b}b", &[]).contains(r"a\u{1b}b"));
        assert_eq!(
            unknown_team("billing", &[]),
            "no [[team]] is named \"billing\" (no [[team]] is configured)"
        );
    }
}
