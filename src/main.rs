//! The `gigs-notifier` command line: parse, load settings, call into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gigs_notifier::config::{LogFormat, RawSettings, WebhookSecret};
use gigs_notifier::{demo, replay, shutdown, store::Store, telemetry, Application};

#[derive(Parser)]
#[command(
    name = "gigs-notifier",
    version,
    about = "Verified Gigs webhooks in, redacted account notices out"
)]
struct Cli {
    /// Optional TOML settings file (keys are the environment names in lower case).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (what the container runs).
    Serve,
    /// Run everything locally with a Gigs simulator and a printing mail outbox.
    Demo,
    /// Sign event files (Standard Webhooks) and POST them to a running instance.
    Replay {
        /// Webhook endpoint, e.g. http://localhost:8080/webhooks/gigs
        #[arg(long)]
        url: String,
        /// Signing secret (`whsec_…`); defaults to the first of GIGS_WEBHOOK_SECRET.
        #[arg(long, env = "GIGS_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// Event files or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Exit 0 if the local service answers /healthz (the container's HEALTHCHECK).
    Healthcheck,
    /// Inspect and retry dead letters in the configured database.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Proof of notice: the audit trail of notices, kept after their addresses are purged.
    Notices {
        #[command(subcommand)]
        action: NoticesAction,
    },
    /// Check or preview the notice templates (TEMPLATES_DIR, else the bundled set).
    Templates {
        #[command(subcommand)]
        action: TemplatesAction,
    },
}

#[derive(Subcommand)]
enum TemplatesAction {
    /// Render every kind in every locale with sample notices; exit 1 naming each broken
    /// template and each kind missing from the default locale.
    Check {
        /// Template directory (<locale>/<kind>.subject|.txt|.html); default TEMPLATES_DIR.
        #[arg(long, value_name = "D")]
        dir: Option<PathBuf>,
    },
    /// Print the mail of one kind in one locale, rendered from a sample notice.
    Preview {
        /// Notice kind code, e.g. subscription_created.
        #[arg(long, value_name = "K")]
        kind: String,
        /// Locale tag, e.g. es-US (falls back like a real notice would).
        #[arg(long, value_name = "L", default_value = "en")]
        locale: String,
        /// Template directory; default TEMPLATES_DIR.
        #[arg(long, value_name = "D")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum NoticesAction {
    /// List audit records, newest first, with their attempts.
    List {
        /// Only notices to this Gigs user (`usr_…`).
        #[arg(long, value_name = "usr_…")]
        user: Option<String>,
        /// Only notices to this address (compared by its keyed hash; never stored or printed).
        #[arg(long, value_name = "ADDR")]
        email: Option<String>,
        /// Only notices about this subscription (`sub_…`).
        #[arg(long, value_name = "sub_…")]
        subscription: Option<String>,
        /// Only this notice kind, e.g. subscription_created.
        #[arg(long, value_name = "K")]
        kind: Option<String>,
        /// Only notices created at or after this time: RFC 3339 or YYYY-MM-DD (UTC).
        #[arg(long, value_name = "T", value_parser = gigs_notifier::audit::parse_since)]
        since: Option<i64>,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// At most this many records (the newest).
        #[arg(long, default_value_t = gigs_notifier::audit::DEFAULT_LIMIT,
              value_parser = clap::value_parser!(i64).range(1..=gigs_notifier::audit::MAX_LIMIT))]
        limit: i64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// List dead letters with their reasons and attempts.
    List,
    /// Show one dead letter and its event, personal values masked.
    Show { id: String },
    /// Put dead letters back in their queue.
    Retry {
        /// Event or notice id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Retry every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Delete a dead letter that needs no delivery (its stored event goes too).
    Purge {
        /// Event or notice id.
        id: String,
    },
}

/// mimalloc: the service allocates many small, short-lived buffers per request (bodies,
/// JSON, SQL arguments); glibc's allocator showed up at ~8% of CPU in the ingest profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => {
            let raw = RawSettings::load(cli.config.as_deref())?;
            telemetry::init_logging(raw.log_format()?);
            telemetry::init_panic_logging();
            let settings = raw.into_settings()?;
            let app = Application::build(settings).await?;
            let signals = shutdown::Signals::listen()?;
            app.run_until_signalled(signals).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            if std::env::var_os("RUST_LOG").is_none() {
                // The demo forges a signature on purpose; its warning would only be noise here.
                std::env::set_var("RUST_LOG", "error");
            }
            telemetry::init_logging(LogFormat::Pretty);
            Ok(if demo::run().await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Replay { url, secret, paths } => {
            let first = secret.split(',').next().unwrap_or_default().trim();
            let secret = WebhookSecret::parse(first)
                .map_err(|p| anyhow::anyhow!("--secret / GIGS_WEBHOOK_SECRET: {p}"))?;
            Ok(if replay::run(&url, &secret, &paths).await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Healthcheck => {
            let raw = RawSettings::load(cli.config.as_deref())?;
            let port = raw.listen_port()?;
            let url = format!("http://127.0.0.1:{port}/healthz");
            let client = gigs_notifier::outbound::http_client(std::time::Duration::from_secs(3));
            let healthy = matches!(client.get(&url).send().await, Ok(r) if r.status().is_success());
            if !healthy {
                eprintln!("unhealthy: {url} did not answer 2xx");
            }
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Templates { action } => {
            let raw = RawSettings::load(cli.config.as_deref())?;
            let ok = match action {
                TemplatesAction::Check { dir } => gigs_notifier::templates_cli::check(&raw, dir)?,
                TemplatesAction::Preview { kind, locale, dir } => {
                    gigs_notifier::templates_cli::preview(&raw, dir, &kind, &locale)?
                }
            };
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::DeadLetters { action } => {
            let store = open_store(cli.config.as_deref()).await?;
            gigs_notifier::dead_letters::cli(&store, action.into()).await
        }
        Command::Notices {
            action:
                NoticesAction::List {
                    user,
                    email,
                    subscription,
                    kind,
                    since,
                    format,
                    limit,
                },
        } => {
            use gigs_notifier::audit::{Filter, Format};
            let store = open_store(cli.config.as_deref()).await?;
            let filter = Filter {
                user,
                email,
                subscription,
                kind,
                since,
                limit,
            };
            let format = match format {
                ListFormat::Table => Format::Table,
                ListFormat::Json => Format::Json,
                ListFormat::Csv => Format::Csv,
            };
            gigs_notifier::audit::cli(&store, &filter, format).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The store of the operator commands: only `DATABASE_URL` is needed (and `AUDIT_HASH_KEY`
/// when it is set, so addresses are hashed as `serve` hashes them).
async fn open_store(config: Option<&std::path::Path>) -> anyhow::Result<Store> {
    let raw = RawSettings::load(config)?;
    let url = raw.database_url()?;
    let options = gigs_notifier::store::StoreOptions {
        audit_key: raw.audit_hash_key()?,
        ..Default::default()
    };
    Store::connect_with(&url, &options)
        .await
        .map_err(|e| anyhow::anyhow!("DATABASE_URL: cannot open the database: {e}"))
}

impl From<DeadLetterAction> for gigs_notifier::dead_letters::Action {
    fn from(a: DeadLetterAction) -> Self {
        use gigs_notifier::dead_letters::Action;
        match a {
            DeadLetterAction::List => Action::List,
            DeadLetterAction::Show { id } => Action::Show(id),
            DeadLetterAction::Retry { id: Some(id), .. } => Action::Retry(id),
            DeadLetterAction::Retry { id: None, .. } => Action::RetryAll,
            DeadLetterAction::Purge { id } => Action::Purge(id),
        }
    }
}
