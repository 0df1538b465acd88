//! Rebase opcodes: the absolute pointers dyld must slide.

use super::leb::write_uleb;

const REBASE_TYPE_POINTER: u8 = 1;
const REBASE_OPCODE_SET_TYPE_IMM: u8 = 0x10;
const REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB: u8 = 0x20;
const REBASE_OPCODE_ADD_ADDR_ULEB: u8 = 0x30;
const REBASE_OPCODE_DO_REBASE_IMM_TIMES: u8 = 0x50;
const REBASE_OPCODE_DO_REBASE_ULEB_TIMES: u8 = 0x60;

/// One 8-byte pointer to slide: its segment (index in load-command order) and offset in that segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RebaseEntry {
    pub segment_index: u8,
    pub segment_offset: u64,
}

/// The opcode stream for `entries` (any order, duplicates allowed), runs of adjacent pointers compressed into
/// one opcode, terminated by `DONE` and padded to 8 bytes. Empty for no entries.
pub fn encode_rebase(entries: &[RebaseEntry]) -> Vec<u8> {
    let mut sorted = entries.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    if sorted.is_empty() {
        return out;
    }
    out.push(REBASE_OPCODE_SET_TYPE_IMM | REBASE_TYPE_POINTER);
    // Where dyld's cursor is: (segment, offset), or None before the first SET_SEGMENT.
    let mut cursor: Option<(u8, u64)> = None;
    let mut i = 0;
    while i < sorted.len() {
        let entry = sorted[i];
        let mut run = 1;
        while i + run < sorted.len()
            && sorted[i + run].segment_index == entry.segment_index
            && sorted[i + run].segment_offset == entry.segment_offset + 8 * run as u64
        {
            run += 1;
        }
        let to = (entry.segment_index, entry.segment_offset);
        super::move_cursor(
            &mut out,
            cursor,
            to,
            REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB,
            REBASE_OPCODE_ADD_ADDR_ULEB,
        );
        if run < 16 {
            out.push(REBASE_OPCODE_DO_REBASE_IMM_TIMES | run as u8);
        } else {
            out.push(REBASE_OPCODE_DO_REBASE_ULEB_TIMES);
            write_uleb(&mut out, run as u64);
        }
        cursor = Some((entry.segment_index, entry.segment_offset + 8 * run as u64));
        i += run;
    }
    out.push(0);
    super::pad8(&mut out);
    out
}

/// An independent decoder of every rebase opcode dyld knows, for tests.
#[cfg(test)]
pub(crate) fn decode_rebase(bytes: &[u8]) -> Result<Vec<RebaseEntry>, String> {
    use super::leb::read_uleb;
    let mut pos = 0;
    let (mut segment, mut offset) = (None::<u8>, 0u64);
    let mut out = Vec::new();
    let mut emit = |segment: Option<u8>, offset: u64| -> Result<(), String> {
        let segment_index = segment.ok_or("rebase before SET_SEGMENT")?;
        out.push(RebaseEntry { segment_index, segment_offset: offset });
        Ok(())
    };
    while pos < bytes.len() {
        let byte = bytes[pos];
        pos += 1;
        let (op, imm) = (byte & 0xf0, byte & 0x0f);
        let mut uleb = || read_uleb(bytes, &mut pos).ok_or("truncated uleb");
        match op {
            0x00 => break,
            0x10 if imm == 1 => {}
            0x20 => {
                segment = Some(imm);
                offset = uleb()?;
            }
            0x30 => offset = offset.wrapping_add(uleb()?),
            0x40 => offset += u64::from(imm) * 8,
            0x50 | 0x60 => {
                let n = if op == 0x50 { u64::from(imm) } else { uleb()? };
                for _ in 0..n {
                    emit(segment, offset)?;
                    offset += 8;
                }
            }
            0x70 => {
                emit(segment, offset)?;
                offset = offset.wrapping_add(uleb()?) + 8;
            }
            0x80 => {
                let (n, skip) = (uleb()?, uleb()?);
                for _ in 0..n {
                    emit(segment, offset)?;
                    offset += 8 + skip;
                }
            }
            _ => return Err(format!("unknown rebase opcode {byte:#x}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(segment_index: u8, segment_offset: u64) -> RebaseEntry {
        RebaseEntry { segment_index, segment_offset }
    }

    #[test]
    fn adjacent_pointers_become_one_opcode() {
        let entries: Vec<_> = (0..20).map(|i| entry(3, 0x100 + 8 * i)).collect();
        let bytes = encode_rebase(&entries);
        // SET_TYPE, SET_SEGMENT 3 + uleb(0x100), DO_REBASE_ULEB_TIMES 20, DONE, then padding.
        assert_eq!(&bytes[..7], &[0x11, 0x23, 0x80, 0x02, 0x60, 20, 0x00]);
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(decode_rebase(&bytes).unwrap(), entries);
        assert!(encode_rebase(&[]).is_empty());
    }

    proptest! {
        #[test]
        fn decode_of_encode_is_the_sorted_set(raw in prop::collection::vec((1u8..6, 0u64..4096), 0..200)) {
            let entries: Vec<_> = raw.iter().map(|&(s, o)| entry(s, o * 8)).collect();
            let mut expected = entries.clone();
            expected.sort();
            expected.dedup();
            prop_assert_eq!(decode_rebase(&encode_rebase(&entries)).unwrap(), expected);
        }
    }
}
