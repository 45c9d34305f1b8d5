//! `allot admin`: operations on a data directory.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use allot_domain::auth::{AccountId, Email, Password, Role};
use allot_server::Config;
use allot_server::clock::SystemClock;
use allot_server::service::auth::Auth;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Copy the embedded database to a new file, safely while the server runs. To restore:
    /// stop the server, put the copy in place of DATA_DIR/allot.db (remove allot.db-wal and
    /// allot.db-shm), start the server
    Backup {
        /// The server's data directory
        #[arg(long, env = "ALLOT_DATA_DIR", default_value = "./allot-data")]
        data_dir: PathBuf,
        /// The backup file to create (must not exist)
        #[arg(long)]
        out: PathBuf,
    },
    /// Create a user (the first admin, say). The password is read from
    /// ALLOT_NEW_USER_PASSWORD, else from the first line of standard input. On SQLite the
    /// server must be stopped (the data directory is locked while it runs)
    CreateUser {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        email: String,
        /// admin, marketing, warehouse, support or customer
        #[arg(long)]
        role: String,
    },
    /// Create a service API key with a role; the key is printed once and stored only as a hash
    CreateApiKey {
        #[command(flatten)]
        storage: StorageArgs,
        /// What the key is for
        #[arg(long)]
        name: String,
        /// admin, marketing, warehouse, support or customer
        #[arg(long)]
        role: String,
    },
    /// Print a new data key (base64 of 32 random bytes) for data_key / ALLOT_DATA_KEY
    GenKey,
    /// Revoke a service API key by its id
    RevokeApiKey {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        id: i64,
    },
    /// Deactivate a user (or activate it again with --active true): its refresh tokens are
    /// revoked and its access tokens stop within 5 seconds on every running instance
    SetUserActive {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        id: i64,
        #[arg(long, action = clap::ArgAction::Set, default_value_t = false)]
        active: bool,
    },
    /// Change a user's role: its access tokens (which carry the old role) stop within 5
    /// seconds on every running instance; its next refresh or sign-in carries the new role
    SetUserRole {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        id: i64,
        /// admin, marketing, warehouse, support or customer
        #[arg(long)]
        role: String,
    },
}

/// Where the data is, as for `allot serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct StorageArgs {
    /// The server's data directory (embedded SQLite)
    #[arg(long, env = "ALLOT_DATA_DIR", default_value = "./allot-data")]
    data_dir: PathBuf,
    /// PostgreSQL URL, instead of the data directory
    #[arg(long, env = "ALLOT_DATABASE_URL")]
    database: Option<String>,
    /// The server's data key (base64 of 32 bytes); required with --database. Without it the
    /// embedded database uses (or makes) DATA_DIR/data.key, as the server does
    #[arg(long, env = "ALLOT_DATA_KEY", hide_env_values = true)]
    data_key: Option<String>,
}

impl StorageArgs {
    /// The auth service over the configured store.
    async fn auth(&self) -> Result<Auth, String> {
        let mut config = Config::for_data_dir(self.data_dir.clone());
        config.database = self.database.clone();
        config.data_key = self
            .data_key
            .as_deref()
            .map(allot_storage::crypto::DataKey::parse)
            .transpose()?;
        let store = allot_server::open_store(&config)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Auth::new(store, Arc::new(SystemClock), &config.auth))
    }
}

fn read_password() -> Result<String, String> {
    if let Ok(p) = std::env::var("ALLOT_NEW_USER_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn create_user(storage: StorageArgs, email: String, role: String) -> Result<(), String> {
    let email = Email::parse(&email).map_err(|e| e.to_string())?;
    let role = Role::parse(&role).map_err(|e| e.to_string())?;
    let password = Password::parse(&read_password()?).map_err(|e| e.to_string())?;
    let user = storage
        .auth()
        .await?
        .create_user(email, password, role)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "user {} created: {} ({})",
        user.id.get(),
        user.email,
        user.role.as_str()
    );
    Ok(())
}

async fn create_api_key(storage: StorageArgs, name: String, role: String) -> Result<(), String> {
    let role = Role::parse(&role).map_err(|e| e.to_string())?;
    let (key, secret) = storage
        .auth()
        .await?
        .create_api_key(&name, role)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "api key {} ({}, {}): {secret}",
        key.id,
        key.name,
        key.role.as_str()
    );
    println!("keep it now: it is stored only as a hash and cannot be shown again");
    Ok(())
}

fn finish(command: &str, done: Result<(), String>) -> ExitCode {
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("allot admin {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

impl AdminCommand {
    pub(crate) async fn run(self) -> ExitCode {
        match self {
            AdminCommand::CreateUser {
                storage,
                email,
                role,
            } => finish("create-user", create_user(storage, email, role).await),
            AdminCommand::CreateApiKey {
                storage,
                name,
                role,
            } => finish("create-api-key", create_api_key(storage, name, role).await),
            AdminCommand::GenKey => {
                println!("{}", allot_storage::crypto::DataKey::generate().to_base64());
                ExitCode::SUCCESS
            }
            AdminCommand::RevokeApiKey { storage, id } => {
                let done = match storage.auth().await {
                    Ok(auth) => auth.revoke_api_key(id).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                if done.is_ok() {
                    println!("api key {id} revoked");
                }
                finish("revoke-api-key", done)
            }
            AdminCommand::SetUserActive {
                storage,
                id,
                active,
            } => {
                let done = match storage.auth().await {
                    Ok(auth) => auth
                        .set_active(AccountId::new(id), active)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                if done.is_ok() {
                    let state = if active { "active" } else { "deactivated" };
                    println!("user {id} {state}");
                }
                finish("set-user-active", done)
            }
            AdminCommand::SetUserRole { storage, id, role } => {
                let done = match (storage.auth().await, Role::parse(&role)) {
                    (Ok(auth), Ok(role)) => auth
                        .set_role(AccountId::new(id), role)
                        .await
                        .map_err(|e| e.to_string()),
                    (Err(e), _) => Err(e),
                    (_, Err(e)) => Err(e.to_string()),
                };
                if done.is_ok() {
                    println!("user {id} is now {role}");
                }
                finish("set-user-role", done)
            }
            AdminCommand::Backup { data_dir, out } => {
                let target = out.clone();
                let done = tokio::task::spawn_blocking(move || {
                    allot_storage::SqliteStore::backup(&data_dir, &target)
                })
                .await;
                match done {
                    Ok(Ok(bytes)) => {
                        println!(
                            "backup written to {} ({bytes} bytes), integrity ok",
                            out.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Ok(Err(e)) => {
                        eprintln!("allot admin backup: {e}");
                        ExitCode::FAILURE
                    }
                    Err(e) => {
                        eprintln!("allot admin backup: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}
