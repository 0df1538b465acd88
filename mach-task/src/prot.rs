//! Virtual-memory protections (`vm_prot_t`) as a flag set.

use std::fmt;

bitflags::bitflags! {
    /// A `vm_prot_t`: the protection of a range of a task's memory.
    ///
    /// The values are xnu's (`osfmk/mach/vm_prot.h`), so they pass to and from the kernel unchanged.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct VmProt: i32 {
        const READ = 0x01;
        const WRITE = 0x02;
        const EXECUTE = 0x04;
        /// Only meaningful in a request: remap the range as a private copy-on-write copy and add WRITE to its
        /// maximum protection. This is how a debugger makes `r-x/r-x` code writable.
        const COPY = 0x10;
    }
}

impl VmProt {
    /// `r-x`, the protection of code.
    pub const RX: VmProt = VmProt::READ.union(VmProt::EXECUTE);
    /// `rw-`, the protection of writable data.
    pub const RW: VmProt = VmProt::READ.union(VmProt::WRITE);

    /// Whether a request asks for WRITE and EXECUTE at once, which arm64 macOS refuses.
    pub fn is_write_execute(self) -> bool {
        self.contains(VmProt::WRITE | VmProt::EXECUTE)
    }
}

impl fmt::Display for VmProt {
    /// Formats like `vmmap`: `r-x`, `rw-`, with `+copy` when COPY is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |flag, c| if self.contains(flag) { c } else { '-' };
        write!(f, "{}{}{}", bit(VmProt::READ, 'r'), bit(VmProt::WRITE, 'w'), bit(VmProt::EXECUTE, 'x'))?;
        if self.contains(VmProt::COPY) {
            f.write_str("+copy")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_vmmap() {
        assert_eq!(VmProt::RX.to_string(), "r-x");
        assert_eq!(VmProt::RW.to_string(), "rw-");
        assert_eq!((VmProt::RW | VmProt::COPY).to_string(), "rw-+copy");
        assert_eq!(VmProt::empty().to_string(), "---");
        assert!((VmProt::RX | VmProt::WRITE).is_write_execute());
        assert!(!VmProt::RX.is_write_execute());
    }
}
