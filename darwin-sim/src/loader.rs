//! dyld's part: read a linked arm64 `MH_EXECUTE`, list its segments and every fixup (rebases and binds, from
//! `LC_DYLD_INFO_ONLY` opcodes or from `LC_DYLD_CHAINED_FIXUPS` chains), and produce the bytes of each segment
//! as they must look in memory at a given slide once every import is bound.
//!
//! Pure: no emulator here. The machine maps what [`Image::segment_bytes`] returns.

use std::path::{Path, PathBuf};

use mach_task::VmProt;
use object::macho;
use object::macho::MachHeader64;
use object::read::macho::{Fixup as ChainedFixup, LoadCommandVariant, MachHeader, Segment as _};
use object::{Endian, Endianness};

use crate::dyld_info;
use crate::error::SimError;

/// The only library the simulator provides.
pub const LIBSYSTEM: &str = "/usr/lib/libSystem.B.dylib";

/// One `LC_SEGMENT_64`.
#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub vmaddr: u64,
    pub vmsize: u64,
    /// The segment's bytes in the file (`filesize` of them).
    pub data: Vec<u8>,
    pub initprot: VmProt,
    pub maxprot: VmProt,
    /// `SG_READ_ONLY`: dyld makes the segment read-only once its fixups are applied (`__DATA_CONST`).
    pub read_only_after_fixups: bool,
}

/// What a fixup site receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixupKind {
    /// The link-time address `target`, plus the slide.
    Rebase { target: u64 },
    /// The address of an imported symbol, plus `addend`.
    Bind { symbol: String, ordinal: i64, addend: i64, weak_import: bool },
}

/// A pointer in the image that dyld writes at launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixup {
    /// Link-time address of the 8-byte slot.
    pub addr: u64,
    pub kind: FixupKind,
}

/// A parsed executable, ready to be placed at any slide.
#[derive(Debug, Clone)]
pub struct Image {
    pub path: PathBuf,
    /// In load-command order: opcode streams name segments by this index.
    pub segments: Vec<Segment>,
    /// Link-time address of the Mach header (`__TEXT`'s vmaddr).
    pub base: u64,
    /// Link-time address of `LC_MAIN`'s entry point.
    pub entry: u64,
    /// `LC_MAIN`'s stack size, or 0 for the default.
    pub stack_size: u64,
    /// The `LC_LOAD_DYLIB` install names, in ordinal order.
    pub dylibs: Vec<String>,
    pub fixups: Vec<Fixup>,
}

fn prot(p: u32) -> VmProt {
    VmProt::from_bits_truncate(p as i32) & (VmProt::READ | VmProt::WRITE | VmProt::EXECUTE)
}

impl Image {
    /// Reads and parses `path`.
    pub fn open(path: &Path) -> Result<Image, SimError> {
        let bytes =
            std::fs::read(path).map_err(|source| SimError::Io { path: path.to_path_buf(), source })?;
        Image::parse(path, &bytes)
    }

    /// Parses an executable's bytes; `path` is for messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Image, SimError> {
        let bad = |message: String| SimError::BadImage { path: path.to_path_buf(), message };
        let header = MachHeader64::<Endianness>::parse(bytes, 0)
            .map_err(|e| bad(format!("not a 64-bit Mach-O: {e}")))?;
        let endian = header.endian().map_err(|e| bad(e.to_string()))?;
        if !endian.is_little_endian() || header.cputype(endian) != macho::CPU_TYPE_ARM64 {
            return Err(bad("not an arm64 Mach-O".into()));
        }
        if header.filetype(endian) != macho::MH_EXECUTE {
            return Err(bad(format!("file type {} is not MH_EXECUTE", header.filetype(endian))));
        }
        let mut image = Image {
            path: path.to_path_buf(),
            segments: Vec::new(),
            base: 0,
            entry: 0,
            stack_size: 0,
            dylibs: Vec::new(),
            fixups: Vec::new(),
        };
        let mut entryoff = None;
        let mut dyld_info = None;
        let mut chained = None;
        let mut commands = header.load_commands(endian, bytes, 0).map_err(|e| bad(e.to_string()))?;
        while let Some(command) = commands.next().map_err(|e| bad(e.to_string()))? {
            match command.variant().map_err(|e| bad(e.to_string()))? {
                LoadCommandVariant::Segment64(seg, _) => {
                    let name = String::from_utf8_lossy(seg.name()).into_owned();
                    let (fileoff, filesize) = (seg.fileoff.get(endian), seg.filesize.get(endian));
                    let data = bytes
                        .get(fileoff as usize..(fileoff + filesize) as usize)
                        .ok_or_else(|| bad(format!("segment {name} runs past the end of the file")))?
                        .to_vec();
                    if fileoff == 0 && filesize > 0 {
                        image.base = seg.vmaddr.get(endian);
                    }
                    image.segments.push(Segment {
                        name,
                        vmaddr: seg.vmaddr.get(endian),
                        vmsize: seg.vmsize.get(endian),
                        data,
                        initprot: prot(seg.initprot.get(endian).0),
                        maxprot: prot(seg.maxprot.get(endian).0),
                        read_only_after_fixups: seg.flags.get(endian).0 & macho::SG_READ_ONLY.0 != 0,
                    });
                }
                LoadCommandVariant::EntryPoint(main) => {
                    entryoff = Some(main.entryoff.get(endian));
                    image.stack_size = main.stacksize.get(endian);
                }
                LoadCommandVariant::Dylib(dylib) => {
                    let name = command.string(endian, dylib.dylib.name).map_err(|e| bad(e.to_string()))?;
                    image.dylibs.push(String::from_utf8_lossy(name).into_owned());
                }
                LoadCommandVariant::DyldInfo(info) => dyld_info = Some(*info),
                LoadCommandVariant::LinkeditData(data) if command.cmd() == macho::LC_DYLD_CHAINED_FIXUPS => {
                    chained = Some(*data);
                }
                _ => {}
            }
        }
        let entryoff = entryoff.ok_or_else(|| bad("no LC_MAIN".into()))?;
        image.entry = image.base + entryoff;
        if let Some(info) = dyld_info {
            let stream = |off: u32, size: u32, what: &str| {
                bytes
                    .get(off as usize..(off as usize + size as usize))
                    .ok_or_else(|| bad(format!("{what} opcodes run past the end of the file")))
            };
            let rebases = stream(info.rebase_off.get(endian), info.rebase_size.get(endian), "rebase")?;
            for (seg, off) in dyld_info::rebases(rebases).map_err(|e| bad(format!("rebase opcodes: {e}")))? {
                let addr = image.site_addr(seg, off).map_err(bad)?;
                let target = image.read_u64(addr).map_err(bad)?;
                image.fixups.push(Fixup { addr, kind: FixupKind::Rebase { target } });
            }
            let binds = stream(info.bind_off.get(endian), info.bind_size.get(endian), "bind")?;
            let lazy = stream(info.lazy_bind_off.get(endian), info.lazy_bind_size.get(endian), "lazy bind")?;
            let mut all = dyld_info::binds(binds, false).map_err(|e| bad(format!("bind opcodes: {e}")))?;
            all.extend(dyld_info::binds(lazy, true).map_err(|e| bad(format!("lazy bind opcodes: {e}")))?);
            for b in all {
                let addr = image.site_addr(b.site.0, b.site.1).map_err(bad)?;
                image.fixups.push(Fixup {
                    addr,
                    kind: FixupKind::Bind {
                        symbol: b.symbol,
                        ordinal: b.ordinal,
                        addend: b.addend,
                        weak_import: b.weak_import,
                    },
                });
            }
            // Weak binds only coalesce weak definitions across images; with one image there is nothing to do.
        }
        if let Some(cmd) = chained {
            image.read_chained_fixups(&cmd, bytes).map_err(bad)?;
        }
        Ok(image)
    }

    /// Walks the chains of `LC_DYLD_CHAINED_FIXUPS` (`DYLD_CHAINED_PTR_64` and `_64_OFFSET`).
    fn read_chained_fixups(
        &mut self,
        cmd: &macho::LinkeditDataCommand<Endianness>,
        bytes: &[u8],
    ) -> Result<(), String> {
        let endian = Endianness::Little;
        let fixups = cmd.chained_fixups(endian, bytes).map_err(|e| e.to_string())?;
        let mut imports = Vec::new();
        let mut iter = fixups.imports(endian).map_err(|e| e.to_string())?;
        while let Some(import) = iter.next().map_err(|e| e.to_string())? {
            imports.push(import);
        }
        let mut segments = fixups.segments(endian).map_err(|e| e.to_string())?;
        while let Some(seg) = segments.next().map_err(|e| e.to_string())? {
            let index = seg.index() as usize;
            let format = seg.header().pointer_format.get(endian);
            if format != macho::DYLD_CHAINED_PTR_64 && format != macho::DYLD_CHAINED_PTR_64_OFFSET {
                return Err(format!(
                    "chained pointer format {format} is not DYLD_CHAINED_PTR_64 or _64_OFFSET"
                ));
            }
            let segment = self.segments.get(index).ok_or(format!("chained fixups name segment {index}"))?;
            let vmaddr = segment.vmaddr;
            let data = segment.data.clone();
            let mut chain = seg.fixups(endian, self.base, &data);
            while let Some((offset, fixup)) = chain.next().map_err(|e| e.to_string())? {
                let addr = vmaddr + offset;
                let kind = match fixup {
                    ChainedFixup::Rebase(r) => {
                        FixupKind::Rebase { target: self.base.wrapping_add(r.target_offset) }
                    }
                    ChainedFixup::Bind(b) => {
                        let import = imports
                            .get(b.ordinal as usize)
                            .ok_or(format!("chained bind at {addr:#x} names import {}", b.ordinal))?;
                        FixupKind::Bind {
                            symbol: String::from_utf8_lossy(import.name).into_owned(),
                            ordinal: i64::from(import.dylib.0),
                            addend: import.addend + i64::from(b.addend),
                            weak_import: import.weak_import,
                        }
                    }
                    other => return Err(format!("unsupported chained fixup at {addr:#x}: {other:?}")),
                };
                self.fixups.push(Fixup { addr, kind });
            }
        }
        Ok(())
    }

    fn site_addr(&self, seg: usize, off: u64) -> Result<u64, String> {
        let s = self.segments.get(seg).ok_or(format!("fixup names segment {seg}, which does not exist"))?;
        if off + 8 > s.vmsize {
            return Err(format!("fixup at {} + {off:#x} is outside the segment", s.name));
        }
        Ok(s.vmaddr + off)
    }

    fn read_u64(&self, addr: u64) -> Result<u64, String> {
        let s = self.segment_at(addr).ok_or(format!("no segment holds {addr:#x}"))?;
        let at = (addr - s.vmaddr) as usize;
        // A slot past the file-backed bytes is zero-fill memory: its link-time value is 0.
        Ok(s.data.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))))
    }

    /// The segment holding a link-time address.
    pub fn segment_at(&self, addr: u64) -> Option<&Segment> {
        self.segments.iter().find(|s| s.vmaddr <= addr && addr < s.vmaddr + s.vmsize)
    }

    /// The bytes of each segment at slide `slide` with every fixup applied, `resolve` giving each import's
    /// address. A missing import fails like dyld: the first unresolvable non-weak symbol, naming the image.
    pub fn segment_bytes(
        &self,
        slide: u64,
        mut resolve: impl FnMut(&str) -> Option<u64>,
    ) -> Result<Vec<Vec<u8>>, SimError> {
        let mut out: Vec<Vec<u8>> = self.segments.iter().map(|s| s.data.clone()).collect();
        for fixup in &self.fixups {
            let value = match &fixup.kind {
                FixupKind::Rebase { target } => target.wrapping_add(slide),
                FixupKind::Bind { symbol, ordinal, addend, weak_import } => {
                    let library = match *ordinal {
                        n if n >= 1 => self.dylibs.get(n as usize - 1).cloned().unwrap_or_default(),
                        _ => LIBSYSTEM.to_string(),
                    };
                    match resolve(symbol) {
                        Some(addr) if library == LIBSYSTEM => addr.wrapping_add(*addend as u64),
                        _ if *weak_import => 0,
                        _ => {
                            return Err(SimError::SymbolNotFound {
                                symbol: symbol.clone(),
                                referenced_from: self.path.clone(),
                                expected_in: library,
                            });
                        }
                    }
                }
            };
            let index = self
                .segments
                .iter()
                .position(|s| s.vmaddr <= fixup.addr && fixup.addr < s.vmaddr + s.vmsize)
                .ok_or_else(|| SimError::BadImage {
                    path: self.path.clone(),
                    message: format!("fixup at {:#x} is in no segment", fixup.addr),
                })?;
            let at = (fixup.addr - self.segments[index].vmaddr) as usize;
            let data = &mut out[index];
            if data.len() < at + 8 {
                data.resize(at + 8, 0);
            }
            data[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        Ok(out)
    }

    /// The first library other than libSystem, which the simulator cannot load.
    pub fn missing_library(&self) -> Option<&str> {
        self.dylibs.iter().map(String::as_str).find(|d| *d != LIBSYSTEM)
    }
}
