//! Non-lazy bind opcodes: the pointer cells dyld fills with an imported symbol's address at launch.
//!
//! hcr binds every import non-lazily (no lazy stubs, no `dyld_stub_binder`): the cells are written once at
//! launch, and an import first used after launch is resolved by the driver in the running process.

use super::leb::{write_sleb, write_uleb};

const BIND_TYPE_POINTER: u8 = 1;
const BIND_SYMBOL_FLAGS_WEAK_IMPORT: u8 = 0x1;
const BIND_OPCODE_SET_DYLIB_ORDINAL_IMM: u8 = 0x10;
const BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB: u8 = 0x20;
const BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM: u8 = 0x40;
const BIND_OPCODE_SET_TYPE_IMM: u8 = 0x50;
const BIND_OPCODE_SET_ADDEND_SLEB: u8 = 0x60;
const BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB: u8 = 0x70;
const BIND_OPCODE_ADD_ADDR_ULEB: u8 = 0x80;
const BIND_OPCODE_DO_BIND: u8 = 0x90;

/// One pointer cell bound to an imported symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BindEntry<'a> {
    pub segment_index: u8,
    pub segment_offset: u64,
    /// 1-based index of the `LC_LOAD_DYLIB` the symbol comes from.
    pub dylib_ordinal: u16,
    /// The symbol's Mach-O name (with its leading underscore).
    pub symbol: &'a str,
    pub addend: i64,
    pub weak_import: bool,
}

/// The opcode stream for `entries`, sorted by address, ending with `DONE` and padded to 8 bytes.
pub fn encode_bind(entries: &[BindEntry<'_>]) -> Vec<u8> {
    let mut sorted = entries.to_vec();
    sorted.sort_unstable_by_key(|e| (e.segment_index, e.segment_offset));
    let mut out = Vec::new();
    if sorted.is_empty() {
        return out;
    }
    out.push(BIND_OPCODE_SET_TYPE_IMM | BIND_TYPE_POINTER);
    let mut ordinal = None;
    let mut symbol = None;
    let mut addend = 0i64;
    let mut cursor: Option<(u8, u64)> = None;
    for entry in &sorted {
        if ordinal != Some(entry.dylib_ordinal) {
            if entry.dylib_ordinal < 16 {
                out.push(BIND_OPCODE_SET_DYLIB_ORDINAL_IMM | entry.dylib_ordinal as u8);
            } else {
                out.push(BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB);
                write_uleb(&mut out, u64::from(entry.dylib_ordinal));
            }
            ordinal = Some(entry.dylib_ordinal);
        }
        if symbol != Some((entry.symbol, entry.weak_import)) {
            let flags = if entry.weak_import { BIND_SYMBOL_FLAGS_WEAK_IMPORT } else { 0 };
            out.push(BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM | flags);
            out.extend_from_slice(entry.symbol.as_bytes());
            out.push(0);
            symbol = Some((entry.symbol, entry.weak_import));
        }
        if addend != entry.addend {
            out.push(BIND_OPCODE_SET_ADDEND_SLEB);
            write_sleb(&mut out, entry.addend);
            addend = entry.addend;
        }
        let to = (entry.segment_index, entry.segment_offset);
        super::move_cursor(
            &mut out,
            cursor,
            to,
            BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB,
            BIND_OPCODE_ADD_ADDR_ULEB,
        );
        out.push(BIND_OPCODE_DO_BIND);
        cursor = Some((entry.segment_index, entry.segment_offset + 8));
    }
    out.push(0);
    super::pad8(&mut out);
    out
}

/// One decoded binding: (segment, offset, ordinal, symbol, addend, weak).
#[cfg(test)]
type Decoded = (u8, u64, u16, String, i64, bool);

/// An independent decoder of the bind opcodes, for tests.
#[cfg(test)]
pub(crate) fn decode_bind(bytes: &[u8]) -> Result<Vec<Decoded>, String> {
    use super::leb::{read_sleb, read_uleb};
    let mut pos = 0;
    let (mut segment, mut offset, mut ordinal, mut addend) = (None::<u8>, 0u64, 0u16, 0i64);
    let (mut symbol, mut weak) = (String::new(), false);
    let mut out = Vec::new();
    while pos < bytes.len() {
        let byte = bytes[pos];
        pos += 1;
        let (op, imm) = (byte & 0xf0, byte & 0x0f);
        match op {
            0x00 => break,
            0x10 => ordinal = u16::from(imm),
            0x20 => ordinal = read_uleb(bytes, &mut pos).ok_or("uleb")? as u16,
            0x40 => {
                let end = bytes[pos..].iter().position(|&b| b == 0).ok_or("unterminated symbol")?;
                symbol = String::from_utf8(bytes[pos..pos + end].to_vec()).map_err(|e| e.to_string())?;
                weak = imm & 1 != 0;
                pos += end + 1;
            }
            0x50 if imm == 1 => {}
            0x60 => addend = read_sleb(bytes, &mut pos).ok_or("sleb")?,
            0x70 => {
                segment = Some(imm);
                offset = read_uleb(bytes, &mut pos).ok_or("uleb")?;
            }
            0x80 => offset = offset.wrapping_add(read_uleb(bytes, &mut pos).ok_or("uleb")?),
            0x90 => {
                out.push((
                    segment.ok_or("bind before SET_SEGMENT")?,
                    offset,
                    ordinal,
                    symbol.clone(),
                    addend,
                    weak,
                ));
                offset += 8;
            }
            _ => return Err(format!("unexpected bind opcode {byte:#x}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NAMES: [&str; 4] = ["_printf", "_exit", "___stack_chk_guard", "_malloc"];

    proptest! {
        #[test]
        fn decode_of_encode_gives_every_binding_in_address_order(
            raw in prop::collection::btree_set((1u8..5, 0u64..512), 0..60),
            picks in prop::collection::vec((0usize..4, 1u16..20, -8i64..8, any::<bool>()), 60),
        ) {
            let entries: Vec<BindEntry<'_>> = raw.iter().zip(&picks).map(|(&(s, o), &(n, ord, add, weak))| BindEntry {
                segment_index: s, segment_offset: o * 8, dylib_ordinal: ord, symbol: NAMES[n], addend: add, weak_import: weak,
            }).collect();
            let decoded = decode_bind(&encode_bind(&entries)).unwrap();
            let expected: Vec<_> = entries.iter().map(|e| (
                e.segment_index, e.segment_offset, e.dylib_ordinal, e.symbol.to_string(), e.addend, e.weak_import,
            )).collect();
            prop_assert_eq!(decoded, expected);
        }
    }

    #[test]
    fn a_single_import_is_a_few_bytes() {
        let entry = BindEntry {
            segment_index: 2,
            segment_offset: 0x10,
            dylib_ordinal: 1,
            symbol: "_exit",
            addend: 0,
            weak_import: false,
        };
        let bytes = encode_bind(&[entry]);
        assert_eq!(&bytes[..12], &[0x51, 0x11, 0x40, b'_', b'e', b'x', b'i', b't', 0, 0x72, 0x10, 0x90]);
        assert_eq!(bytes[12], 0);
        assert_eq!(bytes.len(), 16);
    }
}
