//! How the hub reaches PostgreSQL: the URL's TLS settings read the way libpq
//! reads them, and the rustls (ring) connector that carries them out. Every
//! signed request reads a device key over this connection, so a server that
//! is not on this machine is reached over TLS only.
//!
//! Invariant: a connection to a host that is not local (a unix socket,
//! `localhost`, `127.0.0.0/8`, `::1`) is encrypted and its server certificate
//! verified; no `sslmode` lets it skip verification. Accepted in the URL's
//! query, besides tokio-postgres' own options:
//! - `sslmode=disable` / `allow` / `prefer` (libpq's default): no TLS — local
//!   hosts only, else refused naming `database`;
//! - `sslmode=require`: with `sslrootcert`, the chain to those roots (libpq's
//!   behaviour with a root file); without, as `verify-full` against the
//!   system's roots (libpq would not verify at all);
//! - `sslmode=verify-ca`: the chain to `sslrootcert` (a PEM file, or
//!   `system`), any host name;
//! - `sslmode=verify-full`: the chain and the host name (`sslrootcert`
//!   defaults to `system`).
//!
//! Kernel: imports nothing of the hub.

use std::path::PathBuf;
use std::sync::Arc;

use postgres::config::Host;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// Why a PostgreSQL URL cannot be used; the message never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("database: {0}")]
pub struct PgUrlError(pub String);

/// Where the server's certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The system's trusted roots.
    System,
    /// The PEM file of `sslrootcert`.
    File(PathBuf),
}

/// What protects the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTls {
    /// None: a local server only.
    Off,
    /// TLS, the certificate chained to `roots`, and its name checked when
    /// `check_name`.
    Verify {
        /// The trusted roots.
        roots: Roots,
        /// `verify-full`: the host name too.
        check_name: bool,
    },
}

/// A URL taken apart: tokio-postgres' configuration (our options removed)
/// and the TLS to use.
#[derive(Debug)]
pub struct PgTarget {
    /// The client configuration (its `Debug` hides the password).
    pub config: postgres::Config,
    /// The TLS settings.
    pub tls: PgTls,
}

/// Whether a host of the URL is this machine.
fn is_local(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            let n = name.trim_start_matches('[').trim_end_matches(']');
            n.eq_ignore_ascii_case("localhost")
                || n.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a `postgres://` URL: removes `sslmode` and `sslrootcert` from its
/// query (tokio-postgres knows neither `verify-*` nor root files), parses the
/// rest, and decides the TLS by the rules of the module doc.
pub fn target(url: &str) -> Result<PgTarget, PgUrlError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut kept = Vec::new();
    let mut mode = None;
    let mut root = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = Some(percent_decode(v)),
            "sslrootcert" => root = Some(percent_decode(v)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: postgres::Config = rest
        .parse()
        .map_err(|e| PgUrlError(format!("not a PostgreSQL URL: {e}")))?;
    let remote: Vec<String> = config
        .get_hosts()
        .iter()
        .filter(|h| !is_local(h))
        .map(|h| match h {
            Host::Tcp(n) => n.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .chain(
            config
                .get_hostaddrs()
                .iter()
                .filter(|a| !a.is_loopback())
                .map(ToString::to_string),
        )
        .collect();
    let roots = |default: Option<Roots>| -> Result<Roots, PgUrlError> {
        match root.as_deref() {
            Some("system") => Ok(Roots::System),
            Some(p) if !p.is_empty() => Ok(Roots::File(PathBuf::from(p))),
            _ => default.ok_or_else(|| {
                PgUrlError(
                    "sslmode=verify-ca needs sslrootcert=<CA PEM file> (or sslrootcert=system)"
                        .into(),
                )
            }),
        }
    };
    let tls = match mode.as_deref().unwrap_or("prefer") {
        "disable" | "allow" | "prefer" => {
            if let Some(host) = remote.first() {
                return Err(PgUrlError(format!(
                    "host {host} is not on this machine and the URL asks for no TLS: add sslmode=verify-full (with sslrootcert=<CA PEM file> for a private CA) so the password and device keys do not cross the network in clear"
                )));
            }
            PgTls::Off
        }
        "require" => match root.as_deref() {
            Some(_) => PgTls::Verify {
                roots: roots(None)?,
                check_name: false,
            },
            None => PgTls::Verify {
                roots: Roots::System,
                check_name: true,
            },
        },
        "verify-ca" => PgTls::Verify {
            roots: roots(None)?,
            check_name: false,
        },
        "verify-full" => PgTls::Verify {
            roots: roots(Some(Roots::System))?,
            check_name: true,
        },
        other => {
            return Err(PgUrlError(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            )))
        }
    };
    config.ssl_mode(match tls {
        PgTls::Off => postgres::config::SslMode::Disable,
        PgTls::Verify { .. } => postgres::config::SslMode::Require,
    });
    Ok(PgTarget { config, tls })
}

/// The rustls configuration (ring) for `roots` and `check_name`.
pub fn client_config(roots: &Roots, check_name: bool) -> Result<rustls::ClientConfig, PgUrlError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = store.add(c);
            }
            if store.is_empty() {
                return Err(PgUrlError(
                    "no system CA certificates found: give sslrootcert=<CA PEM file>".into(),
                ));
            }
        }
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| PgUrlError(format!("sslrootcert {}: {e}", path.display())))?;
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| PgUrlError(format!("sslrootcert {}: {e}", path.display())))?;
            }
            if store.is_empty() {
                return Err(PgUrlError(format!(
                    "sslrootcert {} holds no certificate",
                    path.display()
                )));
            }
        }
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| PgUrlError(format!("sslrootcert: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgUrlError(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if check_name {
        verifier
    } else {
        Arc::new(AnyName(verifier))
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// `verify-ca`: the chain is checked by webpki (which checks the name last);
/// a certificate that fails on its name alone is accepted.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Connects as the URL says (see the module doc).
pub fn connect(target: &PgTarget) -> Result<postgres::Client, ConnectError> {
    match &target.tls {
        PgTls::Off => Ok(target.config.connect(postgres::NoTls)?),
        PgTls::Verify { roots, check_name } => {
            let tls = client_config(roots, *check_name)?;
            Ok(target
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))?)
        }
    }
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL's TLS settings.
    #[error(transparent)]
    Url(#[from] PgUrlError),
    /// The server or the network.
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_of(url: &str) -> Result<PgTls, String> {
        target(url).map(|t| t.tls).map_err(|e| e.to_string())
    }

    #[test]
    fn a_remote_host_needs_verified_tls_and_a_local_one_may_go_without() {
        for local in [
            "postgres://caja@127.0.0.1:5432/hub",
            "postgres://caja@localhost/hub",
            "postgres://caja@[::1]:5432/hub",
            "postgres://caja@%2Fvar%2Frun%2Fpostgresql/hub",
            "postgres://caja@127.0.0.1/hub?sslmode=disable",
        ] {
            assert_eq!(tls_of(local), Ok(PgTls::Off), "{local}");
        }
        for remote in [
            "postgres://caja:s3cret@db.example.do/hub",
            "postgres://caja:s3cret@10.0.0.5:5432/hub?sslmode=prefer",
            "postgres://caja:s3cret@db.example.do/hub?sslmode=disable",
            "postgres://caja:s3cret@127.0.0.1,db.example.do/hub",
        ] {
            let e = tls_of(remote).expect_err(remote);
            assert!(e.starts_with("database: host "), "{e}");
            assert!(e.contains("sslmode=verify-full"), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        assert_eq!(
            tls_of(
                "postgres://caja@db.example.do/hub?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem"
            ),
            Ok(PgTls::Verify {
                roots: Roots::File("/etc/ca.pem".into()),
                check_name: true
            })
        );
        assert_eq!(
            tls_of("postgres://caja@db.example.do/hub?sslmode=verify-full"),
            Ok(PgTls::Verify {
                roots: Roots::System,
                check_name: true
            })
        );
        assert_eq!(
            tls_of("postgres://caja@db.example.do/hub?sslmode=require"),
            Ok(PgTls::Verify {
                roots: Roots::System,
                check_name: true
            })
        );
        assert_eq!(
            tls_of("postgres://caja@db.example.do/hub?sslrootcert=/ca.pem&sslmode=require&application_name=x"),
            Ok(PgTls::Verify {
                roots: Roots::File("/ca.pem".into()),
                check_name: false
            })
        );
        for bad in [
            "postgres://caja@db.example.do/hub?sslmode=verify-ca",
            "postgres://caja@db.example.do/hub?sslmode=sometimes",
        ] {
            assert!(tls_of(bad).expect_err(bad).starts_with("database: "));
        }
        let t = target(
            "postgres://caja:s3cret@db.example.do/hub?sslmode=verify-full&application_name=x",
        )
        .expect("target");
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
