//! `hcr layout EXE [--diff OLD] [--html FILE]`: the image's map — segments, atoms, stubs and cells — and the
//! before/after view of two images with moved, changed, added and removed symbols marked, as the two-column
//! debugging view of Zig's hot-code-swapping work did. The HTML form is one self-contained page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use macho_layout::read::{Map, MapSymbol};

/// What happened to a symbol between two images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Same,
    /// Same place, other bytes.
    Changed,
    /// Another place.
    Moved,
    Added,
    Removed,
}

impl Change {
    fn mark(self) -> &'static str {
        match self {
            Change::Same => " ",
            Change::Changed => "C",
            Change::Moved => "M",
            Change::Added => "+",
            Change::Removed => "-",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Change::Same => "same",
            Change::Changed => "changed",
            Change::Moved => "moved",
            Change::Added => "added",
            Change::Removed => "removed",
        }
    }
}

/// One row of the before/after view.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub old: Option<&'a MapSymbol>,
    pub new: Option<&'a MapSymbol>,
    pub change: Change,
}

/// An image and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    pub map: &'a Map,
    pub file: &'a [u8],
}

/// Pairs the symbols of two images by name (local symbols of the same name are paired in address order).
pub fn diff<'a>(old: Image<'a>, new: Image<'a>) -> Vec<Row<'a>> {
    let mut by_name: BTreeMap<&str, (Vec<&MapSymbol>, Vec<&MapSymbol>)> = BTreeMap::new();
    for s in &old.map.symbols {
        by_name.entry(&s.name).or_default().0.push(s);
    }
    for s in &new.map.symbols {
        by_name.entry(&s.name).or_default().1.push(s);
    }
    let mut rows = Vec::new();
    for (olds, news) in by_name.into_values() {
        for i in 0..olds.len().max(news.len()) {
            let (o, n) = (olds.get(i).copied(), news.get(i).copied());
            let change = match (o, n) {
                (Some(o), Some(n)) if o.addr != n.addr => Change::Moved,
                // Sizes come from the distance to the next symbol, so a neighbour that moved away changes
                // them; compare the bytes both images have.
                (Some(o), Some(n)) if differ(old.map.bytes(old.file, o), new.map.bytes(new.file, n)) => {
                    Change::Changed
                }
                (Some(_), Some(_)) => Change::Same,
                (None, Some(_)) => Change::Added,
                (Some(_), None) => Change::Removed,
                (None, None) => unreachable!("one side has the i-th symbol"),
            };
            rows.push(Row { old: o, new: n, change });
        }
    }
    rows.sort_by_key(|r| (r.new.or(r.old).map(|s| s.addr), r.new.or(r.old).map(|s| s.name.clone())));
    rows
}

fn differ(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] != b[..n]
}

/// The map of one image as text: segments, then every symbol by address with its size and section.
pub fn text(map: &Map, symbol: Option<&str>) -> String {
    let mut out = String::new();
    if symbol.is_none() {
        let _ = writeln!(
            out,
            "{:<14} {:>12} {:>12} {:>10} {:>10} prot",
            "segment", "vmaddr", "vmsize", "fileoff", "filesize"
        );
        for s in &map.segments {
            let _ = writeln!(
                out,
                "{:<14} {:>#12x} {:>#12x} {:>#10x} {:>#10x} {}",
                s.name, s.vmaddr, s.vmsize, s.fileoff, s.filesize, s.prot
            );
        }
        out.push('\n');
    }
    for s in map.symbols.iter().filter(|s| symbol.is_none_or(|want| matches(&s.name, want))) {
        let _ = writeln!(out, "{:#011x} {:>8} {:<22} {}", s.addr, s.size, s.section, s.name);
    }
    out
}

/// Whether `name` is the symbol a user typed (`bar`, `_bar`, or a stub or cell of it).
fn matches(name: &str, want: &str) -> bool {
    let base = name.split('$').next().unwrap_or(name);
    base == want || base.strip_prefix('_') == Some(want)
}

/// The two-column before/after view as text; unchanged rows are left out unless `all`.
pub fn diff_text(rows: &[Row<'_>], all: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  {:<44} {:<44}", "before", "after");
    let cell = |s: Option<&MapSymbol>| match s {
        Some(s) => format!("{:#011x} {:>6} {}", s.addr, s.size, s.name),
        None => String::new(),
    };
    let mut counts: BTreeMap<Change, usize> = BTreeMap::new();
    for row in rows {
        *counts.entry(row.change).or_default() += 1;
        if row.change == Change::Same && !all {
            continue;
        }
        let _ = writeln!(out, "{} {:<44} {:<44}", row.change.mark(), cell(row.old), cell(row.new));
    }
    let summary: Vec<String> = counts.iter().map(|(c, n)| format!("{n} {}", c.word())).collect();
    let _ = writeln!(out, "{}", summary.join(", "));
    out
}

/// The same view as one self-contained HTML page.
pub fn diff_html(title: &str, rows: &[Row<'_>]) -> String {
    let escape =
        |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>\n\
         body{{font:13px ui-monospace,Menlo,monospace;margin:1em}} table{{border-collapse:collapse}}\n\
         td,th{{padding:1px 8px;text-align:left;white-space:nowrap}} .moved{{background:#fff3c4}}\n\
         .changed{{background:#dbeafe}} .added{{background:#dcfce7}} .removed{{background:#fee2e2}}\n\
         </style></head><body><h1>{}</h1><table>\n<tr><th></th><th>before</th><th>size</th><th>after</th>\
         <th>size</th><th>symbol</th></tr>\n",
        escape(title),
        escape(title)
    );
    for row in rows {
        let addr = |s: Option<&MapSymbol>| s.map(|s| format!("{:#x}", s.addr)).unwrap_or_default();
        let size = |s: Option<&MapSymbol>| s.map(|s| s.size.to_string()).unwrap_or_default();
        let name = row.new.or(row.old).map(|s| s.name.as_str()).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            row.change.word(),
            row.change.mark(),
            addr(row.old),
            size(row.old),
            addr(row.new),
            size(row.new),
            escape(name)
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use macho_layout::read::{Map, MapSymbol};

    use super::*;

    fn symbol(name: &str, addr: u64, size: u64, fileoff: u64) -> MapSymbol {
        MapSymbol {
            name: name.into(),
            addr,
            size,
            section: "__TEXT,__text".into(),
            external: true,
            fileoff: Some(fileoff),
        }
    }

    #[test]
    fn symbols_are_paired_by_name_and_classified() {
        let old = Map {
            segments: vec![],
            symbols: vec![symbol("_a", 0x100, 4, 0), symbol("_b", 0x104, 4, 4), symbol("_gone", 0x108, 4, 8)],
        };
        let new = Map {
            segments: vec![],
            symbols: vec![symbol("_a", 0x100, 4, 0), symbol("_b", 0x200, 8, 4), symbol("_new", 0x108, 4, 8)],
        };
        let old_file = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3];
        let new_file = [1, 1, 1, 9, 2, 2, 2, 2, 2, 2, 2, 2];
        // _b moved and grew; its size differs, but only its place makes it "moved".
        let rows = diff(Image { map: &old, file: &old_file }, Image { map: &new, file: &new_file });
        let by: BTreeMap<&str, Change> =
            rows.iter().map(|r| (r.new.or(r.old).unwrap().name.as_str(), r.change)).collect();
        assert_eq!(by["_a"], Change::Changed);
        assert_eq!(by["_b"], Change::Moved);
        assert_eq!(by["_gone"], Change::Removed);
        assert_eq!(by["_new"], Change::Added);
        let text = diff_text(&rows, false);
        assert!(text.contains("M 0x000000104      4 _b"), "{text}");
        assert!(text.ends_with("1 changed, 1 moved, 1 added, 1 removed\n"), "{text}");
        let html = diff_html("prog", &rows);
        assert!(html.contains("<tr class=\"moved\"><td>M</td><td>0x104</td><td>4</td><td>0x200</td><td>8</td><td>_b</td></tr>"), "{html}");
    }

    #[test]
    fn a_symbol_is_found_by_its_c_name_with_its_stub_and_cell() {
        assert!(matches("_bar", "bar"));
        assert!(matches("_bar$stub", "bar"));
        assert!(matches("_bar$cell", "_bar"));
        assert!(!matches("_barn", "bar"));
    }
}
