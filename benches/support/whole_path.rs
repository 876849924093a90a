//! The pipeline the whole-path benchmarks run (full, latency): a source, then every record
//! checked against the listing schema and house-price v2's training profile, joined with its
//! zip code and scored, then a sink.

/// The streamlets between a source and a sink: every record is checked against the listing
/// schema and house-price v2's training profile, joined with its zip code, and scored.
/// The scorer runs `sessions` batches at once (one per core, say).
pub fn middle_with(source: &str, sink: &str, sessions: usize) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).display();
    format!(
        r#"
pipeline: full
streamlets:
  listings:
    kind: ingress
    source: {source}
  check:
    use: {root}/streamlets/listing-check.yaml
    inputs: [listings]
    profile: {{ path: {root}/examples/house-prices/models/house-price-v2.profile.json, out_of_profile: tag }}
  geo:
    kind: enricher
    inputs: [check.valid]
    table: {{ type: file, path: {root}/examples/house-prices/zipcodes.csv, key: statezip,
             columns: {{ median_income: integer, latitude: number, longitude: number }} }}
    fields: [median_income, latitude, longitude]
    into: zip
    missing: pass
  price:
    use: {root}/streamlets/house-price-gbm.yaml
    model: {{ name: house-price, folder: {root}/examples/house-prices/models, version: "2" }}
    inputs: [geo]
    sessions: {sessions}
  out:
    kind: egress
    inputs: [price]
    sink: {sink}
  rejected:
    kind: egress
    inputs: [check.invalid, listings.errors, price.errors]
    sink: {{ type: blackhole }}
"#
    )
}
