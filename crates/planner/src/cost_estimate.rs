//! Cost of ownership: what a million generated tokens cost on a machine you buy (its price spread
//! over its years of use, plus electricity) against a cloud GPU rented by the hour.

use serde::Serialize;

use crate::error::{PlannerError, Result};

/// Hours in a year of 365 days.
const HOURS_PER_YEAR: f64 = 365.0 * 24.0;

/// The assumptions behind a cost comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CostInputs {
    /// Electricity price, US dollars per kWh.
    pub electricity_usd_per_kwh: f64,
    /// Years the machine is used before it is worth nothing.
    pub years: f64,
    /// Hours per day it generates; the price is spread over these hours only.
    pub hours_per_day: f64,
}

impl Default for CostInputs {
    fn default() -> CostInputs {
        CostInputs { electricity_usd_per_kwh: 0.25, years: 3.0, hours_per_day: 8.0 }
    }
}

impl CostInputs {
    /// Checks that every number is positive (hours at most 24).
    pub fn validate(&self) -> Result<()> {
        for (name, value, most) in [
            ("electricity price", self.electricity_usd_per_kwh, f64::MAX),
            ("years", self.years, f64::MAX),
            ("hours per day", self.hours_per_day, 24.0),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= most) {
                return Err(PlannerError::invalid(name, format!("{value} is out of range")));
            }
        }
        Ok(())
    }
}

/// What generating costs on one machine.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CostEstimate {
    /// US dollars per hour of generation: the price's share and the electricity (owned), or the
    /// rental price (cloud).
    pub usd_per_hour: f64,
    /// Tokens per second while generating (all sequences together).
    pub tokens_per_second: f64,
    pub usd_per_million_tokens: f64,
}

impl CostEstimate {
    /// An owned machine of `price_usd` drawing `watts` while it generates at
    /// `tokens_per_second`.
    pub fn owned(
        price_usd: f64,
        watts: f64,
        tokens_per_second: f64,
        inputs: &CostInputs,
    ) -> CostEstimate {
        let hours_of_use = inputs.years * HOURS_PER_YEAR * inputs.hours_per_day / 24.0;
        let usd_per_hour =
            price_usd / hours_of_use + watts / 1000.0 * inputs.electricity_usd_per_kwh;
        CostEstimate::rented(usd_per_hour, tokens_per_second)
    }

    /// A machine rented at `usd_per_hour`, generating at `tokens_per_second`.
    pub fn rented(usd_per_hour: f64, tokens_per_second: f64) -> CostEstimate {
        CostEstimate {
            usd_per_hour,
            tokens_per_second,
            usd_per_million_tokens: usd_per_hour / (tokens_per_second * 3600.0) * 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_cost_spreads_the_price_over_the_hours_of_use() {
        // $4,380 over 1 year of 12 h/day = 4,380 h → $1/h; 500 W at $0.20/kWh → $0.10/h.
        let inputs = CostInputs { electricity_usd_per_kwh: 0.2, years: 1.0, hours_per_day: 12.0 };
        let cost = CostEstimate::owned(4380.0, 500.0, 100.0, &inputs);
        assert!((cost.usd_per_hour - 1.1).abs() < 1e-12, "{cost:?}");
        // 360,000 tokens per hour.
        assert!((cost.usd_per_million_tokens - 1.1 / 0.36).abs() < 1e-9, "{cost:?}");
        let cloud = CostEstimate::rented(2.5, 1000.0);
        assert!((cloud.usd_per_million_tokens - 2.5 / 3.6).abs() < 1e-12);
    }

    #[test]
    fn inputs_are_checked() {
        assert!(CostInputs::default().validate().is_ok());
        let bad = CostInputs { hours_per_day: 25.0, ..CostInputs::default() };
        assert!(bad.validate().expect_err("25 h").to_string().contains("hours per day"));
        let bad = CostInputs { years: 0.0, ..CostInputs::default() };
        assert!(bad.validate().is_err());
    }
}
