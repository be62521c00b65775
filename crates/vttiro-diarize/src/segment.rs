//! Where embeddings are taken and how window labels become speaker turns.
//!
//! Speech regions are first cut at short quiet runs inside them (people rarely change
//! turns without a breath), so most windows hold one speaker; windows then slide inside
//! each piece. After clustering, a Viterbi pass over each piece's windows trades
//! similarity against a switch penalty, which removes sub-second flicker while keeping real
//! changes, and each frame takes the label of the window whose centre is nearest.

use vttiro_core::{SpeechRegion, SAMPLE_RATE};

/// Samples per analysis frame for the quiet-run search (10 ms).
const FRAME: usize = SAMPLE_RATE as usize / 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub piece: usize,
    pub start: usize,
    pub end: usize,
}

impl Window {
    pub fn centre(&self) -> usize {
        (self.start + self.end) / 2
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

#[derive(Debug, Clone, Copy)]
pub struct WindowPlan {
    pub window: usize,
    pub hop: usize,
    /// A quiet run at least this long splits a speech region into pieces.
    pub min_quiet: usize,
    /// Pieces shorter than this join a neighbour no further than `max_merge_gap` away.
    pub min_piece: usize,
    pub max_merge_gap: usize,
    /// Pieces this many dB below the duration-weighted median piece level are background.
    pub background_db: f32,
}

impl Default for WindowPlan {
    fn default() -> Self {
        WindowPlan {
            window: 24_000,
            hop: 12_000,
            min_quiet: 2 * SAMPLE_RATE as usize / 10,
            min_piece: 4 * SAMPLE_RATE as usize / 10,
            max_merge_gap: SAMPLE_RATE as usize,
            background_db: 18.0,
        }
    }
}

/// Splits each speech region at quiet runs (10-ms frames more than 30 dB below the
/// region's loud frames, its 90th percentile of frame energy), which are left out, trims
/// quiet edges, and drops background pieces (see [`drop_background`]).
pub fn pieces(samples: &[f32], speech: &[SpeechRegion], plan: &WindowPlan) -> Vec<Piece> {
    let mut out = Vec::new();
    for region in speech {
        let end = region.end.min(samples.len());
        if region.start >= end {
            continue;
        }
        let audio = &samples[region.start..end];
        let energies: Vec<f32> = audio
            .chunks(FRAME)
            .map(|f| f.iter().map(|x| x * x).sum::<f32>() / f.len() as f32)
            .collect();
        let mut sorted = energies.clone();
        sorted.sort_by(f32::total_cmp);
        let loud = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)];
        let quiet_below = loud * 1e-3;
        let min_frames = plan.min_quiet.div_ceil(FRAME);
        let mut cuts = Vec::new();
        let mut run_start = None;
        for (i, &e) in energies
            .iter()
            .chain(std::iter::once(&f32::INFINITY))
            .enumerate()
        {
            match (e < quiet_below, run_start) {
                (true, None) => run_start = Some(i),
                (false, Some(s)) => {
                    if i - s >= min_frames && s > 0 && i < energies.len() {
                        cuts.push((region.start + s * FRAME, region.start + i * FRAME));
                    }
                    run_start = None;
                }
                _ => {}
            }
        }
        let mut region_pieces = Vec::new();
        let mut piece_start = region.start;
        for (quiet_start, quiet_end) in cuts {
            region_pieces.push(Piece {
                start: piece_start,
                end: quiet_start,
            });
            piece_start = quiet_end;
        }
        region_pieces.push(Piece {
            start: piece_start,
            end,
        });
        // VAD pads its regions; the padding is not anyone's speech, so quiet frames at the
        // edges of each piece are trimmed off (an all-quiet piece is left as it is).
        let is_quiet = |frame: usize| energies.get(frame).is_none_or(|&e| e < quiet_below);
        for piece in &mut region_pieces {
            let mut first = (piece.start - region.start) / FRAME;
            let mut last = (piece.end - 1 - region.start) / FRAME;
            while first < last && is_quiet(first) {
                first += 1;
            }
            while last > first && is_quiet(last) {
                last -= 1;
            }
            if first == last && is_quiet(first) {
                continue;
            }
            piece.start = piece.start.max(region.start + first * FRAME);
            piece.end = piece.end.min(region.start + (last + 1) * FRAME);
        }
        out.extend(region_pieces);
    }
    let pieces = drop_background(samples, out, plan.background_db);
    merge_short(pieces, plan.min_piece, plan.max_merge_gap)
}

/// Drops pieces far quieter than the recording's typical speech: crosstalk on a phone
/// line, a television in the next room. VAD rightly calls them voice, but they are not
/// the conversation, and as clusters of their own they would become phantom speakers.
fn drop_background(samples: &[f32], pieces: Vec<Piece>, below_db: f32) -> Vec<Piece> {
    let level = |p: &Piece| {
        let audio = &samples[p.start..p.end];
        let power = audio.iter().map(|x| x * x).sum::<f32>() / audio.len().max(1) as f32;
        10.0 * power.max(1e-12).log10()
    };
    let mut levels: Vec<(f32, usize)> =
        pieces.iter().map(|p| (level(p), p.end - p.start)).collect();
    levels.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: usize = levels.iter().map(|l| l.1).sum();
    let mut seen = 0;
    let Some(median) = levels.iter().find_map(|&(db, len)| {
        seen += len;
        (seen * 2 >= total).then_some(db)
    }) else {
        return pieces;
    };
    pieces
        .into_iter()
        .filter(|p| level(p) >= median - below_db)
        .collect()
}

/// Joins pieces too short to embed well to the nearer neighbour when only a short pause
/// separates them (a clipped syllable belongs to the words around it). A short piece
/// standing alone, like a lone "okay" after a long silence, stays: merging it across the
/// silence would make a window that holds two voices.
fn merge_short(mut pieces: Vec<Piece>, min_len: usize, max_gap: usize) -> Vec<Piece> {
    let mut index = 0;
    while index < pieces.len() {
        if pieces[index].end - pieces[index].start >= min_len {
            index += 1;
            continue;
        }
        let gap_before = index
            .checked_sub(1)
            .map(|b| pieces[index].start - pieces[b].end)
            .filter(|&gap| gap <= max_gap);
        let gap_after = pieces
            .get(index + 1)
            .map(|a| a.start - pieces[index].end)
            .filter(|&gap| gap <= max_gap);
        match (gap_before, gap_after) {
            (Some(before), after) if after.is_none_or(|a| before <= a) => {
                pieces[index - 1].end = pieces[index].end;
                pieces.remove(index);
                // The grown neighbour may still be short; look at it again.
                index -= 1;
            }
            (_, Some(_)) => {
                pieces[index + 1].start = pieces[index].start;
                pieces.remove(index);
            }
            _ => index += 1,
        }
    }
    pieces
}

/// Sliding windows inside each piece; a piece shorter than a window is one window, and
/// the last window of a longer piece is aligned to the piece's end.
pub fn windows(pieces: &[Piece], plan: &WindowPlan) -> Vec<Window> {
    let mut out = Vec::new();
    for (index, piece) in pieces.iter().enumerate() {
        let len = piece.end - piece.start;
        if len <= plan.window {
            out.push(Window {
                piece: index,
                start: piece.start,
                end: piece.end,
            });
            continue;
        }
        let mut start = piece.start;
        loop {
            let end = (start + plan.window).min(piece.end);
            out.push(Window {
                piece: index,
                start: end - plan.window,
                end,
            });
            if end == piece.end {
                break;
            }
            start += plan.hop;
        }
    }
    out
}

/// Per-piece Viterbi over window labels: `scores[w][k]` is window `w`'s similarity to
/// speaker `k`; switching speaker inside a piece costs `switch_penalty`.
pub fn smooth(windows: &[Window], scores: &[Vec<f32>], switch_penalty: f32) -> Vec<usize> {
    let mut labels = vec![0usize; windows.len()];
    let mut start = 0;
    while start < windows.len() {
        let piece = windows[start].piece;
        let end = windows[start..]
            .iter()
            .position(|w| w.piece != piece)
            .map_or(windows.len(), |p| start + p);
        let k = scores[start].len();
        let mut total: Vec<f32> = scores[start].clone();
        let mut back: Vec<Vec<usize>> = Vec::with_capacity(end - start);
        back.push((0..k).collect());
        for scores_w in &scores[start + 1..end] {
            let (best_prev, best_total) = total
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, &t)| (i, t))
                .unwrap_or((0, 0.0));
            let mut next = vec![0.0; k];
            let mut from = vec![0; k];
            for s in 0..k {
                let stay = total[s];
                let switch = best_total - switch_penalty;
                if stay >= switch {
                    next[s] = stay + scores_w[s];
                    from[s] = s;
                } else {
                    next[s] = switch + scores_w[s];
                    from[s] = best_prev;
                }
            }
            total = next;
            back.push(from);
        }
        let mut state = total
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        for w in (start..end).rev() {
            labels[w] = state;
            state = back[w - start][state];
        }
        start = end;
    }
    labels
}

/// A stretch of audio given to one speaker, in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleTurn {
    pub start: usize,
    pub end: usize,
    pub speaker: usize,
}

/// Turns from labelled windows: inside a piece, the boundary between two consecutive
/// windows `w`, `w + 1` with different labels is `boundaries[&w]` when given, else halfway
/// between their centres.
pub fn turns(
    pieces: &[Piece],
    windows: &[Window],
    labels: &[usize],
    boundaries: &std::collections::HashMap<usize, usize>,
) -> Vec<SampleTurn> {
    let mut out: Vec<SampleTurn> = Vec::new();
    // `windows` lists each piece's windows as one run, in piece order.
    let mut next_window = 0;
    for (index, piece) in pieces.iter().enumerate() {
        let first = next_window;
        while next_window < windows.len() && windows[next_window].piece == index {
            next_window += 1;
        }
        let mut cursor = piece.start;
        for w in first..next_window {
            let next = w + 1;
            let end = if next == next_window {
                piece.end
            } else if labels[next] != labels[w] {
                boundaries
                    .get(&w)
                    .copied()
                    .unwrap_or((windows[w].centre() + windows[next].centre()) / 2)
                    .clamp(cursor, piece.end)
            } else {
                continue;
            };
            out.push(SampleTurn {
                start: cursor,
                end,
                speaker: labels[w],
            });
            cursor = end;
        }
    }
    // Adjacent pieces of one speaker separated by a short quiet run form one turn.
    let mut merged: Vec<SampleTurn> = Vec::with_capacity(out.len());
    for turn in out {
        match merged.last_mut() {
            Some(last)
                if last.speaker == turn.speaker
                    && turn.start.saturating_sub(last.end) < SAMPLE_RATE as usize / 2 =>
            {
                last.end = turn.end
            }
            _ => merged.push(turn),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(len: usize) -> Vec<f32> {
        (0..len).map(|n| (n as f32 * 0.05).sin() * 0.3).collect()
    }

    #[test]
    fn a_quiet_run_inside_a_region_splits_it_and_edges_stay_put() {
        let mut samples = tone(16_000);
        samples.extend(vec![0.0; 4_800]);
        samples.extend(tone(16_000));
        let speech = [SpeechRegion {
            start: 0,
            end: samples.len(),
        }];
        let plan = WindowPlan::default();
        let found = pieces(&samples, &speech, &plan);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].start, 0);
        assert!((found[0].end as i64 - 16_000).abs() <= 160, "{found:?}");
        assert!((found[1].start as i64 - 20_800).abs() <= 160, "{found:?}");
        assert_eq!(found[1].end, samples.len());
    }

    #[test]
    fn windows_cover_each_piece_and_end_on_its_edge() {
        let plan = WindowPlan::default();
        let pieces = [
            Piece {
                start: 0,
                end: 10_000,
            },
            Piece {
                start: 20_000,
                end: 70_000,
            },
        ];
        let w = windows(&pieces, &plan);
        assert_eq!(
            w[0],
            Window {
                piece: 0,
                start: 0,
                end: 10_000
            }
        );
        assert_eq!(w[1].start, 20_000);
        assert_eq!(w.last().unwrap().end, 70_000);
        assert!(w[1..].iter().all(|w| w.len() == plan.window));
        assert!(w[1..]
            .windows(2)
            .all(|p| p[1].start - p[0].start <= plan.hop));
    }

    #[test]
    fn a_single_odd_window_does_not_flip_the_speaker_but_a_run_does() {
        let windows: Vec<Window> = (0..8)
            .map(|i| Window {
                piece: 0,
                start: i * 100,
                end: i * 100 + 200,
            })
            .collect();
        let a = vec![0.9, 0.5];
        let b = vec![0.5, 0.9];
        let blip = vec![
            a.clone(),
            a.clone(),
            b.clone(),
            a.clone(),
            a.clone(),
            a.clone(),
            a.clone(),
            a.clone(),
        ];
        assert_eq!(smooth(&windows, &blip, 0.6), vec![0; 8]);
        let change = vec![
            a.clone(),
            a.clone(),
            a.clone(),
            b.clone(),
            b.clone(),
            b.clone(),
            b.clone(),
            b.clone(),
        ];
        assert_eq!(smooth(&windows, &change, 0.6), vec![0, 0, 0, 1, 1, 1, 1, 1]);
    }
}
