//! LINKEDIT contents: rebase and bind opcodes, the export trie, function starts, the symbol and string tables.
//!
//! Each encoder is a pure function from a list of entries to bytes; the image decides where the bytes go. The
//! opcode streams are those of `LC_DYLD_INFO_ONLY` (`mach-o/loader.h`): they are easy to regenerate on every
//! update, unlike chained fixups, whose chains run through the data pages themselves.

mod bind;
mod export_trie;
mod function_starts;
mod leb;
mod rebase;
mod symtab;

pub use bind::{BindEntry, encode_bind};
pub use export_trie::{ExportEntry, encode_export_trie};
pub use function_starts::encode_function_starts;
pub use leb::{read_sleb, read_uleb, write_sleb, write_uleb};
pub use rebase::{RebaseEntry, encode_rebase};
pub use symtab::{SymbolRef, SymbolTable, SymtabRanges, encode_symbols};

/// The export trie's (name, flags, address) entries, decoded independently of the encoder, for tests.
#[cfg(test)]
pub(crate) fn export_trie_for_tests(bytes: &[u8]) -> Result<Vec<(String, u64, u64)>, String> {
    export_trie::decode_export_trie(bytes)
}

/// Moves dyld's cursor, `(segment, offset)` or `None` before the first move, to `to`: a forward move within
/// the segment adds the gap (`*_ADD_ADDR_ULEB`), anything else sets segment and offset
/// (`*_SET_SEGMENT_AND_OFFSET_ULEB`). Rebase and bind streams share this shape and differ only in the opcodes.
fn move_cursor(out: &mut Vec<u8>, cursor: Option<(u8, u64)>, to: (u8, u64), set_segment: u8, add_addr: u8) {
    match cursor {
        Some((segment, offset)) if segment == to.0 && offset <= to.1 => {
            if offset < to.1 {
                out.push(add_addr);
                write_uleb(out, to.1 - offset);
            }
        }
        _ => {
            out.push(set_segment | (to.0 & 0x0f));
            write_uleb(out, to.1);
        }
    }
}

/// Pads an opcode stream to 8 bytes with zeroes (`*_OPCODE_DONE`), as dyld expects LINKEDIT pieces aligned.
fn pad8(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
}
