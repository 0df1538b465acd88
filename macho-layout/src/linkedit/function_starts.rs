//! `LC_FUNCTION_STARTS`: the start of every function, for debuggers, profilers and crash reporters.

use super::leb::write_uleb;

/// ULEB128 deltas between sorted function start addresses, the first from the image base (`__TEXT`'s vmaddr),
/// terminated by a zero and padded to 8 bytes. Duplicate starts are dropped.
pub fn encode_function_starts(image_base: u64, starts: &[u64]) -> Vec<u8> {
    let mut sorted = starts.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut previous = image_base;
    for start in sorted {
        write_uleb(&mut out, start - previous);
        previous = start;
    }
    out.push(0);
    super::pad8(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::super::leb::read_uleb;
    use super::*;

    #[test]
    fn deltas_from_the_image_base() {
        let base = 0x1_0000_0000;
        let bytes = encode_function_starts(base, &[base + 0x4100, base + 0x4000, base + 0x4000]);
        let mut pos = 0;
        assert_eq!(read_uleb(&bytes, &mut pos), Some(0x4000));
        assert_eq!(read_uleb(&bytes, &mut pos), Some(0x100));
        assert_eq!(read_uleb(&bytes, &mut pos), Some(0));
        assert_eq!(bytes.len(), 8);
    }
}
