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

/// What [`check`] found in a valid signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The identifier the signature names.
    pub ident: String,
    /// Code pages whose hash matched.
    pub pages: usize,
    /// The signed part of the file: every byte before the signature.
    pub code_limit: u64,
    /// Whether an entitlements blob is present (and its hash matched).
    pub entitlements: bool,
}

/// Why a file's signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("not a 64-bit little-endian Mach-O file: {0}")]
    NotMachO(String),
    #[error("the file has no LC_CODE_SIGNATURE")]
    Unsigned,
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    #[error("page {page} (file offset {offset:#x}) does not match its hash")]
    PageHash { page: usize, offset: u64 },
    #[error("special slot {slot} does not match its hash")]
    SpecialSlot { slot: u32 },
}

/// Checks a file's embedded code signature as the kernel would before running it: the SuperBlob and its
/// CodeDirectory parse, the directory covers every byte before the signature, each code page hashes (SHA-256) to
/// its slot, and the requirements and entitlements blobs, when present, hash to their special slots.
///
/// The reader is independent of [`CodeSignature`] (it parses what is in the file), so it checks the incremental
/// signer's output rather than repeating it.
pub fn check(file: &[u8]) -> Result<Checked, CheckError> {
    use object::LittleEndian as LE;
    use object::read::macho::MachHeader as _;
    let header =
        macho::MachHeader64::<LE>::parse(file, 0).map_err(|e| CheckError::NotMachO(e.to_string()))?;
    let mut commands = header.load_commands(LE, file, 0).map_err(|e| CheckError::NotMachO(e.to_string()))?;
    let mut signature = None;
    while let Some(command) = commands.next().map_err(|e| CheckError::NotMachO(e.to_string()))? {
        if command.cmd() == macho::LC_CODE_SIGNATURE {
            let data: &macho::LinkeditDataCommand<LE> =
                command.data().map_err(|e| CheckError::NotMachO(e.to_string()))?;
            signature = Some((data.dataoff.get(LE) as usize, data.datasize.get(LE) as usize));
        }
    }
    let (sig_at, sig_size) = signature.ok_or(CheckError::Unsigned)?;
    let bad = |what: String| CheckError::Malformed(what);
    let sig = file
        .get(sig_at..sig_at.saturating_add(sig_size))
        .ok_or_else(|| bad(format!("{sig_size} bytes at {sig_at:#x} run past the end of the file")))?;
    let be32 = |bytes: &[u8], at: usize| -> Result<u32, CheckError> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| bad(format!("a field at offset {at} is past the end of its blob")))
    };
    if be32(sig, 0)? != macho::CSMAGIC_EMBEDDED_SIGNATURE {
        return Err(bad("no embedded-signature SuperBlob".into()));
    }
    let count = be32(sig, 8)? as usize;
    let mut blobs = std::collections::BTreeMap::new();
    for i in 0..count {
        let (slot, offset) = (be32(sig, 12 + 8 * i)?, be32(sig, 16 + 8 * i)? as usize);
        let length = be32(sig, offset + 4)? as usize;
        let blob = sig
            .get(offset..offset.saturating_add(length))
            .ok_or_else(|| bad(format!("blob {slot} runs past the signature")))?;
        blobs.insert(slot, blob);
    }
    let cd = *blobs.get(&0).ok_or_else(|| bad("no CodeDirectory".into()))?;
    if be32(cd, 0)? != macho::CSMAGIC_CODEDIRECTORY {
        return Err(bad("slot 0 is not a CodeDirectory".into()));
    }
    let (hash_offset, ident_offset) = (be32(cd, 16)? as usize, be32(cd, 20)? as usize);
    let (special, slots) = (be32(cd, 24)?, be32(cd, 28)? as usize);
    let code_limit = u64::from(be32(cd, 32)?);
    let (hash_size, hash_type, page_log2) =
        (*cd.get(36).unwrap_or(&0), *cd.get(37).unwrap_or(&0), *cd.get(39).unwrap_or(&0));
    if hash_type != macho::CS_HASHTYPE_SHA256.0 || usize::from(hash_size) != HASH_SIZE {
        return Err(bad(format!("hash type {hash_type} of {hash_size} bytes, not SHA-256")));
    }
    if code_limit != sig_at as u64 {
        return Err(bad(format!("it covers {code_limit:#x} bytes but the signature starts at {sig_at:#x}")));
    }
    if !(9..=16).contains(&page_log2) {
        return Err(bad(format!("page size 2^{page_log2}")));
    }
    let page = 1u64 << page_log2;
    if slots as u64 != code_limit.div_ceil(page) {
        return Err(bad(format!("{slots} code slots for {code_limit:#x} bytes of {page}-byte pages")));
    }
    let hash_at = |index: usize| {
        cd.get(index..index + HASH_SIZE).ok_or_else(|| bad("a hash slot is past the CodeDirectory".into()))
    };
    for i in 0..slots {
        let start = i as u64 * page;
        let end = (start + page).min(code_limit);
        if hash_at(hash_offset + i * HASH_SIZE)? != &Sha256::digest(&file[start as usize..end as usize])[..] {
            return Err(CheckError::PageHash { page: i, offset: start });
        }
    }
    for slot in 1..=special {
        let at = hash_offset
            .checked_sub(slot as usize * HASH_SIZE)
            .ok_or_else(|| bad(format!("special slot {slot} lies before the CodeDirectory")))?;
        let stored = hash_at(at)?;
        let ok = match blobs.get(&slot) {
            Some(blob) => stored == &Sha256::digest(blob)[..],
            None => stored.iter().all(|&b| b == 0),
        };
        if !ok {
            return Err(CheckError::SpecialSlot { slot });
        }
    }
    let ident = cd.get(ident_offset..).unwrap_or_default();
    let ident = String::from_utf8_lossy(&ident[..ident.iter().position(|&b| b == 0).unwrap_or(ident.len())]);
    Ok(Checked {
        ident: ident.into_owned(),
        pages: slots,
        code_limit,
        entitlements: blobs.contains_key(&SLOT_ENTITLEMENTS),
    })
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
