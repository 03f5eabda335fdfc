//! The `triaged` command line: parse arguments, start logging, dispatch, map errors to exit codes.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use triaged::clock::Clock;
use triaged::config::Config;
use triaged::score::Priority;
use triaged::tickets::State;
use triaged::tools;

/// Support-mailbox daemon: triages customer email over IMAP, acknowledges it safely over SMTP,
/// and records every decision in SQLite.
#[derive(Parser)]
#[command(name = "triaged", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The configuration file (every command but init).
    #[arg(
        long,
        short,
        global = true,
        default_value = "config/triaged.toml",
        help_heading = "Global options"
    )]
    config: PathBuf,
    /// Log lines as text for people ("human"), or one JSON object per line for log shippers
    /// ("json"). Logs go to stderr; RUST_LOG sets the level (default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, help_heading = "Global options")]
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
    Run,
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
    Check,
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
    },
    /// Explain how an email scores: every rule hit, its weight, the running score.
    ///
    /// Also the priority, tones and intents, group caps, whether the email would be
    /// acknowledged, the team it goes to and why ([[team]]), and the questions its
    /// acknowledgement would ask ([[ask]]), or why none. Needs no server.
    Explain {
        /// The email, as an .eml file (RFC 5322).
        file: PathBuf,
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
    ///
    /// How the rules agree with staff: the verdicts in the store of the last 30 days against
    /// staff's corrections (re-flagged or moved into another priority's folder in their mail
    /// client, #priority/#tone commands, ticket relabel); a verdict staff left as it was
    /// counts as agreed:
    ///
    ///   triaged eval --store --since 30d
    ///   triaged eval --store --tone angry,frustrated --positive angry
    #[command(verbatim_doc_comment)]
    Eval {
        #[command(flatten)]
        data: DataArgs,
        /// Compare the verdicts in the store with staff's corrections instead of a labelled
        /// file: customer emails received in the last --since; staff's label where they
        /// corrected one, the verdict's where they left it (counted as agreed).
        #[arg(long, conflicts_with_all = ["data", "predicted_map", "intents"])]
        store: bool,
        /// With --store: the period, back from now (e.g. 7d, 12h) [default: 30d].
        #[arg(long, conflicts_with = "data")]
        since: Option<String>,
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
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Fit the rules' weights and thresholds to labelled data or to staff's corrections
    /// (--store), list phrases the rules miss, or learn new keyword rules (--learn).
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
    ///
    /// From what staff said in the mailbox (their corrections; the verdicts they left count
    /// as weak labels, weight --weak): the figures, the rules that gain or lose weight and
    /// the emails that would move priority, before anything is written:
    ///
    ///   triaged tune --store --since 90d
    ///   triaged tune --store --since 90d --out config/weights.toml
    ///     [--learn config/rules/learned-priority.toml]
    ///
    /// Tones: the rules' evidence for a tone fitted to staff's tone corrections (tone/...
    /// keywords, #tone, relabel --tone), and the emails whose tone would change; --learn
    /// writes it (with phrases) as rules giving the tone --learn-as:
    ///
    ///   triaged tune --store --tone angry,frustrated
    ///     [--learn-as angry --learn config/rules/learned-angry.toml]
    #[command(verbatim_doc_comment)]
    Tune(TuneCli),
    /// List tickets, most urgent and oldest first.
    Tickets {
        /// Only tickets in this state, or open (everything not closed).
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// Only tickets of this priority.
        #[arg(long, value_enum)]
        priority: Option<PriorityArg>,
        /// Only tickets with this team (a [[team]] name).
        #[arg(long, value_name = "NAME")]
        team: Option<String>,
        /// List at most this many (0: all). Default: 100 in a table, all in JSON.
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one ticket (its team and why, the questions asked, its history); close, snooze,
    /// reopen or re-route it; correct its priority or tone (relabel).
    Ticket {
        #[command(subcommand)]
        action: TicketAction,
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
    },
    /// Print what the store holds: messages by priority or skip reason, acknowledgement
    /// decisions, outbox states.
    Status,
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

/// `tickets --state`: a ticket state, or `open`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StateArg {
    New,
    Acknowledged,
    Answered,
    Reopened,
    Snoozed,
    Closed,
    // Everything not closed.
    Open,
}

impl StateArg {
    /// The states the filter lets through.
    fn states(self) -> Vec<State> {
        let one = |s| vec![s];
        match self {
            StateArg::New => one(State::New),
            StateArg::Acknowledged => one(State::Acknowledged),
            StateArg::Answered => one(State::Answered),
            StateArg::Reopened => one(State::Reopened),
            StateArg::Snoozed => one(State::Snoozed),
            StateArg::Closed => one(State::Closed),
            StateArg::Open => State::ALL
                .into_iter()
                .filter(|s| *s != State::Closed)
                .collect(),
        }
    }
}

/// `tickets --priority`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PriorityArg {
    Urgent,
    High,
    Normal,
    Low,
}

impl From<PriorityArg> for Priority {
    fn from(p: PriorityArg) -> Priority {
        match p {
            PriorityArg::Urgent => Priority::Urgent,
            PriorityArg::High => Priority::High,
            PriorityArg::Normal => Priority::Normal,
            PriorityArg::Low => Priority::Low,
        }
    }
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
    /// Re-route the ticket to another team (a [[team]] name), e.g.
    /// `triaged ticket route T-1042 billing`. Logged in its history as `routed`; staff can do
    /// the same by email with a first line `#team billing`.
    Route { id: String, team: String },
    /// Correct a verdict: the priority or tones of the ticket's latest email from its customer.
    ///
    /// The ticket's priority follows a priority correction. It is recorded as staff's label
    /// (what `triaged eval --store` compares the rules with); the email's keywords in the
    /// mailbox stay as they are, and reading them again does not undo it.
    ///
    /// Examples:
    ///
    ///   triaged ticket relabel T-1042 --priority urgent
    ///   triaged ticket relabel T-1042 --tone angry,-polite   (angry: it has the tone; -polite: not)
    ///   triaged ticket relabel T-1042 --undo                 (the verdicts count again)
    #[command(verbatim_doc_comment)]
    Relabel {
        /// The ticket: T-1042, 1042 or [#T-1042].
        id: String,
        /// The priority staff say it has.
        #[arg(long, value_enum, required_unless_present_any = ["tone", "undo"])]
        priority: Option<PriorityArg>,
        /// Tones it has (NAME) or has not (-NAME), comma-separated.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        tone: Vec<String>,
        /// Undo every correction in force on the ticket's emails (by anyone, any way).
        #[arg(long, conflicts_with_all = ["priority", "tone"])]
        undo: bool,
    },
}

/// `triaged tune`'s arguments.
#[derive(clap::Args)]
struct TuneCli {
    #[command(flatten)]
    data: DataArgs,
    /// Fit to staff's corrections in the store instead of a labelled file: the customer
    /// emails received in the last --since, labelled with staff's priority (with --tone: their
    /// tones) where they corrected it, else with the verdict they left (a weak label, --weak).
    /// Prints the figures and what would change; writes only with --out (priorities) or
    /// --learn.
    #[arg(long, conflicts_with_all = [
        "data", "text", "label", "map", "filter", "part", "order", "yardstick", "intents",
    ])]
    store: bool,
    /// With --store: the period, back from now (e.g. 90d, 12h) [default: 90d].
    #[arg(long, conflicts_with = "data")]
    since: Option<String>,
    /// With --store: the sample weight of a verdict staff left as it was, against 1 for a
    /// correction (0: fit the corrections alone) [default: 0.3].
    #[arg(long, conflicts_with = "data")]
    weak: Option<f64>,
    /// With --store: how many of the emails that would move, and of the rules that change,
    /// are listed.
    #[arg(long, default_value_t = 15)]
    show: usize,
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
    /// With --learn in tone mode (and --store --tone): the tone the learned rules attach
    /// (default: the first --tone), e.g. `negative` beside the pack's angry/frustrated.
    #[arg(long, requires = "learn")]
    learn_as: Option<String>,
    #[command(flatten)]
    tone: ToneArgs,
}

impl TuneCli {
    /// `tune --store`'s arguments.
    fn store_args(&self) -> anyhow::Result<tools::tune::store::StoreArgs> {
        let since = self.since.as_deref().unwrap_or("90d");
        Ok(tools::tune::store::StoreArgs {
            since: triaged::units::parse_duration(since).map_err(|e| anyhow::anyhow!(e))?,
            weak: self.weak.unwrap_or(tools::tune::store::DEFAULT_WEAK),
            folds: self.folds,
            seed: self.seed,
            out: self.out.clone(),
            learn: self.learn.clone(),
            max_rules: self.max_rules,
            min_df: self.min_df,
            show: self.show,
            tones: self.tone.tone.clone(),
            positive: self.tone.positive.clone(),
            learn_as: self.learn_as.clone(),
        })
    }

    fn parse(self) -> anyhow::Result<tools::tune::TuneArgs> {
        let (source, columns, map) = self.data.parse()?;
        Ok(tools::tune::TuneArgs {
            source,
            columns,
            map,
            order: self.order,
            folds: self.folds,
            out: self.out,
            yardstick: self.yardstick,
            seed: self.seed,
            tones: self.tone.tone,
            positive: self.tone.positive,
            learn: self.learn,
            intents: self.intents,
            max_rules: self.max_rules,
            min_df: self.min_df,
            learn_as: self.learn_as,
            command: std::env::args()
                .map(|a| if a.contains(' ') { format!("{a:?}") } else { a })
                .collect::<Vec<_>>()
                .join(" "),
        })
    }
}

/// Labelled data for eval and tune.
#[derive(clap::Args)]
struct DataArgs {
    /// The labelled data: .csv (header row detected; columns by name, or by 0-based index when
    /// there is none) or .jsonl.
    #[arg(long, alias = "csv", required = true)]
    data: Option<PathBuf>,
    /// Text columns, comma-separated: the first is the subject, the rest the body (one column:
    /// the body).
    #[arg(long, value_delimiter = ',', required = true)]
    text: Vec<String>,
    /// The label column.
    #[arg(long, required = true)]
    label: Option<String>,
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
    triaged_tune::eval::Source,
    triaged_tune::eval::Columns,
    Option<triaged_tune::eval::LabelMap>,
);

impl DataArgs {
    fn parse(self) -> anyhow::Result<Data> {
        // Required by clap, except where `eval --store` reads the store instead.
        let (Some(data), Some(label)) = (self.data, self.label) else {
            anyhow::bail!("give the labelled data: --data FILE --text COLUMNS --label COLUMN");
        };
        let mut source = triaged_tune::eval::Source::from_path(&data)?;
        source.header = self.header.parse()?;
        let columns = triaged_tune::eval::Columns {
            text: self.text,
            label,
            filter: self
                .filter
                .iter()
                .map(|f| triaged_tune::eval::Columns::parse_filter(f))
                .collect::<anyhow::Result<_>>()?,
            split: match &self.part {
                Some(p) => Some(triaged_tune::eval::Split {
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
    /// e.g. angry,frustrated,abusive (with --store: an email has the tone when staff's tones,
    /// else the verdict's, include any of these).
    #[arg(long, value_delimiter = ',')]
    tone: Vec<String>,
    /// Tone mode: the gold class that counts as positive (after --map; with --store, the
    /// name the report gives the tone).
    #[arg(long)]
    positive: Option<String>,
}

fn main() -> ExitCode {
    let cli = parse();
    init_logging(cli.log_format);
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
    dispatch(&cli.config, cli.command)
}

/// The commands and their arguments. `init` has a `--config` of its own, hidden, so the global
/// one is not in its help. `eval` and `tune` need their labelled data unless they read the
/// store (`--store`).
fn command() -> clap::Command {
    Cli::command()
        .mut_subcommand("init", |init| {
            init.arg(
                clap::Arg::new("config")
                    .long("config")
                    .short('c')
                    .value_name("CONFIG")
                    .value_parser(clap::value_parser!(PathBuf))
                    .hide(true),
            )
        })
        .mut_subcommand("eval", |eval| {
            ["data", "text", "label"]
                .into_iter()
                .fold(eval, |eval, id| {
                    eval.mut_arg(id, |a| a.required(false).required_unless_present("store"))
                })
        })
        .mut_subcommand("tune", |tune| {
            ["data", "text", "label"]
                .into_iter()
                .fold(tune, |tune, id| {
                    tune.mut_arg(id, |a| a.required(false).required_unless_present("store"))
                })
        })
}

/// The command line, or clap's message and exit code.
fn parse() -> Cli {
    parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// The command line's commands and arguments. `--config` is global, but `init` writes a
/// configuration and reads none: there it is refused as it was before it became global.
fn parse_from(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<Cli, clap::Error> {
    let mut command = command();
    let matches = command.try_get_matches_from_mut(args)?;
    let given = |m: &clap::ArgMatches| m.value_source("config") == Some(ValueSource::CommandLine);
    if let Some(init) = matches.subcommand_matches("init")
        && (given(&matches) || given(init))
    {
        let message = "unexpected argument '--config' found";
        return Err(match command.find_subcommand_mut("init") {
            Some(init) => init.error(ErrorKind::UnknownArgument, message),
            None => command.error(ErrorKind::UnknownArgument, message),
        });
    }
    Cli::from_arg_matches(&matches)
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Whatever RUST_LOG says, the IMAP/SMTP/TLS crates never log the wire (passwords, tokens,
    // customer email): the cap is a second filter over the RUST_LOG one.
    let cap = triaged::logs::wire_cap();
    match format {
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
}

/// Run the command with the configuration at `path` (loaded first, except for `init` and
/// `run`).
fn dispatch(path: &Path, command: Command) -> ExitCode {
    let now = || Clock::system().now();
    match command {
        Command::Init { dir, force } => report(tools::init::init(&dir, force)),
        Command::Run => run(path),
        Command::Check => with_config(path, |c| Ok(tools::check::report(path, c, now()))),
        Command::Status => with_config(path, |c| {
            triaged::store::Store::open(&c.store.path).and_then(|s| tools::status::report(&s))
        }),
        Command::Queue { action, due, json } => with_config(path, |c| queue(c, action, due, json)),
        Command::Explain { file, json } => {
            with_config(path, |c| tools::explain::explain(c, &file, json, now()))
        }
        Command::Digest {
            preview,
            send_now: _,
            name,
            at,
            html,
        } => with_config(path, |c| {
            if preview {
                tools::digest::preview(c, name.as_deref(), at.as_deref(), html.as_deref(), now())
            } else {
                tools::digest::send_now(c, name.as_deref(), now())
            }
        }),
        Command::Tickets {
            state,
            priority,
            team,
            limit,
            json,
        } => with_config(path, |c| {
            tickets_list(c, state, priority, team.as_deref(), limit, json)
        }),
        Command::Ticket { action } => with_config(path, |c| ticket(c, action, now())),
        Command::Eval {
            store: true,
            since,
            tone,
            json,
            ..
        } => with_config(path, |c| {
            let since = since.as_deref().unwrap_or("30d");
            let since = triaged::units::parse_duration(since).map_err(|e| anyhow::anyhow!(e))?;
            let args = tools::eval::StoreArgs {
                since,
                tones: tone.tone,
                positive: tone.positive,
                json,
            };
            tools::eval::eval_store(c, &args, now())
        }),
        Command::Eval {
            data,
            predicted_map,
            intents,
            tone,
            json,
            ..
        } => with_config(path, |c| {
            let (source, columns, map) = data.parse()?;
            let args = tools::eval::EvalArgs {
                source,
                columns,
                map,
                predicted_map: predicted_map.map(|m| m.parse()).transpose()?,
                tones: tone.tone,
                positive: tone.positive,
                intents,
                json,
            };
            tools::eval::eval(c, &args)
        }),
        Command::Tune(args) if args.store => with_config(path, |c| {
            let args = args.store_args()?;
            tools::tune::store::tune_store(c, &args, now())
        }),
        Command::Tune(args) => with_config(path, |c| {
            let args = args.parse()?;
            tools::tune::tune(c, &args)
        }),
    }
}

/// Load the configuration, then print the tool's report; or print every problem of the
/// configuration.
fn with_config(path: &Path, tool: impl FnOnce(&Config) -> anyhow::Result<String>) -> ExitCode {
    match load(path) {
        Some(config) => report(tool(&config)),
        None => ExitCode::FAILURE,
    }
}

fn load(path: &Path) -> Option<Config> {
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

fn run(path: &Path) -> ExitCode {
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

fn queue(
    config: &Config,
    action: Option<QueueAction>,
    due: bool,
    json: bool,
) -> anyhow::Result<String> {
    let clock = Clock::system();
    match action {
        None => triaged::outbox::queue_report(config, &clock, due, json),
        Some(QueueAction::Cancel { id }) => triaged::outbox::cancel_row(config, &clock, id),
        Some(QueueAction::Release { id, .. }) => {
            triaged::outbox::decide_held(config, &clock, id, true)
        }
        Some(QueueAction::Drop { id, .. }) => {
            triaged::outbox::decide_held(config, &clock, id, false)
        }
    }
}

fn tickets_list(
    config: &Config,
    state: Option<StateArg>,
    priority: Option<PriorityArg>,
    team: Option<&str>,
    limit: Option<usize>,
    json: bool,
) -> anyhow::Result<String> {
    let states = state.map(StateArg::states).unwrap_or_default();
    // A table is read by a person: the most pressing first. JSON is read by a program: all.
    let limit = match (limit, json) {
        (Some(0), _) | (None, true) => None,
        (Some(n), _) => Some(n),
        (None, false) => Some(tools::tickets::DEFAULT_LIMIT),
    };
    let now = Clock::system().now();
    let team = team.map(str::to_lowercase);
    let filter = triaged::store::TicketFilter {
        states: &states,
        priority: priority.map(Priority::from),
        team: team.as_deref(),
    };
    tools::tickets::list(config, &filter, limit, json, now)
}

fn ticket(config: &Config, action: TicketAction, now: i64) -> anyhow::Result<String> {
    use tools::tickets as t;
    use triaged::tickets::Command as C;
    match action {
        TicketAction::Show { id, json } => t::show(config, &id, json, now),
        TicketAction::Close { id } => t::command(config, &id, C::Close, now),
        TicketAction::Reopen { id } => t::command(config, &id, C::Reopen, now),
        TicketAction::Route { id, team } => {
            t::command(config, &id, C::Team(team.to_lowercase()), now)
        }
        TicketAction::Snooze { id, duration } => match triaged::units::parse_duration(&duration) {
            Ok(d) if !d.is_zero() => t::command(config, &id, C::Snooze(d), now),
            Ok(_) => Err(anyhow::anyhow!("snooze for how long? e.g. 3d or 4h")),
            Err(e) => Err(anyhow::anyhow!(e)),
        },
        TicketAction::Relabel {
            id,
            priority,
            tone,
            undo,
        } => {
            let changes = tools::relabel::changes(priority.map(Priority::from), &tone)?;
            tools::relabel::relabel(config, &id, &changes, undo, now)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_from(std::iter::once("triaged").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn config_is_taken_before_or_after_the_command_and_defaults_to_the_example() {
        for args in [
            &["run", "--config", "x.toml"][..],
            &["-c", "x.toml", "check"],
            &["status", "-c", "x.toml"],
            &["queue", "cancel", "7", "--config", "x.toml"],
            &["ticket", "-c", "x.toml", "show", "T-1"],
            &[
                "eval", "--data", "d.csv", "--text", "t", "--label", "l", "-c", "x.toml",
            ],
        ] {
            let cli = parsed(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(cli.config, Path::new("x.toml"), "{args:?}");
        }
        let cli = parsed(&["check"]).expect("check");
        assert_eq!(cli.config, Path::new("config/triaged.toml"));
    }

    #[test]
    fn init_refuses_a_config_wherever_it_stands() {
        for args in [
            &["init", "dir", "--config", "x.toml"][..],
            &["init", "-c", "x.toml", "dir"],
            &["--config", "x.toml", "init", "dir"],
        ] {
            let err = parsed(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(err.kind(), ErrorKind::UnknownArgument, "{args:?}");
            assert!(err.to_string().contains("'--config'"), "{err}");
        }
        let cli = parsed(&["init", "dir", "--force"]).expect("init");
        assert!(matches!(cli.command, Command::Init { force: true, .. }));
        let mut all = command();
        all.build();
        let mut help = |name: &str| {
            all.find_subcommand_mut(name)
                .map(|c| c.render_help().to_string())
                .unwrap_or_default()
        };
        let init = help("init");
        assert!(
            init.contains("--force") && init.contains("--log-format"),
            "{init}"
        );
        assert!(!init.contains("--config"), "{init}");
        assert!(help("check").contains("--config"));
    }

    #[test]
    fn eval_and_tune_read_labelled_data_or_the_store_and_relabel_names_a_change() {
        let cli = parsed(&["eval", "--store", "--since", "7d", "--tone", "angry"]).expect("store");
        assert!(matches!(
            cli.command,
            Command::Eval { store: true, since: Some(ref since), .. } if since == "7d"
        ));
        let cli = parsed(&["eval", "--store"]).expect("store");
        assert!(matches!(cli.command, Command::Eval { since: None, .. }));
        let cli = parsed(&[
            "tune", "--store", "--since", "30d", "--weak", "0", "--out", "w.toml",
        ])
        .expect("tune --store");
        let Command::Tune(tune) = cli.command else {
            panic!("not tune");
        };
        let args = tune.store_args().expect("store args");
        assert_eq!(
            (
                args.since.as_secs(),
                args.weak,
                args.out.is_some(),
                args.show
            ),
            (30 * 86_400, 0.0, true, 15)
        );
        let Command::Tune(tune) = parsed(&["tune", "--store"]).expect("defaults").command else {
            panic!("not tune");
        };
        let args = tune.store_args().expect("store args");
        assert_eq!((args.since.as_secs(), args.weak), (90 * 86_400, 0.3));
        assert!(args.tones.is_empty(), "priorities unless --tone");
        let Command::Tune(tune) = parsed(&[
            "tune",
            "--store",
            "--tone",
            "angry,frustrated",
            "--learn-as",
            "angry",
            "--learn",
            "l.toml",
        ])
        .expect("tone mode")
        .command
        else {
            panic!("not tune");
        };
        let args = tune.store_args().expect("store args");
        assert_eq!(args.tones, ["angry", "frustrated"]);
        assert_eq!(
            (args.learn_as.as_deref(), args.learn.is_some()),
            (Some("angry"), true)
        );
        for bad in [
            &["eval"][..],
            &[
                "eval", "--since", "7d", "--data", "d.csv", "--text", "t", "--label", "l",
            ],
            &["eval", "--store", "--data", "d.csv"],
            &["eval", "--store", "--intents"],
            &["tune", "--store", "--data", "d.csv"],
            &["tune", "--store", "--text", "t"],
            &[
                "tune", "--since", "7d", "--data", "d.csv", "--text", "t", "--label", "l",
            ],
            &[
                "tune", "--weak", "0.5", "--data", "d.csv", "--text", "t", "--label", "l",
            ],
            &["tune", "--text", "t", "--label", "l"],
            &["ticket", "relabel", "T-1"],
            &["ticket", "relabel", "T-1", "--undo", "--priority", "high"],
            &["ticket", "relabel", "T-1", "--priority", "asap"],
        ] {
            assert!(parsed(bad).is_err(), "{bad:?} accepted");
        }
        let cli = parsed(&["ticket", "relabel", "T-1", "--tone", "angry,-polite"]).expect("tones");
        let Command::Ticket {
            action: TicketAction::Relabel { tone, undo, .. },
        } = cli.command
        else {
            panic!("not relabel");
        };
        assert_eq!(
            (tone, undo),
            (vec!["angry".into(), "-polite".into()], false)
        );
        let cli = parsed(&["ticket", "relabel", "T-1", "--undo"]).expect("undo");
        assert!(matches!(
            cli.command,
            Command::Ticket {
                action: TicketAction::Relabel { undo: true, .. }
            }
        ));
    }

    #[test]
    fn tickets_state_and_priority_take_the_documented_values() {
        let cli = parsed(&["tickets", "--state", "open", "--priority", "high"]).expect("tickets");
        let Command::Tickets {
            state, priority, ..
        } = cli.command
        else {
            panic!("not tickets");
        };
        let open = state.map(StateArg::states).unwrap_or_default();
        assert_eq!(open.len(), State::ALL.len() - 1);
        assert!(!open.contains(&State::Closed));
        assert_eq!(priority.map(Priority::from), Some(Priority::High));
        for s in State::ALL {
            let cli = parsed(&["tickets", "--state", s.as_str()]).expect("a state");
            let Command::Tickets { state, .. } = cli.command else {
                panic!("not tickets");
            };
            assert_eq!(state.map(StateArg::states), Some(vec![s]));
        }
        for p in Priority::ALL {
            let cli = parsed(&["tickets", "--priority", p.as_str()]).expect("a priority");
            let Command::Tickets { priority, .. } = cli.command else {
                panic!("not tickets");
            };
            assert_eq!(priority.map(Priority::from), Some(p));
        }
        let cli = parsed(&["tickets", "--team", "billing"]).expect("a team");
        let Command::Tickets { team, .. } = cli.command else {
            panic!("not tickets");
        };
        assert_eq!(team.as_deref(), Some("billing"));
        let cli = parsed(&["ticket", "route", "T-1042", "billing"]).expect("route");
        let Command::Ticket {
            action: TicketAction::Route { id, team },
        } = cli.command
        else {
            panic!("not ticket route");
        };
        assert_eq!((id.as_str(), team.as_str()), ("T-1042", "billing"));
        for incomplete in [&["tickets", "--team"][..], &["ticket", "route", "T-1042"]] {
            assert!(parsed(incomplete).is_err(), "{incomplete:?} accepted");
        }
        for bad in [
            &["tickets", "--state", "bogus"][..],
            &["tickets", "--priority", "bogus"],
        ] {
            let err = parsed(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(err.kind(), ErrorKind::InvalidValue, "{bad:?}");
        }
    }
}
