//! An interpreter for `LC_DYLD_INFO_ONLY`'s rebase and bind opcode streams (`<mach-o/loader.h>`), turning them
//! into the loader's flat list of fixup sites.
//!
//! Rebase entries are `(segment, offset)`; bind entries add the symbol, library ordinal, flags and addend. The
//! opcodes only compress that table ("this column changed", "n times every k bytes"). Lazy binds use the same
//! opcodes, with `DONE` separating entries rather than ending the stream; the simulator binds them at launch.

use object::macho;

/// A pointer-sized location in a segment, as `(segment index, offset in segment)`.
pub type Site = (usize, u64);

/// One bind-table row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub site: Site,
    pub symbol: String,
    /// Library ordinal: 1-based index into the `LC_LOAD_DYLIB`s, or a `BIND_SPECIAL_DYLIB_*` value (≤ 0).
    pub ordinal: i64,
    pub addend: i64,
    pub weak_import: bool,
}

/// Reads an unsigned LEB128 at `*at`.
fn uleb(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*at).ok_or("ULEB128 runs past the end of the opcodes")?;
        *at += 1;
        if shift < 64 {
            value |= u64::from(b & 0x7f) << shift;
        }
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Reads a signed LEB128 at `*at`.
fn sleb(bytes: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut value = 0i64;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*at).ok_or("SLEB128 runs past the end of the opcodes")?;
        *at += 1;
        if shift < 64 {
            value |= i64::from(b & 0x7f) << shift;
        }
        shift += 7;
        if b & 0x80 == 0 {
            if shift < 64 && b & 0x40 != 0 {
                value |= -1i64 << shift;
            }
            return Ok(value);
        }
    }
}

/// Every rebase site in a rebase opcode stream.
pub fn rebases(ops: &[u8]) -> Result<Vec<Site>, String> {
    let mut out = Vec::new();
    let (mut seg, mut off) = (None::<usize>, 0u64);
    let mut at = 0;
    let here =
        |seg: Option<usize>, at: usize| seg.ok_or(format!("rebase opcode at {at} before a segment was set"));
    while at < ops.len() {
        let byte = ops[at];
        let start = at;
        at += 1;
        let imm = byte & macho::REBASE_IMMEDIATE_MASK;
        match macho::RebaseOpcode(byte & macho::REBASE_OPCODE_MASK) {
            macho::REBASE_OPCODE_DONE => break,
            macho::REBASE_OPCODE_SET_TYPE_IMM => {
                if imm != macho::REBASE_TYPE_POINTER.0 {
                    return Err(format!("rebase type {imm} at opcode {start} is not REBASE_TYPE_POINTER"));
                }
            }
            macho::REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB => {
                seg = Some(usize::from(imm));
                off = uleb(ops, &mut at)?;
            }
            macho::REBASE_OPCODE_ADD_ADDR_ULEB => off = off.wrapping_add(uleb(ops, &mut at)?),
            macho::REBASE_OPCODE_ADD_ADDR_IMM_SCALED => off = off.wrapping_add(u64::from(imm) * 8),
            macho::REBASE_OPCODE_DO_REBASE_IMM_TIMES => {
                for _ in 0..imm {
                    out.push((here(seg, start)?, off));
                    off = off.wrapping_add(8);
                }
            }
            macho::REBASE_OPCODE_DO_REBASE_ULEB_TIMES => {
                for _ in 0..uleb(ops, &mut at)? {
                    out.push((here(seg, start)?, off));
                    off = off.wrapping_add(8);
                }
            }
            macho::REBASE_OPCODE_DO_REBASE_ADD_ADDR_ULEB => {
                out.push((here(seg, start)?, off));
                off = off.wrapping_add(uleb(ops, &mut at)?).wrapping_add(8);
            }
            macho::REBASE_OPCODE_DO_REBASE_ULEB_TIMES_SKIPPING_ULEB => {
                let count = uleb(ops, &mut at)?;
                let skip = uleb(ops, &mut at)?;
                for _ in 0..count {
                    out.push((here(seg, start)?, off));
                    off = off.wrapping_add(skip).wrapping_add(8);
                }
            }
            other => return Err(format!("unknown rebase opcode {:#04x} at offset {start}", other.0)),
        }
    }
    Ok(out)
}

/// Every bind in a bind (or lazy-bind, with `lazy`) opcode stream.
pub fn binds(ops: &[u8], lazy: bool) -> Result<Vec<Bind>, String> {
    let mut out = Vec::new();
    let (mut seg, mut off) = (None::<usize>, 0u64);
    let (mut symbol, mut ordinal, mut addend, mut weak_import) = (None::<String>, 0i64, 0i64, false);
    let mut at = 0;
    let mut bind =
        |seg: Option<usize>, off: u64, symbol: &Option<String>, ordinal, addend, weak_import, at| {
            let seg = seg.ok_or(format!("bind opcode at {at} before a segment was set"))?;
            let symbol = symbol.clone().ok_or(format!("bind opcode at {at} before a symbol was set"))?;
            out.push(Bind { site: (seg, off), symbol, ordinal, addend, weak_import });
            Ok::<(), String>(())
        };
    while at < ops.len() {
        let byte = ops[at];
        let start = at;
        at += 1;
        let imm = byte & macho::BIND_IMMEDIATE_MASK;
        match macho::BindOpcode(byte & macho::BIND_OPCODE_MASK) {
            macho::BIND_OPCODE_DONE if lazy => {}
            macho::BIND_OPCODE_DONE => break,
            macho::BIND_OPCODE_SET_DYLIB_ORDINAL_IMM => ordinal = i64::from(imm),
            macho::BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB => ordinal = uleb(ops, &mut at)? as i64,
            macho::BIND_OPCODE_SET_DYLIB_SPECIAL_IMM => {
                // Sign-extend the 4-bit immediate: 0 self, -1 main executable, -2 flat lookup.
                ordinal = if imm == 0 { 0 } else { i64::from((imm | macho::BIND_OPCODE_MASK) as i8) };
            }
            macho::BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM => {
                let end = ops[at..]
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or("unterminated symbol name in bind opcodes")?;
                symbol = Some(String::from_utf8_lossy(&ops[at..at + end]).into_owned());
                at += end + 1;
                weak_import = imm & macho::BIND_SYMBOL_FLAGS_WEAK_IMPORT.0 != 0;
            }
            macho::BIND_OPCODE_SET_TYPE_IMM => {
                if imm != macho::BIND_TYPE_POINTER.0 {
                    return Err(format!("bind type {imm} at opcode {start} is not BIND_TYPE_POINTER"));
                }
            }
            macho::BIND_OPCODE_SET_ADDEND_SLEB => addend = sleb(ops, &mut at)?,
            macho::BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB => {
                seg = Some(usize::from(imm));
                off = uleb(ops, &mut at)?;
            }
            macho::BIND_OPCODE_ADD_ADDR_ULEB => off = off.wrapping_add(uleb(ops, &mut at)?),
            macho::BIND_OPCODE_DO_BIND => {
                bind(seg, off, &symbol, ordinal, addend, weak_import, start)?;
                off = off.wrapping_add(8);
            }
            macho::BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB => {
                bind(seg, off, &symbol, ordinal, addend, weak_import, start)?;
                off = off.wrapping_add(uleb(ops, &mut at)?).wrapping_add(8);
            }
            macho::BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED => {
                bind(seg, off, &symbol, ordinal, addend, weak_import, start)?;
                off = off.wrapping_add(u64::from(imm) * 8 + 8);
            }
            macho::BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB => {
                let count = uleb(ops, &mut at)?;
                let skip = uleb(ops, &mut at)?;
                for _ in 0..count {
                    bind(seg, off, &symbol, ordinal, addend, weak_import, start)?;
                    off = off.wrapping_add(skip).wrapping_add(8);
                }
            }
            other => return Err(format!("unsupported bind opcode {:#04x} at offset {start}", other.0)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_round_trips_known_encodings() {
        let mut at = 0;
        assert_eq!(uleb(&[0xe5, 0x8e, 0x26], &mut at), Ok(624_485));
        assert_eq!(at, 3);
        at = 0;
        assert_eq!(sleb(&[0xc0, 0xbb, 0x78], &mut at), Ok(-123_456));
        at = 0;
        assert_eq!(sleb(&[0x7f], &mut at), Ok(-1));
        at = 0;
        assert!(uleb(&[0x80], &mut at).is_err());
    }

    #[test]
    fn rebase_opcodes_expand_to_sites() {
        let ops = [
            0x11, // type pointer
            0x22, 0x10, // segment 2, offset 0x10
            0x52, // 2 times: 0x10, 0x18
            0x41, // +8 → 0x28
            0x70, 0x08, // rebase 0x28, then +8+8 → 0x38
            0x80, 0x02, 0x10, // 2 times skipping 16: 0x38, 0x50
            0x00,
        ];
        assert_eq!(rebases(&ops).unwrap(), vec![(2, 0x10), (2, 0x18), (2, 0x28), (2, 0x38), (2, 0x50)]);
        assert!(rebases(&[0x51]).unwrap_err().contains("before a segment"));
        assert!(rebases(&[0x12]).unwrap_err().contains("REBASE_TYPE_POINTER"));
    }

    #[test]
    fn bind_opcodes_carry_symbol_ordinal_and_addend() {
        let mut ops = vec![0x11, 0x40];
        ops.extend_from_slice(b"_printf\0");
        ops.extend_from_slice(&[0x51, 0x72, 0x08, 0x90]); // segment 2 offset 8, bind
        ops.extend_from_slice(&[0x41]);
        ops.extend_from_slice(b"_weak\0");
        ops.extend_from_slice(&[0x60, 0x7c, 0x3e, 0x90, 0x00]); // addend -4, flat lookup, bind at 0x10
        let got = binds(&ops, false).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            Bind { site: (2, 8), symbol: "_printf".into(), ordinal: 1, addend: 0, weak_import: false }
        );
        assert_eq!(
            got[1],
            Bind { site: (2, 0x10), symbol: "_weak".into(), ordinal: -2, addend: -4, weak_import: true }
        );
    }

    #[test]
    fn lazy_streams_continue_past_done() {
        let mut ops = vec![0x72, 0x00, 0x11, 0x40];
        ops.extend_from_slice(b"_a\0");
        ops.extend_from_slice(&[0x90, 0x00, 0x72, 0x08, 0x11, 0x40]);
        ops.extend_from_slice(b"_b\0");
        ops.extend_from_slice(&[0x90, 0x00]);
        assert_eq!(binds(&ops, true).unwrap().len(), 2);
        assert_eq!(binds(&ops, false).unwrap().len(), 1);
    }
}
