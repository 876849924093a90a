//! Realistic synthetic records for demos and benchmarks, the same for the same seed.

use std::borrow::Cow;
use std::fmt::Write;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::flow::{Batch, BatchBuilder, Owned};

const CITIES: &[(&str, &str, f64)] = &[
    ("Seattle", "WA 98103", 1.45),
    ("Seattle", "WA 98115", 1.38),
    ("Bellevue", "WA 98004", 1.9),
    ("Redmond", "WA 98052", 1.55),
    ("Kirkland", "WA 98033", 1.6),
    ("Renton", "WA 98056", 0.95),
    ("Kent", "WA 98042", 0.8),
    ("Auburn", "WA 98092", 0.75),
    ("Issaquah", "WA 98027", 1.3),
    ("Shoreline", "WA 98155", 1.05),
    ("Tacoma", "WA 98406", 0.7),
    ("Everett", "WA 98208", 0.85),
];

/// Generates house listings (the `house-listings` profile).
pub struct ListingGenerator {
    rng: SmallRng,
    next_id: u64,
    invalid_ratio: f64,
    shift_after: Option<u64>,
}

impl ListingGenerator {
    pub fn new(seed: u64, invalid_ratio: f64) -> Self {
        ListingGenerator {
            rng: SmallRng::seed_from_u64(seed),
            next_id: 1,
            invalid_ratio,
            shift_after: None,
        }
    }

    /// After `after` records, living areas (and prices) are 60% larger: a market shift.
    pub fn shifting_after(mut self, after: Option<u64>) -> Self {
        self.shift_after = after;
        self
    }

    /// The next `n` listings.
    pub fn next_batch(&mut self, n: usize) -> Batch {
        let mut builder = BatchBuilder::default();
        for _ in 0..n {
            self.push_next(&mut builder);
        }
        builder.finish()
    }

    /// The next listing as a JSON object.
    pub fn next_record(&mut self) -> serde_json::Map<String, serde_json::Value> {
        self.next_batch(1).record(0)
    }

    /// Adds the next listing to `records`; with probability `invalid_ratio` it is broken in one
    /// of the ways real feeds break (a missing field, a wrong type, an impossible value).
    pub fn push_next(&mut self, records: &mut BatchBuilder) {
        let id = self.next_id;
        self.next_id += 1;
        let r = &mut self.rng;
        let (city, statezip, premium) = CITIES[r.random_range(0..CITIES.len())];
        let bedrooms: u32 = r.random_range(1..=6);
        let bathrooms = (r.random_range(2..=(bedrooms * 2 + 1)) as f64) * 0.5 + 0.5;
        let shifted = self.shift_after.is_some_and(|after| id > after);
        let mut sqft_living: u32 = 400 + bedrooms * r.random_range(250..550);
        if shifted {
            sqft_living = sqft_living * 8 / 5;
        }
        let sqft_lot: u32 = sqft_living + r.random_range(500..12000);
        let floors = [1.0, 1.5, 2.0, 2.5, 3.0][r.random_range(0..5)];
        let waterfront = r.random_bool(0.02);
        let view: u32 = if waterfront {
            r.random_range(2..=4)
        } else {
            r.random_range(0..=2)
        };
        let condition: u32 = r.random_range(1..=5);
        let yr_built: u32 = r.random_range(1900..=2024);
        let yr_renovated: u32 = if r.random_bool(0.2) {
            r.random_range(yr_built..=2024)
        } else {
            0
        };
        let price = ((sqft_living as f64) * 260.0 * premium * (1.0 + 0.25 * waterfront as u8 as f64)
            + (view as f64) * 30_000.0
            + (condition as f64) * 8_000.0
            + r.random_range(-40_000.0..40_000.0))
        .max(75_000.0)
        .round();
        let mut date = String::with_capacity(10);
        let _ = write!(date, "2026-{:02}-{:02}", r.random_range(1..=12), r.random_range(1..=28));
        let mut street = String::with_capacity(16);
        let _ = write!(
            street,
            "{} {} St",
            r.random_range(100..20000),
            ["Pine", "Oak", "Cedar", "Maple", "Elm", "Lake"][r.random_range(0..6)]
        );
        let mut bedrooms = Owned::Int(i64::from(bedrooms));
        let mut sqft_living = Some(Owned::Int(i64::from(sqft_living)));
        let mut bathrooms = Owned::Float(bathrooms);
        if self.invalid_ratio > 0.0 && r.random_bool(self.invalid_ratio.min(1.0)) {
            match r.random_range(0..3) {
                0 => sqft_living = None,
                1 => bedrooms = Owned::Str(Cow::Borrowed("three")),
                _ => bathrooms = Owned::Float(-1.0),
            }
        }
        let mut set = |name: &str, value: Owned<'_>| {
            if let Some(column) = records.field(name) {
                column.push_owned(&value);
            }
        };
        set("id", Owned::Int(id as i64));
        set("date", Owned::Str(Cow::Borrowed(&date)));
        set("bedrooms", bedrooms);
        set("bathrooms", bathrooms);
        if let Some(sqft_living) = sqft_living {
            set("sqft_living", sqft_living);
        }
        set("sqft_lot", Owned::Int(i64::from(sqft_lot)));
        set("floors", Owned::Float(floors));
        set("waterfront", Owned::Bool(waterfront));
        set("view", Owned::Int(i64::from(view)));
        set("condition", Owned::Int(i64::from(condition)));
        set("yr_built", Owned::Int(i64::from(yr_built)));
        set("yr_renovated", Owned::Int(i64::from(yr_renovated)));
        set("street", Owned::Str(Cow::Borrowed(&street)));
        set("city", Owned::Str(Cow::Borrowed(city)));
        set("statezip", Owned::Str(Cow::Borrowed(statezip)));
        set("country", Owned::Str(Cow::Borrowed("USA")));
        set("price", Owned::Float(price));
        records.end_row();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records_and_ids_count_up() {
        let mut a = ListingGenerator::new(7, 0.1);
        let mut b = ListingGenerator::new(7, 0.1);
        for i in 1..=100u64 {
            let (ra, rb) = (a.next_record(), b.next_record());
            assert_eq!(ra, rb);
            assert_eq!(ra["id"], serde_json::Value::from(i));
        }
    }
}
