//! Number formatting for human output.

/// `1234567` → `"1.23 MB"` (decimal units, as disk and bandwidth figures are quoted).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// `268098176` → `"268.10 M"` (the planner's spelling, shared with the server's `/v1/plan`).
pub(crate) use uma_planner::parameter_count as count;

/// `18432` → `"18,432"`.
pub(crate) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(253_113_024), "253.11 MB");
        assert_eq!(count(268_098_176), "268.10 M");
        assert_eq!(count(7), "7");
        assert_eq!(grouped(18_432), "18,432");
        assert_eq!(grouped(100), "100");
        assert_eq!(grouped(1_000_000), "1,000,000");
    }
}
