//! The `triaged` command line: parse arguments, start logging, dispatch, map errors to exit codes.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use triaged::clock::Clock;
use triaged::config::Config;

/// Support-mailbox daemon: triages customer email over IMAP, acknowledges it safely over SMTP,
/// and records every decision in SQLite.
#[derive(Parser)]
#[command(name = "triaged", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text for people ("human"), or one JSON object per line for log shippers
    /// ("json"). Logs go to stderr; RUST_LOG sets the level (default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: watch the mailbox, triage, flag, acknowledge. Stops on SIGTERM or Ctrl-C.
    ///
    /// On SIGHUP (`systemctl reload triaged`) the configuration is read again: rules, weights,
    /// templates, acknowledgement, SLA, follow-up, digest and alert settings take effect at
    /// once; an invalid change is refused, its problems logged, and the running one kept.
    /// [mailbox], [smtp], [store], [flags], [outbox] and [http] changes wait for a restart.
    /// A SIGHUP while starting is taken up once the daemon runs.
    ///
    /// A store that is locked by another process, or on a full disk, does not end it: it says
    /// so once, stops fetching and sending, and carries on when the store works again.
    Run {
        /// The configuration file.
        #[arg(long, short, default_value = "config/triaged.toml")]
        config: PathBuf,
    },
    /// Write a commented starter configuration, the default rules and the templates into DIR,
    /// and print the next commands.
    ///
    /// Example: triaged init ./support   (then: triaged check --config ./support/triaged.toml)
    Init {
        /// The directory to write into (created if missing).
        dir: PathBuf,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Validate the configuration, rules and templates; print every problem as file:line:col.
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "config/triaged.toml")]
        config: PathBuf,
    },
    /// Show the outbox: what waits to be sent and why (scheduled, retry after an error, rate
    /// limit, provider pushback), and what failed or may not have gone out.
    ///
    /// Acknowledgements go first; follow-ups (holding notes, resolution checks, surveys) wait
    /// for their due time and for customer-facing hours. `triaged queue cancel ID` cancels one.
    Queue {
        #[command(subcommand)]
        action: Option<QueueAction>,
        /// Only rows that are due now.
        #[arg(long)]
        due: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The configuration file.
        #[arg(long, short, global = true, default_value = "config/triaged.toml")]
        config: PathBuf,
    },
    /// Explain how an email scores: every rule hit, its weight, the running score.
    ///
    /// Also the priority, tones and intents, group caps, and whether the email would be
    /// acknowledged. Needs no server.
    Explain {
        /// The email, as an .eml file (RFC 5322).
        file: PathBuf,
        /// The configuration file.
        #[arg(long, short, default_value = "config/triaged.toml")]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the rules over labelled data: confusion matrix, precision/recall/F1, macro-F1.
    ///
    /// Example (support tickets with priorities):
    ///
    ///   triaged eval --data tickets.csv --text subject,body --label priority
    ///     --filter language=en --map high=high,medium=normal,low=low --predicted-map urgent=high
    ///
    /// Intents (a * entry maps every other label):
    ///
    ///   triaged eval --data queries.csv --text text --label intent --intents
    ///     --map get_refund=refund,card_stolen=security,*=none
    ///
    /// Held out: tune --part train, then eval --part test (same --test-share and --split-seed).
    #[command(verbatim_doc_comment)]
    Eval {
        #[command(flatten)]
        data: DataArgs,
        /// Predicted priority -> class, e.g. urgent=high for three-level labels.
        #[arg(long)]
        predicted_map: Option<String>,
        /// Intent mode: gold classes (after --map) are intents or "none"; each row's predicted
        /// intents (a set: an email may have two) are compared with its class, per intent and
        /// macro-F1.
        #[arg(long, conflicts_with_all = ["predicted_map", "tone", "positive"])]
        intents: bool,
        #[command(flatten)]
        tone: ToneArgs,
        /// The configuration file (its rules and thresholds are evaluated).
        #[arg(long, short, default_value = "config/triaged.toml")]
        config: PathBuf,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Fit the rules' weights and thresholds to labelled data, list phrases the rules miss, or
    /// learn new keyword rules from it (--learn).
    ///
    /// Without --learn the rules stay, only their numbers change. Prints cross-validated figures next to the
    /// shipped weights (--yardstick: and a TF-IDF text model), and writes a weights file to
    /// include with [scoring] weights = "FILE". Example:
    ///
    ///   triaged tune --data tickets.csv --text subject,body --label priority
    ///     --map high=high,medium=normal,low=low --out config/weights.toml --yardstick
    ///
    /// Learned keyword rules (a tone; --intents for intents; priorities with --out), measured
    /// on a held-out part (docs/rules.md, "Learned rules"):
    ///
    ///   triaged tune --data tweets.csv --text text --label sentiment --part train
    ///     --tone angry,frustrated --positive negative --learn-as negative
    ///     --learn config/rules/learned-tone.toml
    #[command(verbatim_doc_comment)]
    Tune {
        #[command(flatten)]
        data: DataArgs,
        /// The classes from least to most urgent (default: the priority names low, normal,
        /// high, urgent that occur).
        #[arg(long, value_delimiter = ',')]
        order: Vec<String>,
        /// Cross-validation folds.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Seed for the folds.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the weights file here (priority mode).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also fit a TF-IDF + logistic-regression text model, for comparison.
        #[arg(long)]
        yardstick: bool,
        /// Learn keyword rules from the data and write them to this rules file: with --tone NAME
        /// --positive CLASS, phrases whose evidence gives the tone NAME; with --intents, phrases
        /// for each intent; otherwise (priorities, with --out) phrases with weights fitted
        /// beside the rules' weights. Figures are measured through the rule engine on the test
        /// part when --part train is given.
        #[arg(long)]
        learn: Option<PathBuf>,
        /// With --learn: gold classes (after --map) are intents, or "none".
        #[arg(long, requires = "learn")]
        intents: bool,
        /// With --learn: phrases kept per label (the configured rules that fired are weighed
        /// besides, in tone and intent mode).
        #[arg(long, default_value_t = 150)]
        max_rules: usize,
        /// With --learn: a phrase must occur in at least this many rows.
        #[arg(long, default_value_t = 3, requires = "learn")]
        min_df: usize,
        /// With --learn in tone mode: the tone the learned rules attach (default: the first
        /// --tone), e.g. `negative` beside the pack's angry/frustrated.
        #[arg(long, requires = "learn")]
        learn_as: Option<String>,
        #[command(flatten)]
        tone: ToneArgs,
        /// The configuration file (its rules are tuned).
        #[arg(long, short, default_value = "config/triaged.toml")]
        config: PathBuf,
    },
    /// List tickets, most urgent and oldest first.
    Tickets {
        /// Only tickets in this state: new, acknowledged, answered, reopened, snoozed, closed,
        /// or open (everything not closed).
        #[arg(long)]
        state: Option<String>,
        /// Only tickets of this priority: urgent, high, normal, low.
        #[arg(long)]
        priority: Option<String>,
        /// List at most this many (0: all). Default: 100 in a table, all in JSON.
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The configuration file.
        #[arg(long, short, default_value = "config/triaged.toml")]
        config: PathBuf,
    },
    /// Show one ticket and its history, or close, snooze or reopen it.
    Ticket {
        #[command(subcommand)]
        action: TicketAction,
        /// The configuration file.
        #[arg(long, short, global = true, default_value = "config/triaged.toml")]
        config: PathBuf,
    },
    /// Preview the next digest from the current store (nothing is sent), or send one now.
    ///
    /// Digests are configured in [[digest]] sections: times, weekdays, recipients, filters.
    /// Examples:
    ///
    ///   triaged digest --preview
    ///   triaged digest --preview --name team --at "2026-11-24 09:00" --html /tmp/digest.html
    ///   triaged digest --send-now --name team
    #[command(verbatim_doc_comment)]
    Digest {
        /// Render the next digest (or the one at --at) without sending or recording anything.
        #[arg(
            long,
            conflicts_with = "send_now",
            required_unless_present = "send_now"
        )]
        preview: bool,
        /// Build the digest now and send it at once (even if empty).
        #[arg(long)]
        send_now: bool,
        /// The digest to use (default: every configured digest).
        #[arg(long)]
        name: Option<String>,
        /// Preview as of this time: "YYYY-MM-DD HH:MM" in the digest's time zone, or RFC 3339.
        #[arg(long, requires = "preview")]
        at: Option<String>,
        /// Also write the HTML version of the preview to this file.
        #[arg(long, requires = "preview")]
        html: Option<PathBuf>,
        /// The configuration file.
        #[arg(long, short, default_value = "config/triaged.toml")]
        config: PathBuf,
    },
    /// Print what the store holds: messages by priority or skip reason, acknowledgement
    /// decisions, outbox states.
    Status {
        /// The configuration file.
        #[arg(long, short, default_value = "config/triaged.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Cancel a pending row (by the id `triaged queue` shows); it is kept, marked cancelled.
    Cancel { id: i64 },
    /// Send held acknowledgements after all (held: they looked like a mail loop). Those whose
    /// email is older than [ack] max_age are dropped instead.
    Release {
        /// The held row (by the id `triaged queue` shows).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every held row.
        #[arg(long)]
        all: bool,
    },
    /// Drop held acknowledgements: never sent, kept in the store as cancelled.
    Drop {
        /// The held row (by the id `triaged queue` shows).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every held row.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum TicketAction {
    /// The ticket, its state and every change with what caused it.
    Show {
        /// The ticket: T-1042, 1042 or [#T-1042].
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Close the ticket.
    Close { id: String },
    /// Snooze the ticket for a while, e.g. 3d or 4h.
    Snooze { id: String, duration: String },
    /// Reopen the ticket (waiting for staff again).
    Reopen { id: String },
}

/// Labelled data for eval and tune.
#[derive(clap::Args)]
struct DataArgs {
    /// The labelled data: .csv (header row detected; columns by name, or by 0-based index when
    /// there is none) or .jsonl.
    #[arg(long, alias = "csv")]
    data: PathBuf,
    /// Text columns, comma-separated: the first is the subject, the rest the body (one column:
    /// the body).
    #[arg(long, value_delimiter = ',', required = true)]
    text: Vec<String>,
    /// The label column.
    #[arg(long)]
    label: String,
    /// Gold label -> class, e.g. high=high,medium=normal,low=low (label= leaves rows out).
    #[arg(long)]
    map: Option<String>,
    /// Keep only rows where a column has a value, e.g. language=en (repeatable).
    #[arg(long)]
    filter: Vec<String>,
    /// Whether the CSV has a header row: auto, present or absent.
    #[arg(long, default_value = "auto")]
    header: String,
    /// Use one part of a seeded split of the rows (after --filter): train or test. Tune with
    /// --part train and evaluate with --part test to measure on rows the fit never saw.
    #[arg(long)]
    part: Option<String>,
    /// With --part: the share of rows in the test part.
    #[arg(long, default_value_t = 0.3)]
    test_share: f64,
    /// With --part: the seed of the split.
    #[arg(long, default_value_t = 1)]
    split_seed: u64,
}

type Data = (
    triaged::eval::Source,
    triaged::eval::Columns,
    Option<triaged::eval::LabelMap>,
);

impl DataArgs {
    fn parse(self) -> anyhow::Result<Data> {
        let mut source = triaged::eval::Source::from_path(&self.data)?;
        source.header = self.header.parse()?;
        let columns = triaged::eval::Columns {
            text: self.text,
            label: self.label,
            filter: self
                .filter
                .iter()
                .map(|f| triaged::eval::Columns::parse_filter(f))
                .collect::<anyhow::Result<_>>()?,
            split: match &self.part {
                Some(p) => Some(triaged::eval::Split {
                    part: p.parse()?,
                    test_share: self.test_share,
                    seed: self.split_seed,
                }),
                None => None,
            },
        };
        Ok((source, columns, self.map.map(|m| m.parse()).transpose()?))
    }
}

/// Tone mode for eval and tune.
#[derive(clap::Args)]
struct ToneArgs {
    /// Tone mode: predict the positive class when any of these tones or intents is present,
    /// e.g. angry,frustrated,abusive.
    #[arg(long, value_delimiter = ',')]
    tone: Vec<String>,
    /// Tone mode: the gold class that counts as positive (after --map).
    #[arg(long)]
    positive: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Whatever RUST_LOG says, the IMAP/SMTP/TLS crates never log the wire (passwords, tokens,
    // customer email): the cap is a second filter over the RUST_LOG one.
    let cap = triaged::logs::wire_cap();
    match cli.log_format {
        LogFormat::Human => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .finish()
            .with(cap)
            .init(),
        // One object per line: timestamp, level, target, message and every field.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .finish()
            .with(cap)
            .init(),
    }
    // A panic inside a parser is caught and the email recorded; say so in one log line instead
    // of a multi-line backtrace. Its message can quote the input (a bad string slice shows the
    // string), so the customer's text goes no higher than debug.
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| l.to_string()).unwrap_or_default();
        tracing::error!(
            at,
            "internal panic (caught; the daemon continues where it can; RUST_LOG=debug shows its message)"
        );
        tracing::debug!("internal panic: {info}");
    }));
    match cli.command {
        Command::Init { dir, force } => report(triaged::tools::init::init(&dir, force)),
        Command::Check { config } => check(&config),
        Command::Run { config } => run(&config),
        Command::Status { config } => status(&config),
        Command::Queue {
            action,
            due,
            json,
            config,
        } => queue(&config, action, due, json),
        Command::Explain { file, config, json } => explain(&config, &file, json),
        Command::Digest {
            preview,
            send_now: _,
            name,
            at,
            html,
            config,
        } => {
            let Some(config) = load(&config) else {
                return ExitCode::FAILURE;
            };
            let now = Clock::system().now();
            report(if preview {
                triaged::tools::digest::preview(
                    &config,
                    name.as_deref(),
                    at.as_deref(),
                    html.as_deref(),
                    now,
                )
            } else {
                triaged::tools::digest::send_now(&config, name.as_deref(), now)
            })
        }
        Command::Tickets {
            state,
            priority,
            limit,
            json,
            config,
        } => {
            let Some(config) = load(&config) else {
                return ExitCode::FAILURE;
            };
            report(tickets_list(&config, state, priority, limit, json))
        }
        Command::Ticket { action, config } => {
            let Some(config) = load(&config) else {
                return ExitCode::FAILURE;
            };
            let now = Clock::system().now();
            use triaged::tickets::Command as C;
            use triaged::tools::tickets as t;
            report(match action {
                TicketAction::Show { id, json } => t::show(&config, &id, json, now),
                TicketAction::Close { id } => t::command(&config, &id, C::Close, now),
                TicketAction::Reopen { id } => t::command(&config, &id, C::Reopen, now),
                TicketAction::Snooze { id, duration } => {
                    match triaged::units::parse_duration(&duration) {
                        Ok(d) if !d.is_zero() => t::command(&config, &id, C::Snooze(d), now),
                        Ok(_) => Err(anyhow::anyhow!("snooze for how long? e.g. 3d or 4h")),
                        Err(e) => Err(anyhow::anyhow!(e)),
                    }
                }
            })
        }
        Command::Eval {
            data,
            predicted_map,
            intents,
            tone,
            config,
            json,
        } => {
            let Some(config) = load(&config) else {
                return ExitCode::FAILURE;
            };
            let args = data.parse().and_then(|(source, columns, map)| {
                Ok(triaged::tools::eval::EvalArgs {
                    source,
                    columns,
                    map,
                    predicted_map: predicted_map.map(|m| m.parse()).transpose()?,
                    tones: tone.tone,
                    positive: tone.positive,
                    intents,
                    json,
                })
            });
            report(args.and_then(|a| triaged::tools::eval::eval(&config, &a)))
        }
        Command::Tune {
            data,
            order,
            folds,
            seed,
            out,
            yardstick,
            learn,
            intents,
            max_rules,
            min_df,
            learn_as,
            tone,
            config,
        } => {
            let Some(config) = load(&config) else {
                return ExitCode::FAILURE;
            };
            let args = data
                .parse()
                .map(|(source, columns, map)| triaged::tools::tune::TuneArgs {
                    source,
                    columns,
                    map,
                    order,
                    folds,
                    out,
                    yardstick,
                    seed,
                    tones: tone.tone,
                    positive: tone.positive,
                    learn,
                    intents,
                    max_rules,
                    min_df,
                    learn_as,
                    command: std::env::args()
                        .map(|a| if a.contains(' ') { format!("{a:?}") } else { a })
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            report(args.and_then(|a| triaged::tools::tune::tune(&config, &a)))
        }
    }
}

fn load(path: &std::path::Path) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{} problem{} found",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            None
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let Some(c) = load(path) else {
        return ExitCode::FAILURE;
    };
    let followups: Vec<&str> = c
        .followups
        .enabled()
        .into_iter()
        .map(|f| f.as_str())
        .collect();
    let clock = if c.sla.business_hours {
        format!(
            "business hours in {}",
            c.sla.calendar.time_zone().iana_name().unwrap_or("?")
        )
    } else {
        "round-the-clock SLA (no [sla])".to_string()
    };
    let place = |m: &triaged::config::MailboxConfig| {
        format!(
            "{}@{}:{}/{}",
            m.username,
            m.host,
            m.port,
            m.folders.join(",")
        )
    };
    let mailboxes = match c.mailboxes.as_slice() {
        [one] => format!("mailbox {}", place(one)),
        all => format!("{} mailboxes", all.len()),
    };
    println!(
        "{}: OK ({} rules in {} files, template {:?}, follow-ups: {}, {clock}, {mailboxes})",
        path.display(),
        c.rules.len(),
        c.rule_files.len(),
        c.ack.template,
        if followups.is_empty() {
            "none".to_string()
        } else {
            followups.join(", ")
        },
    );
    if c.mailboxes.len() > 1 {
        for m in &c.mailboxes {
            let from = m.from.as_ref().unwrap_or(&c.smtp.from);
            println!(
                "  mailbox {:?} {}{}: for {}, answered from {from}",
                m.name,
                place(m),
                m.sent_folder
                    .as_ref()
                    .map(|s| format!(" (sent: {s})"))
                    .unwrap_or_default(),
                m.address,
            );
        }
    }
    let now = Clock::system().now();
    for d in &c.digests {
        let next = d.next_send(now);
        println!(
            "  digest {:?} to {}: next {}",
            d.name,
            d.to.join(", "),
            triaged::sla::to_ts(next)
                .to_zoned(d.schedule.tz.clone())
                .strftime("%a %Y-%m-%d %H:%M %Z")
        );
    }
    if let Some(a) = &c.alerts {
        let rules: Vec<&str> = c
            .rules
            .rules()
            .iter()
            .filter(|r| r.alert)
            .map(|r| r.id.as_str())
            .collect();
        println!(
            "  alerts to {}: rules {} and intents {}; at most {} an hour; health alerts {}",
            a.to.join(", "),
            if rules.is_empty() {
                "-".to_string()
            } else {
                rules.join(", ")
            },
            if a.intents.is_empty() {
                "-".to_string()
            } else {
                a.intents.join(", ")
            },
            a.max_per_hour,
            if a.health.enabled { "on" } else { "off" }
        );
    }
    ExitCode::SUCCESS
}

fn run(path: &std::path::Path) -> ExitCode {
    // The runtime, and at once SIGHUP's handler, before anything that takes time (loading the
    // configuration, a token command): without it a SIGHUP ends the process. One that arrives
    // before the daemon runs is taken as "reload once running" (triaged::reload::Hangups).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let hangups = {
        let _in_runtime = rt.enter();
        triaged::reload::Hangups::listen()
    };
    let Some(config) = load(path) else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(triaged::daemon::run_with(
        config,
        Clock::system(),
        shutdown_signal(),
        hangups,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", shown(&e));
            ExitCode::FAILURE
        }
    }
}

fn status(path: &std::path::Path) -> ExitCode {
    let Some(config) = load(path) else {
        return ExitCode::FAILURE;
    };
    let result = triaged::store::Store::open(&config.store.path).and_then(|s| s.summary());
    match result {
        Ok((messages, acks, outbox)) => {
            for (title, rows) in [
                ("messages", messages),
                ("acknowledgement decisions", acks),
                ("outbox", outbox),
            ] {
                println!("{title}:");
                if rows.is_empty() {
                    println!("  (none)");
                }
                for (k, n) in rows {
                    println!("  {:<28} {n:>7}", triaged::wording::one_line(&k));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", shown(&e));
            ExitCode::FAILURE
        }
    }
}

fn queue(path: &std::path::Path, action: Option<QueueAction>, due: bool, json: bool) -> ExitCode {
    let Some(config) = load(path) else {
        return ExitCode::FAILURE;
    };
    let clock = Clock::system();
    let out = match action {
        None => triaged::outbox::queue_report(&config, &clock, due, json),
        Some(QueueAction::Cancel { id }) => triaged::outbox::cancel_row(&config, &clock, id),
        Some(QueueAction::Release { id, .. }) => {
            triaged::outbox::decide_held(&config, &clock, id, true)
        }
        Some(QueueAction::Drop { id, .. }) => {
            triaged::outbox::decide_held(&config, &clock, id, false)
        }
    };
    match out {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", shown(&e));
            ExitCode::FAILURE
        }
    }
}

fn explain(config: &std::path::Path, file: &std::path::Path, json: bool) -> ExitCode {
    let Some(config) = load(config) else {
        return ExitCode::FAILURE;
    };
    report(triaged::tools::explain::explain(
        &config,
        file,
        json,
        Clock::system().now(),
    ))
}

fn tickets_list(
    config: &Config,
    state: Option<String>,
    priority: Option<String>,
    limit: Option<usize>,
    json: bool,
) -> anyhow::Result<String> {
    use triaged::tickets::State;
    let now = Clock::system().now();
    let priority = match priority.as_deref() {
        None => None,
        Some(p) => Some(
            triaged::score::Priority::ALL
                .into_iter()
                .find(|x| x.as_str() == p)
                .ok_or_else(|| {
                    anyhow::anyhow!("unknown priority {p:?}: use urgent, high, normal or low")
                })?,
        ),
    };
    let names = || {
        State::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let states: Vec<State> = match state.as_deref() {
        None => Vec::new(),
        // Everything that is not closed.
        Some("open") => State::ALL
            .into_iter()
            .filter(|s| *s != State::Closed)
            .collect(),
        Some(s) => vec![
            State::parse(s)
                .ok_or_else(|| anyhow::anyhow!("unknown state {s:?}: use open, {}", names()))?,
        ],
    };
    // A table is read by a person: the most pressing first. JSON is read by a program: all.
    let limit = match (limit, json) {
        (Some(0), _) | (None, true) => None,
        (Some(n), _) => Some(n),
        (None, false) => Some(triaged::tools::tickets::DEFAULT_LIMIT),
    };
    triaged::tools::tickets::list(config, &states, priority, limit, json, now)
}

/// An error chain for the terminal: it may quote an email (a subject, a parse problem), so its
/// control characters show escaped.
fn shown(e: &anyhow::Error) -> String {
    triaged::wording::lines(&format!("{e:#}")).into_owned()
}

/// Print a tool's report, or its error in one line.
fn report(r: anyhow::Result<String>) -> ExitCode {
    match r {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", shown(&e));
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers, Ctrl-C through tokio is the fallback.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
