//! Child processes: this binary run again in one role (so its memory is measured alone), or
//! node. Peak resident memory comes from the kernel: `VmHWM` in `/proc/<pid>/status`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::fixture::Result;

/// Peak resident set of a process, in KiB.
pub fn peak_kib(pid: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc status".into())
}

/// CPU time (user + system, every thread) a process has used so far, in seconds. Linux counts
/// it in clock ticks of 1/100 s.
pub fn cpu_seconds(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').ok_or("malformed /proc stat")?.1;
    // Fields after the name start at field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> Result<f64> {
        Ok(fields
            .get(index - 3)
            .ok_or("short /proc stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(14)? + ticks(15)?) / 100.0)
}

/// Peak resident set of this process, in KiB.
pub fn own_peak_kib() -> Result<u64> {
    peak_kib("self")
}

/// What a child reports on its last line: `result <key> <value> <key> <value> …`.
pub struct Report(Vec<(String, f64)>);

impl Report {
    pub fn get(&self, key: &str) -> Result<f64> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("the child did not report {key}").into())
    }
}

/// Prints a report line for the parent.
pub fn report(pairs: &[(&str, f64)]) {
    let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("result {}", fields.join(" "));
    let _ = std::io::stdout().flush();
}

fn parse_report(output: &str) -> Result<Report> {
    let line = output
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("result "))
        .ok_or("the child printed no result line")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut pairs = Vec::new();
    for pair in words.chunks(2) {
        if let [key, value] = pair {
            pairs.push(((*key).to_owned(), value.parse()?));
        }
    }
    Ok(Report(pairs))
}

/// This benchmark binary, to run a child role.
pub fn this_binary(args: &[&str]) -> Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(args);
    Ok(command)
}

/// Runs a child to its end and reads its report.
pub fn run_to_end(mut command: Command) -> Result<Report> {
    let output = command.stderr(Stdio::inherit()).output()?;
    if !output.status.success() {
        return Err(format!("child failed: {:?} ({})", command, output.status).into());
    }
    parse_report(&String::from_utf8_lossy(&output.stdout))
}

/// A server child (relay or JS sync server) that prints `ready <port>` and serves until its
/// stdin closes.
pub struct Server {
    child: Child,
    pub port: u16,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    pub fn start(mut command: Command, cwd: Option<&Path>) -> Result<Self> {
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                let _ = child.kill();
                return Err("the server ended before it was ready".into());
            }
            if let Some(port) = line.trim().strip_prefix("ready ") {
                let port = port.parse()?;
                return Ok(Self {
                    child,
                    port,
                    _stdout: stdout,
                });
            }
        }
    }

    /// Peak resident set so far, in KiB.
    pub fn peak_kib(&self) -> Result<u64> {
        peak_kib(&self.child.id().to_string())
    }

    /// CPU time used so far, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(&self.child.id().to_string())
    }

    /// Closes its stdin and waits for it to end.
    pub fn stop(mut self) -> Result<()> {
        drop(self.child.stdin.take());
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            drop(self.child.stdin.take());
            let _ = self.child.wait();
        }
    }
}
