//! The per-bin noise floor the detector measures speech against.
//!
//! Minimum statistics: in any second of audio, each frequency bin dips to the level of
//! whatever steady sound is underneath the speech, because speech keeps moving its energy
//! between bins and pausing. Taking the minimum over the second *before* a frame and over
//! the second *after* it, and keeping the larger of the two, means a steady sound that
//! starts (a test tone after speech) or stops is part of the floor from its first frame on
//! instead of looking like a one-second burst of speech while a causal tracker catches up.

/// For a frame-major matrix (`frames` rows of `lanes` values, one lane per frequency bin),
/// writes into `out[t][k]` the larger of `min(series[t - reach ..= t][k])` and
/// `min(series[t ..= t + reach][k])`, both windows clipped to the matrix.
///
/// Works on whole rows at a time so the inner loops run over contiguous bins and
/// vectorise; `ahead` is scratch of the same size.
pub(crate) fn two_sided_minimum(
    series: &[f32],
    lanes: usize,
    reach: usize,
    ahead: &mut Vec<f32>,
    out: &mut [f32],
) {
    assert_eq!(series.len(), out.len());
    assert!(lanes > 0 && series.len().is_multiple_of(lanes));
    let frames = series.len() / lanes;
    if frames == 0 {
        return;
    }
    forward_window_minimum(series, lanes, reach + 1, ahead, out);
    // `out` held scratch until now; it becomes the result row by row. Rows before `reach`
    // look back to the start of the signal, tracked as a running minimum in the row
    // about to be overwritten.
    let row = |t: usize| t * lanes..(t + 1) * lanes;
    for t in 0..frames {
        if t < reach {
            if t > 0 {
                let (done, rest) = out.split_at_mut(t * lanes);
                let previous = &done[row(t - 1)];
                for ((slot, &prev), &value) in
                    rest[..lanes].iter_mut().zip(previous).zip(&series[row(t)])
                {
                    *slot = prev.min(value);
                }
            } else {
                out[row(0)].copy_from_slice(&series[row(0)]);
            }
            continue;
        }
        // The forward window starting at t - reach is exactly [t - reach, t].
        out[row(t)].copy_from_slice(&ahead[row(t - reach)]);
    }
    // Rows < reach now hold running minima, later rows the backward window; fold in the
    // forward window last. Done in a second pass because the running minimum above reads
    // the previous row of `out` before it is combined.
    for (slot, &forward) in out.iter_mut().zip(ahead.iter()) {
        *slot = slot.max(forward);
    }
}

/// `ahead[t][k] = min(series[t .. min(t + width, frames)][k])` in O(frames) per lane with
/// the van Herk / Gil-Werman block trick: within blocks of `width` rows keep prefix and
/// suffix minima, and any window is one suffix plus one prefix. `prefix` is scratch.
fn forward_window_minimum(
    series: &[f32],
    lanes: usize,
    width: usize,
    ahead: &mut Vec<f32>,
    prefix: &mut [f32],
) {
    let frames = series.len() / lanes;
    let row = |t: usize| t * lanes..(t + 1) * lanes;
    ahead.clear();
    ahead.resize(series.len(), f32::INFINITY);
    // Suffix minima, within each block, go into `ahead`; prefix minima into `prefix`.
    for block in (0..frames).step_by(width) {
        let end = (block + width).min(frames);
        prefix[row(block)].copy_from_slice(&series[row(block)]);
        for t in block + 1..end {
            let (done, rest) = prefix.split_at_mut(t * lanes);
            for ((slot, &prev), &value) in rest[..lanes]
                .iter_mut()
                .zip(&done[row(t - 1)])
                .zip(&series[row(t)])
            {
                *slot = prev.min(value);
            }
        }
        ahead[row(end - 1)].copy_from_slice(&series[row(end - 1)]);
        for t in (block..end - 1).rev() {
            let (head, tail) = ahead.split_at_mut((t + 1) * lanes);
            for ((slot, &next), &value) in head[t * lanes..]
                .iter_mut()
                .zip(&tail[..lanes])
                .zip(&series[row(t)])
            {
                *slot = next.min(value);
            }
        }
    }
    // A window starting at t ends at t + width - 1 (clipped to the signal). When that
    // lies in t's own block the suffix already is the window; otherwise the window is
    // t's suffix plus the next block's prefix up to its end.
    for t in 0..frames {
        let last = (t + width - 1).min(frames - 1);
        if last / width == t / width {
            continue;
        }
        for (slot, &value) in ahead[row(t)].iter_mut().zip(&prefix[row(last)]) {
            *slot = slot.min(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(series: &[f32], reach: usize) -> Vec<f32> {
        (0..series.len())
            .map(|t| {
                let behind = series[t.saturating_sub(reach)..=t]
                    .iter()
                    .copied()
                    .fold(f32::INFINITY, f32::min);
                let ahead = series[t..=(t + reach).min(series.len() - 1)]
                    .iter()
                    .copied()
                    .fold(f32::INFINITY, f32::min);
                behind.max(ahead)
            })
            .collect()
    }

    #[test]
    fn matches_the_definition_on_irregular_series_in_every_lane() {
        let mut state = 7u32;
        let lanes = 3;
        for frames in [1usize, 2, 5, 17, 100, 257] {
            let matrix: Vec<f32> = (0..frames * lanes)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (state >> 16) as f32
                })
                .collect();
            for reach in [0usize, 1, 3, 10, 300] {
                let mut out = vec![0.0; matrix.len()];
                two_sided_minimum(&matrix, lanes, reach, &mut Vec::new(), &mut out);
                for lane in 0..lanes {
                    let series: Vec<f32> =
                        matrix.iter().skip(lane).step_by(lanes).copied().collect();
                    let got: Vec<f32> = out.iter().skip(lane).step_by(lanes).copied().collect();
                    assert_eq!(
                        got,
                        naive(&series, reach),
                        "frames {frames} reach {reach} lane {lane}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_step_up_joins_the_floor_at_once() {
        let mut series = vec![1.0f32; 50];
        series.extend(std::iter::repeat_n(100.0, 50));
        let mut out = vec![0.0; 100];
        two_sided_minimum(&series, 1, 10, &mut Vec::new(), &mut out);
        assert_eq!(out[49], 1.0);
        assert_eq!(
            out[50], 100.0,
            "the frame where the loud steady part starts"
        );
        assert_eq!(out[55], 100.0);
    }
}
