//! Timing helpers of the benchmarks (ignored tests run by bench/*.sh):
//! wall-clock times from corosync and Pacemaker logs, medians.

/// Unix seconds of a corosync/Pacemaker log line ("Dec 07 02:25:31.904 ..."), UTC.
pub fn log_time(line: &str, year: i64) -> Option<f64> {
    let mut it = line.split_whitespace();
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let day: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':');
    let h: f64 = hms.next()?.parse().ok()?;
    let m: f64 = hms.next()?.parse().ok()?;
    let s: f64 = hms.next()?.parse().ok()?;
    // days from civil (proleptic Gregorian)
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days as f64 * 86400.0 + h * 3600.0 + m * 60.0 + s)
}

pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

pub fn year_now() -> i64 {
    let days = (now_s() / 86400.0) as i64;
    // good enough for a log parser: 365.2425-day years from 1970
    1970 + (days as f64 / 365.2425) as i64
}

/// First line of `text` after t0 that contains every needle: its time - t0.
pub fn first_after(text: &str, t0: f64, needles: &[&str]) -> Option<f64> {
    let year = year_now();
    text.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .filter_map(|l| log_time(l, year))
        .find(|t| *t >= t0 - 0.002)
        .map(|t| t - t0)
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// When node1's corosync formed a membership without node3 (the lab's
/// usual victim), seconds after t0; NaN if its log does not say.
pub fn corosync_detect(lab: &super::fencing_lab::FenceLab, t0: f64) -> f64 {
    let log =
        std::fs::read_to_string(lab.cluster.node_dir(1).join("corosync.log")).unwrap_or_default();
    first_after(&log, t0, &["A new membership", "Members left: 3"]).unwrap_or(f64::NAN)
}
