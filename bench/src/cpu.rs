//! CPU time of a process (all its threads), from `/proc/<pid>/stat`: how much work a figure
//! cost, which a shared virtual machine's wall-clock rates hide when the disk or the other
//! process is the bottleneck.

use anyhow::Context;

/// User plus system CPU seconds `pid` has used so far (`"self"` for this process).
pub fn seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it are space-separated.
    let after_name = stat
        .rsplit_once(')')
        .context("no command name in /proc stat")?
        .1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .context("/proc stat too short")?
        .iter()
        .map(|field| field.parse::<f64>())
        .sum::<Result<f64, _>>()?;
    Ok(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(read_clock_ticks)
}

fn read_clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_cpu_time_grows_with_work() {
        let before = seconds("self").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 0u64;
        let used = loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            let used = seconds("self").unwrap() - before;
            if used >= 0.2 || std::time::Instant::now() > deadline {
                break used;
            }
        };
        // Busy for 0.2 s of CPU (however long that takes on a loaded machine), read in clock
        // ticks: a little more than 0.2 s, never less.
        assert!((0.2..1.0).contains(&used), "{used} s");
    }
}
