//! The stub every function is called through: it loads the function's current address from its target cell
//! and jumps there, so moving a body means storing one new address in one cell.
//!
//! ```text
//!   adrp x16, cell@PAGE          ; the cell's 4 KiB page
//!   ldr  x16, [x16, cell@PAGEOFF] ; the body's address
//!   br   x16
//! ```
//!
//! x16 (IP0) is the intra-procedure-call scratch register: AAPCS64 lets a veneer clobber it between a call and
//! the callee's entry, which is exactly what a stub is. A stub never moves, so it is the function's canonical
//! address (`&f` in any object gives it).

use crate::arm64::{EncodeError, encode_adrp, encode_pageoff12};

/// The size of a stub.
pub const STUB_SIZE: u64 = 12;

const ADRP_X16: u32 = 0x9000_0010;
const LDR_X16_X16: u32 = 0xf940_0210;
const BR_X16: u32 = 0xd61f_0200;

/// The stub at `stub` that jumps through the 8-byte cell at `cell` (which must be 8-byte aligned).
pub fn stub_code(stub: u64, cell: u64, symbol: &str) -> Result<[u8; STUB_SIZE as usize], EncodeError> {
    let adrp = encode_adrp(ADRP_X16, stub, cell, symbol)?;
    let ldr = encode_pageoff12(LDR_X16_X16, cell, symbol)?;
    let mut code = [0u8; STUB_SIZE as usize];
    for (i, word) in [adrp, ldr, BR_X16].into_iter().enumerate() {
        code[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
    }
    Ok(code)
}

/// The cell a stub at `stub` jumps through, read back from its code; `None` if the bytes are not a stub.
pub fn stub_cell(stub: u64, code: &[u8]) -> Option<u64> {
    let word = |i: usize| u32::from_le_bytes(code.get(4 * i..4 * i + 4)?.try_into().ok()?).into();
    let (adrp, ldr, br): (Option<u32>, Option<u32>, Option<u32>) = (word(0), word(1), word(2));
    let (adrp, ldr) = (adrp?, ldr?);
    if adrp & 0x9f00_001f != ADRP_X16 || ldr & !(0xfff << 10) != LDR_X16_X16 || br? != BR_X16 {
        return None;
    }
    let page = crate::arm64::decode_adrp(adrp, stub);
    Some(page + crate::arm64::decode_pageoff12(ldr).ok()?)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// llvm-mc's disassembler reads the three instructions back: the page delta and offset of the cell.
    #[test]
    fn a_stub_disassembles_as_expected() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let code = stub_code(0x1_0400_0000, 0x1_0680_0018, "_bar").unwrap();
        let bytes: Vec<String> = code.iter().map(|b| format!("{b:#04x}")).collect();
        let mut child = Command::new("llvm-mc-19")
            .args(["--disassemble", "--triple=arm64-apple-macos13"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("llvm-mc-19 must be installed (cargo xtask setup)");
        child.stdin.take().unwrap().write_all(bytes.join(" ").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('.'))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        // 0x1_0680_0000 - 0x1_0400_0000 = 0x280_0000 bytes = 0x2800 pages.
        assert_eq!(lines, ["adrp x16, #41943040", "ldr x16, [x16, #24]", "br x16"]);
        assert_eq!(stub_cell(0x1_0400_0000, &code), Some(0x1_0680_0018));
    }

    #[test]
    fn cells_out_of_adrp_reach_or_misaligned_are_errors() {
        assert!(stub_code(0x1_0000_0000, 0x2_0000_0000, "_far").unwrap_err().to_string().contains("_far"));
        assert!(
            stub_code(0x1_0000_0000, 0x1_0000_1004, "_odd").unwrap_err().to_string().contains("misaligned")
        );
        assert_eq!(stub_cell(0, &[0; 12]), None);
        assert_eq!(stub_cell(0, &[0; 4]), None);
    }

    proptest! {
        #[test]
        fn the_stub_reaches_its_cell(stub in (0x1_0000_0000u64..0x1_4000_0000).prop_map(|s| s & !3), cell in (0x1_0000_0000u64..0x1_4000_0000).prop_map(|c| c & !7)) {
            let code = stub_code(stub, cell, "_f").unwrap();
            prop_assert_eq!(stub_cell(stub, &code), Some(cell));
        }
    }
}
