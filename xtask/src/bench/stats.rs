//! Numbers from measurements: samples and their medians, and the durations `hcr --time` prints.

/// Repeated measurements of one quantity, in one unit (milliseconds unless the field says otherwise).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub values: Vec<f64>,
}

impl Sample {
    pub fn push(&mut self, value: f64) {
        self.values.push(value);
    }

    /// The median (the mean of the two middle values for an even count), or `None` without values.
    pub fn median(&self) -> Option<f64> {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(sorted[n / 2]),
            _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
        }
    }
}

/// A duration as `tracing` prints it (`12.3ns`, `456µs`, `7.89ms`, `1.02s`), in milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "ns" => 1e-6,
        "µs" | "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        _ => return None,
    };
    Some(number * scale)
}

/// The `time.busy` of the last closed span named `span` in the stderr of `hcr --time`, in milliseconds.
///
/// A closed span prints one line such as `INFO link.update{objects=12}: close time.busy=3.1ms time.idle=2µs`.
pub fn span_busy_ms(stderr: &str, span: &str) -> Option<f64> {
    stderr.lines().rev().find_map(|line| {
        let at = line.find(span)?;
        // The span must be the innermost of the path: `link.update{…}: close`, not `link.update{…}:prepare:`
        // (a child) nor `link.updates:`.
        let mut after = &line[at + span.len()..];
        if after.starts_with('{') {
            after = &after[after.find('}')? + 1..];
        }
        if !after.starts_with(": ") {
            return None;
        }
        let busy = after.split_whitespace().find_map(|word| word.strip_prefix("time.busy="))?;
        parse_duration_ms(busy)
    })
}

/// When `--time` prints spans without durations (`INFO link.update{objects=12}: close`), the span's time as seen
/// from outside: from the arrival of the last line closing `before` ahead of it to the arrival of the line
/// closing `span` (both innermost on their line), in milliseconds. `lines` holds each stderr line with the
/// milliseconds since the process started at which it was read.
///
/// For `hcr build`, `compile` (compiling and parsing every object) closes right before the link starts, so the
/// gap from `compile` to `link.update` is the link plus the copy of the linker it starts with.
pub fn span_gap_ms(lines: &[(f64, String)], before: &str, span: &str) -> Option<f64> {
    let closes = |line: &str, name: &str| {
        let Some(at) = line.find(name) else { return false };
        let mut after = &line[at + name.len()..];
        if after.starts_with('{') {
            match after.find('}') {
                Some(end) => after = &after[end + 1..],
                None => return false,
            }
        }
        after.starts_with(": close") && line[..at].ends_with(' ')
    };
    let end = lines.iter().rposition(|(_, l)| closes(l, span))?;
    let start = lines[..end].iter().rposition(|(_, l)| closes(l, before))?;
    Some(lines[end].0 - lines[start].0)
}

/// The same measurement per pass: for each span closing inside `span` (between the `before` line and the line
/// closing `span`), its name and the time since the previous closing line arrived, then `(rest)` for the time
/// from the last of them to the end of `span`. The first gap includes whatever ran between `before` and the
/// first pass.
pub fn pass_gaps_ms(lines: &[(f64, String)], before: &str, span: &str) -> Vec<(String, f64)> {
    let closing = |line: &str, name: &str| -> Option<String> {
        let at = line.find(name)?;
        if !line[..at].ends_with(' ') {
            return None;
        }
        let mut after = &line[at + name.len()..];
        if after.starts_with('{') {
            after = &after[after.find('}')? + 1..];
        }
        let inner = after.strip_suffix(": close").or_else(|| after.split_once(": close ").map(|(a, _)| a))?;
        Some(inner.trim_start_matches(':').to_string())
    };
    let Some(end) = lines.iter().rposition(|(_, l)| closing(l, span).is_some_and(|inner| inner.is_empty()))
    else {
        return Vec::new();
    };
    let Some(start) =
        lines[..end].iter().rposition(|(_, l)| closing(l, before).is_some_and(|i| i.is_empty()))
    else {
        return Vec::new();
    };
    let mut gaps = Vec::new();
    let mut previous = lines[start].0;
    for (at, line) in &lines[start + 1..end] {
        if let Some(inner) = closing(line, span).filter(|i| !i.is_empty()) {
            gaps.push((inner, at - previous));
            previous = *at;
        }
    }
    gaps.push(("(rest)".to_string(), lines[end].0 - previous));
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_empty_samples() {
        assert_eq!(Sample::default().median(), None);
        assert_eq!(Sample { values: vec![5.0, 1.0, 3.0] }.median(), Some(3.0));
        assert_eq!(Sample { values: vec![4.0, 1.0, 3.0, 10.0] }.median(), Some(3.5));
    }

    #[test]
    fn durations_in_every_unit_tracing_prints() {
        assert_eq!(parse_duration_ms("250ns"), Some(250e-6));
        assert_eq!(parse_duration_ms("456µs"), Some(0.456));
        assert_eq!(parse_duration_ms("7.5ms"), Some(7.5));
        assert_eq!(parse_duration_ms("1.25s"), Some(1250.0));
        assert_eq!(parse_duration_ms("12"), None);
        assert_eq!(parse_duration_ms("3min"), None);
    }

    #[test]
    fn the_busy_time_of_the_named_span_only() {
        let stderr = "\
 INFO compile: close time.busy=40.0ms time.idle=3.00µs
 INFO link.update{objects=3}:prepare: close time.busy=1.00ms time.idle=1.00µs
 INFO link.update{objects=3}: close time.busy=2.50ms time.idle=4.00µs
 INFO link.update{objects=3}:publish: close time.busy=0.50ms time.idle=1.00µs
 INFO link.updates: close time.busy=9.00ms time.idle=4.00µs
hcr: prog (3 compiled, full link): 12 atoms added";
        assert_eq!(span_busy_ms(stderr, "link.update"), Some(2.5));
        assert_eq!(span_busy_ms(stderr, "compile"), Some(40.0));
        assert_eq!(span_busy_ms(stderr, "relocate"), None);
        assert_eq!(span_busy_ms(" INFO link.update{objects=3}: close", "link.update"), None);
    }

    #[test]
    fn the_gap_between_two_closing_lines() {
        let lines: Vec<(f64, String)> = [
            (5.0, " INFO compile: close"),
            (6.0, " INFO link.update{objects=3}:prepare: close"),
            (9.5, " INFO link.update{objects=3}: close"),
            (30.0, " INFO compile: close"),
        ]
        .iter()
        .map(|(t, l)| (*t, l.to_string()))
        .collect();
        assert_eq!(span_gap_ms(&lines, "compile", "link.update"), Some(4.5));
        assert_eq!(span_gap_ms(&lines, "compile", "relocate"), None);
        assert_eq!(
            pass_gaps_ms(&lines, "compile", "link.update"),
            vec![("prepare".to_string(), 1.0), ("(rest)".to_string(), 3.5)]
        );
        assert!(pass_gaps_ms(&lines, "compile", "relocate").is_empty());
        assert_eq!(span_gap_ms(&lines[1..], "compile", "link.update"), None, "no compile before the link");
    }
}
