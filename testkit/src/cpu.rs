//! The CPU time of a process (an emulator, a bench's consumer processes, this one), from Linux's
//! `/proc`: what `getrusage` cannot give for a process that is not a child.

/// Linux's `USER_HZ`, the unit of `/proc/PID/stat`'s CPU times (100 on every mainstream build).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU ticks of process `pid` (`"self"` for this one); `None` once it is gone.
pub fn ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}
