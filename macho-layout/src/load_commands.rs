//! The mach header and load commands of an executable, written from plain values.
//!
//! Every command's size is computed by a `*_size` function next to its writer, and [`write`] checks that each
//! writer filled exactly the bytes it was given. Raw values come from `object::macho`; the structs are written
//! field by field in little-endian order because the image has its own typed model and the layout of each
//! command is short.

use object::macho;

/// One `section_64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHeader {
    pub sectname: &'static str,
    pub segname: &'static str,
    pub addr: u64,
    pub size: u64,
    pub offset: u32,
    /// log2 of the alignment.
    pub align: u32,
    pub flags: u32,
}

/// One `segment_command_64` with its sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segname: &'static str,
    pub vmaddr: u64,
    pub vmsize: u64,
    pub fileoff: u64,
    pub filesize: u64,
    pub maxprot: u32,
    pub initprot: u32,
    pub flags: u32,
    pub sections: Vec<SectionHeader>,
}

/// A `(offset, size)` pair of LINKEDIT data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Blob {
    pub off: u32,
    pub size: u32,
}

/// Everything the load commands say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commands {
    pub segments: Vec<SegmentHeader>,
    pub rebase: Blob,
    pub bind: Blob,
    pub export: Blob,
    pub symtab: Blob,
    pub nsyms: u32,
    pub strtab: Blob,
    pub dysymtab: crate::linkedit::SymtabRanges,
    pub uuid: [u8; 16],
    /// `LC_MAIN`'s entry point: the offset of `main` from the start of `__TEXT`.
    pub entryoff: u64,
    pub function_starts: Blob,
    pub code_signature: Blob,
}

pub const DYLINKER: &str = "/usr/lib/dyld";
pub const LIBSYSTEM: &str = "/usr/lib/libSystem.B.dylib";
/// macOS 13.0 as `xxxx.yy.zz` nibbles, the deployment target of the objects hcr links.
const MACOS_13: u32 = 13 << 16;
const HEADER_SIZE: usize = 32;

fn segment_size(segment: &SegmentHeader) -> usize {
    72 + 80 * segment.sections.len()
}

/// A command holding a NUL-terminated string at offset `header`, padded to 8 bytes.
fn string_command_size(header: usize, text: &str) -> usize {
    (header + text.len() + 1).next_multiple_of(8)
}

const DYLD_INFO_SIZE: usize = 48;
const SYMTAB_SIZE: usize = 24;
const DYSYMTAB_SIZE: usize = 80;
const UUID_SIZE: usize = 24;
const BUILD_VERSION_SIZE: usize = 24 + 8;
const MAIN_SIZE: usize = 24;
const LINKEDIT_DATA_SIZE: usize = 16;

/// The number of load commands and their total size.
pub fn commands_size(commands: &Commands) -> (u32, usize) {
    let segments: usize = commands.segments.iter().map(segment_size).sum();
    let fixed = DYLD_INFO_SIZE
        + SYMTAB_SIZE
        + DYSYMTAB_SIZE
        + string_command_size(12, DYLINKER)
        + UUID_SIZE
        + BUILD_VERSION_SIZE
        + MAIN_SIZE
        + string_command_size(24, LIBSYSTEM)
        + 2 * LINKEDIT_DATA_SIZE;
    (commands.segments.len() as u32 + 10, segments + fixed)
}

/// The header and the load commands: `HEADER_SIZE + commands_size(..)` bytes.
pub fn header_and_commands_size(commands: &Commands) -> usize {
    HEADER_SIZE + commands_size(commands).1
}

/// Writes the mach header and every load command.
pub fn write(commands: &Commands) -> Vec<u8> {
    let (ncmds, sizeofcmds) = commands_size(commands);
    let mut w = Writer(Vec::with_capacity(HEADER_SIZE + sizeofcmds));
    w.u32(macho::MH_MAGIC_64);
    w.u32(macho::CPU_TYPE_ARM64.0);
    w.u32(macho::CPU_SUBTYPE_ARM64_ALL.0);
    w.u32(macho::MH_EXECUTE.0);
    w.u32(ncmds);
    w.u32(sizeofcmds as u32);
    w.u32((macho::MH_NOUNDEFS | macho::MH_DYLDLINK | macho::MH_TWOLEVEL | macho::MH_PIE).0);
    w.u32(0);

    for segment in &commands.segments {
        w.command(macho::LC_SEGMENT_64.0, segment_size(segment), |w| {
            w.name16(segment.segname);
            w.u64(segment.vmaddr);
            w.u64(segment.vmsize);
            w.u64(segment.fileoff);
            w.u64(segment.filesize);
            w.u32(segment.maxprot);
            w.u32(segment.initprot);
            w.u32(segment.sections.len() as u32);
            w.u32(segment.flags);
            for section in &segment.sections {
                w.name16(section.sectname);
                w.name16(section.segname);
                w.u64(section.addr);
                w.u64(section.size);
                w.u32(section.offset);
                w.u32(section.align);
                w.u32(0); // reloff
                w.u32(0); // nreloc
                w.u32(section.flags);
                w.u32(0); // reserved1
                w.u32(0); // reserved2
                w.u32(0); // reserved3
            }
        });
    }
    w.command(macho::LC_DYLD_INFO_ONLY.0, DYLD_INFO_SIZE, |w| {
        for blob in [commands.rebase, commands.bind, Blob::default(), Blob::default(), commands.export] {
            w.u32(blob.off);
            w.u32(blob.size);
        }
    });
    w.command(macho::LC_SYMTAB.0, SYMTAB_SIZE, |w| {
        w.u32(commands.symtab.off);
        w.u32(commands.nsyms);
        w.u32(commands.strtab.off);
        w.u32(commands.strtab.size);
    });
    w.command(macho::LC_DYSYMTAB.0, DYSYMTAB_SIZE, |w| {
        let d = &commands.dysymtab;
        for value in [d.ilocalsym, d.nlocalsym, d.iextdefsym, d.nextdefsym, d.iundefsym, d.nundefsym] {
            w.u32(value);
        }
        // tocoff/ntoc, modtaboff/nmodtab, extrefsymoff/nextrefsyms, indirectsymoff/nindirectsyms,
        // extreloff/nextrel, locreloff/nlocrel: none of these exist in hcr's executables.
        for _ in 0..12 {
            w.u32(0);
        }
    });
    w.command(macho::LC_LOAD_DYLINKER.0, string_command_size(12, DYLINKER), |w| {
        w.u32(12);
        w.cstring(DYLINKER);
    });
    w.command(macho::LC_UUID.0, UUID_SIZE, |w| w.bytes(&commands.uuid));
    w.command(macho::LC_BUILD_VERSION.0, BUILD_VERSION_SIZE, |w| {
        w.u32(macho::PLATFORM_MACOS.0);
        w.u32(MACOS_13); // minos
        w.u32(MACOS_13); // sdk
        w.u32(1); // ntools
        w.u32(macho::TOOL_LD.0);
        w.u32(0);
    });
    w.command(macho::LC_MAIN.0, MAIN_SIZE, |w| {
        w.u64(commands.entryoff);
        w.u64(0); // stacksize: the default
    });
    w.command(macho::LC_LOAD_DYLIB.0, string_command_size(24, LIBSYSTEM), |w| {
        w.u32(24); // name offset
        w.u32(2); // timestamp, as ld64 writes it
        w.u32(0x1_0000); // current version 1.0.0
        w.u32(0x1_0000); // compatibility version 1.0.0
        w.cstring(LIBSYSTEM);
    });
    for (cmd, blob) in [
        (macho::LC_FUNCTION_STARTS.0, commands.function_starts),
        (macho::LC_CODE_SIGNATURE.0, commands.code_signature),
    ] {
        w.command(cmd, LINKEDIT_DATA_SIZE, |w| {
            w.u32(blob.off);
            w.u32(blob.size);
        });
    }
    debug_assert_eq!(w.0.len(), header_and_commands_size(commands));
    w.0
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn name16(&mut self, name: &str) {
        let mut field = [0u8; 16];
        field[..name.len()].copy_from_slice(name.as_bytes());
        self.0.extend_from_slice(&field);
    }

    fn cstring(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
        self.0.push(0);
    }

    /// Writes one command of exactly `size` bytes: `cmd`, `cmdsize`, the body, then zero padding. The body
    /// must not overrun.
    fn command(&mut self, cmd: u32, size: usize, body: impl FnOnce(&mut Writer)) {
        let start = self.0.len();
        self.u32(cmd);
        self.u32(size as u32);
        body(self);
        let written = self.0.len() - start;
        assert!(written <= size, "load command {cmd:#x} wrote {written} bytes into {size}");
        self.0.resize(start + size, 0);
    }
}
