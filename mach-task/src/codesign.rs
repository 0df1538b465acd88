//! A process's code-signing flags, as `csops(CS_OPS_STATUS)` reports them, and what they mean for patching.
//!
//! Platform-independent on purpose: the driver decides between plain patching, debugged mode and refusing on
//! every host, and the simulator can report flags too.

use std::fmt;

bitflags::bitflags! {
    /// The `CS_*` status flags of a process (xnu `bsd/sys/codesign.h`, `osfmk/kern/cs_blobs.h`). Unknown bits
    /// are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CsFlags: u32 {
        /// The signature is valid (cleared when a modified page is allowed in).
        const VALID = 0x0000_0001;
        /// Ad-hoc signed.
        const ADHOC = 0x0000_0002;
        /// Carries `com.apple.security.get-task-allow`.
        const GET_TASK_ALLOW = 0x0000_0004;
        /// Refuse invalid pages (the fault fails).
        const HARD = 0x0000_0100;
        /// SIGKILL the process on an invalid page.
        const KILL = 0x0000_0200;
        /// Code-signing enforcement is on for this process.
        const ENFORCEMENT = 0x0000_1000;
        /// Hardened runtime.
        const RUNTIME = 0x0001_0000;
        /// Signed by the linker (ld64/lld's ad-hoc signature).
        const LINKER_SIGNED = 0x0002_0000;
        /// A debugger attached with `ptrace`: invalid pages are allowed until the next exec.
        const DEBUGGED = 0x1000_0000;
        const _ = !0;
    }
}

impl CsFlags {
    /// Whether writing a code page would get the process killed or faulted (`CS_KILL`, `CS_HARD`,
    /// `CS_ENFORCEMENT`, or the hardened runtime that brings them) and no debugger has lifted that
    /// (`CS_DEBUGGED`). Such a target must be spawned in debugged mode (`ptrace(PT_ATTACH)`), or refused.
    pub fn modified_code_is_fatal(self) -> bool {
        let strict = CsFlags::KILL | CsFlags::HARD | CsFlags::ENFORCEMENT | CsFlags::RUNTIME;
        self.intersects(strict) && !self.contains(CsFlags::DEBUGGED)
    }
}

impl fmt::Display for CsFlags {
    /// Formats like `codesign -dv`: `0x20002(adhoc,linker-signed)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: &[(CsFlags, &str)] = &[
            (CsFlags::VALID, "valid"),
            (CsFlags::ADHOC, "adhoc"),
            (CsFlags::GET_TASK_ALLOW, "get-task-allow"),
            (CsFlags::HARD, "hard"),
            (CsFlags::KILL, "kill"),
            (CsFlags::ENFORCEMENT, "enforcement"),
            (CsFlags::RUNTIME, "runtime"),
            (CsFlags::LINKER_SIGNED, "linker-signed"),
            (CsFlags::DEBUGGED, "debugged"),
        ];
        write!(f, "{:#x}(", self.bits())?;
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(*flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardened_targets_need_a_debugger_until_one_attached() {
        let plain = CsFlags::VALID | CsFlags::ADHOC | CsFlags::LINKER_SIGNED;
        assert!(!plain.modified_code_is_fatal());
        for strict in [CsFlags::KILL, CsFlags::HARD, CsFlags::ENFORCEMENT, CsFlags::RUNTIME] {
            assert!((plain | strict).modified_code_is_fatal(), "{strict}");
            assert!(!(plain | strict | CsFlags::DEBUGGED).modified_code_is_fatal(), "{strict}");
        }
    }

    #[test]
    fn displays_like_codesign() {
        assert_eq!((CsFlags::ADHOC | CsFlags::LINKER_SIGNED).to_string(), "0x20002(adhoc,linker-signed)");
        assert_eq!(CsFlags::from_bits_retain(0x8000_0000).to_string(), "0x80000000()");
    }
}
