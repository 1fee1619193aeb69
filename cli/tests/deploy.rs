//! The files of `deploy/`: the Dockerfile's structure (multi-stage, slim base, non-root, the
//! relay as entry point, SIGTERM to stop), the systemd unit's hardening, and the example
//! `relay.toml` loading as it stands. `scripts/test-deploy.sh` also runs `systemd-analyze
//! verify` on the unit, and builds the image where Docker runs.

mod common;

use std::path::PathBuf;

fn deploy(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Dockerfile's instructions: (keyword, arguments), continuation lines joined and
/// comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let (keyword, rest) = current.trim().split_once(' ').unwrap_or((&current, ""));
                out.push((keyword.to_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_the_relay_unprivileged_in_another() {
    let steps = instructions(&deploy("Dockerfile"));
    let stages: Vec<usize> = (0..steps.len()).filter(|&i| steps[i].0 == "FROM").collect();
    assert_eq!(stages.len(), 2, "a builder stage and a runtime stage");
    let (builder, runtime) = (&steps[stages[0]].1, &steps[stages[1]].1);
    assert!(builder.contains(" AS builder"), "{builder}");
    assert!(runtime.contains("-slim"), "a slim base: {runtime}");
    let final_stage = &steps[stages[1]..];
    let find = |keyword: &str| -> Vec<&String> {
        final_stage
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, rest)| rest)
            .collect()
    };
    assert!(find("COPY")
        .iter()
        .any(|c| c.starts_with("--from=builder") && c.contains("/alliance ")));
    let user = find("USER");
    assert_eq!(user.len(), 1);
    let uid = user[0].split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "runs as {uid}");
    // Nothing after USER switches back.
    let entry = find("ENTRYPOINT");
    assert_eq!(entry.len(), 1);
    let words: Vec<String> = serde_json::from_str(entry[0]).expect("exec form");
    assert_eq!(&words[..2], ["/usr/local/bin/alliance", "relay"]);
    assert_eq!(find("STOPSIGNAL"), vec!["SIGTERM"]);
    assert!(find("EXPOSE")[0].contains("8420"));
    // The build stage builds the CLI from the locked dependencies.
    assert!(steps[stages[0]..stages[1]]
        .iter()
        .any(|(k, rest)| k == "RUN" && rest.contains("cargo build --release --locked")));
    // No remote sources pulled in by ADD.
    assert!(!steps.iter().any(|(k, _)| k == "ADD"));
    // `COPY . .` takes the repository: build outputs and .git stay out of the context.
    let ignored =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.dockerignore"))
            .unwrap();
    for entry in ["target", ".git"] {
        assert!(ignored.lines().any(|l| l == entry), "{entry} not ignored");
    }
}

#[test]
fn the_systemd_unit_is_hardened_and_drains_on_stop() {
    let unit = deploy("alliance-relay.service");
    for setting in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "StateDirectory=alliance",
        "KillSignal=SIGTERM",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.lines().any(|l| l == setting), "missing {setting}");
    }
    // Stopping waits longer than the drain's grace period.
    let grace: u64 = deploy("relay.toml")
        .lines()
        .find_map(|l| l.strip_prefix("drain_grace_secs = "))
        .unwrap()
        .parse()
        .unwrap();
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stop > grace,
        "TimeoutStopSec={stop} must exceed drain_grace_secs={grace}"
    );
}

#[test]
fn the_example_configuration_loads() {
    let dir = tempfile::tempdir().unwrap();
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/relay.toml");
    let mut command = common::alliance(&dir.path().join("relay.db"));
    command
        .arg("relay")
        .arg("--config")
        .arg(&config)
        .arg("--check-config");
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "configuration ok"
    );
}
