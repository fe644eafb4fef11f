//! What tokens cost: USD per million tokens of input, output, cache reads and cache writes, per
//! model. A table for current Anthropic models ships with the gateway; a price file adds to it
//! or overrides it (its entries are looked at first), and names the price of models neither
//! knows (never free).

use std::path::Path;

use serde::Deserialize;
use tollgate_plugin_api::files::{read_limited_string, MAX_CONFIG_FILE};
use tollgate_plugin_api::{NamePattern, Usage};

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens (not read from or written to the cache).
    pub input: f64,
    /// Generated tokens.
    pub output: f64,
    /// Prompt tokens read from the cache.
    pub cache_read: f64,
    /// Prompt tokens written to the cache.
    pub cache_write: f64,
}

impl Price {
    const fn per_million(input: f64, output: f64, cache_read: f64, cache_write: f64) -> Self {
        Self {
            input,
            output,
            cache_read,
            cache_write,
        }
    }

    /// What `usage` costs, in millionths of a USD (rounded up).
    pub fn cost(&self, usage: &Usage) -> u64 {
        let cached = usage
            .cache_read_tokens
            .saturating_add(usage.cache_write_tokens);
        let plain = usage.input_tokens.saturating_sub(cached);
        // Tokens times USD per million tokens is millionths of a USD.
        let micro = plain as f64 * self.input
            + usage.cache_read_tokens as f64 * self.cache_read
            + usage.cache_write_tokens as f64 * self.cache_write
            + usage.output_tokens as f64 * self.output;
        micro_usd(micro)
    }

    /// The most a request can cost: `input` prompt tokens, `output` generated.
    pub fn ceiling(&self, input: u64, output: u64) -> u64 {
        micro_usd(input as f64 * self.input + output as f64 * self.output)
    }

    fn is_valid(&self) -> bool {
        [self.input, self.output, self.cache_read, self.cache_write]
            .iter()
            .all(|p| p.is_finite() && *p >= 0.0)
    }
}

fn micro_usd(micro: f64) -> u64 {
    if micro.is_finite() && micro > 0.0 {
        // Saturates at u64::MAX for absurd figures.
        micro.ceil() as u64
    } else {
        0
    }
}

/// The list prices of Anthropic's models when this release was made (USD per million tokens:
/// input, output, cache read, cache write; 5-minute cache writes). More specific patterns first.
const SHIPPED: [(&str, Price); 10] = [
    (
        "claude-opus-4-5*",
        Price::per_million(5.0, 25.0, 0.50, 6.25),
    ),
    (
        "claude-opus-4*",
        Price::per_million(15.0, 75.0, 1.50, 18.75),
    ),
    (
        "claude-sonnet-4*",
        Price::per_million(3.0, 15.0, 0.30, 3.75),
    ),
    ("claude-haiku-4*", Price::per_million(1.0, 5.0, 0.10, 1.25)),
    (
        "claude-3-7-sonnet*",
        Price::per_million(3.0, 15.0, 0.30, 3.75),
    ),
    (
        "claude-3-5-sonnet*",
        Price::per_million(3.0, 15.0, 0.30, 3.75),
    ),
    (
        "claude-3-5-haiku*",
        Price::per_million(0.80, 4.0, 0.08, 1.0),
    ),
    (
        "claude-3-opus*",
        Price::per_million(15.0, 75.0, 1.50, 18.75),
    ),
    (
        "claude-3-haiku*",
        Price::per_million(0.25, 1.25, 0.03, 0.30),
    ),
    (
        "claude-3-sonnet*",
        Price::per_million(3.0, 15.0, 0.30, 3.75),
    ),
];

/// Models no table names are charged at the most expensive list price: never free.
pub const DEFAULT_FALLBACK: Price = Price::per_million(15.0, 75.0, 1.50, 18.75);

/// The prices a budget charges.
#[derive(Debug, Clone)]
pub struct PriceBook {
    models: Vec<(NamePattern, Price)>,
    fallback: Price,
}

/// A price file: `[[model]]` entries and an optional `fallback`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    fallback: Option<Price>,
    #[serde(default)]
    model: Vec<ModelPrice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelPrice {
    /// An exact name or `prefix*`.
    #[serde(rename = "match")]
    pattern: String,
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
}

impl ModelPrice {
    fn price(&self) -> Price {
        Price::per_million(self.input, self.output, self.cache_read, self.cache_write)
    }
}

impl PriceBook {
    /// The shipped table, with `fallback` for models it does not name.
    pub fn shipped(fallback: Price) -> Self {
        Self {
            models: SHIPPED
                .iter()
                .filter_map(|(pattern, price)| Some((NamePattern::parse(pattern).ok()?, *price)))
                .collect(),
            fallback,
        }
    }

    /// The shipped table with the entries of the price file at `path` in front.
    pub fn with_file(path: &Path, fallback: Price) -> Result<Self, String> {
        let text = read_limited_string(path, MAX_CONFIG_FILE)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let file: PriceFile = toml::from_str(&text)
            .map_err(|e| format!("`{}` is not a price file: {e}", path.display()))?;
        let mut models = Vec::with_capacity(file.model.len() + SHIPPED.len());
        for entry in file.model {
            let pattern = NamePattern::parse(&entry.pattern)
                .map_err(|e| format!("`{}`: {e}", path.display()))?;
            if !entry.price().is_valid() {
                return Err(format!(
                    "`{}`: the prices of `{}` must be numbers of at least 0",
                    path.display(),
                    entry.pattern
                ));
            }
            models.push((pattern, entry.price()));
        }
        let fallback = file.fallback.unwrap_or(fallback);
        if !fallback.is_valid() {
            return Err(format!(
                "`{}`: `fallback` prices must be numbers of at least 0",
                path.display()
            ));
        }
        models.extend(Self::shipped(fallback).models);
        Ok(Self { models, fallback })
    }

    /// The price of `model`, and whether a table names it (else it is the fallback's).
    pub fn price(&self, model: &str) -> (Price, bool) {
        match self
            .models
            .iter()
            .find(|(pattern, _)| pattern.matches(model))
        {
            Some((_, price)) => (*price, true),
            None => (self.fallback, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cache_read: u64, cache_write: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            output_tokens: output,
            reported: true,
        }
    }

    #[test]
    fn usage_is_charged_per_kind_of_token() {
        let book = PriceBook::shipped(DEFAULT_FALLBACK);
        let (sonnet, known) = book.price("claude-sonnet-4-5-20250929");
        assert!(known);
        // 1,000 plain input ($0.003), 2,000 cache reads ($0.0006), 500 cache writes ($0.001875),
        // 1,000 output ($0.015).
        assert_eq!(sonnet.cost(&usage(3_500, 2_000, 500, 1_000)), 20_475);
        assert_eq!(book.price("claude-opus-4-5-20251101").0.input, 5.0);
        assert_eq!(book.price("claude-opus-4-1-20250805").0.input, 15.0);
        let (unknown, known) = book.price("some-other-model");
        assert!(!known);
        assert_eq!(unknown, DEFAULT_FALLBACK, "never free");
        assert_eq!(sonnet.ceiling(1_000, 1_000), 18_000);
    }

    #[test]
    fn a_price_file_comes_first_and_names_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.toml");
        std::fs::write(
            &path,
            "fallback = { input = 1.0, output = 2.0, cache_read = 0.1, cache_write = 1.5 }\n\
             [[model]]\nmatch = \"claude-sonnet-4*\"\ninput = 2.0\noutput = 10.0\ncache_read = 0.2\ncache_write = 2.5\n",
        )
        .unwrap();
        let book = PriceBook::with_file(&path, DEFAULT_FALLBACK).unwrap();
        assert_eq!(book.price("claude-sonnet-4-5").0.input, 2.0);
        assert_eq!(
            book.price("claude-haiku-4-5").0.input,
            1.0,
            "shipped entries still answer"
        );
        assert_eq!(book.price("mystery").0.output, 2.0);
        std::fs::write(&path, "[[model]]\nmatch = \"x\"\ninput = -1.0\noutput = 1.0\ncache_read = 0.0\ncache_write = 0.0\n").unwrap();
        assert!(PriceBook::with_file(&path, DEFAULT_FALLBACK).is_err());
        std::fs::write(&path, "[[model]]\nmatch = \"x\"\ninput = 1.0\n").unwrap();
        assert!(
            PriceBook::with_file(&path, DEFAULT_FALLBACK).is_err(),
            "every price given"
        );
    }
}
