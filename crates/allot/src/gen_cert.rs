//! `allot admin gen-cert`: a self-signed certificate and key for development, so that TLS can
//! be tried in two commands. Not for production: clients must be told to trust it (`--ca-file
//! cert.pem`); a real certificate comes from a CA (see the README, "Running with TLS").

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

/// The longest validity accepted: a development certificate that outlives a laptop is one
/// nobody remembers to replace. (Browsers refuse more than 398 days for public ones anyway.)
pub(crate) const DAYS_MAX: u32 = 3_650;
pub(crate) const DEFAULT_DAYS: u32 = 365;
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

#[derive(Debug, clap::Args)]
pub(crate) struct GenCert {
    /// Names the certificate is valid for: DNS names and IP addresses, comma separated
    #[arg(long, value_delimiter = ',', required = true, value_name = "HOSTS")]
    hosts: Vec<String>,
    /// Directory to write cert.pem and key.pem into (created if missing)
    #[arg(long, default_value = ".", value_name = "DIR")]
    out_dir: PathBuf,
    /// Days the certificate is valid, from now, 1 to 3650
    #[arg(long, default_value_t = DEFAULT_DAYS, value_name = "N")]
    days: u32,
    /// Replace cert.pem and key.pem if they exist
    #[arg(long)]
    force: bool,
}

impl GenCert {
    pub(crate) fn run(self) -> Result<(), String> {
        if !(1..=DAYS_MAX).contains(&self.days) {
            return Err(format!("--days {}: must be 1 to {DAYS_MAX}", self.days));
        }
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        let Some(first) = hosts.first().cloned() else {
            return Err("--hosts: give at least one name, e.g. localhost,127.0.0.1".to_owned());
        };
        let cert_path = self.out_dir.join(CERT_FILE);
        let key_path = self.out_dir.join(KEY_FILE);
        if !self.force {
            for path in [&cert_path, &key_path] {
                if path.exists() {
                    return Err(format!(
                        "{} exists; not overwriting it (--force replaces it)",
                        path.display()
                    ));
                }
            }
        }
        let mut params = CertificateParams::new(hosts.clone())
            .map_err(|e| format!("--hosts {}: {e}", hosts.join(",")))?;
        params.distinguished_name.push(DnType::CommonName, first);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "allot development (self-signed)");
        let now = rcgen::date_time_ymd(1970, 1, 1);
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| format!("the system clock is before 1970: {e}"))?;
        // An hour back: a client whose clock is a little behind still accepts it at once.
        let start = since_epoch.saturating_sub(std::time::Duration::from_secs(3_600));
        params.not_before = now + start;
        params.not_after =
            now + since_epoch + std::time::Duration::from_secs(u64::from(self.days) * 86_400);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // A random serial, so that a replaced certificate is told apart from the one before.
        params.serial_number = Some(rand::random::<u64>().into());
        let key = KeyPair::generate().map_err(|e| format!("generating the key: {e}"))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("signing the certificate: {e}"))?;
        std::fs::create_dir_all(&self.out_dir)
            .map_err(|e| format!("creating {}: {e}", self.out_dir.display()))?;
        write_file(&key_path, key.serialize_pem().as_bytes(), 0o600, self.force)?;
        write_file(&cert_path, cert.pem().as_bytes(), 0o644, self.force)?;
        println!(
            "wrote {} and {} (self-signed for {}, valid {} days)",
            cert_path.display(),
            key_path.display(),
            hosts.join(", "),
            self.days
        );
        println!(
            "serve with: --tls-cert {} --tls-key {}",
            cert_path.display(),
            key_path.display()
        );
        println!(
            "clients trust it with: --ca-file {} (curl --cacert {})",
            cert_path.display(),
            cert_path.display()
        );
        Ok(())
    }
}

/// Writes `bytes` to `path` with `mode` from its creation (a key is never readable by others,
/// not even for a moment); without `replace`, an existing file is an error.
fn write_file(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    // An existing file keeps its mode on open: set it, so --force never leaves a key readable.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("setting the mode of {}: {e}", path.display()))?;
    }
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}
