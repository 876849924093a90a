//! Realistic synthetic records for demos and benchmarks, the same for the same seed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::flow::{Batch, Column, ColumnBuilder, Field, TextColumn};

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
        self.in_chunks(n, CHUNK)
    }

    /// The next `n` listings, built `chunk` at a time.
    fn in_chunks(&mut self, n: usize, chunk: usize) -> Batch {
        if n <= chunk {
            return self.next_chunk(n);
        }
        let mut parts = Vec::with_capacity(n.div_ceil(chunk));
        let mut left = n;
        while left > 0 {
            let rows = left.min(chunk);
            parts.push(self.next_chunk(rows));
            left -= rows;
        }
        Batch::concat(&parts)
    }

    /// The next listing as a JSON object.
    pub fn next_record(&mut self) -> serde_json::Map<String, serde_json::Value> {
        self.next_batch(1).record(0)
    }

    /// The next `n` listings (at most [`CHUNK`]), written straight into typed buffers: every
    /// field has one type except where a listing is broken, and those few columns are built
    /// value by value instead.
    fn next_chunk(&mut self, n: usize) -> Batch {
        let mut columns = Listings::with_capacity(n);
        let mut text = String::with_capacity(24);
        for _ in 0..n {
            let listing = self.next_listing();
            columns.push(&listing, &mut text);
        }
        Batch::new(n, columns.finish())
    }

    /// Draws the next listing; with probability `invalid_ratio` it is broken in one of the
    /// ways real feeds break (a missing field, a wrong type, an impossible value).
    fn next_listing(&mut self) -> Listing {
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
        let street = STREETS[r.random_range(0..6)];
        let broken = if self.invalid_ratio > 0.0 && r.random_bool(self.invalid_ratio.min(1.0)) {
            match r.random_range(0..3) {
                0 => Broken::NoLivingArea,
                1 => Broken::BedroomsInWords,
                _ => Broken::NegativeBathrooms,
            }
        } else {
            Broken::No
        };
        Listing {
            id,
            month,
            day,
            bedrooms,
            bathrooms: if broken == Broken::NegativeBathrooms {
                -1.0
            } else {
                bathrooms
            },
            sqft_living,
            sqft_lot,
            floors,
            waterfront,
            view,
            condition,
            yr_built,
            yr_renovated,
            number,
            street,
            city,
            statezip,
            price,
            broken,
        }
    }
}

/// How many listings [`ListingGenerator::next_batch`] builds at once: their text stays far
/// below what an Arrow string array's 32-bit offsets can address.
const CHUNK: usize = 1 << 20;

const STREETS: [&str; 6] = ["Pine", "Oak", "Cedar", "Maple", "Elm", "Lake"];

/// An integer column whose rows broken `how` hold what `broken_value` pushes instead.
fn ints_broken_at(
    values: Vec<i64>,
    broken: &[(usize, Broken)],
    how: Broken,
    broken_value: impl Fn(&mut ColumnBuilder),
) -> Column {
    let mut rows = broken.iter().filter(|(_, b)| *b == how).map(|(row, _)| *row).peekable();
    if rows.peek().is_none() {
        return Column::ints(values.into());
    }
    let mut column = ColumnBuilder::default();
    for (row, v) in values.into_iter().enumerate() {
        if rows.next_if_eq(&row).is_some() {
            broken_value(&mut column);
        } else {
            column.push_int(v);
        }
    }
    column.finish()
}

/// How a listing is broken, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    No,
    /// `sqft_living` is missing.
    NoLivingArea,
    /// `bedrooms` is the string "three".
    BedroomsInWords,
    /// `bathrooms` is -1.
    NegativeBathrooms,
}

/// One listing's values, as drawn.
struct Listing {
    id: u64,
    month: u32,
    day: u32,
    bedrooms: u32,
    bathrooms: f64,
    sqft_living: u32,
    sqft_lot: u32,
    floors: f64,
    waterfront: bool,
    view: u32,
    condition: u32,
    yr_built: u32,
    yr_renovated: u32,
    number: u32,
    street: &'static str,
    city: &'static str,
    statezip: &'static str,
    price: f64,
    broken: Broken,
}

/// The columns of a chunk of listings, in [`FIELDS`] order, as plain buffers.
struct Listings {
    id: Vec<i64>,
    date: TextColumn,
    bedrooms: Vec<i64>,
    bathrooms: Vec<f64>,
    sqft_living: Vec<i64>,
    sqft_lot: Vec<i64>,
    floors: Vec<f64>,
    waterfront: Vec<bool>,
    view: Vec<i64>,
    condition: Vec<i64>,
    yr_built: Vec<i64>,
    yr_renovated: Vec<i64>,
    street: TextColumn,
    city: TextColumn,
    statezip: TextColumn,
    price: Vec<f64>,
    /// The rows of broken listings, and how each is broken.
    broken: Vec<(usize, Broken)>,
}

impl Listings {
    fn with_capacity(n: usize) -> Self {
        Listings {
            id: Vec::with_capacity(n),
            date: TextColumn::with_capacity(n, n * 10),
            bedrooms: Vec::with_capacity(n),
            bathrooms: Vec::with_capacity(n),
            sqft_living: Vec::with_capacity(n),
            sqft_lot: Vec::with_capacity(n),
            floors: Vec::with_capacity(n),
            waterfront: Vec::with_capacity(n),
            view: Vec::with_capacity(n),
            condition: Vec::with_capacity(n),
            yr_built: Vec::with_capacity(n),
            yr_renovated: Vec::with_capacity(n),
            street: TextColumn::with_capacity(n, n * 14),
            city: TextColumn::with_capacity(n, n * 9),
            statezip: TextColumn::with_capacity(n, n * 8),
            price: Vec::with_capacity(n),
            broken: Vec::new(),
        }
    }

    fn push(&mut self, l: &Listing, text: &mut String) {
        let row = self.id.len();
        if l.broken != Broken::No {
            self.broken.push((row, l.broken));
        }
        self.id.push(l.id as i64);
        text.clear();
        text.push_str("2026-");
        two_digits(l.month, text);
        text.push('-');
        two_digits(l.day, text);
        // A chunk's text is far below 2 GiB (see CHUNK): a push cannot be refused.
        let mut fits = self.date.push(text);
        self.bedrooms.push(i64::from(l.bedrooms));
        self.bathrooms.push(l.bathrooms);
        self.sqft_living.push(i64::from(l.sqft_living));
        self.sqft_lot.push(i64::from(l.sqft_lot));
        self.floors.push(l.floors);
        self.waterfront.push(l.waterfront);
        self.view.push(i64::from(l.view));
        self.condition.push(i64::from(l.condition));
        self.yr_built.push(i64::from(l.yr_built));
        self.yr_renovated.push(i64::from(l.yr_renovated));
        text.clear();
        text.push_str(itoa::Buffer::new().format(l.number));
        text.push(' ');
        text.push_str(l.street);
        text.push_str(" St");
        fits &= self.street.push(text);
        fits &= self.city.push(l.city);
        fits &= self.statezip.push(l.statezip);
        debug_assert!(fits, "a chunk of listings outgrew a string column");
        self.price.push(l.price);
    }

    fn finish(self) -> Vec<Field> {
        let n = self.id.len();
        // Broken rows are few: their columns are built value by value, as a decoder would.
        let bedrooms = ints_broken_at(self.bedrooms, &self.broken, Broken::BedroomsInWords, |c| {
            c.push_str("three")
        });
        let sqft_living = ints_broken_at(self.sqft_living, &self.broken, Broken::NoLivingArea, |c| {
            c.push_absent()
        });
        let columns = [
            Column::ints(self.id.into()),
            self.date.finish(),
            bedrooms,
            Column::floats(self.bathrooms.into()),
            sqft_living,
            Column::ints(self.sqft_lot.into()),
            Column::floats(self.floors.into()),
            Column::bools(self.waterfront.into()),
            Column::ints(self.view.into()),
            Column::ints(self.condition.into()),
            Column::ints(self.yr_built.into()),
            Column::ints(self.yr_renovated.into()),
            self.street.finish(),
            self.city.finish(),
            self.statezip.finish(),
            Column::repeated("USA", n),
            Column::floats(self.price.into()),
        ];
        FIELDS
            .iter()
            .zip(columns)
            .map(|(name, column)| Field {
                name: (*name).into(),
                column,
            })
            .collect()
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

    #[test]
    fn a_batch_holds_the_same_listings_as_records_one_by_one_broken_ones_included() {
        let mut whole = ListingGenerator::new(3, 0.3);
        let mut one_by_one = ListingGenerator::new(3, 0.3);
        let mut chunked = ListingGenerator::new(3, 0.3);
        let batch = whole.next_batch(600);
        let chunks = chunked.in_chunks(600, 7);
        let (mut words, mut missing, mut negative) = (0, 0, 0);
        for i in 0..600 {
            let record = one_by_one.next_record();
            assert_eq!(batch.record(i), record);
            assert_eq!(chunks.record(i), record);
            match record.get("bedrooms") {
                Some(serde_json::Value::String(s)) => {
                    assert_eq!(s, "three");
                    words += 1;
                }
                Some(v) => assert!(v.is_u64(), "{v}"),
                None => panic!("bedrooms is always there"),
            }
            if !record.contains_key("sqft_living") {
                missing += 1;
            }
            if record["bathrooms"] == serde_json::json!(-1.0) {
                negative += 1;
            }
            assert_eq!(
                record.len(),
                FIELDS.len() - usize::from(!record.contains_key("sqft_living"))
            );
        }
        // About a tenth of each kind.
        for count in [words, missing, negative] {
            assert!((30..=100).contains(&count), "{words} {missing} {negative}");
        }
        // What the first batch drew, the next one does not draw again.
        assert_eq!(whole.next_record(), one_by_one.next_record());
    }

    /// The first listing of seed 1, as the generator has always written it.
    const FIRST_OF_SEED_1: &str = r#"{"id":1,"date":"2026-01-12","bedrooms":5,"bathrooms":2.0,"sqft_living":2765,"sqft_lot":5388,"floors":2.0,"waterfront":false,"view":1,"condition":1,"yr_built":1916,"yr_renovated":0,"street":"1880 Pine St","city":"Shoreline","statezip":"WA 98155","country":"USA","price":780325.0}"#;

    #[test]
    fn the_first_listings_of_a_seed_stay_what_they_were() {
        // Tests and demos rely on the sequence a seed gives.
        let mut g = ListingGenerator::new(1, 0.0);
        let first = serde_json::Value::Object(g.next_record());
        assert_eq!(first["id"], 1);
        assert_eq!(first["country"], "USA");
        let text = first.to_string();
        assert_eq!(text, FIRST_OF_SEED_1, "{text}");
    }
}
