//! Runs each command against the store named by `--db`.

use std::path::Path;

use alliance_core::authorship::{Enrollment, PublicKey};
use alliance_core::local_sync::sync_stores;
use alliance_core::{
    Alliance, CheckInId, DeviceId, Error, GasEdit, GoalEdit, GoalId, MemberId, NewCheckIn,
    NewDevice, NewIntervention, NewObjective, NewPlan, PlanId, Result, Role,
};

use crate::args::{
    CheckinArgs, Cli, Command, DeviceCommand, ExportFormat, GasCommand, GoalCommand,
    InterventionCommand, ObjectiveCommand, PlanCommand, ShowFormat,
};
use crate::store_file::{read_key_file, StoreFile};
use crate::{demo, network, operations, print};

/// `--db` when not given.
const DEFAULT_DB: &str = "./alliance.db";
/// Most plans `alliance sync --with` compacts in each store after the sync.
const COMPACT_AFTER_SYNC: usize = 64;

/// Opens an existing store; a missing file is an error, never a new empty store.
pub fn open_existing(store: &StoreFile) -> Result<Alliance> {
    if !store.exists() {
        return Err(Error::NotFound {
            what: "store",
            id: format!("{} (run `alliance init` first)", store.path().display()),
        });
    }
    store.open()
}

/// Removes a store file (and its WAL and lock companions) that a failed `init` just created.
fn remove_store_files(db: &Path) {
    for suffix in ["", "-wal", "-shm", "-lock"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}

fn int_in<T: TryFrom<i64>>(
    field: &'static str,
    value: Option<i64>,
    range: &str,
) -> Result<Option<T>> {
    value
        .map(|v| {
            T::try_from(v).map_err(|_| Error::InvalidInput {
                field,
                reason: format!("must be {range}"),
            })
        })
        .transpose()
}

/// How a command that did its work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// `sync` finished, but the other side refused some of this device's own changes (each
    /// named on stderr, now set aside here): exit status 3.
    ChangesRefused,
}

pub fn run(cli: Cli) -> Result<Outcome> {
    let db = &StoreFile::new(&cli.db, cli.key_file.as_deref())?;
    match cli.command {
        Command::Init { name, role, member } => {
            let role: Role = role.parse()?;
            let member = member.as_deref().map(MemberId::parse).transpose()?;
            let existed = db.exists();
            let store = db.open()?;
            let me = match store.init(&name, role, member) {
                Ok(me) => me,
                Err(error) => {
                    drop(store);
                    if !existed {
                        remove_store_files(db.path());
                    }
                    return Err(error);
                }
            };
            println!("member {}", me.member_id);
            println!("device {}", me.device_id);
        }
        Command::Whoami { json, enrollment } => {
            let store = open_existing(db)?;
            let me = store.identity().ok_or(Error::NotInitialized)?;
            if enrollment {
                println!("{}", store.enrollment()?);
            } else {
                print::identity(&me, json);
            }
        }
        Command::Plan(command) => plan(db, command)?,
        Command::Device(DeviceCommand::Add {
            plan,
            member,
            device,
            name,
            role,
            label,
        }) => {
            let plan = PlanId::parse(&plan)?;
            let member = MemberId::parse(&member)?;
            let (device, key) = device_code(&device)?;
            let role = role.as_deref().map(str::parse::<Role>).transpose()?;
            let new_member = match (name, role) {
                (Some(name), Some(role)) => Some((name, role)),
                (None, None) => None,
                _ => {
                    return Err(Error::InvalidInput {
                        field: "member",
                        reason: "give both --name and --role, or neither".into(),
                    })
                }
            };
            let store = open_existing(db)?;
            let new = NewDevice {
                device,
                member,
                new_member,
                label,
            };
            match key {
                Some(key) => store.enroll_with_key(plan, &new, key)?,
                None => store.enroll_device(plan, &new)?,
            }
            println!("enrolled device {device}");
            if store.identity().map(|me| me.role) == Some(Role::Counselor) {
                let token = store.issue_device_token(plan, device, None)?;
                println!("relay token: {token}");
                println!("(shown once: hand it to the device in person with its code)");
            }
        }
        Command::Device(DeviceCommand::Token {
            plan,
            device,
            reuse,
        }) => {
            let plan = PlanId::parse(&plan)?;
            let device = DeviceId::parse(&device)?;
            let store = open_existing(db)?;
            let token = store.issue_device_token(plan, device, reuse.as_deref())?;
            println!("relay token: {token}");
        }
        Command::Device(DeviceCommand::Revoke { plan, device }) => {
            let plan = PlanId::parse(&plan)?;
            let device = DeviceId::parse(&device)?;
            open_existing(db)?.revoke_device(plan, device)?;
            println!("revoked device {device}");
        }
        Command::Show { plan, json, format } => {
            let plan = PlanId::parse(&plan)?;
            let store = open_existing(db)?;
            if format == Some(ShowFormat::Markdown) {
                print!(
                    "{}",
                    alliance_core::validate::printable(&store.export_markdown(plan)?)
                );
                return Ok(Outcome::Done);
            }
            let json = json || format == Some(ShowFormat::Json);
            let refused = store.refused_changes(Some(plan))?;
            print::plan(&store.plan(plan)?, &refused, json);
        }
        Command::Peers { plan, json } => {
            let plan = plan.as_deref().map(PlanId::parse).transpose()?;
            let store = open_existing(db)?;
            print::refusals(&store.refused_changes(plan)?, json);
        }
        Command::History { plan, json } => {
            let plan = PlanId::parse(&plan)?;
            let store = open_existing(db)?;
            print::history(&store.history(plan)?, json);
        }
        Command::Goal(command) => goal(db, command)?,
        Command::Objective(ObjectiveCommand::Add {
            plan,
            goal,
            text,
            measure,
            target,
            unit,
            due,
        }) => {
            let (plan, goal) = (PlanId::parse(&plan)?, GoalId::parse(&goal)?);
            let store = open_existing(db)?;
            let id = store.add_objective(
                plan,
                goal,
                &NewObjective {
                    text,
                    measure,
                    target,
                    unit,
                    due_on: due,
                },
            )?;
            println!("{id}");
        }
        Command::Intervention(InterventionCommand::Add {
            plan,
            goal,
            text,
            frequency,
            owner,
        }) => {
            let (plan, goal) = (PlanId::parse(&plan)?, GoalId::parse(&goal)?);
            let owner = owner.as_deref().map(MemberId::parse).transpose()?;
            let store = open_existing(db)?;
            let id = store.add_intervention(
                plan,
                goal,
                &NewIntervention {
                    text,
                    owner,
                    frequency,
                },
            )?;
            println!("{id}");
        }
        Command::Gas(GasCommand::Set(args)) => {
            let (plan, goal) = (PlanId::parse(&args.plan)?, GoalId::parse(&args.goal)?);
            let edit = match (args.level, args.text, args.weight, args.baseline) {
                (Some(level), Some(text), None, None) => GasEdit::Level {
                    level: int_in("gas level", Some(level), "between -2 and 2")?.unwrap_or(0),
                    text,
                },
                (None, None, Some(weight), None) => GasEdit::Weight(weight),
                (None, None, None, Some(level)) => GasEdit::Baseline(
                    int_in("gas baseline", Some(level), "between -2 and 2")?.unwrap_or(0),
                ),
                _ => {
                    return Err(Error::InvalidInput {
                        field: "gas",
                        reason: "give --level with --text, or --weight, or --baseline".into(),
                    })
                }
            };
            let store = open_existing(db)?;
            store.set_gas(plan, goal, &edit)?;
            println!("ok");
        }
        Command::Checkin(args) => checkin(db, args)?,
        Command::Sync(args) => {
            let mine = open_existing(db)?;
            let refused = if let Some(url) = &args.server {
                network::sync(mine, url, args.watch, args.token, args.ca_cert.as_deref())?
            } else if let Some(with) = &args.with {
                let theirs = open_existing(&db.sibling(with))?;
                let report = sync_stores(&mine, &theirs)?;
                // What the sync appended is compacted now, off the edit path.
                mine.compact_due(COMPACT_AFTER_SYNC)?;
                theirs.compact_due(COMPACT_AFTER_SYNC)?;
                println!(
                    "synced {} plan(s): {} messages, {} bytes",
                    report.plans.len(),
                    report.messages,
                    report.bytes
                );
                let me = mine.identity().map(|me| me.device_id);
                for refused in &report.refused {
                    let whose = if Some(refused.device) == me {
                        "this store's".to_owned()
                    } else {
                        format!("{}'s", with.display())
                    };
                    print::own_change_refused(
                        &format!("{whose} change"),
                        &refused.plan.to_string(),
                        &refused.rule,
                        &refused.change_hash,
                    );
                }
                report.refused.len()
            } else {
                0
            };
            if refused > 0 {
                return Ok(Outcome::ChangesRefused);
            }
        }
        Command::Relay(args) => {
            let db_is_default =
                cli.db.as_os_str() == DEFAULT_DB && std::env::var_os("ALLIANCE_DB").is_none();
            operations::relay(args, db, db_is_default)?
        }
        Command::Backup { out } => operations::backup(db, &out)?,
        Command::Restore { from } => operations::restore(db, &from)?,
        Command::Rekey { new_key_file } => {
            let store = open_existing(db)?;
            store.rekey(&read_key_file(&new_key_file)?)?;
            println!(
                "rekeyed: open this store with --key-file {} from now on",
                new_key_file.display()
            );
        }
        Command::Check => {
            let problems = open_existing(db)?.integrity_check()?;
            if !problems.is_empty() {
                for problem in &problems {
                    println!("{problem}");
                }
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the store failed its integrity check: {} problem(s)",
                        problems.len()
                    ),
                )));
            }
            println!("ok");
        }
        Command::Demo => {
            // Quiet by default; `RUST_LOG=debug` shows the sync conversation.
            if std::env::var_os("RUST_LOG").is_some() {
                network::log_to_stderr();
            }
            demo::run()?
        }
        Command::Export {
            plan,
            format,
            out,
            no_report,
        } => {
            let plan = PlanId::parse(&plan)?;
            let store = open_existing(db)?;
            let text = match format {
                ExportFormat::Fhir if no_report => store.export_fhir_without_report(plan)?,
                ExportFormat::Fhir => store.export_fhir(plan)?,
                ExportFormat::Json => store.export_json(plan)?,
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, format!("{text}\n"))?;
                    println!("wrote {}", path.display());
                }
                None => println!("{}", alliance_core::validate::printable(&text)),
            }
        }
        Command::Report { plan, out } => {
            let plan = PlanId::parse(&plan)?;
            let store = open_existing(db)?;
            let html = store.export_report(plan)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, html)?;
                    println!("wrote {}", path.display());
                }
                None => print!("{html}"),
            }
        }
        Command::Import { file } => {
            let text = std::fs::read_to_string(&file)?;
            let store = open_existing(db)?;
            println!("{}", store.import_json(&text)?);
        }
        Command::Progress { plan, window, json } => {
            let plan = PlanId::parse(&plan)?;
            let store = open_existing(db)?;
            let model = store.plan(plan)?;
            print::progress(&model, &store.progress(plan, window)?, json);
        }
    }
    Ok(Outcome::Done)
}

fn plan(db: &StoreFile, command: PlanCommand) -> Result<()> {
    match command {
        PlanCommand::New {
            title,
            client_name,
            client_member,
            client_device,
        } => {
            let client_member = client_member.as_deref().map(MemberId::parse).transpose()?;
            let client = client_device.as_deref().map(device_code).transpose()?;
            let store = open_existing(db)?;
            let id = store.create_plan_with_key(
                &NewPlan {
                    title,
                    client_name,
                    client_member,
                    client_device: client.map(|(device, _)| device),
                },
                client.and_then(|(_, key)| key),
            )?;
            println!("{id}");
        }
        PlanCommand::List { json, due, within } => {
            let store = open_existing(db)?;
            if due {
                print::plans_due(&store.plans_due_for_review(within.unwrap_or(0))?, json);
            } else {
                print::plan_list(&store.list_plans()?, json);
            }
        }
        PlanCommand::Set {
            plan,
            title,
            review_on,
            relay_key,
        } => {
            let plan = PlanId::parse(&plan)?;
            if title.is_none() && review_on.is_none() && relay_key.is_none() {
                return Err(Error::InvalidInput {
                    field: "plan",
                    reason: "give --title, --review-on or --relay-key".into(),
                });
            }
            let relay_key = relay_key
                .as_deref()
                .map(alliance_core::authorship::PublicKey::parse)
                .transpose()?;
            let store = open_existing(db)?;
            if let Some(key) = relay_key {
                store.pin_relay_key(plan, &key)?;
            }
            if let Some(title) = title {
                store.set_title(plan, &title)?;
            }
            if let Some(date) = review_on {
                store.set_review_on(plan, &date)?;
            }
            println!("ok");
        }
    }
    Ok(())
}

fn goal(db: &StoreFile, command: GoalCommand) -> Result<()> {
    match command {
        GoalCommand::Propose { plan, words } => {
            let plan = PlanId::parse(&plan)?;
            let store = open_existing(db)?;
            println!("{}", store.propose_goal(plan, &words)?);
        }
        GoalCommand::Edit {
            plan,
            goal,
            words,
            clinical,
            life_area,
            status,
        } => {
            let (plan, goal) = (PlanId::parse(&plan)?, GoalId::parse(&goal)?);
            let edit = GoalEdit {
                client_words: words,
                clinical_statement: clinical,
                life_area,
                status: status.as_deref().map(str::parse).transpose()?,
            };
            let store = open_existing(db)?;
            store.edit_goal(plan, goal, &edit)?;
            println!("ok");
        }
        GoalCommand::Agree { plan, goal } => {
            let (plan, goal) = (PlanId::parse(&plan)?, GoalId::parse(&goal)?);
            let store = open_existing(db)?;
            store.agree(plan, goal)?;
            let state = store.plan(plan)?.goal(goal)?.agreement.state;
            println!("agreed; goal is now {}", print::agreement_word(state));
        }
    }
    Ok(())
}

fn checkin(db: &StoreFile, args: CheckinArgs) -> Result<()> {
    let (plan, goal) = (PlanId::parse(&args.plan)?, GoalId::parse(&args.goal)?);
    let checkin = NewCheckIn {
        gas_level: int_in("gas level", args.level, "between -2 and 2")?,
        value: args.value,
        mood: int_in("mood", args.mood, "between 0 and 10")?,
        craving: int_in("craving", args.craving, "between 0 and 10")?,
        note: args.note,
        local_date: args.date,
        tz_offset_min: None,
        corrects: args.corrects.as_deref().map(CheckInId::parse).transpose()?,
    };
    let store = open_existing(db)?;
    println!("{}", store.check_in(plan, goal, &checkin)?);
    Ok(())
}

/// A device given on the command line: an enrollment code (`alliance-device:…`, checked: its
/// id and public key) or a bare device id (a device that cannot sign).
fn device_code(text: &str) -> Result<(DeviceId, Option<PublicKey>)> {
    if text.trim().starts_with("alliance-device:") {
        let enrollment = Enrollment::parse(text)?;
        return Ok((enrollment.device, Some(enrollment.public_key)));
    }
    Ok((DeviceId::parse(text)?, None))
}
