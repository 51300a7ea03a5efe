//! How the register-tiled kernels cut their work: near-equal tiles of rows or positions, and
//! blocks of filters one or two 16-lane vectors wide (with the lane mask of the last vector).

/// Near-equal tiles `(start, len)` of at most `max` covering `0..n`.
pub fn tiles(n: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = n.div_ceil(max.max(1)).max(1);
    let (base, extra) = (n / count, n % count);
    (0..count).scan(0, move |start, t| {
        let len = base + (t < extra) as usize;
        let s = *start;
        *start += len;
        Some((s, len))
    })
}

/// Filter blocks `(first filter, vectors, mask of the last vector)` covering `f` filters.
pub fn blocks(f: usize) -> impl Iterator<Item = (usize, usize, u16)> {
    let mut f0 = 0;
    std::iter::from_fn(move || {
        if f0 >= f {
            return None;
        }
        let rem = f - f0;
        let v = if rem > 16 { 2 } else { 1 };
        let lanes = rem.min(16 * v) - 16 * (v - 1);
        let mask = if lanes == 16 { u16::MAX } else { (1u16 << lanes) - 1 };
        let b = (f0, v, mask);
        f0 += 16 * v;
        Some(b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_and_blocks_cover_exactly() {
        for n in [1, 5, 14, 15, 26, 30, 100] {
            let t: Vec<_> = tiles(n, 14).collect();
            assert_eq!(t.iter().map(|x| x.1).sum::<usize>(), n);
            assert!(t.iter().all(|x| x.1 <= 14 && x.1 >= 1));
            assert!(t.windows(2).all(|p| p[0].0 + p[0].1 == p[1].0));
        }
        let b: Vec<_> = blocks(6).collect();
        assert_eq!(b, vec![(0, 1, 0b11_1111)]);
        let b: Vec<_> = blocks(120).collect();
        assert_eq!(b, vec![(0, 2, 0xFFFF), (32, 2, 0xFFFF), (64, 2, 0xFFFF), (96, 2, 0x00FF)]);
        let b: Vec<_> = blocks(48).collect();
        assert_eq!(b, vec![(0, 2, 0xFFFF), (32, 1, 0xFFFF)]);
    }
}
