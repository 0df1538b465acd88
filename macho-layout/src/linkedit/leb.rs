//! LEB128, the variable-length integers of every LINKEDIT stream.

/// Appends `value` as unsigned LEB128.
pub fn write_uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `value` as signed LEB128.
pub fn write_sleb(out: &mut Vec<u8>, mut value: i64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads unsigned LEB128 at `*pos`, advancing it; `None` if truncated or longer than 64 bits.
pub fn read_uleb(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
}

/// Reads signed LEB128 at `*pos`, advancing it.
pub fn read_sleb(bytes: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value = 0i64;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        value |= i64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            if shift < 64 && byte & 0x40 != 0 {
                value |= -1 << shift;
            }
            return Some(value);
        }
    }
}

/// The length of `value` as unsigned LEB128.
pub fn uleb_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_encodings() {
        let enc = |v| {
            let mut out = Vec::new();
            write_uleb(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(624_485), [0xe5, 0x8e, 0x26]);
        let mut out = Vec::new();
        write_sleb(&mut out, -123_456);
        assert_eq!(out, [0xc0, 0xbb, 0x78]);
    }

    proptest! {
        #[test]
        fn round_trips(u in any::<u64>(), s in any::<i64>()) {
            let mut out = Vec::new();
            write_uleb(&mut out, u);
            prop_assert_eq!(out.len(), uleb_len(u));
            write_sleb(&mut out, s);
            let mut pos = 0;
            prop_assert_eq!(read_uleb(&out, &mut pos), Some(u));
            prop_assert_eq!(read_sleb(&out, &mut pos), Some(s));
            prop_assert_eq!(pos, out.len());
        }
    }
}
