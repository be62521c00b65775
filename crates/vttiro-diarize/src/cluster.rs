//! Grouping embeddings into speakers: average-linkage agglomerative clustering on cosine
//! similarity, stopped by a similarity threshold (the automatic speaker count) or by the
//! caller's count constraints, then a few rounds of centroid reassignment so each window
//! ends with the speaker it is most similar to rather than the one it merged into first.

/// How many speakers the caller allows. `exact` wins over the bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeakerCount {
    pub exact: Option<usize>,
    pub min: usize,
    pub max: usize,
}

impl Default for SpeakerCount {
    fn default() -> Self {
        SpeakerCount {
            exact: None,
            min: 1,
            max: 20,
        }
    }
}

impl SpeakerCount {
    fn bounds(&self, items: usize) -> (usize, usize) {
        let (min, max) = match self.exact {
            Some(n) => (n, n),
            None => (self.min.max(1), self.max.max(self.min.max(1))),
        };
        (min.min(items).max(1), max.min(items).max(1))
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Labels `0..k` for `embeddings`, numbered by first appearance. `threshold` is the
/// average cosine similarity below which two clusters are taken to be different speakers.
pub fn cluster(embeddings: &[Vec<f32>], threshold: f32, count: SpeakerCount) -> Vec<usize> {
    let n = embeddings.len();
    if n == 0 {
        return vec![];
    }
    let (min_k, max_k) = count.bounds(n);
    let mut labels = agglomerate(embeddings, threshold, min_k, max_k);
    for _ in 0..4 {
        let k = labels.iter().max().map_or(0, |m| m + 1);
        let centroids = centroids(embeddings, &labels, k);
        let mut changed = false;
        for (label, e) in labels.iter_mut().zip(embeddings) {
            let best = nearest(e, &centroids);
            if best != *label {
                *label = best;
                changed = true;
            }
        }
        labels = renumber(&labels);
        if !changed {
            break;
        }
    }
    labels
}

/// Mean of each cluster's members (not normalised; cosine ignores length).
pub fn centroids(embeddings: &[Vec<f32>], labels: &[usize], k: usize) -> Vec<Vec<f32>> {
    let dim = embeddings.first().map_or(0, Vec::len);
    let mut sums = vec![vec![0.0f32; dim]; k];
    for (e, &label) in embeddings.iter().zip(labels) {
        for (s, x) in sums[label].iter_mut().zip(e) {
            *s += x;
        }
    }
    sums
}

pub fn nearest(e: &[f32], centroids: &[Vec<f32>]) -> usize {
    centroids
        .iter()
        .enumerate()
        .filter(|(_, c)| c.iter().any(|&x| x != 0.0))
        .max_by(|a, b| cosine(e, a.1).total_cmp(&cosine(e, b.1)))
        .map_or(0, |(i, _)| i)
}

/// Renumbers labels by first appearance, dropping unused numbers.
pub fn renumber(labels: &[usize]) -> Vec<usize> {
    let mut map = std::collections::HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect()
}

/// Average-linkage agglomeration with Lance–Williams updates on a dense similarity matrix.
fn agglomerate(embeddings: &[Vec<f32>], threshold: f32, min_k: usize, max_k: usize) -> Vec<usize> {
    let n = embeddings.len();
    let mut sim = vec![0.0f32; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let s = cosine(&embeddings[i], &embeddings[j]);
            sim[i * n + j] = s;
            sim[j * n + i] = s;
        }
    }
    let mut size = vec![1usize; n];
    let mut alive = vec![true; n];
    let mut parent: Vec<usize> = (0..n).collect();
    let mut clusters = n;
    while clusters > min_k {
        let mut best = (f32::NEG_INFINITY, 0, 0);
        for i in 0..n {
            if !alive[i] {
                continue;
            }
            let row = &sim[i * n..(i + 1) * n];
            for j in i + 1..n {
                if alive[j] && row[j] > best.0 {
                    best = (row[j], i, j);
                }
            }
        }
        let (similarity, a, b) = best;
        if similarity < threshold && clusters <= max_k {
            break;
        }
        // Merge b into a.
        let (na, nb) = (size[a] as f32, size[b] as f32);
        for k in 0..n {
            if alive[k] && k != a && k != b {
                let merged = (na * sim[a * n + k] + nb * sim[b * n + k]) / (na + nb);
                sim[a * n + k] = merged;
                sim[k * n + a] = merged;
            }
        }
        size[a] += size[b];
        alive[b] = false;
        parent[b] = a;
        clusters -= 1;
    }
    let root = |mut i: usize| {
        while parent[i] != i {
            i = parent[i];
        }
        i
    };
    let roots: Vec<usize> = (0..n).map(root).collect();
    renumber(&roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn around(centre: &[f32], jitter: f32, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        centre
            .iter()
            .map(|&c| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                c + jitter * u
            })
            .collect()
    }

    fn three_groups() -> (Vec<Vec<f32>>, Vec<usize>) {
        let centres = [
            vec![1.0, 0.0, 0.0, 0.2],
            vec![0.0, 1.0, 0.0, 0.2],
            vec![0.0, 0.0, 1.0, 0.2],
        ];
        let truth: Vec<usize> = (0..30).map(|i| (i / 3) % 3).collect();
        let embeddings = truth
            .iter()
            .enumerate()
            .map(|(i, &t)| around(&centres[t], 0.3, i as u64))
            .collect();
        (embeddings, truth)
    }

    #[test]
    fn separable_groups_are_found_without_being_told_how_many() {
        let (embeddings, truth) = three_groups();
        let labels = cluster(&embeddings, 0.5, SpeakerCount::default());
        assert_eq!(labels, truth);
    }

    #[test]
    fn count_constraints_override_the_threshold() {
        let (embeddings, _) = three_groups();
        let two = cluster(
            &embeddings,
            0.5,
            SpeakerCount {
                exact: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(two.iter().max(), Some(&1));
        let at_least_four = cluster(
            &embeddings,
            0.5,
            SpeakerCount {
                exact: None,
                min: 4,
                max: 6,
            },
        );
        assert!(*at_least_four.iter().max().unwrap() >= 3);
        let at_most_one = cluster(
            &embeddings,
            0.5,
            SpeakerCount {
                exact: None,
                min: 1,
                max: 1,
            },
        );
        assert!(at_most_one.iter().all(|&l| l == 0));
    }

    #[test]
    fn labels_are_numbered_by_first_appearance() {
        assert_eq!(renumber(&[5, 5, 2, 7, 2]), vec![0, 0, 1, 2, 1]);
    }
}
