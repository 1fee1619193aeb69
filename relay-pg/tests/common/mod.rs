//! A PostgreSQL database of its own for each test, on the server `scripts/test-postgres.sh`
//! starts.

#![allow(dead_code)]

use tokio_postgres::NoTls;

/// The URL of a fresh, empty database, or None (with the reason printed) when no server was
/// given. Panics instead when `ALLIANCE_REQUIRE_POSTGRES=1`: there the test must run.
pub fn postgres_database() -> Option<String> {
    let Ok(url) = std::env::var("ALLIANCE_TEST_POSTGRES_URL") else {
        let reason = "ALLIANCE_TEST_POSTGRES_URL is not set (scripts/test-postgres.sh sets it)";
        if std::env::var("ALLIANCE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("ALLIANCE_REQUIRE_POSTGRES=1 but {reason}");
        }
        eprintln!("skipped: {reason}");
        return None;
    };
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
    });
    let (server, _) = url.rsplit_once('/').unwrap();
    Some(format!("{server}/{name}"))
}
