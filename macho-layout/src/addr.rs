//! Typed quantities: a virtual-memory address and a file offset are different things, and an image is full of
//! both. Keeping them apart in the types is what lets a segment move in the file while it stays put in memory.

use std::fmt;
use std::ops::{Add, Sub};

/// The arm64 macOS page size: segments are aligned to it in memory and in the file.
pub const PAGE_SIZE: u64 = 16 * 1024;

/// A link-time virtual-memory address (unslid).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VmAddr(pub u64);

/// An offset from the start of the executable file.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FileOffset(pub u64);

macro_rules! quantity {
    ($ty:ident) => {
        impl Add<u64> for $ty {
            type Output = $ty;
            fn add(self, rhs: u64) -> $ty {
                $ty(self.0 + rhs)
            }
        }

        impl Sub<$ty> for $ty {
            type Output = u64;
            fn sub(self, rhs: $ty) -> u64 {
                self.0 - rhs.0
            }
        }

        impl $ty {
            /// Rounded up to a multiple of `align` (a power of two).
            pub fn align_up(self, align: u64) -> $ty {
                $ty(self.0.next_multiple_of(align))
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:#x})", stringify!($ty), self.0)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

quantity!(VmAddr);
quantity!(FileOffset);

/// `n` rounded up to whole pages.
pub fn page_align(n: u64) -> u64 {
    n.next_multiple_of(PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_keeps_the_kind() {
        let a = VmAddr(0x1_0000_4000);
        assert_eq!(a + 0x10, VmAddr(0x1_0000_4010));
        assert_eq!((a + 0x10) - a, 0x10);
        assert_eq!(FileOffset(1).align_up(PAGE_SIZE), FileOffset(PAGE_SIZE));
        assert_eq!(format!("{a} {a:?}"), "0x100004000 VmAddr(0x100004000)");
        assert_eq!(page_align(0), 0);
        assert_eq!(page_align(1), PAGE_SIZE);
    }
}
