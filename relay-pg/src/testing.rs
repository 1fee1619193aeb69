//! For tests (this crate's and the CLI's): a PostgreSQL database of its own for each test,
//! on the server `scripts/test-postgres.sh` starts.

use alliance_core::{Alliance, GoalId, NewCheckIn, PlanId};
use tokio_postgres::NoTls;

/// The URL of a fresh, empty database, or None (with the reason printed) when no server was
/// given. Panics (the test fails) when `ALLIANCE_REQUIRE_POSTGRES=1` and no server was given,
/// and when the server cannot create the database.
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
    let create = format!("CREATE DATABASE {name}");
    on_server(&url, |client| async move {
        client
            .batch_execute(&create)
            .await
            .expect("the test PostgreSQL server creates a database");
    });
    let server = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(server, _)| server);
    Some(format!("{server}/{name}"))
}

/// Records a check-in with `mood` on `goal` of `plan`. Panics when the store refuses it.
pub fn check_in(device: &Alliance, plan: PlanId, goal: GoalId, mood: u8) {
    let check_in = NewCheckIn {
        mood: Some(mood),
        ..NewCheckIn::default()
    };
    if let Err(error) = device.check_in(plan, goal, &check_in) {
        panic!("check-in refused: {error}");
    }
}

/// The check-ins of every goal of `plan` on `device` (0 when it does not hold the plan).
pub fn check_ins(device: &Alliance, plan: PlanId) -> usize {
    device.plan(plan).map_or(0, |plan| {
        plan.goals.iter().map(|goal| goal.checkins.len()).sum()
    })
}

/// Ends every relay instance's `LISTEN` connection to the database at `url`, as a network
/// fault or a failover would; returns how many it ended. Panics when the server cannot be
/// reached.
pub fn drop_listeners(url: &str) -> usize {
    let listen = format!("LISTEN {}", crate::CHANNEL);
    on_server(url, |client| async move {
        client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query = $1",
                &[&listen],
            )
            .await
            .expect("pg_terminate_backend runs")
            .len()
    })
}

/// Runs `sql` on the database at `url` (a test standing in for another instance's timing).
/// Panics when it fails.
pub fn run_sql(url: &str, sql: &str) {
    on_server(url, |client| async move {
        client.batch_execute(sql).await.expect("the statement runs");
    });
}

/// Runs `work` with a connection of its own to `url`, on a runtime of its own. Panics when
/// the server cannot be reached.
fn on_server<T, F>(url: &str, work: impl FnOnce(tokio_postgres::Client) -> F) -> T
where
    F: std::future::Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the test's own connection");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .expect("the test PostgreSQL server answers");
        let driver = tokio::spawn(connection);
        let out = work(client).await;
        let _ = driver.await;
        out
    })
}
