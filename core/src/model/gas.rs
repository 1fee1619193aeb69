//! Goal Attainment Scaling: the Kiresuk–Sherman summary T-score.

/// The usual inter-goal correlation assumed by Kiresuk and Sherman.
pub const GAS_RHO: f64 = 0.3;

/// One goal's attained level and weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GasRating {
    pub level: i8,
    pub weight: f64,
}

/// T = 50 + 10·Σwᵢxᵢ / √((1−ρ)Σwᵢ² + ρ(Σwᵢ)²), over the goals that have a level.
/// None when no goal has one.
pub fn gas_t_score(ratings: &[GasRating]) -> Option<f64> {
    if ratings.is_empty() {
        return None;
    }
    let weighted: f64 = ratings.iter().map(|r| r.weight * f64::from(r.level)).sum();
    let sum_sq: f64 = ratings.iter().map(|r| r.weight * r.weight).sum();
    let sum: f64 = ratings.iter().map(|r| r.weight).sum();
    let denominator = ((1.0 - GAS_RHO) * sum_sq + GAS_RHO * sum * sum).sqrt();
    (denominator > 0.0).then(|| 50.0 + 10.0 * weighted / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unweighted(levels: &[i8]) -> Vec<GasRating> {
        levels
            .iter()
            .map(|&level| GasRating { level, weight: 1.0 })
            .collect()
    }

    #[test]
    fn unweighted_matches_hand_computation() {
        // n = 3, Σx = 2: T = 50 + 10·2 / √(0.7·3 + 0.3·9) = 50 + 20/√4.8
        let t = gas_t_score(&unweighted(&[1, 0, 1])).unwrap();
        assert!((t - (50.0 + 20.0 / 4.8f64.sqrt())).abs() < 1e-9);
        assert!((t - 59.128709).abs() < 1e-6);
        // One goal at +2: T = 50 + 20/√1 = 70.
        assert_eq!(gas_t_score(&unweighted(&[2])), Some(70.0));
        // All at the expected level: T = 50.
        assert_eq!(gas_t_score(&unweighted(&[0, 0, 0, 0])), Some(50.0));
        assert_eq!(gas_t_score(&[]), None);
    }

    #[test]
    fn weighted_matches_hand_computation() {
        // w = (2, 1), x = (+1, -2): Σwx = 0 → 50.
        let ratings = [
            GasRating {
                level: 1,
                weight: 2.0,
            },
            GasRating {
                level: -2,
                weight: 1.0,
            },
        ];
        assert_eq!(gas_t_score(&ratings), Some(50.0));
        // w = (3, 1), x = (+2, -1): Σwx = 5; Σw² = 10; (Σw)² = 16;
        // T = 50 + 50/√(7 + 4.8) = 50 + 50/√11.8 ≈ 64.5556
        let ratings = [
            GasRating {
                level: 2,
                weight: 3.0,
            },
            GasRating {
                level: -1,
                weight: 1.0,
            },
        ];
        let t = gas_t_score(&ratings).unwrap();
        assert!((t - (50.0 + 50.0 / 11.8f64.sqrt())).abs() < 1e-9);
        assert!((t - 64.555_6).abs() < 1e-3);
    }
}
