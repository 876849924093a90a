//! Realistic synthetic records for demos and benchmarks, the same for the same seed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::flow::{Batch, ColumnBuilder, Field};

/// The fields of a listing, in the order they are written.
const FIELDS: [&str; 17] = [
    "id",
    "date",
    "bedrooms",
    "bathrooms",
    "sqft_living",
    "sqft_lot",
    "floors",
    "waterfront",
    "view",
    "condition",
    "yr_built",
    "yr_renovated",
    "street",
    "city",
    "statezip",
    "country",
    "price",
];

/// Two digits, zero-padded.
fn two_digits(n: u32, out: &mut String) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

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
        let mut columns: Vec<ColumnBuilder> = FIELDS.iter().map(|_| ColumnBuilder::default()).collect();
        let mut text = String::with_capacity(24);
        for _ in 0..n {
            self.push_next(&mut columns, &mut text);
        }
        let fields = FIELDS
            .iter()
            .zip(columns)
            .map(|(name, column)| Field {
                name: (*name).into(),
                column: column.finish(),
            })
            .collect();
        Batch::new(n, fields)
    }

    /// The next listing as a JSON object.
    pub fn next_record(&mut self) -> serde_json::Map<String, serde_json::Value> {
        self.next_batch(1).record(0)
    }

    /// Adds the next listing to the columns (in [`FIELDS`] order); with probability
    /// `invalid_ratio` it is broken in one of the ways real feeds break (a missing field, a
    /// wrong type, an impossible value).
    fn push_next(&mut self, columns: &mut [ColumnBuilder], text: &mut String) {
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
        let (month, day) = (r.random_range(1..=12), r.random_range(1..=28));
        let number: u32 = r.random_range(100..20000);
        let street = ["Pine", "Oak", "Cedar", "Maple", "Elm", "Lake"][r.random_range(0..6)];
        let broken = if self.invalid_ratio > 0.0 && r.random_bool(self.invalid_ratio.min(1.0)) {
            Some(r.random_range(0..3))
        } else {
            None
        };
        columns[0].push_int(id as i64);
        text.clear();
        text.push_str("2026-");
        two_digits(month, text);
        text.push('-');
        two_digits(day, text);
        columns[1].push_str(text);
        match broken {
            Some(1) => columns[2].push_str("three"),
            _ => columns[2].push_int(i64::from(bedrooms)),
        }
        columns[3].push_float(if broken == Some(2) { -1.0 } else { bathrooms });
        match broken {
            Some(0) => columns[4].push_absent(),
            _ => columns[4].push_int(i64::from(sqft_living)),
        }
        columns[5].push_int(i64::from(sqft_lot));
        columns[6].push_float(floors);
        columns[7].push_bool(waterfront);
        columns[8].push_int(i64::from(view));
        columns[9].push_int(i64::from(condition));
        columns[10].push_int(i64::from(yr_built));
        columns[11].push_int(i64::from(yr_renovated));
        text.clear();
        text.push_str(itoa::Buffer::new().format(number));
        text.push(' ');
        text.push_str(street);
        text.push_str(" St");
        columns[12].push_str(text);
        columns[13].push_str(city);
        columns[14].push_str(statezip);
        columns[15].push_str("USA");
        columns[16].push_float(price);
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
