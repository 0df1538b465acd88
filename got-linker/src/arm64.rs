//! arm64 instruction fields that relocations patch: each encoder is a small pure function under a diagram of the
//! instruction's bits, with the range check that names the symbol when a target is out of reach.
//!
//! Decoders are the exact inverses; the relocation verifier and the tests use them to read back what was
//! written.

/// Why a value does not fit the instruction field it is meant for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{what} to {symbol} is out of range: {value:#x} does not fit ±{limit:#x}")]
    OutOfRange { what: &'static str, symbol: String, value: i64, limit: i64 },
    #[error("{what} to {symbol} is misaligned: {value:#x} is not a multiple of {align}")]
    Misaligned { what: &'static str, symbol: String, value: i64, align: i64 },
    #[error("the instruction {insn:#010x} is not a {what}")]
    WrongInstruction { what: &'static str, insn: u32 },
}

/// `B`/`BL` with a 26-bit word offset (±128 MiB).
///
/// ```text
///  31 30      26 25                                                0
/// +--+----------+---------------------------------------------------+
/// |op| 0 0 1 0 1|                     imm26                         |
/// +--+----------+---------------------------------------------------+
///  op = 0: B, 1: BL.   target = pc + sign_extend(imm26) * 4
/// ```
pub fn encode_branch26(insn: u32, pc: u64, target: u64, symbol: &str) -> Result<u32, EncodeError> {
    if insn & 0x7c00_0000 != 0x1400_0000 {
        return Err(EncodeError::WrongInstruction { what: "B/BL", insn });
    }
    let delta = target.wrapping_sub(pc) as i64;
    check_aligned("BRANCH26", symbol, delta, 4)?;
    check_range("BRANCH26", symbol, delta, 1 << 27)?;
    Ok((insn & 0xfc00_0000) | ((delta >> 2) as u32 & 0x03ff_ffff))
}

/// The target of a `B`/`BL` at `pc`.
pub fn decode_branch26(insn: u32, pc: u64) -> u64 {
    let imm = sign_extend(u64::from(insn & 0x03ff_ffff), 26) << 2;
    pc.wrapping_add(imm as u64)
}

/// `ADRP`: the 4 KiB page of the target, relative to the page of the instruction (±4 GiB).
///
/// ```text
///  31 30 29 28      24 23                                  5 4      0
/// +--+-----+----------+-------------------------------------+--------+
/// | 1|immlo| 1 0 0 0 0|                immhi                |   Rd   |
/// +--+-----+----------+-------------------------------------+--------+
///  pages = sign_extend(immhi:immlo) (21 bits);  Rd = (pc & ~0xfff) + pages * 4096
/// ```
pub fn encode_adrp(insn: u32, pc: u64, target: u64, symbol: &str) -> Result<u32, EncodeError> {
    if insn & 0x9f00_0000 != 0x9000_0000 {
        return Err(EncodeError::WrongInstruction { what: "ADRP", insn });
    }
    let pages = ((target & !0xfff) as i64).wrapping_sub((pc & !0xfff) as i64) >> 12;
    check_range("PAGE21", symbol, pages, 1 << 20)?;
    let imm = pages as u32 & 0x1f_ffff;
    Ok((insn & 0x9f00_001f) | ((imm & 3) << 29) | ((imm >> 2) << 5))
}

/// The page an `ADRP` at `pc` computes.
pub fn decode_adrp(insn: u32, pc: u64) -> u64 {
    let imm = u64::from(((insn >> 29) & 3) | (((insn >> 5) & 0x7_ffff) << 2));
    let pages = sign_extend(imm, 21);
    (pc & !0xfff).wrapping_add((pages << 12) as u64)
}

/// The low 12 bits of an address in an `ADD` (immediate) or in a load/store with an unsigned, scaled 12-bit
/// offset. For a load/store the offset is divided by the access size, which the instruction itself says.
///
/// ```text
///  ADD (immediate, 64-bit):
///  31 30 29 28     23 22 21                    10 9      5 4      0
/// +--+--+--+---------+--+-----------------------+--------+--------+
/// |sf| 0| 0|1 0 0 0 1|sh|         imm12         |   Rn   |   Rd   |
/// +--+--+--+---------+--+-----------------------+--------+--------+
///
///  LDR/STR (unsigned offset):
///  31 30 29 27 26 25 24 23 22 21                    10 9      5 4      0
/// +-----+--------+--+-----+-----+-----------------------+--------+--------+
/// | size| 1 1 1  | V| 0 1 | opc |     imm12 (scaled)    |   Rn   |   Rt   |
/// +-----+--------+--+-----+-----+-----------------------+--------+--------+
///  access = 1 << size, except V = 1 with opc = 1x, which is a 128-bit Q register (16 bytes).
/// ```
pub fn encode_pageoff12(insn: u32, target: u64, symbol: &str) -> Result<u32, EncodeError> {
    let low = (target & 0xfff) as i64;
    let scale = pageoff_scale(insn)?;
    check_aligned("PAGEOFF12", symbol, low, scale)?;
    let imm = (low / scale) as u32;
    Ok((insn & !(0xfff << 10)) | (imm << 10))
}

/// The low 12 bits an `ADD` or load/store adds (unscaled back to bytes).
pub fn decode_pageoff12(insn: u32) -> Result<u64, EncodeError> {
    let scale = pageoff_scale(insn)? as u64;
    Ok(u64::from((insn >> 10) & 0xfff) * scale)
}

/// The access size of a load/store with an unsigned immediate, or 1 for `ADD`.
pub fn pageoff_scale(insn: u32) -> Result<i64, EncodeError> {
    if insn & 0x7f80_0000 == 0x1100_0000 {
        // ADD (immediate), 32- or 64-bit, no shift.
        return Ok(1);
    }
    if insn & 0x3b00_0000 == 0x3900_0000 {
        let size = (insn >> 30) & 3;
        let vector = (insn >> 26) & 1 == 1;
        let opc = (insn >> 22) & 3;
        if vector && size == 0 && opc & 2 != 0 {
            return Ok(16);
        }
        return Ok(1 << size);
    }
    Err(EncodeError::WrongInstruction { what: "ADD or LDR/STR (unsigned immediate)", insn })
}

/// Rewrites `ldr xN, [xM, #off]` (a GOT load) into `add xN, xM, #off`, the relaxation linkers apply when the
/// target is known and within the image, so the address is computed instead of loaded.
pub fn relax_got_load_to_add(insn: u32) -> Result<u32, EncodeError> {
    if insn & 0xffc0_0000 != 0xf940_0000 {
        return Err(EncodeError::WrongInstruction { what: "LDR (64-bit, unsigned offset)", insn });
    }
    let (rn, rt) = ((insn >> 5) & 0x1f, insn & 0x1f);
    Ok(0x9100_0000 | (rn << 5) | rt)
}

fn sign_extend(value: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((value << shift) as i64) >> shift
}

fn check_range(what: &'static str, symbol: &str, value: i64, limit: i64) -> Result<(), EncodeError> {
    if value < -limit || value >= limit {
        return Err(EncodeError::OutOfRange { what, symbol: symbol.to_string(), value, limit });
    }
    Ok(())
}

fn check_aligned(what: &'static str, symbol: &str, value: i64, align: i64) -> Result<(), EncodeError> {
    if value % align != 0 {
        return Err(EncodeError::Misaligned { what, symbol: symbol.to_string(), value, align });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const BL: u32 = 0x9400_0000;
    const B: u32 = 0x1400_0000;
    const ADRP_X16: u32 = 0x9000_0010;
    const ADD_X0_X0: u32 = 0x9100_0000;
    const LDR_X16_X16: u32 = 0xf940_0210;
    const LDR_W1_X8: u32 = 0xb940_0101;
    const LDR_Q0_X8: u32 = 0x3dc0_0100;
    const LDRB_W0_X1: u32 = 0x3940_0020;
    const STR_D0_X8: u32 = 0xfd00_0100;

    /// Encodings checked against `llvm-mc-19 --triple=arm64-apple-macos13 --show-encoding`.
    #[test]
    fn matches_the_assembler() {
        let cases = [
            ("bl #0x40", encode_branch26(BL, 0x1000, 0x1040, "_f").unwrap()),
            ("b #-0x8", encode_branch26(B, 0x1000, 0xff8, "_f").unwrap()),
            ("adrp x16, 0x3000", encode_adrp(ADRP_X16, 0x1000, 0x3abc, "_f").unwrap()),
            ("add x0, x0, #0xabc", encode_pageoff12(ADD_X0_X0, 0x3abc, "_f").unwrap()),
            ("ldr x16, [x16, #0x18]", encode_pageoff12(LDR_X16_X16, 0x2018, "_f").unwrap()),
            ("ldr q0, [x8, #0x20]", encode_pageoff12(LDR_Q0_X8, 0x2020, "_f").unwrap()),
        ];
        let source: String = cases.iter().map(|(asm, _)| format!("{asm}\n")).collect();
        let output = assemble(&source);
        for ((asm, ours), expected) in cases.iter().zip(output) {
            assert_eq!(*ours, expected, "{asm}: ours {ours:#010x}, llvm-mc {expected:#010x}");
        }
    }

    /// The words llvm-mc encodes for one instruction a line.
    fn assemble(source: &str) -> Vec<u32> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("llvm-mc-19")
            .args(["--triple=arm64-apple-macos13", "--show-encoding"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("llvm-mc-19 must be installed (cargo xtask setup)");
        child.stdin.take().unwrap().write_all(rewrite_for_mc(source).as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| line.split("encoding: [").nth(1))
            .map(|bytes| {
                let bytes: Vec<u8> = bytes
                    .trim_end_matches(']')
                    .split(',')
                    .map(|b| u8::from_str_radix(b.trim().trim_start_matches("0x"), 16).unwrap())
                    .collect();
                u32::from_le_bytes(bytes.try_into().unwrap())
            })
            .collect()
    }

    /// llvm-mc takes branch and ADRP targets as offsets from the instruction (`#imm`, `#imm` pages in bytes):
    /// `bl #0x40` from pc 0x1000 is `bl #0x40`; `adrp x16, 0x3000` from pc 0x1000 is `adrp x16, #0x2000`.
    fn rewrite_for_mc(source: &str) -> String {
        source.replace("adrp x16, 0x3000", "adrp x16, #0x2000")
    }

    #[test]
    fn the_access_size_scales_the_offset() {
        assert_eq!(pageoff_scale(LDR_W1_X8), Ok(4));
        assert_eq!(pageoff_scale(LDR_Q0_X8), Ok(16));
        assert_eq!(pageoff_scale(LDRB_W0_X1), Ok(1));
        assert_eq!(pageoff_scale(STR_D0_X8), Ok(8));
        assert_eq!(pageoff_scale(ADD_X0_X0), Ok(1));
        let err = encode_pageoff12(LDR_Q0_X8, 0x2008, "_table").unwrap_err();
        assert_eq!(err.to_string(), "PAGEOFF12 to _table is misaligned: 0x8 is not a multiple of 16");
        assert!(pageoff_scale(BL).is_err());
    }

    #[test]
    fn out_of_range_names_the_symbol() {
        let err = encode_branch26(BL, 0x1_0000_0000, 0x1_0800_0000, "_far").unwrap_err();
        assert_eq!(err.to_string(), "BRANCH26 to _far is out of range: 0x8000000 does not fit ±0x8000000");
        assert!(encode_branch26(BL, 0x1_0800_0000, 0x1_0000_0000, "_back").is_ok(), "-128 MiB is reachable");
        let err = encode_adrp(ADRP_X16, 0x1_0000_0000, 0x2_0000_0000, "_data").unwrap_err();
        assert!(err.to_string().starts_with("PAGE21 to _data is out of range"));
        assert!(matches!(encode_adrp(BL, 0, 0, "_x"), Err(EncodeError::WrongInstruction { .. })));
    }

    #[test]
    fn got_loads_relax_to_adds() {
        assert_eq!(relax_got_load_to_add(LDR_X16_X16), Ok(0x9100_0210));
        assert!(relax_got_load_to_add(LDR_W1_X8).is_err());
    }

    proptest! {
        #[test]
        fn branch_round_trips_over_the_whole_range(pc in (0u64..1 << 40).prop_map(|p| p * 4), words in -(1i64 << 25)..(1 << 25)) {
            let target = pc.wrapping_add((words * 4) as u64);
            let insn = encode_branch26(BL, pc, target, "_f").unwrap();
            prop_assert_eq!(decode_branch26(insn, pc), target);
            prop_assert_eq!(insn & 0xfc00_0000, BL);
        }

        #[test]
        fn adrp_round_trips_over_the_whole_range(pc in 0u64..1 << 44, pages in -(1i64 << 20)..(1 << 20), low in 0u64..4096) {
            let target = ((pc & !0xfff) as i64 + (pages << 12)) as u64 | low;
            let insn = encode_adrp(ADRP_X16, pc, target, "_f").unwrap();
            prop_assert_eq!(decode_adrp(insn, pc), target & !0xfff);
            prop_assert_eq!(insn & 0x1f, 16, "the register is kept");
        }

        #[test]
        fn out_of_range_branches_always_fail(pc in (0u64..1 << 40).prop_map(|p| p * 4), far in (1i64 << 25)..(1 << 30)) {
            let target = pc.wrapping_add((far * 4) as u64);
            prop_assert!(encode_branch26(BL, pc, target, "_f").is_err());
        }

        #[test]
        fn pageoff_round_trips_for_every_access_size(
            insn in prop::sample::select(vec![ADD_X0_X0, LDR_X16_X16, LDR_W1_X8, LDR_Q0_X8, LDRB_W0_X1, STR_D0_X8]),
            page in 0u64..1 << 30,
            slot in 0u64..4096,
        ) {
            let scale = pageoff_scale(insn).unwrap() as u64;
            let target = (page << 12) | ((slot * scale) & 0xfff);
            let encoded = encode_pageoff12(insn, target, "_f").unwrap();
            prop_assert_eq!(decode_pageoff12(encoded).unwrap(), target & 0xfff);
            prop_assert_eq!(encoded & !(0xfff << 10), insn & !(0xfff << 10), "only imm12 changes");
        }
    }
}
