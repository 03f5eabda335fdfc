//! Staff corrections in the store: keywords read back from the mailbox, email commands and the
//! command line; what counts, what is recorded once, what undoes, and what the daemon then
//! writes.

use super::*;
use crate::corrections::{Field, KeywordNames, Relabel};

fn names() -> KeywordNames {
    KeywordNames {
        priority: Priority::ALL
            .into_iter()
            .map(|p| (p, format!("triage/{}", p.as_str())))
            .collect(),
        tone_prefix: "tone/".into(),
    }
}

fn flags(f: &[&str]) -> Vec<String> {
    f.iter().map(|s| s.to_string()).collect()
}

impl T {
    /// The keywords of UID `uid` of INBOX (UIDVALIDITY 1) read as `f`.
    fn read(&mut self, uid: u32, f: &[&str]) -> Vec<Noted> {
        self.store
            .note_keywords("INBOX", 1, &[(uid, flags(f))], &names(), self.now)
            .expect("note keywords")
    }

    /// (field, old, new, source, who) of the corrections in force.
    fn in_force(&self) -> Vec<(String, String, String, String, String)> {
        self.store
            .conn()
            .prepare(
                "SELECT field, old_value, new_value, source, who FROM corrections
                 WHERE undone_at = 0 ORDER BY id",
            )
            .expect("prep")
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .expect("q")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn ticket_priority(&self, tag: &str) -> String {
        self.store
            .conn()
            .query_row("SELECT priority FROM tickets WHERE tag = ?1", [tag], |r| {
                r.get(0)
            })
            .expect("ticket")
    }

    fn events(&self, tag: &str) -> Vec<String> {
        self.store
            .ticket(tag)
            .expect("ticket")
            .expect("exists")
            .1
            .into_iter()
            .filter(|e| e.event.starts_with("relabel"))
            .map(|e| format!("{}: {}", e.event, e.detail))
            .collect()
    }
}

fn row(
    field: &str,
    old: &str,
    new: &str,
    source: &str,
    who: &str,
) -> (String, String, String, String, String) {
    (
        field.into(),
        old.into(),
        new.into(),
        source.into(),
        who.into(),
    )
}

#[test]
fn a_keyword_staff_change_is_a_correction_once_and_the_daemons_own_never() {
    let mut t = T::new();
    // Verdict: normal, tone angry.
    t.put(
        1,
        &email("c1@x", "ada@customer.example", "Payroll"),
        Priority::Normal,
    );
    // Keywords of an email the daemon has not flagged yet are not staff's word.
    assert!(t.read(1, &["triage/urgent"]).is_empty());
    let tasks = t.store.pending_flags("INBOX", 1).expect("flags");
    t.store
        .mark_flagged(&tasks.iter().map(|f| f.row).collect::<Vec<_>>())
        .expect("flagged");
    // What the daemon wrote, with whatever else staff's client adds: nothing.
    assert!(
        t.read(1, &["triage/normal", "tone/angry", "$Forwarded"])
            .is_empty()
    );
    assert!(t.in_force().is_empty());

    // Staff re-flag it urgent.
    let noted = t.read(1, &["Triage/Urgent", "tone/angry"]);
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert_eq!(
        (
            noted[0].field,
            noted[0].before.as_str(),
            noted[0].after.as_str()
        ),
        (Field::Priority, "normal", "urgent")
    );
    assert_eq!(noted[0].ticket.as_deref(), Some("T-1001"));
    assert_eq!(
        t.in_force(),
        [row("priority", "normal", "urgent", "imap-keyword", "")]
    );
    assert_eq!(t.ticket_priority("T-1001"), "urgent", "what staff said");
    // Read again (the next sync, or after a restart): nothing twice.
    assert!(t.read(1, &["triage/urgent", "tone/angry"]).is_empty());
    assert!(t.read(1, &["tone/angry", "triage/urgent"]).is_empty());
    assert_eq!(t.count("SELECT count(*) FROM corrections"), 1);

    // Staff swap the tone.
    let noted = t.read(1, &["triage/urgent", "tone/meek"]);
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert_eq!(
        (noted[0].before.as_str(), noted[0].after.as_str()),
        ("angry", "meek")
    );
    // ... and put the rules' priority back: that correction is undone, the ticket follows.
    let noted = t.read(1, &["triage/normal", "tone/meek"]);
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert!(noted[0].undone);
    assert_eq!(
        t.in_force(),
        [row("tone", "angry", "meek", "imap-keyword", "")]
    );
    assert_eq!(t.ticket_priority("T-1001"), "normal");
    assert_eq!(
        t.count("SELECT count(*) FROM corrections"),
        2,
        "the undone one is kept"
    );
    // Every keyword taken away says nothing of the priority.
    assert!(t.read(1, &["tone/meek"]).is_empty());
    assert_eq!(
        t.events("T-1001"),
        [
            "relabeled: priority normal -> urgent (imap-keyword)",
            "relabeled: tone angry -> meek (imap-keyword)",
            "relabel_undone: priority urgent -> normal (the verdict's again; imap-keyword)",
        ]
    );

    // The folder is re-created (UIDVALIDITY): the email is flagged again, with staff's tone,
    // never the verdict's over it.
    t.put_at(
        2,
        1,
        &email("c1@x", "ada@customer.example", "Payroll"),
        Priority::Normal,
        NOW,
    );
    let again = t.store.pending_flags("INBOX", 2).expect("flags");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].priority, Some(Priority::Normal));
    assert_eq!(again[0].tones, ["meek"]);
}

#[test]
fn a_server_without_tone_keywords_reads_priorities_only() {
    let mut t = T::new();
    t.put(
        1,
        &email("c1@x", "ada@customer.example", "Payroll"),
        Priority::High,
    );
    let tasks = t.store.pending_flags("INBOX", 1).expect("flags");
    t.store
        .mark_flagged(&tasks.iter().map(|f| f.row).collect::<Vec<_>>())
        .expect("flagged");
    let quiet = KeywordNames {
        tone_prefix: String::new(),
        ..names()
    };
    let read = |t: &mut T, f: &[&str]| {
        t.store
            .note_keywords("INBOX", 1, &[(1, flags(f))], &quiet, t.now)
            .expect("note")
    };
    // No tone keyword was written (the verdict has one): that is not a correction.
    assert!(read(&mut t, &["triage/high"]).is_empty());
    assert_eq!(read(&mut t, &["triage/low", "tone/angry"]).len(), 1);
    assert_eq!(
        t.in_force(),
        [row("priority", "high", "low", "imap-keyword", "")]
    );
}

#[test]
fn email_commands_and_the_command_line_correct_the_customers_latest_email() {
    let mut t = T::new();
    t.put(
        1,
        &email("c1@x", "ada@customer.example", "Payroll"),
        Priority::Normal,
    );
    let mut cmd = email("s1@x", "alice@support.example", "Re: Payroll [#T-1001]");
    cmd.body_text = "#priority urgent\nTheir payroll run is today.".into();
    t.staff(2, &cmd);
    assert_eq!(
        t.in_force(),
        [row(
            "priority",
            "normal",
            "urgent",
            "email-command",
            "alice@support.example"
        )]
    );
    assert_eq!(t.ticket_priority("T-1001"), "urgent");
    assert_eq!(
        t.ticket("T-1001").0,
        "answered",
        "the email is a staff reply as ever"
    );

    // The command line: a tone taken away, then the same priority again (nothing).
    let done = t
        .store
        .relabel(
            "t-1001",
            &[Relabel::tone("-angry").expect("tone")],
            "cli (ops)",
            NOW,
        )
        .expect("relabel")
        .expect("a ticket");
    assert_eq!(done.tag, "T-1001");
    assert_eq!(
        done.email,
        Some(("ada@customer.example".to_string(), "Payroll".to_string()))
    );
    assert_eq!(done.changes.len(), 1);
    assert_eq!(
        (
            done.changes[0].before.as_str(),
            done.changes[0].after.as_str()
        ),
        ("angry", "")
    );
    let same = t
        .store
        .relabel(
            "T-1001",
            &[Relabel::Priority(Priority::Urgent)],
            "cli (ops)",
            NOW,
        )
        .expect("relabel")
        .expect("a ticket");
    assert!(same.changes.is_empty());
    assert_eq!(
        t.in_force(),
        [
            row(
                "priority",
                "normal",
                "urgent",
                "email-command",
                "alice@support.example"
            ),
            row("tone", "angry", "", "cli", "cli (ops)"),
        ]
    );

    // What `eval --store` reads: the verdict, and staff's labels in force.
    let labelled = t.store.labelled(NOW - 86_400).expect("labelled");
    assert_eq!(
        labelled,
        [Labelled {
            priority: Priority::Normal,
            tones: "angry".into(),
            staff_priority: Some(Priority::Urgent),
            staff_tones: Some(String::new()),
        }],
        "the staff email is not a customer's"
    );
    assert!(t.store.labelled(NOW + 1).expect("labelled").is_empty());

    // Undo: every correction in force, the ticket's priority back to the verdict's.
    let undone = t
        .store
        .undo_relabel("T-1001", "cli (ops)", NOW)
        .expect("undo")
        .expect("a ticket");
    assert_eq!(undone.changes.len(), 2);
    assert!(undone.changes.iter().all(|n| n.undone));
    assert!(t.in_force().is_empty());
    assert_eq!(t.ticket_priority("T-1001"), "normal");
    let again = t
        .store
        .undo_relabel("T-1001", "cli (ops)", NOW)
        .expect("undo")
        .expect("a ticket");
    assert_eq!((again.email, again.changes.len()), (None, 0));
    assert!(
        t.store
            .relabel("T-9999", &[], "cli", NOW)
            .expect("relabel")
            .is_none()
    );
    let events = t.events("T-1001");
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(
        events[0],
        "relabeled: priority normal -> urgent (email-command by alice@support.example)"
    );
    assert_eq!(events[1], "relabeled: tone angry -> none (cli (ops))");

    // Every command goes through one dispatcher: a correction given as a ticket command is
    // recorded as the command line's.
    assert_eq!(
        t.store
            .ticket_command(
                "T-1001",
                &tickets::Command::Relabel(Relabel::Priority(Priority::Low)),
                NOW,
                "cli (ops)",
                &t.policy.clone(),
            )
            .expect("applied"),
        Some(crate::store::Applied::Relabeled { corrected: true })
    );
    let events = t.events("T-1001");
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(
        events[4].starts_with("relabeled: priority ") && events[4].ends_with("-> low (cli (ops))"),
        "{events:?}"
    );
}

#[test]
fn a_staff_move_into_another_priority_folder_is_a_correction_once_and_the_daemons_filing_never() {
    use crate::corrections::FolderMark;
    use crate::store::FILED_KEPT;
    let mut t = T::new();
    for (uid, id) in [(1, "c1@x"), (2, "c2@x")] {
        t.put(
            uid,
            &email(id, "ada@customer.example", "Payroll"),
            Priority::Normal,
        );
    }
    let rows: Vec<i64> = t
        .store
        .pending_flags("INBOX", 1)
        .expect("flags")
        .iter()
        .map(|f| f.row)
        .collect();
    // The daemon files both into Triage/Normal: noted before the move; seen arrive, nothing.
    t.store
        .note_filing("Triage/Normal", &rows, t.now)
        .expect("filing");
    t.store.mark_flagged(&rows).expect("flagged");
    let arrived = |id: &str| vec![(9, id.to_string())];
    let normal = [Priority::Normal];
    let urgent = [Priority::Urgent];
    let both = [arrived("c1@x"), arrived("c2@x")].concat();
    let noted = t
        .store
        .note_arrivals("Triage/Normal", &both, &normal, t.now)
        .expect("arrivals");
    assert!(noted.is_empty(), "{noted:?}");
    assert!(t.in_force().is_empty());
    assert_eq!(t.count("SELECT count(*) FROM daemon_filed"), 0, "done with");

    // Staff move the first into Triage/Urgent.
    let noted = t
        .store
        .note_arrivals("Triage/Urgent", &arrived("c1@x"), &urgent, t.now)
        .expect("arrivals");
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert_eq!(
        (noted[0].before.as_str(), noted[0].after.as_str()),
        ("normal", "urgent")
    );
    assert_eq!(
        t.in_force(),
        [row("priority", "normal", "urgent", "imap-folder", "")]
    );
    assert_eq!(t.ticket_priority("T-1001"), "urgent", "what staff said");
    // Seen again, an email the daemon never triaged, a folder of two priorities: nothing.
    for (folder, found, priorities) in [
        ("Triage/Urgent", arrived("c1@x"), &urgent[..]),
        ("Triage/Urgent", arrived("unknown@x"), &urgent[..]),
        (
            "Triage/Soon",
            arrived("c2@x"),
            &[Priority::Urgent, Priority::High][..],
        ),
    ] {
        let noted = t
            .store
            .note_arrivals(folder, &found, priorities, t.now)
            .expect("arrivals");
        assert!(noted.is_empty(), "{folder} {found:?}: {noted:?}");
    }
    assert_eq!(t.count("SELECT count(*) FROM corrections"), 1);

    // Back into Triage/Normal, where the daemon once filed it: staff undo their correction.
    let noted = t
        .store
        .note_arrivals("Triage/Normal", &arrived("c1@x"), &normal, t.now)
        .expect("arrivals");
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert!(noted[0].undone);
    assert!(t.in_force().is_empty());
    assert_eq!(t.ticket_priority("T-1001"), "normal");
    assert_eq!(
        t.events("T-1001"),
        [
            "relabeled: priority normal -> urgent (imap-folder)",
            "relabel_undone: priority urgent -> normal (the verdict's again; imap-folder)",
        ]
    );

    // A filing refused by the server is forgotten; one that never arrives is dropped after
    // FILED_KEPT.
    t.store
        .note_filing("Triage/Low", &rows, t.now)
        .expect("filing");
    t.store
        .forget_filing("Triage/Low", &rows[..1])
        .expect("forget");
    assert_eq!(t.count("SELECT count(*) FROM daemon_filed"), 1);
    t.now += FILED_KEPT + 1;
    t.store
        .note_arrivals("Triage/Low", &[], &[Priority::Low], t.now)
        .expect("arrivals");
    assert_eq!(t.count("SELECT count(*) FROM daemon_filed"), 0);

    // What was last seen of a folder is kept.
    assert_eq!(t.store.folder_mark("Triage/Urgent").expect("mark"), None);
    for mark in [
        FolderMark::Missing,
        FolderMark::At {
            uidvalidity: 7,
            uid_next: 12,
        },
    ] {
        t.store
            .set_folder_mark("Triage/Urgent", mark)
            .expect("set mark");
        assert_eq!(
            t.store.folder_mark("Triage/Urgent").expect("mark"),
            Some(mark)
        );
    }
}
