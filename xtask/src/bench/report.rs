//! What a benchmark run produced, written out: the terminal table, `latest.json`, `BENCHMARKS.md` and the
//! log-log plot, all by hand (xtask has no dependencies).

use std::fmt::Write as _;

use super::measure::SizeResult;
use super::program::TICK_US;
use super::stats::Sample;

/// The machine a run was measured on.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: Option<f64>,
    pub os: String,
    pub commit: String,
    pub date: String,
}

impl Machine {
    /// This machine: `nproc`, the CPU model from `/proc/cpuinfo`, the memory from `/proc/meminfo`, the kernel,
    /// the checked-out commit and the date.
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let trimmed = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Machine {
            cpus: trimmed(crate::cmd::output("nproc", &[]))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".into()),
            memory_gib: memory_gib(&meminfo),
            os: trimmed(crate::cmd::output("uname", &["-sr"])).unwrap_or_else(|| std::env::consts::OS.into()),
            commit: trimmed(crate::cmd::output(
                "git",
                &["-C", &crate::cmd::workspace_root().to_string_lossy(), "rev-parse", "--short", "HEAD"],
            ))
            .unwrap_or_else(|| "unknown".into()),
            date: trimmed(crate::cmd::output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default(),
        }
    }

    /// One line: CPUs, model, memory, OS.
    pub fn summary(&self) -> String {
        let memory = self.memory_gib.map_or("unknown memory".into(), |g| format!("{g:.1} GiB"));
        format!("{} × {}, {memory}, {}", self.cpus, self.cpu_model, self.os)
    }
}

/// The `model name` of the first processor in `/proc/cpuinfo`.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// `MemTotal` from `/proc/meminfo`, in GiB.
pub fn memory_gib(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct Run {
    pub machine: Machine,
    pub quick: bool,
    /// How hcr was built: `release`, `debug`, or the binary given with `--hcr`.
    pub profile: String,
    pub seconds: f64,
    pub results: Vec<SizeResult>,
}

/// A median in milliseconds, shown with precision that suits its size; `—` when nothing was measured.
fn ms(value: Option<f64>) -> String {
    match value {
        None => "—".into(),
        Some(v) if v < 1.0 => format!("{v:.3}"),
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) if v < 100.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn show_ratio(r: Option<f64>) -> String {
    match r {
        None => "—".into(),
        Some(r) if r < 0.01 => format!("{r:.4}"),
        Some(r) => format!("{r:.2}"),
    }
}

/// A speed-up factor: `250×`, `2.5×`, `0.34×`.
fn times(factor: f64) -> String {
    if factor >= 10.0 { format!("{factor:.0}×") } else { format!("{factor:.2}×") }
}

fn count(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| format!("{v:.0}"))
}

/// Every sample that ends up in the table and the plot, by name, for one size.
fn samples(r: &SizeResult) -> [(&'static str, &Sample); 19] {
    [
        ("hcr_cold_link_ms", &r.hcr_cold_link),
        ("hcr_cold_wall_ms", &r.hcr_cold_wall),
        ("lld_chained_ms", &r.lld_chained),
        ("lld_no_fixup_chains_ms", &r.lld_opcodes),
        ("incr_clang_ms", &r.incr_clang),
        ("incr_link_ms", &r.incr_link),
        ("incr_wall_ms", &r.incr_wall),
        ("live_compile_ms", &r.live_compile),
        ("live_link_ms", &r.live_link),
        ("live_parse_ms", &r.live_parse),
        ("live_diff_ms", &r.live_diff),
        ("live_relocate_ms", &r.live_relocate),
        ("live_write_file_ms", &r.live_write_file),
        ("live_patch_process_us", &r.live_patch_us),
        ("live_moved", &r.live_moved),
        ("live_process_bytes", &r.live_bytes),
        ("live_process_pages", &r.live_pages),
        ("edit_to_response_ms", &r.edit_to_response),
        ("edit_to_output_ms", &r.edit_to_output),
    ]
}

/// Rows of cells for the two tables: the cold link, and the one-function edit.
fn rows(run: &Run) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut cold = vec![
        [
            "N",
            "units",
            "hcr link.update",
            "hcr build (wall)",
            "ld64.lld chained",
            "ld64.lld -no_fixup_chains",
            "hcr / ld64.lld",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut update = vec![
        [
            "N",
            "clang (unit)",
            "hcr link.update",
            "hcr build (wall)",
            "link.update / ld64.lld",
            "ld64.lld ÷ link.update",
            "live: compile",
            "live: parse",
            "live: Linker::update",
            "ld64.lld ÷ live update",
            "live: patch (µs)",
            "bytes / pages",
            "edit → response",
            "edit → new output",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in &run.results {
        let lld = r.lld_opcodes.median();
        cold.push(vec![
            thousands(r.functions),
            r.units.to_string(),
            ms(r.hcr_cold_link.median()),
            ms(r.hcr_cold_wall.median()),
            ms(r.lld_chained.median()),
            ms(lld),
            show_ratio(ratio(r.hcr_cold_link.median(), lld)),
        ]);
        let speedup = ratio(lld, r.incr_link.median());
        update.push(vec![
            thousands(r.functions),
            ms(r.incr_clang.median()),
            ms(r.incr_link.median()),
            ms(r.incr_wall.median()),
            show_ratio(ratio(r.incr_link.median(), lld)),
            speedup.map_or("—".into(), times),
            ms(r.live_compile.median()),
            ms(r.live_parse.median()),
            ms(r.live_relocate.median()),
            ratio(lld, r.live_relocate.median()).map_or("—".into(), times),
            count(r.live_patch_us.median()),
            format!("{} / {}", count(r.live_bytes.median()), count(r.live_pages.median())),
            ms(r.edit_to_response.median()),
            ms(r.edit_to_output.median()),
        ]);
    }
    (cold, update)
}

fn text_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, &w)| format!("{cell:>w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn markdown_table(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let _ = writeln!(out, "| {} |", row.join(" | "));
        if i == 0 {
            let _ = writeln!(out, "|{}", " ---: |".repeat(row.len()));
        }
    }
    out
}

/// The terminal table: medians in ms (µs and bytes where the column says so) and the ratios.
pub fn table(run: &Run) -> String {
    let (cold, update) = rows(run);
    let mut out =
        String::from("\nCold link, medians in ms (hcr / ld64.lld: link.update over -no_fixup_chains)\n");
    out.push_str(&text_table(&cold));
    out.push_str("\nOne-function edit, medians in ms\n");
    out.push_str(&text_table(&update));
    for r in &run.results {
        for problem in &r.problems {
            let _ = writeln!(out, "problem: {}", problem.lines().next().unwrap_or(""));
        }
    }
    out
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A number as JSON (`null` for nothing, or for a value JSON cannot hold).
fn json_number(value: Option<f64>) -> String {
    match value {
        // Four decimals are far below the noise of any of these measurements.
        Some(v) if v.is_finite() => format!("{}", (v * 1e4).round() / 1e4),
        _ => "null".into(),
    }
}

fn json_sample(sample: &Sample) -> String {
    let values: Vec<String> = sample.values.iter().map(|&v| json_number(Some(v))).collect();
    format!("{{\"median\":{},\"values\":[{}]}}", json_number(sample.median()), values.join(","))
}

/// `latest.json`: the machine, and for every size each sample with its median, and the problems.
pub fn json(run: &Run) -> String {
    let m = &run.machine;
    let mut out = String::from("{\n");
    let _ = writeln!(out, "  \"schema\": 1,");
    let _ = writeln!(
        out,
        "  \"machine\": {{\"cpus\":{},\"cpu_model\":{},\"memory_gib\":{},\"os\":{},\"commit\":{},\"date\":{}}},",
        m.cpus,
        json_string(&m.cpu_model),
        json_number(m.memory_gib),
        json_string(&m.os),
        json_string(&m.commit),
        json_string(&m.date)
    );
    let _ = writeln!(out, "  \"quick\": {},", run.quick);
    let _ = writeln!(out, "  \"hcr_profile\": {},", json_string(&run.profile));
    let _ = writeln!(out, "  \"seconds\": {},", json_number(Some(run.seconds)));
    let _ = writeln!(out, "  \"tick_us\": {TICK_US},");
    out.push_str("  \"sizes\": [\n");
    for (i, r) in run.results.iter().enumerate() {
        let _ = write!(
            out,
            "    {{\"functions\":{},\"units\":{},\"compile_s\":{}",
            r.functions,
            r.units,
            json_number(r.compile_s)
        );
        for (name, sample) in samples(r).iter().filter(|(_, s)| !s.values.is_empty()) {
            let _ = write!(out, ",\n     \"{name}\":{}", json_sample(sample));
        }
        let lld = r.lld_opcodes.median();
        let _ = write!(
            out,
            ",\n     \"hcr_cold_link_over_lld\":{},\n     \"incr_link_over_lld\":{}",
            json_number(ratio(r.hcr_cold_link.median(), lld)),
            json_number(ratio(r.incr_link.median(), lld))
        );
        for (field, list) in [("cold_passes_ms", &r.cold_passes), ("incr_passes_ms", &r.incr_passes)] {
            let passes: Vec<String> = list
                .iter()
                .map(|(name, sample)| format!("{}:{}", json_string(name), json_sample(sample)))
                .collect();
            let _ = write!(out, ",\n     \"{field}\":{{{}}}", passes.join(","));
        }
        let _ = write!(
            out,
            ",\n     \"link_time_from\":{}",
            json_string(if r.link_from_lines { "stderr line arrival" } else { "time.busy" })
        );
        let problems: Vec<String> = r.problems.iter().map(|p| json_string(p)).collect();
        let _ = write!(out, ",\n     \"problems\":[{}]}}", problems.join(","));
        out.push_str(if i + 1 < run.results.len() { ",\n" } else { "\n" });
    }
    out.push_str("  ]\n}\n");
    out
}

/// One line of the plot: label, colour, dashed, and the point (N, median ms) of each size that has one.
type Series = (&'static str, &'static str, bool, Vec<(f64, f64)>);

/// The plot's series.
fn series(run: &Run) -> Vec<Series> {
    let points = |pick: fn(&SizeResult) -> Option<f64>| -> Vec<(f64, f64)> {
        run.results
            .iter()
            .filter_map(|r| Some((r.functions as f64, pick(r)?)))
            .filter(|&(_, y)| y > 0.0)
            .collect()
    };
    vec![
        ("ld64.lld-19 full link (-no_fixup_chains)", "#d62728", false, points(|r| r.lld_opcodes.median())),
        ("ld64.lld-19 full link (chained fixups)", "#ff9896", true, points(|r| r.lld_chained.median())),
        ("hcr cold link (link.update)", "#1f77b4", false, points(|r| r.hcr_cold_link.median())),
        (
            "hcr one-function update, hcr build (link.update)",
            "#2ca02c",
            true,
            points(|r| r.incr_link.median()),
        ),
        (
            "hcr one-function update, live session (Linker::update)",
            "#17becf",
            false,
            points(|r| r.live_relocate.median()),
        ),
        (
            "hcr hot update, edit → response (incl. clang)",
            "#9467bd",
            true,
            points(|r| r.edit_to_response.median()),
        ),
        (
            "patch the live process (suspend → resume)",
            "#8c564b",
            true,
            points(|r| r.live_patch_us.median().map(|us| us / 1e3)),
        ),
    ]
}

/// The decades `[lo, hi]` (powers of ten) that contain every value.
pub fn decades(values: impl IntoIterator<Item = f64>) -> (i32, i32) {
    let mut lo = i32::MAX;
    let mut hi = i32::MIN;
    for v in values.into_iter().filter(|v| *v > 0.0 && v.is_finite()) {
        lo = lo.min(v.log10().floor() as i32);
        hi = hi.max(v.log10().ceil() as i32);
    }
    if lo > hi {
        return (0, 1);
    }
    if lo == hi { (lo, hi + 1) } else { (lo, hi) }
}

/// Maps `v` on a log scale from the decades `[lo, hi]` onto `[from, to]` (pixels).
pub fn log_scale(v: f64, (lo, hi): (i32, i32), from: f64, to: f64) -> f64 {
    let t = (v.log10() - f64::from(lo)) / f64::from(hi - lo);
    from + t * (to - from)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A log-log SVG: update latency and cold-link time against N, hcr and ld64.lld.
pub fn svg(run: &Run) -> String {
    let (width, height) = (900.0, 460.0);
    let (left, right, top, bottom) = (70.0, 480.0, 30.0, 400.0);
    let series = series(run);
    let xs = decades(series.iter().flat_map(|s| s.3.iter().map(|p| p.0)).chain([100.0, 100_000.0]));
    let ys = decades(series.iter().flat_map(|s| s.3.iter().map(|p| p.1)));
    let x = |v: f64| log_scale(v, xs, left, right);
    let y = |v: f64| log_scale(v, ys, bottom, top);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"18\" font-size=\"14\">hcr vs ld64.lld-19: time against program size (log-log, medians)</text>"
    );
    for d in xs.0..=xs.1 {
        let px = x(10f64.powi(d));
        let _ = writeln!(
            out,
            "<line x1=\"{px:.1}\" y1=\"{top}\" x2=\"{px:.1}\" y2=\"{bottom}\" stroke=\"#ddd\"/>"
        );
        let _ = writeln!(
            out,
            "<text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 16.0,
            thousands(10usize.pow(d.max(0) as u32))
        );
    }
    for d in ys.0..=ys.1 {
        let py = y(10f64.powi(d));
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" y1=\"{py:.1}\" x2=\"{right}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>"
        );
        let label = if d < 0 { format!("{}", 10f64.powi(d)) } else { thousands(10usize.pow(d as u32)) };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            left - 6.0,
            py + 4.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">functions (N)</text>",
        (left + right) / 2.0,
        bottom + 36.0
    );
    let _ = writeln!(
        out,
        "<text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">milliseconds</text>",
        (top + bottom) / 2.0
    );
    for (i, (label, colour, dashed, points)) in series.iter().enumerate() {
        let dash = if *dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        if points.len() > 1 {
            let path: Vec<String> =
                points.iter().map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py))).collect();
            let _ = writeln!(
                out,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
                path.join(" ")
            );
        }
        for &(px, py) in points {
            let _ = writeln!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{}: N = {px}, {} ms</title></circle>",
                x(px),
                y(py),
                xml_escape(label),
                ms(Some(py))
            );
        }
        let ly = top + 10.0 + 20.0 * i as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
            right + 15.0,
            right + 40.0
        );
        let _ = writeln!(out, "<text x=\"{}\" y=\"{}\">{}</text>", right + 46.0, ly + 4.0, xml_escape(label));
    }
    out.push_str("</svg>\n");
    out
}

/// `12345` as `12,345`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The checks of DESIGN.md §8 against this run, one sentence each.
fn targets(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    let at = |n: usize| run.results.iter().find(|r| r.functions == n);
    match at(10_000) {
        Some(r) => {
            let lld = r.lld_opcodes.median();
            match (r.incr_link.median(), lld) {
                (Some(incr), Some(lld)) => {
                    let speedup = lld / incr;
                    out.push(format!(
                        "One-function update at N = 10,000: link.update {} ms, ld64.lld-19's full relink {} ms: {} (target ≥ 100× faster: {}); under 5 ms: {}.",
                        ms(Some(incr)),
                        ms(Some(lld)),
                        if speedup >= 1.0 {
                            format!("{} faster", times(speedup))
                        } else {
                            format!("{} slower", times(1.0 / speedup))
                        },
                        if speedup >= 100.0 { "met".to_string() } else { format!("missed by {:.1}×", 100.0 / speedup) },
                        if incr < 5.0 { "met" } else { "missed" }
                    ));
                }
                _ => out.push("One-function update at N = 10,000: not measured (see the problems).".into()),
            }
            if let (Some(update), Some(lld)) = (r.live_relocate.median(), lld) {
                let speedup = lld / update;
                out.push(format!(
                    "The same update inside a running `hcr run` session, which keeps the linker in memory: \
                     `Linker::update` {} ms (the report's `timings.relocate`), {} than ld64.lld-19's full relink \
                     (target ≥ 100×: {}); under 5 ms: {}. Reading and parsing the objects that changed adds {} ms.",
                    ms(Some(update)),
                    if speedup >= 1.0 {
                        format!("{} faster", times(speedup))
                    } else {
                        format!("{} slower", times(1.0 / speedup))
                    },
                    if speedup >= 100.0 { "met".to_string() } else { format!("missed by {:.1}×", 100.0 / speedup) },
                    if update < 5.0 { "met" } else { "missed" },
                    ms(r.live_parse.median())
                ));
            }
            match (r.hcr_cold_link.median(), r.hcr_cold_wall.median(), lld) {
                (Some(link), Some(wall), Some(lld)) => out.push(format!(
                    "Cold link at N = 10,000: hcr's link.update {} ms ({} ms for the whole `hcr build`), ld64.lld-19 {} ms: {} (×{:.2}).",
                    ms(Some(link)),
                    ms(Some(wall)),
                    ms(Some(lld)),
                    if link <= lld { "no slower, met" } else { "slower, missed" },
                    link / lld
                )),
                _ => out.push("Cold link at N = 10,000: not measured (see the problems).".into()),
            }
            if let Some(patch) = r.live_patch_us.median() {
                out.push(format!(
                    "Patching the live process at N = 10,000 (suspend → checks → writes → flush → resume, in darwin-sim): {patch:.0} µs (target well under 1 ms: {}).",
                    if patch < 1000.0 { "met" } else { "missed" }
                ));
            }
        }
        None => out.push("N = 10,000 was not part of this run.".into()),
    }
    let bytes: Vec<(usize, f64)> =
        run.results.iter().filter_map(|r| Some((r.functions, r.live_bytes.median()?))).collect();
    if let (Some(first), Some(last)) = (bytes.first(), bytes.last())
        && bytes.len() > 1
    {
        let same = bytes.windows(2).all(|w| w[0].1 == w[1].1);
        let list: Vec<String> = run
            .results
            .iter()
            .filter_map(|r| {
                let b = r.live_bytes.median()?;
                let moved = r.live_moved.values.iter().filter(|&&m| m > 0.0).count();
                let note = if moved > 0 {
                    format!(" (the function moved in {moved} of {} updates)", r.live_moved.values.len())
                } else {
                    String::new()
                };
                Some(format!("{b:.0} B at N = {}{note}", thousands(r.functions)))
            })
            .collect();
        // The edited function is a different one at each N, so its new body may encode in a few more or fewer
        // bytes; what must not happen is growth with the program.
        let verdict = if same {
            "the same at every N: met".to_string()
        } else if last.1 <= first.1 * 1.5 {
            "not identical, since the edited function differs with N, but not growing with N: met".to_string()
        } else {
            format!("{:.1}× more at the largest N than at the smallest: missed", last.1 / first.1)
        };
        out.push(format!(
            "Bytes written to the process per one-function update: {} ({verdict}).",
            list.join(", ")
        ));
    }
    out
}

/// Where the hot update's time goes at each size: each stage's share of edit → response.
fn breakdown(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    for r in &run.results {
        let Some(total) = r.edit_to_response.median() else { continue };
        let stages = [
            ("clang", r.live_compile.median()),
            ("parsing the changed objects", r.live_parse.median()),
            ("Linker::update", r.live_relocate.median()),
            ("writing the file", r.live_write_file.median()),
            ("patching the process", r.live_patch_us.median().map(|us| us / 1e3)),
        ];
        let known: f64 = stages.iter().filter_map(|(_, v)| *v).sum();
        let mut parts: Vec<String> = stages
            .iter()
            .filter_map(|(name, v)| {
                Some(format!("{name} {} ms ({:.0} %)", ms(Some((*v)?)), 100.0 * (*v)? / total))
            })
            .collect();
        parts.push(format!(
            "the rest (untimed work in hcr, such as copying the linker state before the update and committing \
             it after, the liveness scan, the request and scheduling) {} ms",
            ms(Some((total - known).max(0.0)))
        ));
        out.push(format!(
            "N = {}: edit → response {} ms = {}.",
            thousands(r.functions),
            ms(Some(total)),
            parts.join(", ")
        ));
    }
    out
}

/// `BENCHMARKS.md`: how to reproduce, the machine, the tables, the targets, the problems and the plot.
pub fn markdown(run: &Run, svg_path: &str) -> String {
    let m = &run.machine;
    let (cold, update) = rows(run);
    let mut out = String::from("# Benchmarks\n\n");
    out.push_str(
        "Patch latency and link speed of hcr against `ld64.lld-19`, and how they scale with the program's size. \
         Produced by `cargo xtask bench` (this file is written by `cargo xtask bench --write-md`).\n\n",
    );
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(
        out,
        "- {} CPUs (`nproc`), {}, {} of memory, {}\n- commit `{}`, {}; hcr: `{}`; the whole run took {:.0} s{}",
        m.cpus,
        m.cpu_model,
        m.memory_gib.map_or("unknown".into(), |g| format!("{g:.1} GiB")),
        m.os,
        m.commit,
        m.date,
        run.profile,
        run.seconds,
        if run.quick { " (`--quick`)" } else { "" }
    );
    out.push_str(
        "- The machine was shared and busy while this was measured (other builds and tests ran on its 2 cores): \
         the absolute numbers are noisy and will be re-run on an idle machine. hcr and ld64.lld-19 were measured \
         interleaved in the same run, so their ratios suffer less than the absolute times.\n\n",
    );
    out.push_str("## Reproduce\n\n```\ncargo xtask bench --write-md     # all four sizes; --quick: N = 100 and 1,000\n```\n\n");
    out.push_str("## Cold link (medians, ms)\n\n");
    out.push_str(&markdown_table(&cold));
    out.push_str(
        "\n`hcr link.update` is the linker's own time (the `link.update` span of `hcr --time build`, from an empty \
         state); `hcr build (wall)` is the whole process (reading and parsing every object, writing the executable \
         and saving the link state). ld64.lld-19 is the wall time of the process with the flags of \
         `darwin_sim::sdk::LD_FLAGS` and `-syslibroot sim-sdk`. `hcr / ld64.lld` is `link.update` over \
         `-no_fixup_chains` (the fixup style hcr writes).\n\n",
    );
    if run.results.iter().any(|r| r.link_from_lines) {
        out.push_str(
            "**How `link.update` was timed in this run.** The `hcr` measured prints its `--time` spans without \
             durations (`INFO link.update{objects=11}: close`, no `time.busy`: tracing-subscriber's `without_time()` \
             also turns span timings off). The bench therefore stamps each of hcr's stderr lines as it arrives and \
             takes the gap between the `compile` and the `link.update` closing lines: the link plus the copy of the \
             linker state it starts from, plus pipe latency. Once hcr prints `time.busy`, the bench uses it.\n\n",
        );
    }
    out.push_str("## One-function edit (medians, ms unless stated)\n\n");
    out.push_str(&markdown_table(&update));
    let _ = writeln!(
        out,
        "\n- `clang (unit)`: recompiling the edited unit (about 100 functions) with clang-19 `-O1`.\n\
         - `hcr link.update`: the linker side of `hcr --time build` after the edit (state restored from `prog.hcr/`); \
         `hcr build (wall)` adds starting the process, loading and saving the state and parsing every object.\n\
         - `live: …`: the same edit hot-applied to the program running in darwin-sim with `hcr run --backend sim \
         --listen`, read from the update's report: `compile` (clang inside hcr), `parse` (reading and parsing the \
         objects that changed), `Linker::update` (the report's `timings.relocate`, which hcr fills with the whole \
         `Linker::update`; its `diff` is 0), `patch` (`timings.patch_process`: suspend → checks → writes → flush → \
         resume), and `bytes / pages` written to the process. `ld64.lld ÷ live update` compares that \
         `Linker::update` with ld64.lld-19's full relink (`-no_fixup_chains`).\n\
         - `edit → response`: from writing the edited source to hcr's response to `hot_update` (includes clang).\n\
         - `edit → new output`: from writing the edited source to the first line printed by a pass of the program's \
         loop that started after the patch. progen's `main` calls its roots once and returns, so the live program \
         runs the same calls in a loop (`tick T checksum C`, then `usleep({TICK_US})`); the edited function is the \
         first one `main` calls, so every pass runs it. The line counted is the second tick after the last one \
         received with the response, which adds up to about two passes to the latency."
    );
    out.push_str("\n## Targets (DESIGN.md §8)\n\n");
    for line in targets(run) {
        let _ = writeln!(out, "- {line}");
    }
    let shares = breakdown(run);
    if !shares.is_empty() {
        out.push_str("\n## Where a hot update's time goes (medians)\n\n");
        for line in shares {
            let _ = writeln!(out, "- {line}");
        }
    }
    let passes = |pick: fn(&SizeResult) -> &Vec<(String, Sample)>| -> Vec<String> {
        run.results
            .iter()
            .filter(|r| !pick(r).is_empty())
            .map(|r| {
                let list: Vec<String> =
                    pick(r).iter().map(|(name, sample)| format!("{name} {}", ms(sample.median()))).collect();
                format!("N = {}: {}", thousands(r.functions), list.join(", "))
            })
            .collect()
    };
    let (cold_passes, incr_passes) = (passes(|r| &r.cold_passes), passes(|r| &r.incr_passes));
    if !cold_passes.is_empty() || !incr_passes.is_empty() {
        out.push_str(
            "\n## Where `hcr build`'s link time goes (medians, ms)\n\n\
             Each pass of `link.update`, timed from the arrival of its closing line on hcr's stderr; the first \
             also counts copying the linker state the update starts from (empty for a cold link).\n\n",
        );
        for (title, lines) in [("Cold link", cold_passes), ("After a one-function edit", incr_passes)] {
            if !lines.is_empty() {
                let _ = writeln!(out, "{title}:\n");
                for line in lines {
                    let _ = writeln!(out, "- {line}");
                }
                out.push('\n');
            }
        }
    }
    let problems: Vec<&String> = run.results.iter().flat_map(|r| &r.problems).collect();
    if !problems.is_empty() {
        out.push_str("\n## Problems in this run\n\n");
        for problem in problems {
            let _ = writeln!(out, "```\n{}\n```\n", problem.trim_end());
        }
    }
    let _ = writeln!(out, "\n## Plot\n\n![time against N, log-log]({svg_path})\n");
    out.push_str(
        "## Method\n\n\
         For each N the program generator (`cargo xtask gen`) writes N functions over N/100 units (seed 42), with a \
         call graph, globals, string literals and function-pointer tables; clang-19 compiles it once \
         (`--target=arm64-apple-macos13 -isysroot sim-sdk -O1 -fno-asynchronous-unwind-tables -c`, two at a \
         time) and the objects are cached in `target/bench/programs/N/`. Each measurement is repeated (5 times, 3 \
         at N = 100,000, 2 with `--quick`) and the median is shown; every value is in `target/bench/latest.json`. \
         The one-function edit is progen's `--edit`: it changes one function's arithmetic, so its body changes \
         and may grow.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(functions: usize, lld: f64, incr: f64, bytes: f64) -> SizeResult {
        let s = |v: f64| Sample { values: vec![v, v * 2.0, v / 2.0] };
        SizeResult {
            functions,
            units: functions / 100,
            hcr_cold_link: s(lld * 0.8),
            hcr_cold_wall: s(lld * 1.5),
            lld_chained: s(lld * 1.1),
            lld_opcodes: s(lld),
            incr_link: s(incr),
            live_relocate: s(incr / 10.0),
            live_patch_us: s(200.0),
            live_bytes: s(bytes),
            edit_to_response: s(40.0),
            ..SizeResult::default()
        }
    }

    fn run(results: Vec<SizeResult>) -> Run {
        let machine = Machine {
            cpus: 2,
            cpu_model: "Test \"CPU\"".into(),
            memory_gib: Some(8.0),
            os: "Linux".into(),
            commit: "abc".into(),
            date: "today".into(),
        };
        Run { machine, quick: false, profile: "release".into(), seconds: 1.0, results }
    }

    #[test]
    fn machine_facts_from_proc_files() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(memory_gib("MemTotal:        8388608 kB\nMemFree: 1 kB\n"), Some(8.0));
    }

    #[test]
    fn log_scales_put_decades_evenly_apart() {
        assert_eq!(decades([150.0, 2500.0, 0.0]), (2, 4));
        assert_eq!(decades([100.0]), (2, 3));
        assert_eq!(decades(std::iter::empty()), (0, 1));
        assert_eq!(log_scale(100.0, (2, 4), 0.0, 200.0), 0.0);
        assert!((log_scale(1000.0, (2, 4), 0.0, 200.0) - 100.0).abs() < 1e-9);
        assert!((log_scale(10_000.0, (2, 4), 400.0, 0.0)).abs() < 1e-9);
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn json_escapes_and_holds_every_size() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        let mut failing = result(100_000, 900.0, 4.0, 96.0);
        failing.problems.push("hcr build failed:\n\"why\"".into());
        let text = json(&run(vec![result(100, 10.0, 0.5, 96.0), failing]));
        assert!(text.contains("\"cpu_model\":\"Test \\\"CPU\\\"\""), "{text}");
        assert!(text.contains("{\"functions\":100,"), "{text}");
        assert!(text.contains("\"lld_no_fixup_chains_ms\":{\"median\":10,\"values\":[10,20,5]}"), "{text}");
        assert!(text.contains("\"problems\":[\"hcr build failed:\\n\\\"why\\\"\"]"), "{text}");
        assert!(!text.contains("live_compile_ms"), "samples without values are left out");
        // Balanced brackets: the hand-written structure closes what it opens.
        let depth = text.chars().fold(0i32, |d, c| match c {
            '{' | '[' => d + 1,
            '}' | ']' => d - 1,
            _ => d,
        });
        assert_eq!(depth, 0);
    }

    #[test]
    fn targets_report_the_speedup_and_whether_bytes_stay_the_same() {
        let met = targets(&run(vec![result(100, 20.0, 0.4, 96.0), result(10_000, 500.0, 2.0, 96.0)]));
        assert!(met[0].contains("250× faster (target ≥ 100× faster: met); under 5 ms: met"), "{met:?}");
        assert!(met[1].contains("`Linker::update` 0.200 ms"), "{met:?}");
        assert!(
            met[1].contains("2500× faster than ld64.lld-19's full relink (target ≥ 100×: met)"),
            "{met:?}"
        );
        assert!(met[2].contains("no slower, met"), "{met:?}");
        assert!(met.last().unwrap().contains("the same at every N: met"), "{met:?}");
        let missed = targets(&run(vec![result(100, 20.0, 0.4, 96.0), result(10_000, 500.0, 10.0, 128.0)]));
        assert!(
            missed[0].contains("50× faster (target ≥ 100× faster: missed by 2.0×); under 5 ms: missed"),
            "{missed:?}"
        );
        let slower = targets(&run(vec![result(10_000, 50.0, 200.0, 96.0)]));
        assert!(slower[0].contains("4.00× slower (target ≥ 100× faster: missed by 400.0×)"), "{slower:?}");
        assert!(missed.last().unwrap().contains("not growing with N: met"), "{missed:?}");
        let grows = targets(&run(vec![result(100, 20.0, 0.4, 96.0), result(10_000, 500.0, 10.0, 960.0)]));
        assert!(grows.last().unwrap().contains("10.0× more at the largest N than at the smallest: missed"));
    }

    #[test]
    fn the_plot_has_a_line_per_measured_series_and_the_markdown_refers_to_it() {
        let r = run(vec![result(100, 10.0, 0.5, 96.0), result(1_000, 40.0, 0.6, 96.0)]);
        let plot = svg(&r);
        assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
        // Every series has both points (the test data measures all seven).
        assert_eq!(plot.matches("<polyline").count(), 7, "{plot}");
        assert_eq!(plot.matches("<circle").count(), 14);
        // A series without values is left out rather than drawn at zero.
        let mut partial = r.clone();
        partial.results.iter_mut().for_each(|x| x.live_relocate = Sample::default());
        assert_eq!(svg(&partial).matches("<polyline").count(), 6);
        let md = markdown(&r, "docs/bench/latency.svg");
        assert!(md.contains("![time against N, log-log](docs/bench/latency.svg)"));
        assert!(md.contains("| 1,000 | 10 |"), "{md}");
        assert!(md.contains("N = 1,000: edit → response 40.0 ms = "), "{md}");
        let table = table(&r);
        assert!(table.contains("ld64.lld ÷ link.update"));
    }
}
