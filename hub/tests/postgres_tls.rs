//! The hub's PostgreSQL connection over TLS (rustls on ring), against a real
//! PostgreSQL server started with `ssl=on` and a throwaway certificate, whose
//! `pg_hba.conf` lets the hub's role in over TLS only (SCRAM password): the
//! hub migrates and works over a verified connection; another CA, or another
//! name under `verify-full`, is refused; a server on another machine without
//! TLS is refused at start naming `database`; the password shows nowhere.

#[path = "../../tests/src/tlspki.rs"]
mod tlspki;

use caja_hub::config::HubConfig;
use caja_hub::storage::{self, Conn, Database, DbError};
use caja_hub::testpg::{self, TestPgError, TestPostgres};

const PASSWORD: &str = "pw-s3cret-7f1c";

/// The role and database of the hub on the TLS server.
const HBA: &str = "local all all trust\n\
hostssl all caja_app 127.0.0.1/32 scram-sha-256\n\
host all caja_app 127.0.0.1/32 reject\n\
host all all 127.0.0.1/32 trust\n";

fn server(tmp: &std::path::Path) -> Option<(TestPostgres, tlspki::TlsPki)> {
    let pki = tlspki::TlsPki::generate(&tmp.join("pki"))?;
    let pg = match TestPostgres::start_tls(&pki.server_pem, &pki.server_key_pem, Some(HBA.into())) {
        Ok(pg) => pg,
        Err(TestPgError::NotInstalled) if !testpg::required() => {
            eprintln!("SKIPPED (PostgreSQL): {}", TestPgError::NotInstalled);
            return None;
        }
        Err(e) => panic!("PostgreSQL with ssl=on: {e}"),
    };
    let mut admin = postgres::Client::connect(&pg.admin_url(), postgres::NoTls).expect("admin");
    admin
        .batch_execute(&format!("CREATE ROLE caja_app LOGIN PASSWORD '{PASSWORD}'"))
        .expect("role");
    admin
        .batch_execute("CREATE DATABASE caja_tls OWNER caja_app")
        .expect("database");
    Some((pg, pki))
}

fn url(host: &str, port: u16, query: &str) -> String {
    format!("postgres://caja_app:{PASSWORD}@{host}:{port}/caja_tls?{query}")
}

fn tls_in_use(conn: &Conn) -> bool {
    conn.query_row(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        [],
        |r| r.get::<_, bool>(0),
    )
    .expect("pg_stat_ssl")
}

fn refused(url: &str) -> String {
    let e = match Conn::connect_postgres(url) {
        Ok(_) => panic!("connected: {}", storage::db::redact(url)),
        Err(e) => e,
    };
    let text = format!("{e} / {e:?}");
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    text
}

#[test]
fn the_hub_reaches_postgresql_over_verified_tls_only() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some((pg, pki)) = server(tmp.path()) else {
        return;
    };
    let port = pg.port();
    let ca = pki.ca_pem.display().to_string();

    // verify-full with the server's CA: the hub's migrations run over TLS.
    let good = url(
        "127.0.0.1",
        port,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let conn = storage::open_offline(&Database::Postgres(good.clone())).expect("over TLS");
    assert!(tls_in_use(&conn), "the connection is encrypted");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM hub_meta", [], |r| r.get(0))
        .expect("migrated");
    assert_eq!(n, 0);
    drop(conn);
    let by_name = url(
        "localhost",
        port,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    assert!(tls_in_use(
        &Conn::connect_postgres(&by_name).expect("localhost")
    ));
    let detached = Conn::connect_postgres_detached(&good).expect("detached");
    assert!(tls_in_use(&detached));

    // Without TLS the server lets the role in nowhere (so the above was TLS).
    let plain = url("127.0.0.1", port, "sslmode=disable");
    let e = refused(&plain);
    assert!(e.contains("pg_hba.conf") || e.contains("rejects"), "{e}");

    // Another CA: the handshake fails before any password is sent.
    let other = pki.other_ca_pem.display().to_string();
    let e = refused(&url(
        "127.0.0.1",
        port,
        &format!("sslmode=verify-full&sslrootcert={other}"),
    ));
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );

    // Another name for the same server (the address given as hostaddr):
    // verify-full refuses it, verify-ca accepts the chain alone.
    let named = |mode: &str| {
        format!(
            "postgres://caja_app:{PASSWORD}@db.example.do:{port}/caja_tls?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={ca}"
        )
    };
    let e = refused(&named("verify-full"));
    assert!(
        e.contains("NotValidForName") || e.to_lowercase().contains("name"),
        "{e}"
    );
    assert!(tls_in_use(
        &Conn::connect_postgres(&named("verify-ca")).expect("verify-ca")
    ));
    // require with a root file is libpq's verify-ca; it still checks the chain.
    let e = refused(&format!(
        "postgres://caja_app:{PASSWORD}@127.0.0.1:{port}/caja_tls?sslmode=require&sslrootcert={other}"
    ));
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );
}

#[test]
fn a_remote_server_without_tls_is_refused_at_start_and_the_password_shows_nowhere() {
    let remote = format!("postgres://caja_app:{PASSWORD}@db.example.do:5432/caja");
    // At start: the configuration names `database`.
    let cfg = HubConfig {
        database: remote.clone(),
        admin_token: "caja-test-admin-token-0123456789".into(),
        ..HubConfig::default()
    };
    let e = cfg.validate().expect_err("no TLS to another machine");
    let text = e.to_string();
    assert!(text.contains("database"), "{text}");
    assert!(text.contains("sslmode=verify-full"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!format!("{cfg:?}").contains(PASSWORD));
    // And the connection itself refuses before touching the network.
    match Conn::connect_postgres(&format!("{remote}?sslmode=prefer")) {
        Err(e @ DbError::PgUrl(_)) => {
            let t = format!("{e} {e:?}");
            assert!(t.contains("database: host db.example.do"), "{t}");
            assert!(!t.contains(PASSWORD), "{t}");
        }
        other => panic!("expected a refusal naming database, got {:?}", other.err()),
    }
    // Every way the URL is shown hides the password, also an unencoded `@`
    // in it and a `password=` option.
    for url in [
        remote.clone(),
        format!("postgres://caja_app:{PASSWORD}@x@db.example.do/caja?sslmode=verify-full"),
        format!("postgres://caja_app@db.example.do/caja?password={PASSWORD}&sslmode=verify-full"),
    ] {
        let db = Database::Postgres(url.clone());
        for shown in [
            format!("{db}"),
            format!("{db:?}"),
            storage::db::redact(&url),
        ] {
            assert!(!shown.contains(PASSWORD), "{shown}");
            assert!(shown.contains("db.example.do"), "{shown}");
        }
    }
}
