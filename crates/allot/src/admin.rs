//! `allot admin`: operations on a data directory, or through the REST API of a running server
//! (`--server` with `--api-key`): users, API keys, backups and data keys.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use allot_domain::auth::{AccountId, Email, Password, Role};
use allot_server::Config;
use allot_server::clock::SystemClock;
use allot_server::service::auth::Auth;
use allot_storage::UserQuery;
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
    /// ALLOT_NEW_USER_PASSWORD, else from the first line of standard input. On SQLite without
    /// --server the server must be stopped (the data directory is locked while it runs)
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
    /// Write a self-signed certificate (cert.pem) and key (key.pem, mode 0600) for trying TLS
    /// in development; prints the serve flags to use
    GenCert(crate::gen_cert::GenCert),
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
    /// Change a user's role: its refresh tokens are revoked and its access tokens (which carry
    /// the old role) stop within 5 seconds on every running instance; its next sign-in
    /// carries the new role
    SetUserRole {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        id: i64,
        /// admin, marketing, warehouse, support or customer
        #[arg(long)]
        role: String,
    },
    /// List users (id, email, role, state), in id order
    ListUsers {
        #[command(flatten)]
        storage: StorageArgs,
        /// Only users of this role
        #[arg(long)]
        role: Option<String>,
        /// Only the user with exactly this email
        #[arg(long)]
        email: Option<String>,
    },
}

/// Where the data is, as for `allot serve`; or the running server to ask instead.
#[derive(Debug, clap::Args)]
pub(crate) struct StorageArgs {
    /// A running server's base URL (http://host:port): the command calls its REST API with
    /// the global --api-key (ALLOT_API_KEY, an admin's) instead of opening the data directory
    #[arg(long, env = "ALLOT_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The server's data directory (embedded SQLite)
    #[arg(long, env = "ALLOT_DATA_DIR", default_value = "./allot-data")]
    data_dir: PathBuf,
    /// PostgreSQL URL, instead of the data directory
    #[arg(long, env = "ALLOT_DATABASE_URL")]
    database: Option<String>,
    /// CA certificate (PEM) trusted for PostgreSQL, as for `allot serve`
    #[arg(long, env = "ALLOT_POSTGRES_CA_FILE", value_name = "FILE")]
    postgres_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) presented to PostgreSQL, as for `allot serve`
    #[arg(long, env = "ALLOT_POSTGRES_CLIENT_CERT", value_name = "FILE")]
    postgres_client_cert: Option<PathBuf>,
    /// The key (PEM) of --postgres-client-cert
    #[arg(long, env = "ALLOT_POSTGRES_CLIENT_KEY", value_name = "FILE")]
    postgres_client_key: Option<PathBuf>,
    /// The server's data key (base64 of 32 bytes); required with --database. Without it the
    /// embedded database uses (or makes) DATA_DIR/data.key, as the server does
    #[arg(long, env = "ALLOT_DATA_KEY", hide_env_values = true)]
    data_key: Option<String>,
}

/// What a command acts on: the storage itself, or a running server's API.
enum Target {
    Storage(Box<Auth>),
    Server(crate::admin_client::AdminClient),
}

/// A user as the commands print it.
pub(crate) struct Shown {
    pub(crate) id: i64,
    pub(crate) email: String,
    pub(crate) role: String,
    pub(crate) active: bool,
}

impl Target {
    async fn create_user(
        &self,
        email: Email,
        password: Password,
        role: Role,
    ) -> Result<Shown, String> {
        match self {
            Target::Storage(auth) => auth
                .create_user(email, password, role)
                .await
                .map(shown)
                .map_err(|e| e.to_string()),
            Target::Server(api) => api.create_user(&email, &password, role).await,
        }
    }

    async fn create_api_key(&self, name: &str, role: Role) -> Result<(i64, String), String> {
        match self {
            Target::Storage(auth) => auth
                .create_api_key(name, role)
                .await
                .map(|(k, secret)| (k.id, secret))
                .map_err(|e| e.to_string()),
            Target::Server(api) => api.create_api_key(name, role).await,
        }
    }

    async fn revoke_api_key(&self, id: i64) -> Result<(), String> {
        match self {
            Target::Storage(auth) => auth.revoke_api_key(id).await.map_err(|e| e.to_string()),
            Target::Server(api) => api.revoke_api_key(id).await,
        }
    }

    async fn set_active(&self, id: i64, active: bool) -> Result<Shown, String> {
        match self {
            Target::Storage(auth) => auth
                .set_active(AccountId::new(id), active)
                .await
                .map(shown)
                .map_err(|e| e.to_string()),
            Target::Server(api) => api.set_active(id, active).await,
        }
    }

    async fn set_role(&self, id: i64, role: Role) -> Result<Shown, String> {
        match self {
            Target::Storage(auth) => auth
                .set_role(AccountId::new(id), role)
                .await
                .map(shown)
                .map_err(|e| e.to_string()),
            Target::Server(api) => api.set_role(id, role).await,
        }
    }

    /// Every matching user, page by page.
    async fn users(&self, role: Option<Role>, email: Option<Email>) -> Result<Vec<Shown>, String> {
        match self {
            Target::Storage(auth) => {
                let mut all = Vec::new();
                let mut after = 0;
                loop {
                    let page = auth
                        .users(UserQuery {
                            role,
                            active: None,
                            email: email.clone(),
                            after,
                            limit: allot_storage::USERS_PAGE_MAX,
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                    let Some(last) = page.last() else {
                        return Ok(all);
                    };
                    after = last.id.get();
                    all.extend(page.into_iter().map(shown));
                }
            }
            Target::Server(api) => api.users(role, email.as_ref()).await,
        }
    }
}

fn shown(u: allot_storage::User) -> Shown {
    Shown {
        id: u.id.get(),
        email: u.email.as_str().to_owned(),
        role: u.role.as_str().to_owned(),
        active: u.active,
    }
}

impl StorageArgs {
    /// The server's API when --server is given, else the storage.
    async fn target(&self) -> Result<Target, String> {
        match &self.server {
            Some(url) => {
                let key = crate::grpc_client::credential()
                    .ok_or("--server needs --api-key (or ALLOT_API_KEY): an admin's key")?;
                Ok(Target::Server(crate::admin_client::AdminClient::new(
                    url, &key,
                )?))
            }
            None => self.auth().await.map(|a| Target::Storage(Box::new(a))),
        }
    }

    /// The auth service over the configured store.
    async fn auth(&self) -> Result<Auth, String> {
        let mut config = Config::for_data_dir(self.data_dir.clone());
        config.database = self.database.clone();
        config.postgres_tls = allot_storage::postgres::PgTlsSettings {
            ca_file: self.postgres_ca_file.clone(),
            client: allot_storage::tls::ClientIdentity::pair(
                self.postgres_client_cert.clone(),
                self.postgres_client_key.clone(),
                "--postgres-client-cert / --postgres-client-key",
            )?,
        };
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
        .target()
        .await?
        .create_user(email, password, role)
        .await?;
    println!("user {} created: {} ({})", user.id, user.email, user.role);
    Ok(())
}

async fn create_api_key(storage: StorageArgs, name: String, role: String) -> Result<(), String> {
    let role = Role::parse(&role).map_err(|e| e.to_string())?;
    let (id, secret) = storage.target().await?.create_api_key(&name, role).await?;
    println!("api key {id} ({name}, {}): {secret}", role.as_str());
    println!("keep it now: it is stored only as a hash and cannot be shown again");
    Ok(())
}

async fn list_users(
    storage: StorageArgs,
    role: Option<String>,
    email: Option<String>,
) -> Result<(), String> {
    let role = role
        .as_deref()
        .map(Role::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let email = email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    for u in storage.target().await?.users(role, email).await? {
        let state = if u.active { "active" } else { "inactive" };
        println!("{}\t{}\t{}\t{state}", u.id, u.email, u.role);
    }
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
            AdminCommand::GenCert(cert) => finish("gen-cert", cert.run()),
            AdminCommand::GenKey => {
                println!("{}", allot_storage::crypto::DataKey::generate().to_base64());
                ExitCode::SUCCESS
            }
            AdminCommand::RevokeApiKey { storage, id } => {
                let done = match storage.target().await {
                    Ok(target) => target.revoke_api_key(id).await,
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
                let done = match storage.target().await {
                    Ok(target) => target.set_active(id, active).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if done.is_ok() {
                    let state = if active { "active" } else { "deactivated" };
                    println!("user {id} {state}");
                }
                finish("set-user-active", done)
            }
            AdminCommand::SetUserRole { storage, id, role } => {
                let done = match (storage.target().await, Role::parse(&role)) {
                    (Ok(target), Ok(role)) => target.set_role(id, role).await.map(|_| ()),
                    (Err(e), _) => Err(e),
                    (_, Err(e)) => Err(e.to_string()),
                };
                if done.is_ok() {
                    println!("user {id} is now {role}");
                }
                finish("set-user-role", done)
            }
            AdminCommand::ListUsers {
                storage,
                role,
                email,
            } => finish("list-users", list_users(storage, role, email).await),
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
