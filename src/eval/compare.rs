//! Comparison of two flat sets of named figures: a baseline run and the
//! current run.
//!
//! Values are compared as given; NaN or infinite figures propagate into the
//! deltas following IEEE arithmetic.

use std::collections::BTreeMap;

/// One figure present on both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonRow {
    /// Name of the figure.
    pub name: String,
    /// Baseline value.
    pub baseline: f64,
    /// Current value.
    pub current: f64,
    /// `current - baseline`.
    pub delta: f64,
    /// `delta / |baseline|`, so its sign is the direction of the change;
    /// `None` when the baseline is 0.
    pub relative_delta: Option<f64>,
}

/// Outcome of [`compare`]; every list is sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// Figures present on both sides.
    pub rows: Vec<ComparisonRow>,
    /// Names present only in the baseline.
    pub only_in_baseline: Vec<String>,
    /// Names present only in the current run.
    pub only_in_current: Vec<String>,
}

/// Compares `current` against `baseline`, figure by figure.
pub fn compare(baseline: &BTreeMap<String, f64>, current: &BTreeMap<String, f64>) -> Comparison {
    let mut out = Comparison::default();
    for (name, &base) in baseline {
        match current.get(name) {
            Some(&cur) => {
                let delta = cur - base;
                out.rows.push(ComparisonRow {
                    name: name.clone(),
                    baseline: base,
                    current: cur,
                    delta,
                    relative_delta: (base != 0.0).then(|| delta / base.abs()),
                });
            }
            None => out.only_in_baseline.push(name.clone()),
        }
    }
    out.only_in_current = current
        .keys()
        .filter(|name| !baseline.contains_key(*name))
        .cloned()
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, f64)]) -> BTreeMap<String, f64> {
        items.iter().map(|&(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn hand_case() {
        // ap: 0.80 -> 0.84, delta 0.04, relative 0.04/0.8 = 0.05
        // ff: 0 -> 2, relative undefined
        let base = map(&[("ap", 0.8), ("ff", 0.0), ("old", 1.0)]);
        let cur = map(&[("ap", 0.84), ("ff", 2.0), ("new", 3.0)]);
        let c = compare(&base, &cur);
        assert_eq!(c.rows.len(), 2);
        assert_eq!(c.rows[0].name, "ap");
        assert!((c.rows[0].delta - 0.04).abs() < 1e-12);
        assert!((c.rows[0].relative_delta.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!((c.rows[1].baseline, c.rows[1].current), (0.0, 2.0));
        assert_eq!(c.rows[1].delta, 2.0);
        assert_eq!(c.rows[1].relative_delta, None);
        assert_eq!(c.only_in_baseline, vec!["old".to_string()]);
        assert_eq!(c.only_in_current, vec!["new".to_string()]);
    }

    /// Catches dividing by the signed baseline, which flips the direction.
    #[test]
    fn negative_baseline_keeps_direction() {
        // -2 -> -1: delta +1, relative +1/|-2| = +0.5.
        let c = compare(&map(&[("x", -2.0)]), &map(&[("x", -1.0)]));
        assert_eq!(c.rows[0].relative_delta, Some(0.5));
        let c = compare(&map(&[("x", -0.0)]), &map(&[("x", 1.0)]));
        assert_eq!(c.rows[0].relative_delta, None);
    }

    #[test]
    fn empty_and_disjoint() {
        let c = compare(&BTreeMap::new(), &BTreeMap::new());
        assert_eq!(c, Comparison::default());
        let c = compare(&map(&[("b", 1.0), ("a", 1.0)]), &map(&[("c", 1.0)]));
        assert!(c.rows.is_empty());
        assert_eq!(c.only_in_baseline, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(c.only_in_current, vec!["c".to_string()]);
    }

    #[test]
    fn identical_sides_have_zero_deltas() {
        let m = map(&[("a", 0.5), ("b", 0.0), ("c", -3.0)]);
        let c = compare(&m, &m);
        assert!(c.rows.iter().all(|r| r.delta == 0.0));
        assert!(c
            .rows
            .iter()
            .all(|r| r.relative_delta.is_none_or(|x| x == 0.0)));
    }
}
