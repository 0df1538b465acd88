//! The ad-hoc code signature: an embedded SuperBlob holding a CodeDirectory of SHA-256 hashes of every 4 KiB
//! page of the file before the signature, plus, when entitlements are given, the entitlements blob and an empty
//! requirements set.
//!
//! arm64 macOS refuses to run unsigned code, and an ad-hoc signature is only hashes, so the linker can make it.
//! Unlike a fresh signing, this one is incremental: page hashes are kept between updates and only the pages an
//! update dirtied are hashed again, so an edit costs a few hashes rather than a pass over the whole file.
//!
//! Flags: without entitlements the directory is flagged `CS_ADHOC | CS_LINKER_SIGNED`, exactly like ld64's and
//! lld's output. With entitlements it is flagged `CS_ADHOC` only, like `codesign -s - --entitlements`: a
//! linker signature is by definition one that carries nothing but hashes (tools replace it freely), and
//! entitlements in one are a combination no Apple tool produces, so the kernel's handling of it is not something
//! to rely on.

use std::ops::Range;

use object::macho;
use sha2::{Digest, Sha256};

/// Entitlements that let a debugger-entitled process take the task port of the executable.
pub const GET_TASK_ALLOW_ENTITLEMENTS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
<plist version=\"1.0\">\n<dict>\n\t<key>com.apple.security.get-task-allow</key>\n\t<true/>\n</dict>\n</plist>\n";

/// Code pages are 4 KiB, as ld64 and lld hash them (the kernel accepts 4 KiB or its own page size).
pub const CODE_PAGE_SIZE: u64 = 4096;
const CODE_PAGE_SHIFT: u8 = 12;
const HASH_SIZE: usize = 32;
/// The CodeDirectory header up to and including version 0x20400's exec-segment fields.
const CODE_DIRECTORY_HEADER: usize = 88;
const CS_SUPPORTSEXECSEG: u32 = 0x20400;
const CS_EXECSEG_MAIN_BINARY: u64 = 1;
const SLOT_REQUIREMENTS: u32 = 2;
const SLOT_ENTITLEMENTS: u32 = 5;

/// A code signature kept up to date across updates.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CodeSignature {
    ident: String,
    /// The entitlements blob (magic, length, XML), if any.
    entitlements: Option<Vec<u8>>,
    page_hashes: Vec<[u8; HASH_SIZE]>,
    code_limit: u64,
    exec_seg: (u64, u64),
    hashed_once: bool,
}

impl CodeSignature {
    /// A signature for a file named `ident`, with optional entitlements (an XML plist).
    pub fn new(ident: &str, entitlements_xml: Option<&str>) -> CodeSignature {
        let entitlements =
            entitlements_xml.map(|xml| blob(macho::CSMAGIC_EMBEDDED_ENTITLEMENTS, xml.as_bytes()));
        CodeSignature {
            ident: ident.to_string(),
            entitlements,
            page_hashes: Vec::new(),
            code_limit: 0,
            exec_seg: (0, 0),
            hashed_once: false,
        }
    }

    fn n_special_slots(&self) -> u32 {
        if self.entitlements.is_some() { SLOT_ENTITLEMENTS } else { 0 }
    }

    fn flags(&self) -> u32 {
        if self.entitlements.is_some() {
            macho::CS_ADHOC.0
        } else {
            macho::CS_ADHOC.0 | macho::CS_LINKER_SIGNED.0
        }
    }

    /// The identifier with its NUL, padded to 16 bytes as lld pads it (so that the hashes are aligned).
    fn ident_size(&self) -> usize {
        (self.ident.len() + 1).next_multiple_of(16)
    }

    fn code_directory_size(&self, code_limit: u64) -> usize {
        let pages = code_limit.div_ceil(CODE_PAGE_SIZE) as usize;
        CODE_DIRECTORY_HEADER + self.ident_size() + (self.n_special_slots() as usize + pages) * HASH_SIZE
    }

    fn blob_count(&self) -> usize {
        if self.entitlements.is_some() { 3 } else { 1 }
    }

    /// The SuperBlob header and its index, padded to 8 bytes as lld pads them.
    fn superblob_header_size(&self) -> usize {
        (12 + 8 * self.blob_count()).next_multiple_of(8)
    }

    /// The bytes of the signature for a file whose first `code_limit` bytes it covers, rounded up to 16 as the
    /// linkers do.
    pub fn size(&self, code_limit: u64) -> u64 {
        let mut size = self.superblob_header_size() + self.code_directory_size(code_limit);
        if let Some(entitlements) = &self.entitlements {
            size += EMPTY_REQUIREMENTS.len() + entitlements.len();
        }
        (size as u64).next_multiple_of(16)
    }

    /// Brings the page hashes up to date with `file`, whose first `code_limit` bytes the signature covers;
    /// `exec_seg_base..exec_seg_limit` is the file range of the segment holding the entry point's code. Only
    /// pages that intersect `dirty`, and pages the limit change added or cut, are hashed; the first call hashes
    /// everything. Returns how many pages were hashed.
    pub fn update(
        &mut self,
        file: &[u8],
        code_limit: u64,
        exec_seg_base: u64,
        exec_seg_limit: u64,
        dirty: &[Range<u64>],
    ) -> usize {
        let pages = code_limit.div_ceil(CODE_PAGE_SIZE) as usize;
        let mut todo = vec![!self.hashed_once; pages];
        if self.hashed_once {
            let old_pages = self.page_hashes.len();
            // When the limit moves, the last page common to both sizes ends elsewhere now, and every page past
            // it is new.
            let first_changed = if code_limit == self.code_limit {
                old_pages
            } else {
                old_pages.min(pages).saturating_sub(1)
            };
            for flag in todo.iter_mut().skip(first_changed) {
                *flag = true;
            }
            for range in dirty {
                let end = range.end.min(code_limit);
                if range.start >= end {
                    continue;
                }
                let first = (range.start / CODE_PAGE_SIZE) as usize;
                let last = (end - 1) / CODE_PAGE_SIZE;
                for flag in &mut todo[first..=last as usize] {
                    *flag = true;
                }
            }
        }
        self.page_hashes.resize(pages, [0; HASH_SIZE]);
        let mut hashed = 0;
        for (page, _) in todo.iter().enumerate().filter(|(_, t)| **t) {
            let start = page as u64 * CODE_PAGE_SIZE;
            let end = (start + CODE_PAGE_SIZE).min(code_limit);
            self.page_hashes[page] = Sha256::digest(&file[start as usize..end as usize]).into();
            hashed += 1;
        }
        self.code_limit = code_limit;
        self.exec_seg = (exec_seg_base, exec_seg_limit);
        self.hashed_once = true;
        hashed
    }

    /// Writes the signature; `out.len()` must be [`CodeSignature::size`] of the limit last passed to `update`.
    pub fn write(&self, out: &mut [u8]) {
        assert_eq!(out.len() as u64, self.size(self.code_limit), "the signature's range has the wrong size");
        out.fill(0);
        let cd_size = self.code_directory_size(self.code_limit);
        let header = self.superblob_header_size();
        let mut blobs: Vec<(u32, Vec<u8>)> = vec![(0, self.code_directory(cd_size))];
        if let Some(entitlements) = &self.entitlements {
            blobs.push((SLOT_REQUIREMENTS, EMPTY_REQUIREMENTS.to_vec()));
            blobs.push((SLOT_ENTITLEMENTS, entitlements.clone()));
        }
        let total: usize = header + blobs.iter().map(|(_, b)| b.len()).sum::<usize>();
        put_be32(out, 0, macho::CSMAGIC_EMBEDDED_SIGNATURE);
        put_be32(out, 4, total as u32);
        put_be32(out, 8, blobs.len() as u32);
        let mut offset = header;
        for (i, (slot, bytes)) in blobs.iter().enumerate() {
            put_be32(out, 12 + 8 * i, *slot);
            put_be32(out, 16 + 8 * i, offset as u32);
            out[offset..offset + bytes.len()].copy_from_slice(bytes);
            offset += bytes.len();
        }
        debug_assert_eq!(offset, total);
    }

    fn code_directory(&self, size: usize) -> Vec<u8> {
        let mut cd = vec![0u8; size];
        let special = self.n_special_slots() as usize;
        let ident_offset = CODE_DIRECTORY_HEADER;
        let hash_offset = ident_offset + self.ident_size() + special * HASH_SIZE;
        put_be32(&mut cd, 0, macho::CSMAGIC_CODEDIRECTORY);
        put_be32(&mut cd, 4, size as u32);
        put_be32(&mut cd, 8, CS_SUPPORTSEXECSEG);
        put_be32(&mut cd, 12, self.flags());
        put_be32(&mut cd, 16, hash_offset as u32);
        put_be32(&mut cd, 20, ident_offset as u32);
        put_be32(&mut cd, 24, special as u32);
        put_be32(&mut cd, 28, self.page_hashes.len() as u32);
        // codeLimit, or codeLimit64 for a file past 4 GiB (then the 32-bit field is zero).
        match u32::try_from(self.code_limit) {
            Ok(limit) => put_be32(&mut cd, 32, limit),
            Err(_) => cd[56..64].copy_from_slice(&self.code_limit.to_be_bytes()),
        }
        cd[36] = HASH_SIZE as u8;
        cd[37] = macho::CS_HASHTYPE_SHA256.0;
        cd[38] = 0; // platform
        cd[39] = CODE_PAGE_SHIFT;
        // spare2, scatterOffset, teamOffset, spare3 stay zero.
        cd[64..72].copy_from_slice(&self.exec_seg.0.to_be_bytes());
        cd[72..80].copy_from_slice(&self.exec_seg.1.to_be_bytes());
        cd[80..88].copy_from_slice(&CS_EXECSEG_MAIN_BINARY.to_be_bytes());
        cd[ident_offset..ident_offset + self.ident.len()].copy_from_slice(self.ident.as_bytes());
        // Special slots sit before the code slots, slot n at hash_offset - n * 32.
        if let Some(entitlements) = &self.entitlements {
            let mut special_hash = |slot: usize, bytes: &[u8]| {
                let at = hash_offset - slot * HASH_SIZE;
                cd[at..at + HASH_SIZE].copy_from_slice(&Sha256::digest(bytes));
            };
            special_hash(SLOT_REQUIREMENTS as usize, EMPTY_REQUIREMENTS);
            special_hash(SLOT_ENTITLEMENTS as usize, entitlements);
        }
        for (i, hash) in self.page_hashes.iter().enumerate() {
            let at = hash_offset + i * HASH_SIZE;
            cd[at..at + HASH_SIZE].copy_from_slice(hash);
        }
        cd
    }
}

/// An empty requirements set (`CSMAGIC_REQUIREMENTS`, length 12, count 0), what `codesign -s -` embeds.
const EMPTY_REQUIREMENTS: &[u8] = &[0xfa, 0xde, 0x0c, 0x01, 0, 0, 0, 12, 0, 0, 0, 0];

fn blob(magic: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&magic.to_be_bytes());
    out.extend_from_slice(&((8 + payload.len()) as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn put_be32(out: &mut [u8], at: usize, value: u32) {
    out[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn first_update_hashes_everything_then_only_dirty_pages() {
        let mut bytes = file(5 * 4096 + 100);
        let limit = bytes.len() as u64;
        let mut sig = CodeSignature::new("prog", None);
        assert_eq!(sig.update(&bytes, limit, 0, 4096, &[]), 6);
        assert_eq!(sig.update(&bytes, limit, 0, 4096, &[]), 0);
        bytes[4096 + 10] ^= 1;
        bytes[3 * 4096 - 1] ^= 1;
        assert_eq!(sig.update(&bytes, limit, 0, 4096, &[4096 + 10..4096 + 11, 3 * 4096 - 1..3 * 4096]), 2);
        // A range spanning a page boundary dirties both pages.
        let across = std::slice::from_ref(&(4095..4097));
        assert_eq!(sig.update(&bytes, limit, 0, 4096, across), 2);
        // Growing the file from 20,580 to 28,580 bytes rehashes the old partial last page (5) and the one new
        // page (6).
        bytes.extend(file(8000));
        assert_eq!(sig.update(&bytes, bytes.len() as u64, 0, 4096, &[]), 2);
        // Shrinking back into page 4 rehashes only the new last page.
        assert_eq!(sig.update(&bytes, 4 * 4096 + 1, 0, 4096, &[]), 1);
    }

    #[test]
    fn sizes_match_what_is_written() {
        for entitlements in [None, Some(GET_TASK_ALLOW_ENTITLEMENTS)] {
            let bytes = file(3 * 4096 + 1);
            let mut sig = CodeSignature::new("a.out", entitlements);
            sig.update(&bytes, bytes.len() as u64, 0, 8192, &[]);
            let mut out = vec![0xff; sig.size(bytes.len() as u64) as usize];
            sig.write(&mut out);
            assert_eq!(out.len() % 16, 0);
            let length = u32::from_be_bytes(out[4..8].try_into().unwrap()) as usize;
            assert!(length <= out.len() && length + 16 > out.len());
            assert_eq!(
                u32::from_be_bytes(out[8..12].try_into().unwrap()),
                if entitlements.is_some() { 3 } else { 1 }
            );
        }
    }
}
