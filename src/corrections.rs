//! Staff corrections of a verdict, the pure side: what the triage keywords on an email say
//! after staff changed them in their own mail client, and whether that is a correction, an
//! undo, or nothing new (the daemon's own keywords, or a change already recorded); what an
//! email staff moved into another priority's folder says ([`look`], [`moved_into`]); the
//! `#priority` / `#tone` email commands and `triaged ticket relabel` as values.
//!
//! A label is kept as text: a priority's name, or a set of tones (sorted, comma-separated,
//! `""` for none). The verdict's label is what the rules said; the label in force is staff's
//! latest correction, else the verdict's. The store keeps corrections (`store::corrections`),
//! the IMAP watcher reads the keywords, `triaged eval --store` compares the rules with staff,
//! `triaged tune --store` fits the rules' weights to them.

use std::collections::BTreeMap;

use crate::score::Priority;

/// What a correction is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Priority,
    Tone,
}

impl Field {
    pub const ALL: [Field; 2] = [Field::Priority, Field::Tone];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Priority => "priority",
            Field::Tone => "tone",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// Where staff said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A triage keyword changed in a mail client (`triage/normal` -> `triage/urgent`).
    ImapKeyword,
    /// The email moved into another priority's folder (`[flags.folders]`, the keyword
    /// fallback's `Triage/...`).
    ImapFolder,
    /// A `#priority` or `#tone` line in a staff email.
    EmailCommand,
    /// `triaged ticket relabel`.
    Cli,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::ImapKeyword,
        Source::ImapFolder,
        Source::EmailCommand,
        Source::Cli,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::ImapKeyword => "imap-keyword",
            Source::ImapFolder => "imap-folder",
            Source::EmailCommand => "email-command",
            Source::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// A change staff ask for by email command (`#priority urgent`, `#tone angry`, `#tone
/// -polite`) or with `triaged ticket relabel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relabel {
    Priority(Priority),
    /// The email has this tone (`present`), or has it not.
    Tone {
        tone: String,
        present: bool,
    },
}

impl Relabel {
    /// `urgent`, `high`, `normal` or `low` (any case).
    pub fn priority(word: &str) -> Option<Relabel> {
        let word = word.to_ascii_lowercase();
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == word)
            .map(Relabel::Priority)
    }

    /// `angry` (the email has the tone) or `-angry` (it has not); a tone is written as rules
    /// name them: lower-case letters, digits, `-` or `_`.
    pub fn tone(word: &str) -> Option<Relabel> {
        let word = word.to_ascii_lowercase();
        let (tone, present) = match word.strip_prefix('-') {
            Some(t) => (t, false),
            None => (word.as_str(), true),
        };
        is_tone(tone).then(|| Relabel::Tone {
            tone: tone.to_string(),
            present,
        })
    }

    pub fn field(&self) -> Field {
        match self {
            Relabel::Priority(_) => Field::Priority,
            Relabel::Tone { .. } => Field::Tone,
        }
    }

    /// The label of this field once the change is made to `current` (the label in force).
    pub fn applied_to(&self, current: &str) -> String {
        match self {
            Relabel::Priority(p) => p.as_str().to_string(),
            Relabel::Tone { tone, present } => {
                let mut tones: Vec<&str> = current.split(',').filter(|t| !t.is_empty()).collect();
                tones.retain(|t| t != tone);
                if *present {
                    tones.push(tone);
                }
                tone_set(tones)
            }
        }
    }
}

/// A tone as rules name them.
fn is_tone(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Tones as a label: sorted, without repeats, comma-separated.
pub fn tone_set<S: AsRef<str>>(tones: impl IntoIterator<Item = S>) -> String {
    let mut v: Vec<String> = tones
        .into_iter()
        .map(|t| t.as_ref().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v.join(",")
}

/// How the daemon writes labels as IMAP keywords (`[flags] priority_keywords`, `tone_prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordNames {
    pub priority: BTreeMap<Priority, String>,
    /// `""`: tones are not written, so not read either.
    pub tone_prefix: String,
}

/// The triage keywords an email carries, as labels: the priorities whose keyword it has
/// (most urgent first) and its tones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shown {
    pub priorities: Vec<Priority>,
    /// A tone set ([`tone_set`]).
    pub tones: String,
}

impl Shown {
    /// What the daemon writes for a priority and tones.
    pub fn written(priority: Priority, tones: &str) -> Shown {
        Shown {
            priorities: vec![priority],
            tones: tone_set(tones.split(',')),
        }
    }

    /// The priorities as kept in the store: `urgent,normal`.
    pub fn priority_list(&self) -> String {
        self.priorities
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The inverse of [`Shown::priority_list`]; unknown names are left out.
    pub fn priorities_of(list: &str) -> Vec<Priority> {
        Priority::ALL
            .into_iter()
            .filter(|p| list.split(',').any(|n| n == p.as_str()))
            .collect()
    }
}

impl KeywordNames {
    /// The labels `flags` (an email's keywords; system flags are ignored) show. Keywords are
    /// compared without case, as mail clients differ.
    pub fn shown<S: AsRef<str>>(&self, flags: &[S]) -> Shown {
        let has = |k: &str| flags.iter().any(|f| f.as_ref().eq_ignore_ascii_case(k));
        let priorities = Priority::ALL
            .into_iter()
            .filter(|p| self.priority.get(p).is_some_and(|k| has(k)))
            .collect();
        let prefix = self.tone_prefix.to_ascii_lowercase();
        let tones = if prefix.is_empty() {
            String::new()
        } else {
            tone_set(flags.iter().filter_map(|f| {
                let f = f.as_ref().to_ascii_lowercase();
                let tone = f.strip_prefix(&prefix)?;
                is_tone(tone).then(|| tone.to_string())
            }))
        };
        Shown { priorities, tones }
    }

    /// Tones are written, and read back.
    pub fn reads_tones(&self) -> bool {
        !self.tone_prefix.is_empty()
    }
}

/// The priority the keywords say now, from the ones they showed `before`: one staff added
/// wins (the most urgent, if they added several); else the only one left, or the most urgent
/// of those left; none when staff took every priority keyword away (then they say nothing).
pub fn priority_shown(before: &[Priority], after: &[Priority]) -> Option<Priority> {
    // Priority::ALL order: most urgent first, and both lists keep it.
    after
        .iter()
        .find(|p| !before.contains(p))
        .or_else(|| after.first())
        .copied()
}

/// What a label shown in the mailbox (or asked for by command) does, given the verdict's
/// label and the one in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing: it is the label in force already, or it says none.
    Keep,
    /// Staff put the verdict's label back: the correction in force is undone.
    Undo,
    /// Staff say this label: a correction of the verdict (replacing the one in force).
    Correct(String),
}

/// `verdict`: what the rules said; `current`: the label of the correction in force, if any;
/// `said`: what staff say now (`None`: nothing, e.g. a priority keyword removed and none added).
pub fn step(verdict: &str, current: Option<&str>, said: Option<&str>) -> Step {
    match said {
        None => Step::Keep,
        Some(s) if s == verdict => match current {
            Some(_) => Step::Undo,
            None => Step::Keep,
        },
        Some(s) if Some(s) == current => Step::Keep,
        Some(s) => Step::Correct(s.to_string()),
    }
}

/// What the daemon knows of a priority folder when it last looked (STATUS), or finds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderMark {
    /// It did not exist: every email in it once it does arrived since.
    Missing,
    /// In this UIDVALIDITY, the emails below `uid_next` were looked at.
    At { uidvalidity: u32, uid_next: u32 },
}

/// What a look at a priority folder does, from what was kept of it and what STATUS says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// No email arrived since the last look.
    Nothing,
    /// The first look (or its UIDVALIDITY changed): what is in it now is where the next look
    /// starts; none of it is taken for a move (it may all be the daemon's own, filed before).
    Baseline,
    /// Emails arrived: look at those from this UID on.
    From(u32),
}

pub fn look(kept: Option<FolderMark>, now: FolderMark) -> Look {
    match (kept, now) {
        (_, FolderMark::Missing) => Look::Nothing,
        (None, FolderMark::At { .. }) => Look::Baseline,
        (Some(FolderMark::Missing), FolderMark::At { uid_next, .. }) => {
            if uid_next > 1 {
                Look::From(1)
            } else {
                Look::Nothing
            }
        }
        (
            Some(FolderMark::At {
                uidvalidity: v0,
                uid_next: n0,
            }),
            FolderMark::At {
                uidvalidity,
                uid_next,
            },
        ) => {
            if v0 != uidvalidity {
                Look::Baseline
            } else if uid_next > n0 {
                Look::From(n0.max(1))
            } else {
                Look::Nothing
            }
        }
    }
}

/// The priority an email found in a priority folder says: the folder's, unless the daemon
/// filed it there itself (then it says nothing) or the folder is configured for several
/// priorities (which of them staff meant is not known). What that does to the verdict is
/// [`step`]'s to decide: moving an email into the folder of the label in force changes
/// nothing, into the verdict's folder undoes a correction, into another one corrects.
pub fn moved_into(folder: &[Priority], filed_by_daemon: bool) -> Option<Priority> {
    match folder {
        [p] if !filed_by_daemon => Some(*p),
        _ => None,
    }
}

/// The Message-ID in `header` (what `BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]` returns), as the
/// parser keeps it: without the angle brackets, whitespace or control characters. `None`
/// when there is none (the store then knows the email by a synthesized id, which a header
/// cannot give back).
pub fn header_message_id(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut value: Option<String> = None;
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(v) = value.as_mut() {
                v.push_str(line);
            }
            continue;
        }
        if value.is_some() {
            break;
        }
        if let Some((name, rest)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("message-id")
        {
            value = Some(rest.to_string());
        }
    }
    let value = value?;
    let inner = value
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(value.as_str(), |(id, _)| id);
    let id: String = inner
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Priority::{High, Low, Normal, Urgent};

    fn names() -> KeywordNames {
        KeywordNames {
            priority: Priority::ALL
                .into_iter()
                .map(|p| (p, format!("triage/{}", p.as_str())))
                .collect(),
            tone_prefix: "tone/".into(),
        }
    }

    #[test]
    fn keywords_are_read_back_as_labels_whatever_their_case() {
        let n = names();
        let shown = n.shown(&[
            "\\Seen",
            "Triage/Urgent",
            "triage/normal",
            "tone/angry",
            "TONE/Meek",
            "tone/",
            "tone/Not A Tone",
            "$Label1",
        ]);
        assert_eq!(shown.priorities, vec![Urgent, Normal]);
        assert_eq!(shown.tones, "angry,meek");
        assert_eq!(shown.priority_list(), "urgent,normal");
        assert_eq!(
            Shown::priorities_of("normal,urgent,bogus"),
            vec![Urgent, Normal]
        );
        assert_eq!(n.shown::<&str>(&[]), Shown::default());
        let quiet = KeywordNames {
            tone_prefix: String::new(),
            ..names()
        };
        assert_eq!(quiet.shown(&["tone/angry"]).tones, "");
        assert!(!quiet.reads_tones());
        assert_eq!(
            Shown::written(High, "meek,angry"),
            Shown {
                priorities: vec![High],
                tones: "angry,meek".into()
            }
        );
    }

    #[test]
    fn the_keyword_staff_added_is_what_they_say() {
        for (before, after, want) in [
            // Replaced: normal -> urgent.
            (&[Normal][..], &[Urgent][..], Some(Urgent)),
            // Added beside the daemon's: the added one.
            (&[Normal], &[Urgent, Normal], Some(Urgent)),
            (&[Normal], &[Normal, Low], Some(Low)),
            // Two added at once: the most urgent of them.
            (&[Normal], &[Urgent, High, Normal], Some(Urgent)),
            // The daemon's taken away from a pair: the one left.
            (&[Urgent, Normal], &[Urgent], Some(Urgent)),
            (&[Urgent, Normal], &[Normal], Some(Normal)),
            // Every one taken away: staff say nothing.
            (&[Normal], &[], None),
            // Unchanged.
            (&[High], &[High], Some(High)),
        ] {
            assert_eq!(
                priority_shown(before, after),
                want,
                "{before:?} -> {after:?}"
            );
        }
    }

    #[test]
    fn a_label_corrects_undoes_or_changes_nothing() {
        use Step::{Correct, Keep, Undo};
        for (verdict, current, said, want) in [
            ("normal", None, Some("urgent"), Correct("urgent".into())),
            ("normal", None, Some("normal"), Keep),
            ("normal", None, None, Keep),
            ("normal", Some("urgent"), Some("urgent"), Keep),
            (
                "normal",
                Some("urgent"),
                Some("high"),
                Correct("high".into()),
            ),
            ("normal", Some("urgent"), Some("normal"), Undo),
            ("normal", Some("urgent"), None, Keep),
            ("angry", None, Some(""), Correct(String::new())),
            ("", Some("angry"), Some(""), Undo),
        ] {
            assert_eq!(
                step(verdict, current, said),
                want,
                "{verdict} {current:?} {said:?}"
            );
        }
    }

    #[test]
    fn a_priority_folder_is_looked_into_only_when_email_arrived_since() {
        use FolderMark::{At, Missing};
        let at = |uidvalidity, uid_next| At {
            uidvalidity,
            uid_next,
        };
        for (kept, now, want) in [
            // Missing now: nothing to read, whatever was known.
            (None, Missing, Look::Nothing),
            (Some(at(7, 5)), Missing, Look::Nothing),
            // First look: what is there is the baseline (the daemon may have filed it all).
            (None, at(7, 5), Look::Baseline),
            // Created since the last look: all of it arrived since.
            (Some(Missing), at(7, 3), Look::From(1)),
            (Some(Missing), at(7, 1), Look::Nothing),
            // Same generation: from the last UIDNEXT on, when it moved.
            (Some(at(7, 5)), at(7, 5), Look::Nothing),
            (Some(at(7, 5)), at(7, 9), Look::From(5)),
            (Some(at(7, 0)), at(7, 2), Look::From(1)),
            // A server that went back is no arrival.
            (Some(at(7, 9)), at(7, 5), Look::Nothing),
            // Renumbered: a new baseline, nothing taken for a move.
            (Some(at(7, 5)), at(8, 9), Look::Baseline),
        ] {
            assert_eq!(look(kept, now), want, "{kept:?} -> {now:?}");
        }
    }

    #[test]
    fn a_move_into_another_priority_folder_corrects_and_the_daemons_own_never_does() {
        use Step::{Correct, Keep, Undo};
        // (folder's priorities, filed by the daemon, verdict, correction in force) -> step.
        for (folder, own, verdict, current, want) in [
            // Staff moved it from Triage/Normal (or the watched folder) into Triage/Urgent.
            (&[Urgent][..], false, Normal, None, Correct("urgent".into())),
            // The daemon filed it there itself: never a correction, nor an undo.
            (&[Normal], true, Normal, None, Keep),
            (&[Normal], true, Normal, Some(Urgent), Keep),
            (&[Urgent], true, Normal, None, Keep),
            // Into the folder of the label in force: nothing new.
            (&[Urgent], false, Normal, Some(Urgent), Keep),
            (&[Normal], false, Normal, None, Keep),
            // Back into the verdict's folder: the correction is undone.
            (&[Normal], false, Normal, Some(Urgent), Undo),
            // From one correction to another.
            (&[Low], false, Normal, Some(Urgent), Correct("low".into())),
            // A folder of two priorities says nothing.
            (&[Urgent, High], false, Normal, None, Keep),
        ] {
            let said = moved_into(folder, own).map(Priority::as_str);
            assert_eq!(
                step(verdict.as_str(), current.map(Priority::as_str), said),
                want,
                "{folder:?} own={own} {verdict:?} {current:?}"
            );
        }
    }

    #[test]
    fn the_message_id_is_read_from_the_header_as_the_parser_keeps_it() {
        for (header, want) in [
            (
                &b"Message-ID: <a1@example.test>\r\n\r\n"[..],
                Some("a1@example.test"),
            ),
            (b"message-id:<b2@x>\r\n", Some("b2@x")),
            (b"Message-Id:\r\n <folded@x>\r\n\r\n", Some("folded@x")),
            (b"MESSAGE-ID: <c3@x> (a comment)\r\n", Some("c3@x")),
            (b"Message-ID: <first@x> <second@x>\r\n", Some("first@x")),
            (b"Message-ID: bare@x\r\n", Some("bare@x")),
            (b"\r\n", None),
            (b"", None),
            (b"Message-ID: <>\r\n", None),
            (b"X-Message-ID: <no@x>\r\n", None),
        ] {
            assert_eq!(
                header_message_id(header).as_deref(),
                want,
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }
    }

    #[test]
    fn commands_name_a_priority_or_a_tone() {
        assert_eq!(Relabel::priority("URGENT"), Some(Relabel::Priority(Urgent)));
        assert_eq!(Relabel::priority("asap"), None);
        assert_eq!(
            Relabel::tone("angry"),
            Some(Relabel::Tone {
                tone: "angry".into(),
                present: true
            })
        );
        assert_eq!(
            Relabel::tone("-Polite"),
            Some(Relabel::Tone {
                tone: "polite".into(),
                present: false
            })
        );
        for bad in ["", "-", "an gry", "tone/angry", "ängstlich"] {
            assert_eq!(Relabel::tone(bad), None, "{bad:?}");
        }
        let angry = Relabel::tone("angry").expect("a tone");
        assert_eq!(angry.field(), Field::Tone);
        assert_eq!(angry.applied_to("meek"), "angry,meek");
        assert_eq!(angry.applied_to("angry"), "angry");
        let calm = Relabel::tone("-angry").expect("a tone");
        assert_eq!(calm.applied_to("angry,meek"), "meek");
        assert_eq!(calm.applied_to(""), "");
        assert_eq!(Relabel::Priority(Low).applied_to("urgent"), "low");
        for f in Field::ALL {
            assert_eq!(Field::parse(f.as_str()), Some(f));
        }
        for s in Source::ALL {
            assert_eq!(Source::parse(s.as_str()), Some(s));
        }
    }
}
