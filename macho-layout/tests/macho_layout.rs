//! Integration tests: render real executables and check them with independent readers (`object`, hand-written
//! signature verification, `llvm-objdump-19`, `ld64.lld-19`'s own signature).

use std::path::Path;
use std::process::Command;

use macho_layout::codesign::{CodeSignature, GET_TASK_ALLOW_ENTITLEMENTS};
use macho_layout::{IMAGE_BASE, Image, Import, LayoutConfig, PAGE_SIZE, Placement, Section, VmAddr};
use object::read::macho::{MachHeader, MachOFile64};
use object::{Endianness, LittleEndian as LE, Object, ObjectSection, ObjectSegment, ObjectSymbol, macho};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const MOV_W0_42: u32 = 0x5280_0540;
const RET: u32 = 0xd65f_03c0;

fn code(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// `main` returns 42; a data pointer to `main` (rebased) and a cell bound to `_exit` (an import).
struct Tiny {
    image: Image,
    main: macho_layout::AtomId,
}

fn tiny(config: LayoutConfig) -> Tiny {
    let mut image = Image::new("tiny", Some(GET_TASK_ALLOW_ENTITLEMENTS), config);
    let main = image.add_atom("_main", Section::Text, 8, 4, true).unwrap();
    image.write_atom(main, &code(&[MOV_W0_42, RET])).unwrap();
    let helper = image.add_atom("_helper", Section::Text, 4, 4, false).unwrap();
    image.write_atom(helper, &code(&[RET])).unwrap();
    let cell = image.add_atom("_exit$cell", Section::Cells, 8, 8, false).unwrap();
    let pointer = image.add_atom("_main_ptr", Section::Data, 8, 8, true).unwrap();
    let main_addr = image.atom(main).addr;
    image.write_atom(pointer, &main_addr.0.to_le_bytes()).unwrap();
    image.add_atom("_counter", Section::Bss, 4, 4, true).unwrap();
    let message = image.add_atom("l_.str", Section::Const, 6, 1, false).unwrap();
    image.write_atom(message, b"hello\0").unwrap();
    image.set_entry(main_addr);
    image.set_rebases(vec![image.atom(pointer).addr]);
    image.set_imports(vec![Import { cell: image.atom(cell).addr, symbol: "_exit".into(), dylib_ordinal: 1 }]);
    Tiny { image, main }
}

fn write_temp(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn tool(name: &str, args: &[&str], file: &Path) -> std::process::Output {
    Command::new(name)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("`{name}` must be installed (cargo xtask setup installs it): {e}"))
}

#[test]
fn a_tiny_executable_parses_back_to_the_same_values() {
    let mut t = tiny(LayoutConfig::default());
    t.image.render().unwrap();
    let file = MachOFile64::<Endianness>::parse(t.image.file()).unwrap();

    let segments: Vec<(String, u64)> =
        file.segments().map(|s| (s.name().unwrap().unwrap().to_string(), s.address())).collect();
    let names: Vec<&str> = segments.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["__PAGEZERO", "__TEXT", "__STUBS", "__RODATA", "__DATA_CONST", "__DATA", "__BSS", "__LINKEDIT"]
    );
    assert!(segments.windows(2).all(|w| w[0].1 < w[1].1), "segments ascend in memory");
    assert_eq!(segments[1].1, IMAGE_BASE.0);

    // LC_MAIN records the entry as an offset from the start of __TEXT, which is what object reports.
    let main = t.image.atom(t.main).addr;
    assert_eq!(file.entry(), main - IMAGE_BASE);
    let text = file.section_by_name("__text").unwrap();
    assert_eq!(&text.data().unwrap()[..8], code(&[MOV_W0_42, RET]));
    let symbols: Vec<(String, u64)> =
        file.symbols().map(|s| (s.name().unwrap().to_string(), s.address())).collect();
    assert!(symbols.contains(&("_main".to_string(), main.0)), "{symbols:?}");
    assert!(symbols.iter().any(|(n, _)| n == "_exit"), "the import is an undefined symbol");
    let cstring = file.section_by_name("__const").unwrap();
    assert_eq!(cstring.data().unwrap(), b"hello\0");

    // Every segment's file offset and address agree modulo the page size, and __LINKEDIT is last in the file.
    let header = macho::MachHeader64::<LE>::parse(t.image.file(), 0).unwrap();
    let mut commands = header.load_commands(LE, t.image.file(), 0).unwrap();
    let mut last_fileoff_end = 0;
    let mut linkedit_end = 0;
    while let Some(command) = commands.next().unwrap() {
        if let Some((segment, _)) = command.segment_64().unwrap() {
            assert_eq!(segment.fileoff.get(LE) % PAGE_SIZE, segment.vmaddr.get(LE) % PAGE_SIZE);
            let end = segment.fileoff.get(LE) + segment.filesize.get(LE);
            if &segment.segname[..10] == b"__LINKEDIT" {
                linkedit_end = end;
            } else {
                last_fileoff_end = last_fileoff_end.max(end);
            }
        }
    }
    assert!(last_fileoff_end < linkedit_end);
    assert_eq!(linkedit_end, t.image.file().len() as u64);
}

#[test]
fn llvm_objdump_reads_it_without_complaint() {
    let mut t = tiny(LayoutConfig::default());
    t.image.render().unwrap();
    let (_dir, path) = write_temp(t.image.file());
    let out =
        tool("llvm-objdump-19", &["--macho", "--all-headers", "--rebase", "--bind", "--exports-trie"], &path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "llvm-objdump failed:\n{stderr}");
    for text in [&stdout, &stderr] {
        let lower = text.to_lowercase();
        assert!(
            !lower.contains("warning") && !lower.contains("error") && !lower.contains("truncated"),
            "{text}"
        );
    }
    assert!(stdout.contains("LC_DYLD_INFO_ONLY") && stdout.contains("LC_CODE_SIGNATURE"), "{stdout}");
    let rebase_line = stdout.lines().find(|l| l.starts_with("__DATA ")).expect("the data pointer is rebased");
    assert!(rebase_line.contains("pointer"), "{rebase_line}");
    let bind_line =
        stdout.lines().find(|l| l.contains("_exit") && l.contains("libSystem")).expect("_exit is bound");
    assert!(bind_line.starts_with("__DATA_CONST"), "{bind_line}");
    assert!(stdout.contains("_main"), "the export trie lists _main:\n{stdout}");
}

#[test]
fn layout_table_snapshot() {
    let mut t = tiny(LayoutConfig::default());
    t.image.render().unwrap();
    insta::assert_snapshot!(t.image.layout_table());
}

/// The CodeDirectory read by hand: (hash offset, code slots, code limit, page size log2).
fn code_directory(file: &[u8]) -> (usize, usize, usize, u8, usize) {
    let header = macho::MachHeader64::<LE>::parse(file, 0).unwrap();
    let mut commands = header.load_commands(LE, file, 0).unwrap();
    let mut signature = None;
    while let Some(command) = commands.next().unwrap() {
        if command.cmd() == macho::LC_CODE_SIGNATURE {
            let data: &macho::LinkeditDataCommand<LE> = command.data().unwrap();
            signature = Some(data.dataoff.get(LE) as usize);
        }
    }
    let sig = signature.expect("LC_CODE_SIGNATURE");
    let be = |at: usize| u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(be(sig), 0xfade_0cc0, "SuperBlob magic");
    let count = be(sig + 8);
    let cd = (0..count).find(|i| be(sig + 12 + 8 * i) == 0).map(|i| sig + be(sig + 16 + 8 * i)).unwrap();
    assert_eq!(be(cd), 0xfade_0c02, "CodeDirectory magic");
    (cd + be(cd + 16), be(cd + 28), be(cd + 32), file[cd + 39], cd)
}

/// Recomputes every page hash from the file, independently of `CodeSignature`.
fn signature_matches(file: &[u8]) -> bool {
    let (hashes, slots, limit, page_log2, _) = code_directory(file);
    let page = 1usize << page_log2;
    assert_eq!(slots, limit.div_ceil(page));
    (0..slots).all(|i| {
        let chunk = &file[i * page..((i + 1) * page).min(limit)];
        file[hashes + 32 * i..hashes + 32 * (i + 1)] == Sha256::digest(chunk)[..]
    })
}

#[test]
fn every_page_hash_verifies_and_a_flipped_byte_is_caught() {
    let mut t = tiny(LayoutConfig::default());
    t.image.render().unwrap();
    let mut file = t.image.file().to_vec();
    assert!(signature_matches(&file));
    let (_, _, limit, _, _) = code_directory(&file);
    assert_eq!(limit as u64 % 16, 0, "the signature is 16-byte aligned");
    let text_off = (t.image.atom(t.main).addr - IMAGE_BASE) as usize;
    file[text_off] ^= 0x01;
    assert!(!signature_matches(&file), "a changed instruction must break the signature");
}

#[test]
fn an_update_rehashes_only_the_dirty_pages() {
    let mut t = tiny(LayoutConfig::default());
    let first = t.image.render().unwrap();
    assert_eq!(first.dirty, vec![0..t.image.file().len() as u64]);
    assert_eq!(first.pages_hashed, code_directory(t.image.file()).1);

    // Change main's first instruction: one page of __text changes, nothing else does.
    t.image.write_atom(t.main, &code(&[0x5280_0020, RET])).unwrap();
    let update = t.image.render().unwrap();
    assert_eq!(update.pages_hashed, 1);
    assert!(signature_matches(t.image.file()));
    // `mov w0, #42` (40 05 80 52) became `mov w0, #1` (20 00 80 52): only the first two bytes differ, and only
    // they are dirty; the other range is the signature itself.
    let main_off = t.image.atom(t.main).addr - IMAGE_BASE;
    assert_eq!(update.dirty.len(), 2, "{:?}", update.dirty);
    assert_eq!(update.dirty[0], main_off..main_off + 2);

    // Nothing changed: nothing is hashed and nothing is dirty, not even the signature.
    let idle = t.image.render().unwrap();
    assert_eq!(idle.pages_hashed, 0);
    assert!(idle.dirty.is_empty(), "{:?}", idle.dirty);
}

#[test]
fn the_signature_matches_ld64_lld_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let sdk = dir.path().join("sdk/usr/lib");
    std::fs::create_dir_all(&sdk).unwrap();
    std::fs::write(
        sdk.join("libSystem.tbd"),
        "--- !tapi-tbd\ntbd-version: 4\ntargets: [ arm64-macos ]\ninstall-name: '/usr/lib/libSystem.B.dylib'\n\
         current-version: 1319\nexports:\n  - targets: [ arm64-macos ]\n    symbols: [ _exit ]\n...\n",
    )
    .unwrap();
    let asm = dir.path().join("main.s");
    std::fs::write(&asm, ".globl _main\n.p2align 2\n_main:\n  mov w0, #42\n  ret\n").unwrap();
    let object = dir.path().join("main.o");
    let status = Command::new("llvm-mc-19")
        .args(["-triple=arm64-apple-macos13", "-filetype=obj", "-o"])
        .arg(&object)
        .arg(&asm)
        .status()
        .expect("llvm-mc-19 must be installed");
    assert!(status.success());
    let exe = dir.path().join("prog");
    let status = Command::new("ld64.lld-19")
        .args(["-arch", "arm64", "-platform_version", "macos", "13.0", "13.0", "-syslibroot"])
        .arg(dir.path().join("sdk"))
        .args(["-lSystem", "-o"])
        .arg(&exe)
        .arg(&object)
        .status()
        .expect("ld64.lld-19 must be installed");
    assert!(status.success());

    let file = std::fs::read(&exe).unwrap();
    let (_, _, limit, _, cd) = code_directory(&file);
    let be64 = |at: usize| u64::from_be_bytes(file[at..at + 8].try_into().unwrap());
    let (exec_base, exec_limit) = (be64(cd + 64), be64(cd + 72));
    let mut ours = CodeSignature::new("prog", None);
    ours.update(&file, limit as u64, exec_base, exec_limit, &[]);
    let mut blob = vec![0; ours.size(limit as u64) as usize];
    ours.write(&mut blob);
    let superblob_len = u32::from_be_bytes(file[limit + 4..limit + 8].try_into().unwrap()) as usize;
    assert_eq!(&blob[..superblob_len], &file[limit..limit + superblob_len]);
    // The checker accepts the reference linker's signature too.
    let checked = macho_layout::codesign::check(&file).unwrap();
    assert_eq!(
        (checked.ident.as_str(), checked.code_limit, checked.entitlements),
        ("prog", limit as u64, false)
    );
}

#[test]
fn the_signature_check_accepts_a_rendered_image_and_names_what_breaks() {
    use macho_layout::codesign::{CheckError, check};
    let mut t = tiny(LayoutConfig::default());
    t.image.render().unwrap();
    let file = t.image.file().to_vec();
    let (_, slots, limit, _, _) = code_directory(&file);
    let checked = check(&file).unwrap();
    assert_eq!((checked.ident.as_str(), checked.pages, checked.code_limit), ("tiny", slots, limit as u64));
    assert!(checked.entitlements);

    // A changed instruction: its page is named.
    let main_off = (t.image.atom(t.main).addr - IMAGE_BASE) as usize;
    let mut code_changed = file.clone();
    code_changed[main_off] ^= 1;
    let page = main_off / 4096;
    assert_eq!(check(&code_changed), Err(CheckError::PageHash { page, offset: (page * 4096) as u64 }));

    // Changed entitlements: the special slot that hashes them.
    let mut entitled = file.clone();
    let key = b"get-task-allow";
    let at = limit + entitled[limit..].windows(key.len()).position(|w| w == key).unwrap();
    entitled[at] = b'G';
    assert_eq!(check(&entitled), Err(CheckError::SpecialSlot { slot: 5 }));

    // A file cut inside its signature, and bytes that are not Mach-O.
    assert!(
        matches!(check(&file[..limit + 20]), Err(CheckError::Malformed(_))),
        "{:?}",
        check(&file[..limit + 20])
    );
    assert!(matches!(check(b"not a mach-o file at all, just text"), Err(CheckError::NotMachO(_))));
}

#[test]
fn exhausting_a_reserve_asks_for_a_restart() {
    let config = LayoutConfig { text: 2 * PAGE_SIZE, ..LayoutConfig::default() };
    let mut image = Image::new("small", None, config);
    // One page of the text reserve holds the headers; the other holds 16 KiB of code.
    image.add_atom("_a", Section::Text, 12 * 1024, 4, true).unwrap();
    let err = image.add_atom("_b", Section::Text, 12 * 1024, 4, true).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("restart required") && message.contains("__text"), "{message}");
}

#[test]
fn a_segment_moves_in_the_file_but_not_in_memory() {
    let mut image = Image::new("grow", None, LayoutConfig::default());
    let main = image.add_atom("_main", Section::Text, 8, 4, true).unwrap();
    image.write_atom(main, &code(&[MOV_W0_42, RET])).unwrap();
    image.set_entry(image.atom(main).addr);
    let first = image.add_atom("_first", Section::Data, 16, 8, true).unwrap();
    image.write_atom(first, b"first data here!").unwrap();
    image.render().unwrap();
    let before = segment(image.file(), "__DATA");

    // Grow __DATA past the file room it was given.
    for i in 0..8 {
        let big = image.add_atom(&format!("_big{i}"), Section::Data, PAGE_SIZE, 8, true).unwrap();
        image.write_atom(big, &vec![i as u8; PAGE_SIZE as usize]).unwrap();
    }
    image.render().unwrap();
    let after = segment(image.file(), "__DATA");

    assert_eq!(before.0, after.0, "the VM address stays");
    assert_ne!(before.1, after.1, "the file offset moved");
    let file = image.file();
    let first_off = (after.1 + (image.atom(first).addr.0 - after.0)) as usize;
    assert_eq!(&file[first_off..first_off + 16], b"first data here!", "the bytes moved with it");
    assert!(signature_matches(file));
}

/// (vmaddr, fileoff) of a segment.
fn segment(file: &[u8], name: &str) -> (u64, u64) {
    let parsed = MachOFile64::<Endianness>::parse(file).unwrap();
    let s = parsed.segments().find(|s| s.name().unwrap() == Some(name)).unwrap();
    (s.address(), s.file_range().0)
}

#[derive(Debug, Clone)]
enum Op {
    Add { section: usize, size: u64, align_log: u32 },
    Resize { which: usize, size: u64, may_stay: bool },
    Free { which: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..5, 1u64..3000, 0u32..5).prop_map(|(section, size, align_log)| Op::Add {
            section,
            size,
            align_log
        }),
        (any::<usize>(), 1u64..4000, any::<bool>()).prop_map(|(which, size, may_stay)| Op::Resize {
            which,
            size,
            may_stay
        }),
        any::<usize>().prop_map(|which| Op::Free { which }),
    ]
}

const SECTIONS: [Section; 5] = [Section::Text, Section::Const, Section::Cells, Section::Data, Section::Bss];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random edits keep every atom aligned, inside its reserve, apart from every other atom; growing in place
    /// moves nobody else; the rendered file stays consistent; and the final set of atoms is what building it
    /// from scratch gives.
    #[test]
    fn incremental_edits_keep_the_image_sound(ops in prop::collection::vec(op(), 1..60)) {
        let config = LayoutConfig { text: 1 << 20, constants: 1 << 20, cells: 1 << 20, data: 1 << 20, bss: 1 << 20, ..LayoutConfig::default() };
        let mut image = Image::new("prop", None, config);
        let main = image.add_atom("_main", Section::Text, 8, 4, true).unwrap();
        image.set_entry(image.atom(main).addr);
        let mut live = vec![main];
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Add { section, size, align_log } => {
                    let section = SECTIONS[section];
                    let id = image.add_atom(&format!("_a{n}"), section, size, 1 << align_log, true).unwrap();
                    if section != Section::Bss {
                        image.write_atom(id, &vec![n as u8; size as usize]).unwrap();
                    }
                    live.push(id);
                }
                Op::Resize { which, size, may_stay } => {
                    let id = live[which % live.len()];
                    let others: Vec<(String, VmAddr)> = image.atoms().filter(|(i, _)| *i != id).map(|(_, a)| (a.name.clone(), a.addr)).collect();
                    let before = image.atom(id).addr;
                    match image.resize_atom(id, size, may_stay).unwrap() {
                        Placement::InPlace => {
                            prop_assert!(may_stay);
                            prop_assert_eq!(image.atom(id).addr, before);
                            let after: Vec<(String, VmAddr)> = image.atoms().filter(|(i, _)| *i != id).map(|(_, a)| (a.name.clone(), a.addr)).collect();
                            prop_assert_eq!(others, after, "growing in place moved another atom");
                        }
                        Placement::Moved { from, to } => prop_assert!(from == before && to != before),
                    }
                }
                Op::Free { which } if live.len() > 1 => {
                    let id = live.swap_remove(1 + which % (live.len() - 1));
                    image.free_atom(id).unwrap();
                }
                Op::Free { .. } => {}
            }
        }
        let mut atoms: Vec<_> = image.atoms().map(|(_, a)| a.clone()).collect();
        atoms.sort_by_key(|a| a.addr);
        for pair in atoms.windows(2) {
            prop_assert!(pair[0].addr + pair[0].capacity <= pair[1].addr, "{} overlaps {}", pair[0].name, pair[1].name);
        }
        for atom in &atoms {
            let range = image.section_range(atom.section);
            prop_assert_eq!(atom.addr.0 % atom.align, 0);
            prop_assert!(range.start <= atom.addr && atom.addr + atom.capacity <= range.end);
        }
        image.render().unwrap();
        prop_assert!(signature_matches(image.file()));
        let parsed = MachOFile64::<Endianness>::parse(image.file()).unwrap();
        for segment in parsed.segments() {
            prop_assert_eq!(segment.file_range().0 % PAGE_SIZE, segment.address() % PAGE_SIZE);
        }

        // Built from scratch, the same atoms fit and describe the same program.
        let mut fresh = Image::new("prop", None, config);
        for atom in &atoms {
            fresh.add_atom(&atom.name, atom.section, atom.size, atom.align, atom.external).unwrap();
        }
        let describe = |image: &Image| {
            let mut d: Vec<_> = image.atoms().map(|(_, a)| (a.name.clone(), a.section, a.size, a.align)).collect();
            d.sort();
            d
        };
        prop_assert_eq!(describe(&image), describe(&fresh));
    }
}

#[test]
fn the_map_read_back_has_every_atom_at_its_place_with_its_bytes() {
    let mut t = tiny(LayoutConfig::default());
    t.image.render().unwrap();
    let map = macho_layout::read::read_map(t.image.file()).unwrap();
    let names: Vec<&str> = map.segments.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["__PAGEZERO", "__TEXT", "__STUBS", "__RODATA", "__DATA_CONST", "__DATA", "__BSS", "__LINKEDIT"]
    );
    for (_, atom) in t.image.atoms() {
        let symbol =
            map.symbols.iter().find(|s| s.name == atom.name).unwrap_or_else(|| panic!("{}", atom.name));
        assert_eq!(symbol.addr, atom.addr.0, "{}", atom.name);
        assert!(symbol.size >= atom.size, "{}: {} < {}", atom.name, symbol.size, atom.size);
        assert_eq!(symbol.external, atom.external, "{}", atom.name);
    }
    let main = map.symbols.iter().find(|s| s.name == "_main").unwrap();
    assert_eq!(&map.bytes(t.image.file(), main)[..8], code(&[MOV_W0_42, RET]).as_slice());
    let counter = map.symbols.iter().find(|s| s.name == "_counter").unwrap();
    assert_eq!(counter.fileoff, None, "zero-fill has no file bytes");
}
