//! The `printf` family's formatter, following Darwin's libc (FreeBSD's `vfprintf`) byte for byte.
//!
//! Apple's arm64 ABI passes every variadic argument in its own 8-byte stack slot (integers, pointers and
//! doubles alike), and a `va_list` is a plain pointer to those slots, so the formatter only ever asks for "the
//! next slot". Where Darwin and glibc differ, Darwin wins: `%p` of NULL is `0x0`, NaN never carries a sign, and
//! the `0` flag pads `%s` and `%c` too.

/// Where the formatter's arguments come from: the guest's argument slots and its memory.
pub trait Args {
    /// The next 8-byte argument slot.
    fn next_slot(&mut self) -> Result<u64, String>;
    /// The NUL-terminated string at `addr`, reading at most `max` bytes when given (a precision on `%s` must not
    /// read past it).
    fn string(&mut self, addr: u64, max: Option<usize>) -> Result<Vec<u8>, String>;
}

#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
    length: Length,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Length {
    #[default]
    Int,
    Char,
    Short,
    Long,
}

/// Formats `fmt` with arguments from `args`, returning the bytes `printf` would write (without a NUL).
pub fn format(fmt: &[u8], args: &mut dyn Args) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(fmt.len() + 16);
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        i += 1;
        if c != b'%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = fmt.get(i) {
            match f {
                b'-' => spec.minus = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                b'#' => spec.alt = true,
                b'0' => spec.zero = true,
                _ => break,
            }
            i += 1;
        }
        if fmt.get(i) == Some(&b'*') {
            i += 1;
            let w = args.next_slot()? as i32;
            if w < 0 {
                spec.minus = true;
            }
            spec.width = w.unsigned_abs() as usize;
        } else {
            spec.width = digits(fmt, &mut i);
        }
        if fmt.get(i) == Some(&b'.') {
            i += 1;
            if fmt.get(i) == Some(&b'*') {
                i += 1;
                let p = args.next_slot()? as i32;
                spec.precision = (p >= 0).then_some(p as usize);
            } else {
                spec.precision = Some(digits(fmt, &mut i));
            }
        }
        spec.length = length(fmt, &mut i);
        let Some(&conv) = fmt.get(i) else {
            break;
        };
        i += 1;
        match conv {
            b'd' | b'i' => {
                let v = signed(args.next_slot()?, spec.length);
                let sign = if v < 0 {
                    "-"
                } else if spec.plus {
                    "+"
                } else if spec.space {
                    " "
                } else {
                    ""
                };
                integer(&mut out, &spec, sign, v.unsigned_abs(), 10, false, "");
            }
            b'u' | b'x' | b'X' | b'o' => {
                let v = unsigned(args.next_slot()?, spec.length);
                let (base, upper) = match conv {
                    b'u' => (10, false),
                    b'x' => (16, false),
                    b'X' => (16, true),
                    _ => (8, false),
                };
                let prefix = match conv {
                    b'x' if spec.alt && v != 0 => "0x",
                    b'X' if spec.alt && v != 0 => "0X",
                    _ => "",
                };
                integer(&mut out, &spec, "", v, base, upper, prefix);
            }
            b'p' => {
                let v = args.next_slot()?;
                integer(&mut out, &spec, "", v, 16, false, "0x");
            }
            b'c' => {
                let v = args.next_slot()? as u8;
                pad(&mut out, &spec, "", &[v]);
            }
            b's' => {
                let addr = args.next_slot()?;
                let mut s = if addr == 0 { b"(null)".to_vec() } else { args.string(addr, spec.precision)? };
                if let Some(p) = spec.precision {
                    s.truncate(p);
                }
                pad(&mut out, &spec, "", &s);
            }
            b'f' | b'F' | b'e' | b'E' | b'g' | b'G' => {
                let v = f64::from_bits(args.next_slot()?);
                float(&mut out, &spec, v, conv);
            }
            b'%' => out.push(b'%'),
            b'n' => return Err("%n is not supported".to_string()),
            other => out.push(other),
        }
    }
    Ok(out)
}

fn digits(fmt: &[u8], i: &mut usize) -> usize {
    let mut n = 0usize;
    while let Some(d) = fmt.get(*i).filter(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(usize::from(d - b'0'));
        *i += 1;
    }
    n
}

fn length(fmt: &[u8], i: &mut usize) -> Length {
    let at = |k: usize| fmt.get(*i + k).copied();
    let (len, n) = match (at(0), at(1)) {
        (Some(b'h'), Some(b'h')) => (Length::Char, 2),
        (Some(b'h'), _) => (Length::Short, 1),
        (Some(b'l'), Some(b'l')) => (Length::Long, 2),
        (Some(b'l' | b'q' | b'z' | b'j' | b't'), _) => (Length::Long, 1),
        // `long double` is `double` on arm64 Darwin.
        (Some(b'L'), _) => (Length::Int, 1),
        _ => (Length::Int, 0),
    };
    *i += n;
    len
}

fn signed(slot: u64, len: Length) -> i64 {
    match len {
        Length::Char => i64::from(slot as i8),
        Length::Short => i64::from(slot as i16),
        Length::Int => i64::from(slot as i32),
        Length::Long => slot as i64,
    }
}

fn unsigned(slot: u64, len: Length) -> u64 {
    match len {
        Length::Char => u64::from(slot as u8),
        Length::Short => u64::from(slot as u16),
        Length::Int => u64::from(slot as u32),
        Length::Long => slot,
    }
}

/// An integer conversion: digits in `base`, at least `precision` of them, then sign or prefix, then padding.
fn integer(out: &mut Vec<u8>, spec: &Spec, sign: &str, v: u64, base: u64, upper: bool, prefix: &str) {
    let table: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    let mut body = Vec::new();
    let mut n = v;
    while n != 0 {
        body.push(table[(n % base) as usize]);
        n /= base;
    }
    // "%.0d" of zero prints no digits; otherwise zero is "0".
    if v == 0 && spec.precision != Some(0) {
        body.push(b'0');
    }
    let min = spec.precision.unwrap_or(0);
    while body.len() < min {
        body.push(b'0');
    }
    // "%#o" guarantees a leading zero.
    if base == 8 && spec.alt && body.last() != Some(&b'0') {
        body.push(b'0');
    }
    body.reverse();
    let mut spec = *spec;
    if spec.precision.is_some() {
        spec.zero = false;
    }
    pad(out, &spec, &format!("{sign}{prefix}"), &body);
}

/// Writes `prefix` and `body` padded to the width: spaces on the right with `-`, zeros between prefix and body
/// with `0`, else spaces on the left.
fn pad(out: &mut Vec<u8>, spec: &Spec, prefix: &str, body: &[u8]) {
    let len = prefix.len() + body.len();
    let fill = spec.width.saturating_sub(len);
    if spec.minus {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + fill, b' ');
    } else if spec.zero {
        out.extend_from_slice(prefix.as_bytes());
        out.resize(out.len() + fill, b'0');
        out.extend_from_slice(body);
    } else {
        out.resize(out.len() + fill, b' ');
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(body);
    }
}

/// `%f %e %g` and their upper-case forms. Rust's exact float formatting rounds the exact binary value to the
/// nearest decimal, ties to even, which is what Darwin's `dtoa` does in the default rounding mode.
fn float(out: &mut Vec<u8>, spec: &Spec, v: f64, conv: u8) {
    let upper = conv.is_ascii_uppercase();
    let mut spec = *spec;
    let sign = if v.is_nan() {
        ""
    } else if v.is_sign_negative() {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    if !v.is_finite() {
        spec.zero = false;
        let text = match (v.is_nan(), upper) {
            (true, false) => "nan",
            (true, true) => "NAN",
            (false, false) => "inf",
            (false, true) => "INF",
        };
        pad(out, &spec, sign, text.as_bytes());
        return;
    }
    let a = v.abs();
    let p = spec.precision.unwrap_or(6);
    let mut body = match conv.to_ascii_lowercase() {
        b'f' => fixed(a, p, spec.alt),
        b'e' => exponent(a, p, spec.alt),
        _ => {
            let p = p.max(1);
            let x = exponent_of(a, p - 1);
            let mut s = if x < -4 || x >= p as i32 {
                exponent(a, p - 1, spec.alt)
            } else {
                fixed(a, (p as i32 - 1 - x) as usize, spec.alt)
            };
            if !spec.alt {
                strip_zeros(&mut s);
            }
            s
        }
    };
    if upper {
        body.make_ascii_uppercase();
    }
    pad(out, &spec, sign, body.as_bytes());
}

fn fixed(a: f64, p: usize, alt: bool) -> String {
    let mut s = format!("{a:.p$}");
    if p == 0 && alt {
        s.push('.');
    }
    s
}

/// `d.ddde±XX` with `p` digits after the point and at least two exponent digits.
fn exponent(a: f64, p: usize, alt: bool) -> String {
    let s = format!("{a:.p$e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let point = if p == 0 && alt { "." } else { "" };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}{point}e{sign}{:02}", exp.unsigned_abs())
}

/// The decimal exponent `%e` would print for `a` with `p` digits after the point (after rounding).
fn exponent_of(a: f64, p: usize) -> i32 {
    let s = format!("{a:.p$e}");
    s.split_once('e').and_then(|(_, e)| e.parse().ok()).unwrap_or(0)
}

/// `%g` drops trailing zeros of the fraction, and the point when nothing follows it.
fn strip_zeros(s: &mut String) {
    let (mantissa, exp) = match s.find('e') {
        Some(at) => (s[..at].to_string(), s[at..].to_string()),
        None => (s.clone(), String::new()),
    };
    if !mantissa.contains('.') {
        return;
    }
    let trimmed = mantissa.trim_end_matches('0').trim_end_matches('.');
    *s = format!("{trimmed}{exp}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments as a list of slots; string arguments are host pointers to NUL-terminated C strings.
    struct Slots {
        slots: Vec<u64>,
    }

    impl Args for Slots {
        fn next_slot(&mut self) -> Result<u64, String> {
            if self.slots.is_empty() {
                return Err("out of arguments".into());
            }
            Ok(self.slots.remove(0))
        }
        fn string(&mut self, addr: u64, max: Option<usize>) -> Result<Vec<u8>, String> {
            // SAFETY: every string slot in these tests is the address of a `c"…"` literal, which is
            // NUL-terminated and lives for the whole program.
            let s = unsafe { std::ffi::CStr::from_ptr(addr as *const std::ffi::c_char) }.to_bytes();
            Ok(s[..max.unwrap_or(s.len()).min(s.len())].to_vec())
        }
    }

    fn fmt(f: &str, slots: &[u64]) -> String {
        let mut args = Slots { slots: slots.to_vec() };
        String::from_utf8(format(f.as_bytes(), &mut args).unwrap()).unwrap()
    }

    fn cstr(s: &'static std::ffi::CStr) -> u64 {
        s.as_ptr() as u64
    }

    #[test]
    fn darwin_specific_forms() {
        assert_eq!(fmt("%p %p", &[0, 0x1_0000_4000]), "0x0 0x100004000");
        assert_eq!(
            fmt("[%05s|%-3c|%03c]", &[cstr(c"x"), u64::from(b'a'), u64::from(b'b')]),
            "[0000x|a  |00b]"
        );
        assert_eq!(
            fmt("%f %+f %5.1F", &[f64::NAN.to_bits(), (-f64::NAN).to_bits(), f64::NAN.to_bits()]),
            "nan nan   NAN"
        );
        assert_eq!(fmt("%s|%.3s|%s", &[cstr(c"hello"), cstr(c"hello"), 0]), "hello|hel|(null)");
        assert_eq!(fmt("%k%%", &[]), "k%", "unknown conversions print themselves");
    }

    /// A C variadic argument and the slot Apple's ABI gives it.
    trait Slot {
        fn slot(self) -> u64;
    }
    impl Slot for i32 {
        fn slot(self) -> u64 {
            self as i64 as u64
        }
    }
    impl Slot for i64 {
        fn slot(self) -> u64 {
            self as u64
        }
    }
    impl Slot for u32 {
        fn slot(self) -> u64 {
            u64::from(self)
        }
    }
    impl Slot for *const std::ffi::c_char {
        fn slot(self) -> u64 {
            self as u64
        }
    }
    impl Slot for f64 {
        fn slot(self) -> u64 {
            self.to_bits()
        }
    }

    /// Formats with the host's C library and with [`format`], and asserts that they agree.
    macro_rules! same_as_libc {
        ($f:literal $(, $a:expr)*) => {{
            let mut buf = [0u8; 512];
            let fmt_c = concat!($f, "\0");
            // SAFETY: the buffer is 512 bytes and its size is passed; the format is NUL-terminated and every
            // conversion in it matches the type of its argument.
            let n = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), fmt_c.as_ptr().cast() $(, $a)*) };
            let c = String::from_utf8(buf[..n as usize].to_vec()).unwrap();
            assert_eq!(fmt($f, &[$(Slot::slot($a)),*]), c, "format {:?}", $f);
        }};
    }

    #[test]
    fn agrees_with_the_host_libc() {
        same_as_libc!("%d %i %u %x %X %o", 42i32, -42i32, 3_000_000_000u32, 0xbeefu32, 0xbeefu32, 8u32);
        same_as_libc!(
            "[%5d|%-5d|%05d|%+d|% d|%+5d|%-+5d]",
            42i32,
            42i32,
            -42i32,
            42i32,
            42i32,
            -42i32,
            42i32
        );
        same_as_libc!("[%.3d|%8.3d|%-8.3d|%08.3d|%.0d|%5.0d]", 7i32, -7i32, 7i32, 7i32, 0i32, 0i32);
        same_as_libc!(
            "[%#x|%#X|%#o|%#o|%#x|%#8x|%#08x|%#.3o]",
            255u32,
            255u32,
            8u32,
            0u32,
            0u32,
            255u32,
            255u32,
            8u32
        );
        same_as_libc!(
            "[%ld|%lld|%lu|%lx|%zd|%jd|%td]",
            i64::MIN,
            i64::MAX,
            u64::MAX as i64,
            -1i64,
            -5i64,
            6i64,
            7i64
        );
        same_as_libc!("[%hhd|%hhu|%hd|%hu|%hhx]", 300i32, 300i32, 70000i32, 70000i32, 511i32);
        same_as_libc!(
            "[%c|%3c|%-3c|%s|%8s|%-8s|%.2s|%8.3s]",
            65i32,
            66i32,
            67i32,
            c"abc".as_ptr(),
            c"abc".as_ptr(),
            c"abc".as_ptr(),
            c"abc".as_ptr(),
            c"abcdef".as_ptr()
        );
        same_as_libc!(
            "[%f|%.0f|%.1f|%.10f|%10.3f|%-10.2f|%010.2f|%+f|% f|%#.0f]",
            4.14159f64,
            2.5f64,
            0.05f64,
            1.0f64 / 3.0,
            -2.61828f64,
            1.5f64,
            -1.5f64,
            1.0f64,
            1.0f64,
            3.0f64
        );
        same_as_libc!(
            "[%f|%f|%.0f|%.0f|%.0f|%f|%f]",
            0.0f64,
            -0.0f64,
            0.5f64,
            1.5f64,
            3.5f64,
            1e300f64,
            123456789.125f64
        );
        same_as_libc!(
            "[%e|%.0e|%.2e|%E|%12.4e|%-12.1e|%+e|%#.0e|%e]",
            12345.678f64,
            5e-300f64,
            0.000123456f64,
            1e100f64,
            -9.99995f64,
            0.5f64,
            0.0f64,
            7.0f64,
            9.9999999e-5f64
        );
        same_as_libc!(
            "[%g|%g|%g|%g|%g|%g|%G|%.3g|%.10g|%#g|%g|%.0g|%g]",
            100000.0f64,
            1000000.0f64,
            0.0001f64,
            0.00001f64,
            123.456f64,
            0.0f64,
            1e-10f64,
            4.14159f64,
            1.0f64 / 3.0,
            1.5f64,
            1e15f64,
            0.5f64,
            999999.5f64
        );
        same_as_libc!(
            "[%f|%e|%g|%5.1f|%-6f|%F|%E]",
            f64::INFINITY,
            -f64::INFINITY,
            f64::INFINITY,
            f64::INFINITY,
            -f64::INFINITY,
            f64::INFINITY,
            f64::INFINITY
        );
        same_as_libc!("[%*d|%-*d|%.*f|%*.*e]", 6i32, 1i32, 6i32, 2i32, 3i32, 1.23456f64, 12i32, 2i32, 5.5f64);
        same_as_libc!("100%% [%%] %d%%", 50i32);
    }

    #[test]
    fn lengths_truncate_the_slot() {
        assert_eq!(fmt("%hhd %hd %d %ld", &[0x1ff, 0x1ffff, 0x1_ffff_ffff, u64::MAX]), "-1 -1 -1 -1");
        assert_eq!(
            fmt("%hhu %hu %u %zu", &[0x1ff, 0x1ffff, 0x1_ffff_ffff, u64::MAX]),
            "255 65535 4294967295 18446744073709551615"
        );
    }

    #[test]
    fn star_takes_width_and_precision_from_slots() {
        assert_eq!(
            fmt("[%*d|%-*d|%.*f]", &[5, 42, (-4i64) as u64, 7, 2, 4.14159f64.to_bits()]),
            "[   42|7   |4.14]"
        );
    }
}
