//! The database of one round's `serve`: by default a fresh SQLite file in a temporary
//! directory (`TMPDIR` picks the disk); with `--database postgres://…`, a uniquely named
//! database created through that server's admin connection and dropped after the round.

use anyhow::{bail, Context as _};
use sqlx::Connection as _;

/// Where rounds get their databases.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The admin URL: its user may create and drop databases.
    Postgres(String),
}

impl Backend {
    /// From `--database`: absent for SQLite, or a `postgres://` / `postgresql://` URL.
    pub fn parse(url: Option<&str>) -> anyhow::Result<Self> {
        match url {
            None => Ok(Self::Sqlite),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                url::Url::parse(u).context("--database: not a valid URL")?;
                Ok(Self::Postgres(u.to_string()))
            }
            Some(_) => bail!(
                "--database takes a postgres://… URL (without it: a fresh SQLite file in a temporary directory)"
            ),
        }
    }

    /// How the table names it.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite, synchronous=FULL",
            Self::Postgres(_) => "PostgreSQL",
        }
    }

    /// For the run's header line (no password).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite => "SQLite in a temporary directory".to_string(),
            Self::Postgres(admin) => format!(
                "PostgreSQL, a fresh database per round on {}",
                gigs_notifier::config::redact_password(admin)
            ),
        }
    }
}

/// One round's database; call [`RoundDb::remove`] when done with it.
pub struct RoundDb {
    pub url: String,
    /// SQLite's temporary directory, removed when this is dropped.
    tmp: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl RoundDb {
    pub async fn create(backend: &Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
                Ok(Self {
                    url: format!("sqlite://{}", dir.path().join("bench.db").display()),
                    tmp: Some(dir),
                    pg: None,
                })
            }
            Backend::Postgres(admin) => {
                let name = format!("gn_bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(admin)
                    .await
                    .context("--database: cannot connect")?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .context("--database: cannot create a database (the user needs CREATEDB)")?;
                conn.close().await.ok();
                let mut url = url::Url::parse(admin)?;
                url.set_path(&name);
                Ok(Self {
                    url: url.to_string(),
                    tmp: None,
                    pg: Some((admin.clone(), name)),
                })
            }
        }
    }

    /// A directory on the database's disk: the SQLite file's, or for PostgreSQL (assumed
    /// on this machine) the system's temporary directory.
    pub fn dir(&self) -> std::path::PathBuf {
        match &self.tmp {
            Some(d) => d.path().to_path_buf(),
            None => std::env::temp_dir(),
        }
    }

    /// Drop the PostgreSQL database (the SQLite directory goes with `self`).
    pub async fn remove(self) {
        if let Some((admin, name)) = &self.pg {
            let dropped = async {
                let mut conn = sqlx::PgConnection::connect(admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            };
            if let Err(e) = dropped.await {
                eprintln!("warning: could not drop the bench database {name}: {e}");
            }
        }
    }
}
