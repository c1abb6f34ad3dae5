//! The statistics of a comparison check: the Mann–Whitney U test (two-sided, as SciPy's
//! `mannwhitneyu` computes it: the exact distribution when one sample has at most 8 values and
//! there are no ties, else the normal approximation with tie and continuity corrections),
//! outliers beyond 3 × IQR removed, and medians.
//!
//! Invariants: pure and total: empty or non-finite input never panics (non-finite values are
//! dropped); a p-value is always in [0, 1].

/// The result of one Mann–Whitney U test of `green` against `blue`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UTest {
    /// U of the first sample (green): the number of (green, blue) pairs where green is larger,
    /// ties counting one half.
    pub u: f64,
    /// The two-sided p-value.
    pub p: f64,
    /// The exact distribution was used (else the normal approximation).
    pub exact: bool,
}

/// The largest sample the exact distribution is computed for on its larger side (the smaller
/// side has at most 8 values); beyond it the normal approximation is used (SciPy computes the
/// exact distribution for any size there; at 200 values the two agree to three decimals, and the
/// recurrence's cost grows with the square of the larger side).
const EXACT_MAX_OTHER: usize = 200;

/// The finite values of `values`.
pub fn finite(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|v| v.is_finite()).collect()
}

/// The `q` quantile (0..=1) of sorted `sorted`, interpolated linearly between ranks (NumPy's
/// default); `None` for an empty sample.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// The median of `values` (non-finite values dropped).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = finite(values);
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
}

/// `values` without the outliers beyond 3 × IQR of the quartiles (non-finite values dropped);
/// fewer than 4 values are kept as they are.
pub fn without_outliers(values: &[f64]) -> Vec<f64> {
    let mut sorted = finite(values);
    if sorted.len() < 4 {
        return sorted;
    }
    sorted.sort_by(f64::total_cmp);
    let (Some(q1), Some(q3)) = (quantile(&sorted, 0.25), quantile(&sorted, 0.75)) else { return sorted };
    let iqr = q3 - q1;
    let (lo, hi) = (q1 - 3.0 * iqr, q3 + 3.0 * iqr);
    finite(values).into_iter().filter(|v| *v >= lo && *v <= hi).collect()
}

/// Average ranks (1-based) of `values`, ties sharing the mean of their ranks, and Σ(t³ − t) over
/// the groups of ties.
fn ranks(values: &[f64]) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; values.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &order[i..=j] {
            ranks[*k] = rank;
        }
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    (ranks, ties)
}

/// The two-sided Mann–Whitney U test of `green` against `blue`; `None` when a side is empty.
pub fn mann_whitney(green: &[f64], blue: &[f64]) -> Option<UTest> {
    let (x, y) = (finite(green), finite(blue));
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let all: Vec<f64> = x.iter().chain(y.iter()).copied().collect();
    let (r, ties) = ranks(&all);
    let r1: f64 = r[..n1].iter().sum();
    let (f1, f2) = (n1 as f64, n2 as f64);
    let u1 = r1 - f1 * (f1 + 1.0) / 2.0;
    let u2 = f1 * f2 - u1;
    let big = u1.max(u2);
    let exact = (n1 <= 8 || n2 <= 8) && ties == 0.0 && n1.max(n2) <= EXACT_MAX_OTHER;
    let p = if exact {
        2.0 * exact_sf(big.round() as usize, n1, n2)
    } else {
        let n = f1 + f2;
        let mu = f1 * f2 / 2.0;
        let var = f1 * f2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
        if var <= 0.0 {
            1.0
        } else {
            let z = (big - mu - 0.5) / var.sqrt();
            2.0 * normal_sf(z)
        }
    };
    Some(UTest { u: u1, p: p.clamp(0.0, 1.0), exact })
}

/// P(U ≥ u) under the null hypothesis, for samples of `n1` and `n2` values without ties: the
/// number of arrangements giving each U, by the recurrence f(i, j, u) = f(i−1, j, u−j) + f(i, j−1, u),
/// over the smaller side.
fn exact_sf(u: usize, n1: usize, n2: usize) -> f64 {
    let (m, n) = if n1 <= n2 { (n1, n2) } else { (n2, n1) };
    let max_u = m * n;
    if u > max_u {
        return 0.0;
    }
    // counts[i][u] for samples of i (small side) and j (large side), j growing; as f64 (the
    // counts reach C(n+m, m), far within f64's range for m ≤ 8 and n ≤ EXACT_MAX_OTHER)
    let mut prev: Vec<Vec<f64>> = (0..=m).map(|i| if i == 0 { vec![1.0] } else { vec![0.0] }).collect();
    // j = 0: only i = 0 has an arrangement (U = 0); for i > 0 with j = 0 also one (U = 0)
    for row in prev.iter_mut() {
        row[0] = 1.0;
    }
    for j in 1..=n {
        let mut cur: Vec<Vec<f64>> = Vec::with_capacity(m + 1);
        cur.push(vec![1.0]);
        for i in 1..=m {
            let len = i * j + 1;
            let mut row = vec![0.0; len];
            for (uu, slot) in row.iter_mut().enumerate() {
                // the largest value is from the small side (it beats all j of the large side)
                let a = if uu >= j { cur[i - 1].get(uu - j).copied().unwrap_or(0.0) } else { 0.0 };
                // or from the large side
                let b = prev[i].get(uu).copied().unwrap_or(0.0);
                *slot = a + b;
            }
            cur.push(row);
        }
        prev = cur;
    }
    let dist = &prev[m];
    let total: f64 = dist.iter().sum();
    let tail: f64 = dist.iter().skip(u).sum();
    tail / total
}

/// The standard normal survival function P(Z > z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function: the Maclaurin series of erf below 2, the continued
/// fraction of erfc (modified Lentz) from 2 on; relative error below 1e-11 over the line.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.0 {
        // erf(x) = 2/√π Σ (−1)ⁿ x²ⁿ⁺¹ / (n! (2n+1))
        let mut term = x;
        let mut sum = x;
        let z = x * x;
        for n in 1..200 {
            term *= -z / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        return 1.0 - sum * 2.0 / std::f64::consts::PI.sqrt();
    }
    if x > 27.0 {
        return 0.0;
    }
    // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..500 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = x + a / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn erfc_matches_reference_values() {
        // Abramowitz & Stegun table 7.1 / any libm
        for (x, want) in [
            (0.0, 1.0),
            (0.3, 0.671_373_240_540_872_8),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_1),
            (2.0, 0.004_677_734_981_047_266),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_035e-12),
            (-1.0, 1.842_700_792_949_715),
        ] {
            assert!(close(erfc(x), want, 1e-10), "erfc({x}) = {} not {want}", erfc(x));
        }
    }

    #[test]
    fn outliers_beyond_three_iqr_are_removed_and_the_rest_kept() {
        let v = [10.0, 11.0, 12.0, 13.0, 14.0, 1000.0, f64::NAN];
        assert_eq!(without_outliers(&v), vec![10.0, 11.0, 12.0, 13.0, 14.0]);
        assert_eq!(without_outliers(&[1.0, 2.0, 100.0]), vec![1.0, 2.0, 100.0], "too few to judge");
        assert_eq!(median(&[3.0, 1.0, 2.0, 4.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn empty_or_degenerate_samples_never_panic() {
        assert_eq!(mann_whitney(&[], &[1.0]), None);
        let t = mann_whitney(&[1.0, 1.0, 1.0], &[1.0, 1.0, 1.0]).expect("a result");
        assert!((0.0..=1.0).contains(&t.p));
        let t = mann_whitney(&[f64::INFINITY, 2.0], &[1.0]).expect("a result");
        assert!((0.0..=1.0).contains(&t.p));
    }

    /// Reference values: SciPy 1.17.1 `scipy.stats.mannwhitneyu(green, blue, alternative="two-sided")`
    /// (method "auto": exact for the first two, asymptotic with tie correction for the rest).
    #[test]
    fn mann_whitney_matches_scipy() {
        type Case = (Vec<f64>, Vec<f64>, f64, f64, bool);
        let cases: Vec<Case> = vec![
            (vec![19.0, 22.0, 16.0, 29.0, 24.0], vec![20.0, 11.0, 17.0, 12.0], 17.0, 0.111_111_111_111_111_1, true),
            (
                vec![1.2, 3.4, 2.2, 5.1, 4.4, 6.0, 7.7, 8.1],
                vec![0.5, 0.9, 1.1, 1.5, 2.0, 2.5, 3.0, 3.3, 0.1, 0.2, 0.3, 0.4],
                88.0,
                0.001_063_745_336_191_156_6,
                true,
            ),
            (
                vec![1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0, 6.0, 9.0],
                vec![2.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 7.0, 8.0, 8.0, 9.0, 10.0],
                30.5,
                0.054_123_780_280_221,
                false,
            ),
            (
                (0..30).map(|i| f64::from(100 + 2 * i)).collect(),
                (0..30).map(|i| f64::from(90 + (5 * i) / 3)).collect(),
                662.0,
                0.001_763_433_649_666_398_6,
                false,
            ),
            (
                (0..40).map(|i| f64::from(180 + (i * 7) % 23)).collect(),
                (0..40).map(|i| f64::from(178 + (i * 11) % 29)).collect(),
                771.0,
                0.783_752_018_614_194_1,
                false,
            ),
        ];
        for (green, blue, u, p, exact) in cases {
            let t = mann_whitney(&green, &blue).expect("a result");
            assert_eq!(t.u, u, "U of {green:?} vs {blue:?}");
            assert_eq!(t.exact, exact, "method of {green:?} vs {blue:?}");
            assert!(close(t.p, p, 1e-9), "p of {green:?} vs {blue:?}: {} not {p}", t.p);
        }
    }
}
