//! Figures benchmarks report about a process (theirs or a child's), read
//! from `/proc`: memory now and at its peak. Linux only, like the machines
//! the benchmarks run on.

/// A `kB` field of `/proc/<pid>/status` (`"VmRSS:"`, `"VmHWM:"`); 0 when the
/// process is gone or the field is missing.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak resident memory of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}
