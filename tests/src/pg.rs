//! A throwaway PostgreSQL database per test.
//!
//! [`TestDatabase::create`] makes a database with a random name on the server named by
//! `TASKSYNC_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! drops it when dropped, so tests run in parallel and leave nothing behind. When PostgreSQL
//! cannot be reached it says so loudly and returns `None` (the test skips) — except under
//! `CI=true`, where it panics, so CI never passes without the PostgreSQL tests.

use std::time::Duration;

/// The default admin URL of the tests' PostgreSQL.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for the life of this value.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// The URL of this database.
    pub url: String,
}

impl TestDatabase {
    /// A new empty database, or `None` (after a loud message) when PostgreSQL is unreachable
    /// outside CI.
    pub fn create() -> Option<TestDatabase> {
        let admin_url =
            std::env::var("TASKSYNC_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let name = format!("tasksync_test_{}", uuid::Uuid::now_v7().simple());
        match admin(&admin_url, &format!("CREATE DATABASE {name}")) {
            Ok(()) => {
                let url = with_database(&admin_url, &name);
                Some(TestDatabase {
                    admin_url,
                    name,
                    url,
                })
            }
            Err(error) => {
                let message = format!(
                    "PostgreSQL at {admin_url} cannot be reached ({error}); \
                     set TASKSYNC_TEST_DATABASE_URL or start PostgreSQL"
                );
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{message} (CI=true: PostgreSQL tests must run)");
                }
                eprintln!("\n*** SKIPPED a PostgreSQL test: {message} ***\n");
                None
            }
        }
    }
}

impl TestDatabase {
    /// Drops the database now, cutting off every connection to it (a storage outage).
    pub fn drop_now(&self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        admin(&self.admin_url, &drop).expect("drop the test database");
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = admin(&self.admin_url, &drop) {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs one statement on the admin database, on a thread of its own (callers may be inside
/// an async runtime or not).
fn admin(url: &str, statement: &str) -> Result<(), String> {
    let url = url.to_owned();
    let statement = statement.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
            config.connect_timeout(Duration::from_secs(5));
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let driver = tokio::spawn(connection);
            let result = client
                .batch_execute(&statement)
                .await
                .map_err(|e| e.to_string());
            drop(client);
            let _ = driver.await;
            result
        })
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t3"), "postgres://h/t3");
    }
}
