//! ggml's block quantisation formats, byte for byte as ggml lays them out (the reference
//! `quantize_row_*_ref` routines whisper.cpp's own `quantize` tool uses), so files written
//! here load in any whisper.cpp and quantise identically to its tool.

use half::f16;

/// Values per quantisation block in both formats.
pub const BLOCK_LEN: usize = 32;
/// `ggml_half d` + 32 × `int8_t`.
pub const Q8_0_BLOCK_BYTES: usize = 2 + BLOCK_LEN;
/// `ggml_half d` + `uint8_t qh[4]` (fifth bits) + 16 bytes of packed low nibbles.
pub const Q5_0_BLOCK_BYTES: usize = 2 + 4 + BLOCK_LEN / 2;

/// Appends `values` (a whole number of blocks) as q8_0: per block a scale
/// `d = max|x| / 127` and `round(x / d)`.
pub fn quantize_q8_0(values: &[f32], out: &mut Vec<u8>) {
    debug_assert!(values.len().is_multiple_of(BLOCK_LEN));
    out.reserve(values.len() / BLOCK_LEN * Q8_0_BLOCK_BYTES);
    for block in values.chunks_exact(BLOCK_LEN) {
        let amax = block.iter().fold(0.0f32, |acc, v| acc.max(v.abs()));
        let d = amax / 127.0;
        let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        // f32::round rounds half away from zero, as C's roundf does.
        out.extend(block.iter().map(|v| (v * inverse).round() as i8 as u8));
    }
}

/// Appends `values` (a whole number of blocks) as q5_0: the scale is the signed value of
/// largest magnitude divided by -16, each value becomes an unsigned 5-bit code; the low
/// nibbles of values j and j+16 share byte j, and bit j of `qh` is the fifth bit of value j.
pub fn quantize_q5_0(values: &[f32], out: &mut Vec<u8>) {
    debug_assert!(values.len().is_multiple_of(BLOCK_LEN));
    out.reserve(values.len() / BLOCK_LEN * Q5_0_BLOCK_BYTES);
    let half_block = BLOCK_LEN / 2;
    for block in values.chunks_exact(BLOCK_LEN) {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in block {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -16.0;
        let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
        // ggml truncates toward zero through int8_t, then caps at 31.
        let code = |v: f32| ((v * inverse + 16.5) as i8 as u8).min(31);
        let mut qh = 0u32;
        let mut qs = [0u8; BLOCK_LEN / 2];
        for j in 0..half_block {
            let low = code(block[j]);
            let high = code(block[j + half_block]);
            qs[j] = (low & 0x0f) | ((high & 0x0f) << 4);
            qh |= u32::from((low & 0x10) >> 4) << j;
            qh |= u32::from((high & 0x10) >> 4) << (j + half_block);
        }
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend_from_slice(&qh.to_le_bytes());
        out.extend_from_slice(&qs);
    }
}

/// The values a q8_0 buffer stands for (ggml's `dequantize_row_q8_0`).
pub fn dequantize_q8_0(bytes: &[u8]) -> Vec<f32> {
    let mut values = Vec::with_capacity(bytes.len() / Q8_0_BLOCK_BYTES * BLOCK_LEN);
    for block in bytes.chunks_exact(Q8_0_BLOCK_BYTES) {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        values.extend(block[2..].iter().map(|&q| f32::from(q as i8) * d));
    }
    values
}

/// The values a q5_0 buffer stands for (ggml's `dequantize_row_q5_0`).
pub fn dequantize_q5_0(bytes: &[u8]) -> Vec<f32> {
    let half_block = BLOCK_LEN / 2;
    let mut values = vec![0.0f32; bytes.len() / Q5_0_BLOCK_BYTES * BLOCK_LEN];
    for (block, out) in bytes
        .chunks_exact(Q5_0_BLOCK_BYTES)
        .zip(values.chunks_exact_mut(BLOCK_LEN))
    {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
        let qs = &block[6..];
        for j in 0..half_block {
            let high0 = (((qh >> j) << 4) & 0x10) as u8;
            let high1 = ((qh >> (j + 12)) & 0x10) as u8;
            let code0 = i32::from((qs[j] & 0x0f) | high0) - 16;
            let code1 = i32::from((qs[j] >> 4) | high1) - 16;
            out[j] = code0 as f32 * d;
            out[j + half_block] = code1 as f32 * d;
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Vec<f32> {
        (0..BLOCK_LEN * 4)
            .map(|i| ((i as f32) * 0.37).sin() * (1.0 + i as f32 / 40.0))
            .collect()
    }

    #[test]
    fn q8_0_block_layout_and_round_trip() {
        let mut block = vec![0.0f32; BLOCK_LEN];
        // Exactly representable so the expected codes do not hinge on rounding noise.
        block[0] = 127.0;
        block[1] = -63.5;
        block[5] = 0.6;
        let mut bytes = Vec::new();
        quantize_q8_0(&block, &mut bytes);
        assert_eq!(bytes.len(), Q8_0_BLOCK_BYTES);
        assert_eq!(f16::from_le_bytes([bytes[0], bytes[1]]), f16::from_f32(1.0));
        assert_eq!(bytes[2] as i8, 127);
        // -63.5 rounds away from zero.
        assert_eq!(bytes[3] as i8, -64);
        assert_eq!(bytes[7] as i8, 1);
        assert!(bytes[4..7].iter().all(|&b| b == 0));

        let values = ramp();
        let mut packed = Vec::new();
        quantize_q8_0(&values, &mut packed);
        let restored = dequantize_q8_0(&packed);
        for (block, restored) in values.chunks(BLOCK_LEN).zip(restored.chunks(BLOCK_LEN)) {
            let amax = block.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            for (a, b) in block.iter().zip(restored) {
                assert!((a - b).abs() <= amax / 127.0 * 0.51 + 1e-3, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn q5_0_block_layout_and_round_trip() {
        let mut block = vec![0.0f32; BLOCK_LEN];
        block[0] = -1.6; // the extreme: d = -1.6 / -16 = 0.1, code 0
        block[16] = 1.5; // code round(1.5/0.1 + 16) = 31, fifth bit set
        block[3] = 0.05; // 0.5 + 16.5 = 17 -> fifth bit set, low nibble 1
        let mut bytes = Vec::new();
        quantize_q5_0(&block, &mut bytes);
        assert_eq!(bytes.len(), Q5_0_BLOCK_BYTES);
        assert_eq!(f16::from_le_bytes([bytes[0], bytes[1]]), f16::from_f32(0.1));
        let qh = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        assert_eq!(qh & 1, 0, "code 0 has no fifth bit");
        assert_eq!((qh >> 16) & 1, 1, "code 31 sets bit 16");
        assert_eq!((qh >> 3) & 1, 1);
        let qs = &bytes[6..];
        assert_eq!(
            qs[0],
            0x0f << 4,
            "value 0 -> nibble 0, value 16 -> nibble 15"
        );
        assert_eq!(qs[3] & 0x0f, 1);
        // zero maps to code 16: fifth bit set, nibble 0
        assert_eq!(qs[1], 0);
        assert_eq!((qh >> 1) & 1, 1);

        let values = ramp();
        let mut packed = Vec::new();
        quantize_q5_0(&values, &mut packed);
        let restored = dequantize_q5_0(&packed);
        for (block, restored) in values.chunks(BLOCK_LEN).zip(restored.chunks(BLOCK_LEN)) {
            let amax = block.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            for (a, b) in block.iter().zip(restored) {
                assert!((a - b).abs() <= amax / 16.0 * 0.51 + 1e-3, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn all_zero_blocks_stay_zero() {
        let zeros = vec![0.0f32; BLOCK_LEN];
        let mut q8 = Vec::new();
        quantize_q8_0(&zeros, &mut q8);
        assert!(dequantize_q8_0(&q8).iter().all(|&v| v == 0.0));
        let mut q5 = Vec::new();
        quantize_q5_0(&zeros, &mut q5);
        assert!(dequantize_q5_0(&q5).iter().all(|&v| v == 0.0));
    }
}
